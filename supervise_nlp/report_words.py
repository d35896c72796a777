"""The team report's findings in plain words, shared by every format (terminal, HTML).

Numbers are percentages throughout ("44%", intervals as "38% to 45%", changes in percentage
points). Each finding is one sentence for a head of service; with ``technical=True`` the test or
model behind it follows in brackets (the terminal table and the HTML's closing methods section).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

NOUNS = {"team": "teams", "worker": "workers", "type": "note types", "month": "months", "quarter": "quarters",
         "year": "years", "authority": "organisations", "service": "services"}


def pct(x: Any) -> str:
    return "n/a" if x is None else f"{x * 100:.0f}%"


def pct_range(ci: Any) -> str:
    """'38% to 45%' (an interval in the report's one unit), or 'not estimated'."""
    if not ci or ci[0] is None or ci[1] is None:
        return "not estimated"
    return f"{ci[0] * 100:.0f}% to {ci[1] * 100:.0f}%"


def points(d: Any) -> str:
    """A change in percentage points, signed: '+11 points', '−3 points', '0 points'."""
    if d is None:
        return "n/a"
    v = round(d * 100)
    return f"{'+' if v > 0 else '−' if v < 0 else ''}{abs(v)} point{'' if abs(v) == 1 else 's'}"


def points_range(ci: Any) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "not estimated"
    return f"{points(ci[0]).split(' ')[0]} to {points(ci[1])}"


def long_date(iso: str) -> str:
    try:
        d = dt.date.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    return f"{d.day} {d.strftime('%B')} {d.year}"


def key_name(k: dict[str, str]) -> str:
    """A group's name as shown anywhere: its values, without control characters."""
    from .textsafe import clean

    return clean(" / ".join(map(str, k.values())), newlines=False)


def group_noun(rep: dict[str, Any]) -> str:
    """'teams', 'months', 'team and note type groups'..."""
    by = rep.get("by") or ["team"]
    if len(by) == 1:
        return NOUNS.get(by[0], f"{by[0]} groups")
    return " and ".join(by) + " groups"


def differ(rep: dict[str, Any]) -> bool | None:
    """Whether the report finds a real difference between its groups (None when untested)."""
    comp = (rep.get("comparison") or {}).get("overall")
    if not comp or comp.get("p_value") is None:
        return None
    return comp["p_value"] < 0.05


def headline(rep: dict[str, Any]) -> list[str]:
    """The opening sentences: what the figures say and how sure they are."""
    ov = rep.get("overall") or {}
    groups = [g for g in rep["groups"] if g.get("balance") is not None]
    noun = group_noun(rep)
    who = f" by {ov['workers']} workers" if ov.get("workers") else ""
    out = [f"Across {ov.get('notes', 0)} notes{who}, {pct(ov.get('balance'))} of the sentences that were either "
           "procedural or change-focused were change-focused."]
    if ov.get("balance_ci") and ov["balance_ci"][0] is not None:
        about = ("allowing for differences between workers" if "workers" in str(ov.get("balance_ci_describes"))
                 else "for these notes")
        out.append(f"The figure for the organisation, {about}, is likely to lie between "
                   f"{pct_range(ov['balance_ci']).replace(' to ', ' and ')}.")
    d = differ(rep)
    if len(groups) >= 2 and d:
        hi = max(groups, key=lambda g: g["balance"])
        lo = min(groups, key=lambda g: g["balance"])
        unit = ((rep.get("comparison") or {}).get("overall") or {}).get("unit", "")
        than = "differences between their workers would explain" if str(unit).startswith("workers") else "chance"
        out.append(f"The {noun} differ by more than {than} would explain: from "
                   f"{pct(lo['balance'])} ({key_name(lo['key'])}) to {pct(hi['balance'])} ({key_name(hi['key'])}).")
    elif len(groups) >= 2 and d is False:
        out.append(f"The {noun} show no clear difference from one another: the differences between them are "
                   "within what differences between workers and chance would produce (which is not proof that "
                   "they are alike).")
    return out


def what_they_do_not_mean(rep: dict[str, Any]) -> list[str]:
    val = rep.get("validation") or {}
    out = ["These figures describe how notes are written, not the quality of the work behind them: a "
           "procedural note may sit beside good direct work recorded elsewhere."]
    if val.get("validated"):
        out.append(val.get("statement", "The labels were checked against your own staff's labels."))
    else:
        out.append("Every sentence was labelled by a statistical model; its accuracy on these notes has not been "
                   "measured, so small differences should not be read as real.")
    out.append("A team's figure is about the team's workers in general; it does not rank individual workers.")
    return out


def report_findings(rep: dict[str, Any], technical: bool = False) -> list[str]:
    """The report's findings in plain words (the same sentences appear in every format)."""
    def tech(text: str) -> str:
        return f" ({text})" if technical else ""

    out = []
    few = [g for g in rep["groups"] if g.get("notice")]
    if few:
        too_few = [key_name(g["key"]) for g in few if g["notice"].startswith("too few")]
        two = [key_name(g["key"]) for g in few if g["notice"].startswith("only two")]
        if too_few:
            out.append(f"{len(too_few)} group(s) have notes from one worker only, too few to say anything about "
                       f"the group beyond that worker: {', '.join(too_few[:6])}"
                       + (" and more" if len(too_few) > 6 else "") + ".")
        if two:
            out.append(f"{len(two)} group(s) have two workers, so the group cannot be told apart from its two "
                       "workers and its range is wide: " + ", ".join(two[:6]) + (" and more" if len(two) > 6 else "")
                       + ".")
    held = rep["held_back"]
    if held["groups"]:
        out.append(f"{held['groups']} group(s) with fewer than {rep['min_notes']} notes ({held['notes']} notes) "
                   "are not shown on their own, to protect the people in them; they are in the overall figure.")
    comp = (rep.get("comparison") or {}).get("overall")
    if comp and comp.get("p_value") is not None:
        pairs = rep["comparison"]["pairwise"]
        sig = [p for p in pairs if p["significant"]]
        untested = [p for p in pairs if p["significant"] is None]
        noun = group_noun(rep)
        by_workers = str(comp.get("unit", "")).startswith("workers")
        if comp["p_value"] < 0.05:
            verdict = (f"The {comp['groups']} {noun} differ by more than differences between their workers "
                       "would explain" if by_workers else
                       f"The {comp['groups']} {noun} differ by more than chance would explain")
        else:
            verdict = f"The {comp['groups']} {noun} show no clear difference (which is not proof that they are alike)"
        out.append(verdict + tech(f"{comp['test']}, p = {comp['p_value']:.3g}") + "; "
                   f"{len(sig)} of {len(pairs) - len(untested)} pairs that could be compared differ clearly"
                   + tech("Holm-adjusted")
                   + (f"; {len(untested)} pair(s) could not be compared (too few workers)" if untested else "") + ".")
    cul = rep.get("culture") or {}
    var = cul.get("variance") or {}
    if var.get("method") is None and var.get("reason"):
        out.append(f"How much of the variation lies between teams could not be estimated: {var['reason']}.")
    if var.get("method"):
        s = var["share_of_variance"]
        ci = var.get("icc_team_ci") or [None, None]
        out.append(f"Of the variation in how change-focused sentences are, about {pct(s['team'])} lies between "
                   f"teams (95% interval {pct_range(ci)}), {pct(s['worker_within_team'])} between workers in the same "
                   f"team and {pct(s['within_worker'])} within each worker's own notes"
                   + tech(f"binomial mixed model on the latent scale, {var['notes']} notes; fitted on "
                          f"{var['fitted_on']}") + ".")
        if var.get("warnings"):
            out.append("The model behind that split reported: " + "; ".join(var["warnings"])
                       + ", so treat the split with care.")
    flagged = [w for w in cul.get("outlier_workers", []) if w.get("outlier") or w.get("pair_differs")]
    rule = cul.get("outlier_rule") or {}
    if rule.get("tested"):
        sd = rule.get("between_worker_sd")
        ordinary = (f"Workers in the same team ordinarily differ: here a worker's balance typically lies within "
                    f"about {round(sd * 100)} points of their team's. " if sd else "")
        out.append(f"Workers against their own team: {ordinary}The notes of {rule['flagged']} of {rule['tested']} "
                   "workers differ from their colleagues' by clearly more than workers here ordinarily differ"
                   + tech(f"rule: {rule['rule']}") + ".")
    for w in flagged[:8]:
        if w.get("outlier"):
            more = "more" if w["difference"] > 0 else "less"
            out.append(f"{w['worker']} ({w['team']}) writes notes that are {more} "
                       f"change-focused than their colleagues': {pct(w['balance'])} against "
                       f"{pct(w['rest_of_team_balance'])} for the rest of the team"
                       + tech(f"difference {points_range(w['ci'])} at the {w['ci_level']:.1%} false-coverage "
                              f"level; q = {w['q_bh']:.3g}") + ".")
        else:
            out.append(f"The two workers of {w['team']} write more differently than workers here ordinarily do "
                       f"({w['worker']} {pct(w['balance'])}, "
                       f"{w['other_worker']} {pct(w['rest_of_team_balance'])}); with two workers the figures cannot "
                       "say which of them is unusual" + tech(f"q = {w['q_bh']:.3g}") + ".")
    if len(flagged) > 8:
        out.append(f"{len(flagged) - 8} more worker difference(s) are in the JSON output (culture.outlier_workers).")
    out += mirroring_words(cul.get("mirroring"), technical)
    out += milestone_words((cul.get("trend") or {}).get("milestone"), technical)
    for k, v in (rep.get("data_quality") or {}).items():
        out.append(f"Data: {v} {k}.")
    return out


def mirroring_words(mir: dict[str, Any] | None, technical: bool = False) -> list[str]:
    if mir is None:
        return []
    if "pearson_r" not in mir:
        return [f"Whether supervision mirrors visits could not be worked out: {mir.get('reason', 'too few teams')}."]
    r, ci = mir.get("r_corrected"), mir.get("r_corrected_ci") or [None, None]
    clear = r is not None and ci[0] is not None and ci[0] > 0
    lead = ("Supervision mirrors visits: teams whose supervision records are change-focused write change-focused "
            "visit notes too" if clear and r >= 0.5 else
            "Supervision and visits move together, weakly" if clear else
            "There is no clear sign that supervision mirrors visits")
    npt = mir.get("notes_per_type") or {}
    rests = (f"; it rests on a median of {npt['supervision']['median']:.0f} supervision and "
             f"{npt['visit']['median']:.0f} visit notes per team") if npt else ""
    corr = ("the correlation could not be estimated (the team figures are too noisy)" if r is None else
            f"correlation {r:.2f}, 95% interval {ci[0]:.2f} to {ci[1]:.2f}, after allowing for the noise in each "
            "team's figures" if ci[0] is not None else f"correlation {r:.2f}")
    return [f"{lead} ({len(mir['teams'])} teams; {corr}{rests}"
            + (f"; raw correlation of the estimates {mir['pearson_r']:.2f}; disattenuated, bootstrap over teams"
               if technical else "") + ")."]


def milestone_words(ms: dict[str, Any] | None, technical: bool = False) -> list[str]:
    """'Since ...': 'no clear change' whenever the interval spans zero, and nothing that contradicts it."""
    if ms and ms.get("held_back"):
        return [f"Since {long_date(ms['date'])}: the before-and-after comparison is held back, because one side "
                "has too few notes to be shown on its own (--min-notes)."]
    if not ms or ms.get("change") is None:
        return []
    when = long_date(ms["date"])
    b, a = ms["before"]["balance"], ms["after"]["balance"]
    ci = ms.get("change_ci") or [None, None]
    verdict = ms.get("verdict") or ("not estimated" if ci[0] is None else "a clear rise" if ci[0] > 0 else
                                    "a clear fall" if ci[1] < 0 else "no clear change")
    figures = (f"{pct(b)} before and {pct(a)} after; a change of {points(ms['change'])}, 95% interval "
               f"{points_range(ci)}")
    if verdict == "no clear change":
        out = [f"Since {when}: no clear change in the balance ({figures})."]
    elif verdict in ("a clear rise", "a clear fall"):
        out = [f"Since {when} the balance {'rose' if verdict == 'a clear rise' else 'fell'} clearly ({figures}). "
               "This compares all notes before with all notes after, so workers joining or leaving count here too."]
    else:
        out = [f"Since {when} the balance went from {pct(b)} to {pct(a)}; too few workers to say how sure that is."]
    within = ms.get("within") or {}
    if within.get("change") is not None and (within.get("change_ci") or [None])[0] is not None:
        wv = within["verdict"]
        said = ("no clear change" if wv == "no clear change" else
                f"{'a clear rise' if wv == 'a clear rise' else 'a clear fall'}")
        text = (f"Comparing the same workers ({within['workers_both_sides']} wrote notes on both sides; "
                f"{within['workers_before_only']} only before, {within['workers_after_only']} only after): {said} "
                f"({points(within['change'])}, 95% interval {points_range(within['change_ci'])}).")
        if wv == "no clear change":
            text += " That is not proof that nothing changed."
        elif within["workers_before_only"] or within["workers_after_only"]:
            text += " Workers who joined or left do not affect this figure."
        out.append(text + (" (Each worker's after-minus-before balance, precision-weighted, workers as "
                           "clusters.)" if technical else ""))
    elif within:
        out.append(f"No comparison within the same workers: {within.get('verdict', 'too few workers')}.")
    return out
