"""Where results are written for people: terminal tables, model cards, CSV and HTML reports."""

from __future__ import annotations

import io
from typing import Any

from .classify import LABELS

WIDTH = 100


def _console(buf: io.StringIO):
    from rich.console import Console

    return Console(file=buf, width=WIDTH, force_terminal=False, color_system=None, highlight=False)


def _f(x: Any, nd: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _with_ci(x: Any, ci: Any) -> str:
    return _f(x) + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")


def evaluation_table(results: dict[str, dict[str, Any]], comparisons: dict[str, dict[str, Any]] | None = None) -> str:
    """Side-by-side scores of one or more models on the same labelled notes, each with its own
    confusion matrix and team table, and paired comparisons with the first model."""
    from rich.table import Table

    buf = io.StringIO()
    con = _console(buf)
    names = list(results)
    for name, r in results.items():
        if r.get("scored_on_its_own_training_files"):
            con.print(f"Warning: {name} was trained on {', '.join(r['scored_on_its_own_training_files'])}; "
                      "its scores on them are not an estimate for new notes.")
    t = Table(title="Segment labels (gold segments, aligned by character overlap)")
    t.add_column("measure")
    for n in names:
        t.add_column(n, justify="right")
    rows = results.values()
    t.add_row("notes / segments", *[f"{r['notes']} / {r['segments']}" for r in rows])
    t.add_row("macro-F1 (95% CI)", *[_with_ci(r["macro_f1"], r.get("intervals", {}).get("macro_f1")) for r in rows])
    t.add_row("Cohen's kappa (95% CI)", *[_with_ci(r["kappa"], r.get("intervals", {}).get("kappa")) for r in rows])
    t.add_row("accuracy", *[_f(r["accuracy"]) for r in rows])
    for lab in LABELS:
        t.add_row(f"{lab} P / R / F1", *[
            f"{_f(r['per_class'][lab]['precision'], 2)} / {_f(r['per_class'][lab]['recall'], 2)} / "
            f"{_f(r['per_class'][lab]['f1'], 2)}" for r in rows])
    t.add_row("calibration ECE", *[_f(r.get("calibration", {}).get("ece")) for r in rows])
    t.add_row("note change share MAE", *[_f(r["note_change_share_mae"]) for r in rows])
    t.add_row("team balance MAE", *[_f(r["team_balance_mae"]) for r in rows])
    t.add_row("authorities in true team order", *[r["authorities_in_true_team_order"] for r in rows])
    con.print(t)
    con.print("Intervals: 95% bootstrap over notes (notes resampled, so a note's sentences stay together).")
    for label, c in (comparisons or {}).items():
        ci = c["macro_f1_difference_ci"]
        verdict = ("a clear difference" if c["clear_difference"] else
                   "no clear difference (the interval spans zero)")
        con.print(f"Paired comparison {label}: macro-F1 difference {c['macro_f1_difference']:+.3f}"
                  + (f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else "")
                  + f", kappa difference {c['kappa_difference']:+.3f}: {verdict}.")
    for name, r in results.items():
        cm = Table(title=f"Confusion matrix ({name}): rows gold, columns predicted")
        cm.add_column("")
        for lab in LABELS:
            cm.add_column(lab, justify="right")
        for lab, row in zip(LABELS, r["confusion"]["matrix"]):
            cm.add_row(lab, *map(str, row))
        con.print(cm)
    for name, r in results.items():
        teams = Table(title=f"Team balance, true vs predicted ({name})")
        for col in ("authority", "team", "true", "predicted", "error"):
            teams.add_column(col, justify="right" if col in ("true", "predicted", "error") else "left")
        for row in r["teams"]:
            teams.add_row(row["authority"], row["team"], _f(row["true_balance"], 2), _f(row["predicted_balance"], 2),
                          _f(row["error"], 2))
        con.print(teams)
    return buf.getvalue()


def evaluation_csv(results: dict[str, dict[str, Any]], comparisons: dict[str, dict[str, Any]] | None = None) -> str:
    """One row per model and measure (with its interval), per team, and per paired comparison."""
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "model", "authority", "team", "measure", "value", "ci_low", "ci_high"])

    def num(x: Any) -> str:
        return "" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)

    for name, r in results.items():
        ivs = r.get("intervals", {})
        for m in ("macro_f1", "kappa", "accuracy", "note_change_share_mae", "team_balance_mae"):
            ci = ivs.get(m) or [None, None]
            w.writerow(["overall", name, "", "", m, num(r.get(m)), num(ci[0]), num(ci[1])])
        w.writerow(["overall", name, "", "", "notes", r["notes"], "", ""])
        w.writerow(["overall", name, "", "", "segments", r["segments"], "", ""])
        for lab in LABELS:
            for m in ("precision", "recall", "f1"):
                w.writerow(["per_class", name, "", "", f"{lab}_{m}", num(r["per_class"][lab][m]), "", ""])
        for row in r["teams"]:
            for m, key in (("true_balance", "true_balance"), ("predicted_balance", "predicted_balance"),
                           ("error", "error")):
                w.writerow(["team", name, row["authority"], row["team"], m, num(row[key]), "", ""])
    for label, c in (comparisons or {}).items():
        for m in ("macro_f1_difference", "kappa_difference"):
            ci = c.get(f"{m}_ci") or [None, None]
            w.writerow(["paired_comparison", label, "", "", m, num(c[m]), num(ci[0]), num(ci[1])])
    return buf.getvalue()


# --- the team report ---------------------------------------------------------------------------


def _key(k: dict[str, str]) -> str:
    return " / ".join(k.values())


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _ci(ci: Any) -> str:
    return "n/a" if not ci or ci[0] is None else f"{ci[0]:.2f}–{ci[1]:.2f}"


def report_table(rep: dict[str, Any]) -> str:
    """The report in a terminal, within 100 columns."""
    from rich.table import Table

    buf = io.StringIO()
    con = _console(buf)
    inp = rep["input"]
    con.print(f"Balance of change-focused to procedural recording, by {' and '.join(rep['by'])}")
    con.print(f"Input: {inp['records']} records, {inp['labelled']} labelled, {inp['rejected']} rejected. "
              "Balance = change-focused / (change-focused + procedural) segments. " + _interval_words(rep))
    t = Table(show_lines=False)
    t.add_column(" / ".join(rep["by"]), overflow="fold", max_width=36)
    for col in ("notes", "wkrs", "proc.", "change", "neutral", "balance", "95% CI", "CF notes"):
        t.add_column(col, justify="right")
    rows = rep["groups"] + ([{"key": {"": "overall"}, **rep["overall"]}] if rep["overall"] else [])
    for i, g in enumerate(rows):
        t.add_row(_key(g["key"]), str(g["notes"]), "" if g.get("workers") is None else str(g["workers"]),
                  str(g["procedural"]), str(g["change_focused"]), str(g["neutral"]),
                  _f(g["balance"], 2), _ci(g["balance_ci"]), _pct(g["change_focused_notes"]),
                  end_section=i == len(rows) - 2)
    con.print(t)
    _corrected_table(rep, con)
    for line in report_findings(rep):
        con.print("• " + line)
    return buf.getvalue()


def _interval_words(rep: dict[str, Any]) -> str:
    groups = rep["groups"] + ([rep["overall"]] if rep.get("overall") else [])
    if any(g.get("balance_ci_describes", "").startswith("this group") for g in groups):
        return ("95% intervals describe each group allowing for differences between its workers (workers as "
                "clusters, t with workers-1 df); the interval for these notes alone is in the JSON and CSV.")
    return "95% intervals describe these notes (notes as clusters)."


def report_findings(rep: dict[str, Any]) -> list[str]:
    """The report's findings in plain words (the same sentences appear in every format)."""
    out = validation_findings(rep)
    few = [g for g in rep["groups"] if g.get("notice")]
    if few:
        too_few = [_key(g["key"]) for g in few if g["notice"].startswith("too few")]
        two = [_key(g["key"]) for g in few if g["notice"].startswith("only two")]
        if too_few:
            out.append(f"{len(too_few)} group(s) have notes from one worker only, too few workers to estimate "
                       f"the group's balance beyond that worker: {', '.join(too_few[:6])}"
                       + (" and more" if len(too_few) > 6 else "") + ".")
        if two:
            out.append(f"{len(two)} group(s) have two workers, so the group and its workers cannot be told apart "
                       "and the interval is wide: " + ", ".join(two[:6]) + (" and more" if len(two) > 6 else "") + ".")
    held = rep["held_back"]
    if held["groups"]:
        out.append(f"{held['groups']} group(s) with fewer than {rep['min_notes']} notes ({held['notes']} notes) "
                   "are not shown on their own; they are in the overall figure.")
    comp = rep.get("comparison", {}).get("overall")
    if comp and comp.get("p_value") is not None:
        pairs = rep["comparison"]["pairwise"]
        sig = [p for p in pairs if p["significant"]]
        untested = [p for p in pairs if p["significant"] is None]
        if comp["p_value"] < 0.05:
            verdict = "differ by more than differences between their workers would explain" \
                if str(comp.get("unit", "")).startswith("workers") else "differ by more than chance would explain"
        else:
            verdict = "show no clear difference (which is not proof that they are alike)"
        out.append(f"The {comp['groups']} groups {verdict} ({comp['test']}, p = "
                   f"{comp['p_value']:.3g}); {len(sig)} of {len(pairs) - len(untested)} testable pairs differ after "
                   "Holm adjustment" + (f"; {len(untested)} pair(s) could not be tested (too few workers)"
                                        if untested else "") + ".")
    cul = rep.get("culture") or {}
    var = cul.get("variance") or {}
    if var.get("method") is None and var.get("reason"):
        out.append(f"No split of variation between teams and workers: {var['reason']}.")
    if var.get("warnings"):
        out.append("The mixed model reported: " + "; ".join(var["warnings"]) + " (treat the split with care).")
    if var.get("method"):
        s = var["share_of_variance"]
        ci = var.get("icc_team_ci") or [None, None]
        out.append(f"Of the variation in how change-focused segments are, {s['team']:.0%} lies between teams "
                   f"(95% interval {_pct(ci[0])}–{_pct(ci[1])}), {s['worker_within_team']:.0%} between workers within "
                   f"a team, and {s['within_worker']:.0%} within workers (binomial mixed model on the latent scale, "
                   f"{var['notes']} notes; fitted on {var['fitted_on']}).")
    flagged = [w for w in cul.get("outlier_workers", []) if w.get("outlier") or w.get("pair_differs")]
    rule = cul.get("outlier_rule") or {}
    if rule.get("tested"):
        out.append(f"Workers against their team: {rule['flagged']} of {rule['tested']} workers tested differ from "
                   f"their colleagues (rule: {rule['rule']}).")
        if rule["flagged"] > 0.25 * rule["tested"]:
            out.append("So many workers differ from their colleagues that differences between workers are "
                       "ordinary here: a flag marks a worker whose notes differ, not a rare worker (typical spread "
                       f"between workers of a team: {rule.get('between_worker_sd') or 0:.2f}).")
    for w in flagged[:8]:
        if w.get("outlier"):
            out.append(f"The recording of worker {w['worker']} ({w['team']}) is "
                       f"{'more' if w['difference'] > 0 else 'less'} change-focused than their colleagues': "
                       f"{w['balance']:.2f} against {w['rest_of_team_balance']:.2f} for the rest of the team "
                       f"(difference {_ci(w['ci'])} at the {w['ci_level']:.1%} false-coverage level; "
                       f"q = {w['q_bh']:.3g}).")
        else:
            out.append(f"The two workers of {w['team']} record differently ({w['worker']} {w['balance']:.2f}, "
                       f"{w['other_worker']} {w['rest_of_team_balance']:.2f}; q = {w['q_bh']:.3g}); "
                       "with two workers the data cannot say which of them is unusual.")
    if len(flagged) > 8:
        out.append(f"{len(flagged) - 8} more worker difference(s) in the JSON output (culture.outlier_workers).")
    mir = cul.get("mirroring") or {}
    if "pearson_r" in mir:
        r, ci = mir.get("r_corrected"), mir.get("r_corrected_ci") or [None, None]
        clear = r is not None and ci[0] is not None and ci[0] > 0
        lead = ("Supervision mirrors visits" if clear and r >= 0.5 else
                "Supervision and visits move together weakly" if clear else
                "There is no clear sign that supervision mirrors visits")
        npt = mir.get("notes_per_type") or {}
        rests = (f" It rests on a median of {npt['supervision']['median']:.0f} supervision and "
                 f"{npt['visit']['median']:.0f} visit notes per team (fewest {npt['supervision']['min']} and "
                 f"{npt['visit']['min']}).") if npt else ""
        out.append(f"{lead}: across {len(mir['teams'])} teams, the correlation of teams' true supervision and visit "
                   f"balances is estimated at " + ("n/a (the team estimates are too noisy)" if r is None else
                                                   f"{r:.2f} (95% CI {_ci(ci)})")
                   + f", after correcting for the noise in each team's estimates (the raw correlation of the "
                   f"estimates is {mir['pearson_r']:.2f}); mean gap {mir['mean_absolute_gap']:.2f}." + rests)
    ms = (cul.get("trend") or {}).get("milestone")
    if ms and ms["change"] is not None:
        out.append(f"Since {ms['date']} the balance moved from {ms['before']['balance']:.2f} to "
                   f"{ms['after']['balance']:.2f}: a change of {ms['change']:+.2f} (95% CI {_ci(ms['change_ci'])}).")
        within = ms.get("within") or {}
        if within.get("change") is not None and within.get("change_ci", [None])[0] is not None:
            out.append(f"Within the same workers ({within['workers_both_sides']} wrote notes on both sides; "
                       f"{within['workers_before_only']} only before, {within['workers_after_only']} only after), "
                       f"the balance changed by {within['change']:+.2f} (95% CI {_ci(within['change_ci'])}): "
                       f"{within['verdict']}" + (". Workers who joined or left cannot produce this figure."
                                                 if within["verdict"] != "no clear change" else
                                                 "; an interval spanning zero does not show that nothing changed."))
        elif within:
            out.append(f"No within-worker comparison across the milestone: {within.get('verdict', 'too few workers')}.")
    for k, v in (rep.get("data_quality") or {}).items():
        out.append(f"Data: {v} {k}.")
    return out


def report_csv(rep: dict[str, Any]) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    by = rep["by"]
    w.writerow([*by, "notes", "procedural", "change_focused", "neutral", "balance", "balance_ci_low",
                "balance_ci_high", "change_focused_notes", "workers", "balance_ci_describes",
                "balance_ci_notes_low", "balance_ci_notes_high", "notice", *CORRECTED_CSV_COLUMNS])
    rows = rep["groups"] + ([{"key": {k: "overall" for k in by}, **rep["overall"]}] if rep["overall"] else [])
    for g in rows:
        lo, hi = g["balance_ci"]
        nlo, nhi = g.get("balance_ci_notes") or [None, None]
        w.writerow([*(g["key"].get(k, "") for k in by), g["notes"], g["procedural"], g["change_focused"],
                    g["neutral"], g["balance"], lo, hi, g["change_focused_notes"], g.get("workers"),
                    g.get("balance_ci_describes"), nlo, nhi, g.get("notice", ""), *_corrected_csv(rep, g)])
    return buf.getvalue()


# --- validation on the organisation's own notes (report --validation) ------------------------------

CORRECTED_CSV_COLUMNS = ("corrected_balance", "corrected_balance_ci_low", "corrected_balance_ci_high", "validation")


def validation_findings(rep: dict[str, Any]) -> list[str]:
    """How the figures were validated (or that they were not): the first finding in every format."""
    v = rep.get("validation")
    if not v:
        return []
    if not v.get("validated"):
        return [v["statement"]]
    out = [v["statement"], "Corrected balances undo the misclassification measured there, assuming "
           + v["assumption"] + "; method: " + v["method"] + "."]
    if v.get("verdict") in ("not_good_enough", "too_few"):
        out.append("The validation found the model not good enough on these notes (or the sample too small): read "
                   "even the corrected balances with great care.")
    return out


def _corrected_rows(rep: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [g for g in rep["groups"] if g.get("corrected")]
    if rep.get("overall") and rep["overall"].get("corrected"):
        rows.append({"key": {"": "overall"}, **rep["overall"]})
    return rows


def _corrected_table(rep: dict[str, Any], con) -> None:
    from rich.table import Table

    rows = _corrected_rows(rep)
    if not rows:
        return
    t = Table(title="Corrected for the model's measured errors", show_lines=False)
    t.add_column(" / ".join(rep["by"]), overflow="fold", max_width=36)
    for col in ("raw balance", "corrected", "95% CI"):
        t.add_column(col, justify="right")
    for g in rows:
        c = g["corrected"]
        t.add_row(_key(g["key"]), _f(g["balance"], 2), _f(c["balance"], 2), _ci(c["balance_ci"]))
    con.print(t)


def _corrected_csv(rep: dict[str, Any], g: dict[str, Any]) -> list[Any]:
    v = rep.get("validation") or {}
    c = g.get("corrected") or {}
    lo, hi = c.get("balance_ci") or (None, None)
    return [c.get("balance"), lo, hi, v.get("statement", "")]


def _validation_html(rep: dict[str, Any]) -> str:
    from html import escape

    rows = _corrected_rows(rep)
    if not rows:
        return ""
    body = "".join(f"<tr><td>{escape(_key(g['key']))}</td><td class=n>{_f(g['balance'], 2)}</td>"
                   f"<td class=n>{_f(g['corrected']['balance'], 2)}</td>"
                   f"<td class=n>{_ci(g['corrected']['balance_ci'])}</td></tr>" for g in rows)
    return ("<h2>Balances corrected for the model's errors on your notes</h2>"
            f"<p>{escape(rep['validation']['statement'])}</p>"
            "<table><tr><th>group</th><th class=n>raw balance</th><th class=n>corrected</th>"
            f"<th class=n>95% CI</th></tr>{body}</table>")


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    import re

    text = buf.getvalue()
    # drop matplotlib's RDF block (a timestamp and namespace URIs): reports stay reproducible
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.find("<svg"):], flags=re.S)


def _charts(rep: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 10, "font.family": "sans-serif"})
    charts = {}
    groups = [g for g in rep["groups"] if g["balance"] is not None]
    if groups:
        h = max(2.0, 0.32 * len(groups) + 1)
        fig, ax = plt.subplots(figsize=(8, h))
        ys = range(len(groups))
        bal = [g["balance"] for g in groups]
        lo = [g["balance"] - (g["balance_ci"][0] if g["balance_ci"][0] is not None else g["balance"]) for g in groups]
        hi = [(g["balance_ci"][1] if g["balance_ci"][1] is not None else g["balance"]) - g["balance"] for g in groups]
        ax.errorbar(bal, ys, xerr=[lo, hi], fmt="o", color="#1f5f8b", ecolor="#7fa7c4", capsize=3)
        if rep["overall"] and rep["overall"]["balance"] is not None:
            ax.axvline(rep["overall"]["balance"], color="#888", ls="--", lw=1, label="overall")
            ax.legend(loc="lower right", frameon=False)
        ax.axvline(0.5, color="#ccc", lw=0.8)
        ax.set_yticks(list(ys), [_key(g["key"]) for g in groups])
        ax.set_xlim(0, 1)
        ax.set_xlabel("balance: change-focused share of procedural + change-focused sentences (95% CI)")
        ax.spines[["top", "right"]].set_visible(False)
        charts["balance"] = _svg(fig)
    mir = (rep.get("culture") or {}).get("mirroring") or {}
    if mir.get("teams"):
        fig, ax = plt.subplots(figsize=(5.5, 5))
        s = [t["supervision"]["balance"] for t in mir["teams"]]
        v = [t["visit"]["balance"] for t in mir["teams"]]
        ax.plot([0, 1], [0, 1], color="#ccc", lw=1)
        ax.scatter(v, s, color="#1f5f8b")
        # with many teams, name only the widest supervision/visit gaps and the two ends
        named = range(len(v))
        if len(v) > 12:
            by_gap = sorted(named, key=lambda i: -abs(s[i] - v[i]))[:4]
            named = {*by_gap, min(named, key=lambda i: v[i]), max(named, key=lambda i: v[i])}
        for i in named:
            ax.annotate(mir["teams"][i]["team"], (v[i], s[i]), fontsize=7, xytext=(4, -3),
                        textcoords="offset points")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("balance of visit notes")
        ax.set_ylabel("balance of supervision records")
        ax.spines[["top", "right"]].set_visible(False)
        charts["mirroring"] = _svg(fig)
    months = ((rep.get("culture") or {}).get("trend") or {}).get("by_month") or []
    months = [m for m in months if m["balance"] is not None]
    if len(months) >= 2:
        fig, ax = plt.subplots(figsize=(8, 3))
        x = list(range(len(months)))
        ax.plot(x, [m["balance"] for m in months], marker="o", color="#1f5f8b")
        ax.fill_between(x, [m["balance_ci"][0] for m in months], [m["balance_ci"][1] for m in months],
                        color="#1f5f8b", alpha=0.15, lw=0)
        step = max(1, len(months) // 12)
        ax.set_xticks(x[::step], [m["month"] for m in months][::step], rotation=45, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("balance")
        ms = rep["culture"]["trend"].get("milestone")
        if ms:
            pos = [i for i, m in enumerate(months) if m["month"] >= ms["date"][:7]]
            if pos:
                ax.axvline(pos[0] - 0.5, color="#c0392b", ls="--", lw=1)
                ax.annotate(f"milestone {ms['date']}", (pos[0] - 0.4, 0.93), color="#c0392b", fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        charts["trend"] = _svg(fig)
    return charts


HTML_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.headline{font-size:1.15rem;background:#f3f7fa;padding:1rem;border-left:4px solid #1f5f8b}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}td,th{padding:.25rem .6rem;border-bottom:1px solid #eee}
td.n,th.n{text-align:right;white-space:nowrap}.muted{color:#666;font-size:.9rem}svg{max-width:100%;height:auto}
"""


def report_html(rep: dict[str, Any], card: dict[str, Any] | None = None) -> str:
    """One self-contained page for a head of service: no scripts, no network, charts inline."""
    from html import escape

    charts = _charts(rep)
    ov = rep["overall"] or {}
    groups = [g for g in rep["groups"] if g["balance"] is not None]
    by = " and ".join(rep["by"])
    head = f"Across {ov.get('notes', 0)} notes, {_pct(ov.get('balance'))} of the sentences that were either " \
           f"procedural or change-focused were change-focused (95% CI {_ci(ov.get('balance_ci'))})."
    if len(groups) >= 2:
        head += f" By {by}, the balance ran from {groups[0]['balance']:.2f} ({escape(_key(groups[0]['key']))}) " \
                f"to {groups[-1]['balance']:.2f} ({escape(_key(groups[-1]['key']))})."
    rows = "".join(
        f"<tr><td>{escape(_key(g['key']))}</td><td class=n>{g['notes']}</td>"
        f"<td class=n>{'' if g.get('workers') is None else g['workers']}</td><td class=n>{g['procedural']}</td>"
        f"<td class=n>{g['change_focused']}</td><td class=n>{g['neutral']}</td><td class=n>{_f(g['balance'], 2)}</td>"
        f"<td class=n>{_ci(g['balance_ci'])}</td><td class=n>{_pct(g['change_focused_notes'])}</td></tr>"
        for g in rep["groups"])
    if ov:
        rows += (f"<tr><th>overall</th><th class=n>{ov['notes']}</th>"
                 f"<th class=n>{'' if ov.get('workers') is None else ov['workers']}</th>"
                 f"<th class=n>{ov['procedural']}</th>"
                 f"<th class=n>{ov['change_focused']}</th><th class=n>{ov['neutral']}</th>"
                 f"<th class=n>{_f(ov['balance'], 2)}</th><th class=n>{_ci(ov['balance_ci'])}</th>"
                 f"<th class=n>{_pct(ov['change_focused_notes'])}</th></tr>")
    findings = "".join(f"<li>{escape(x)}</li>" for x in report_findings(rep))
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>Recording balance by {escape(by)}</title><style>{HTML_STYLE}</style></head><body>",
        f"<h1>Procedural and change-focused recording, by {escape(by)}</h1>",
        f"<p class=headline>{head}</p>",
        f"<p class=muted>Input: {rep['input']['records']} records; {rep['input']['labelled']} labelled, "
        f"{rep['input']['rejected']} rejected.</p>",
        "<h2>Balance by group</h2>", charts.get("balance", ""),
        f"<p>{escape(_interval_words(rep))} A group's interval is about the group as a whole, what its workers "
        "in general would be expected to record, not only about the notes in this file.</p>"
        "<table><tr><th>group</th><th class=n>notes</th><th class=n>workers</th><th class=n>procedural</th>"
        "<th class=n>change-focused</th>"
        "<th class=n>neutral</th><th class=n>balance</th><th class=n>95% CI</th><th class=n>change-focused notes"
        f"</th></tr>{rows}</table>",
        f"<h2>What the figures say</h2><ul>{findings}</ul>",
        _validation_html(rep),
    ]
    if "mirroring" in charts:
        parts += ["<h2>Does supervision mirror visits?</h2>",
                  "<p>Each point is a team: how change-focused its supervision records are against how "
                  "change-focused its visit notes are. Points near the diagonal mean supervision and practice "
                  "with families look alike.</p>", charts["mirroring"]]
    if "trend" in charts:
        parts += ["<h2>Balance by month</h2>", charts["trend"]]
    examples = [g for g in rep["groups"] if g.get("examples")]
    if examples:
        parts.append("<h2>Example sentences (shown because the report was asked to include them)</h2>")
        for g in examples:
            items = "".join(f"<li><b>{escape(lab.replace('_', '-'))}</b> ({e['p']:.2f}): {escape(e['text'])}</li>"
                            for lab, es in g["examples"].items() for e in es)
            parts.append(f"<h3>{escape(_key(g['key']))}</h3><ul>{items}</ul>")
    parts.append(_methods_html(rep, card or {}))
    parts.append("</body></html>")
    return "\n".join(parts)


def _methods_html(rep: dict[str, Any], card: dict[str, Any]) -> str:
    from html import escape

    acc = ""
    if card.get("cross_validation"):
        cv = card["cross_validation"]
        acc = (f"Tested on organisations it had not seen (leave one authority out), the model's sentence labels "
               f"reached macro-F1 {cv['macro_f1']:.2f} (Cohen's kappa {cv['kappa']:.2f}), and team balances were "
               f"within {cv['team_balance_mae']:.3f} of the true balance on average.")
        if card.get("test"):
            t = card["test"]
            acc += (f" On the held-out test authority: macro-F1 {t['macro_f1']:.2f}, team balance error "
                    f"{t['team_balance_mae']:.3f}.")
        acc += (" These figures are from the card of the model given to the report (by default the shipped "
                "model); if the notes were labelled earlier by another model, that model's card applies.")
    m = rep["method"]
    return (
        "<h2>Methods and caveats</h2>"
        "<p>Every sentence (or line of a form) is labelled by a statistical model, following the project's "
        "codebook: <b>procedural</b> when it serves the organisation's or statutory system's needs (tasks, "
        "forms, meetings, timescales, compliance checks); <b>change-focused</b> when it is about change in the "
        "person's or family's life or the reflective, relational work behind it (their goals and motivation, "
        "strengths, progress, direct work, community connections, reflective supervision); <b>neutral</b> "
        "otherwise (who was present, headings, plain observation). A group's <b>balance</b> is its change-"
        "focused sentences as a share of its procedural plus change-focused sentences.</p>"
        f"<p>{escape(acc)}</p>"
        f"<p>Intervals: {escape(m['interval'])}. Sentences in one note, and notes by one worker, are not "
        "independent, so a team's figure is only as sure as its number of workers allows. Whether teams differ is "
        "tested by moving whole workers between teams (permutation test, seed "
        f"{m['seed']}); pairwise differences use the same worker-based intervals with Holm-adjusted p-values. The "
        "split of variation between teams, workers and notes comes from a binomial mixed model (statsmodels) on "
        "the latent scale, so it does not depend on how long notes are. Workers are compared with the rest of "
        "their team with false-discovery control across the organisation. Groups with fewer than "
        f"{rep['min_notes']} notes are not shown on their own.</p>"
        "<p>Caveats: the model reads recording, not practice; a procedural note may sit beside good direct work "
        "recorded elsewhere. It was trained on a synthetic sample corpus, so figures on real notes carry more "
        "error than the test scores suggest; compare teams within one organisation and one period rather than "
        "reading a single figure in isolation.</p>"
    )


# --- one explained note ------------------------------------------------------------------------

MARK = {"procedural": "P", "change_focused": "C", "neutral": "N"}
STYLE = {"procedural": "bold red", "change_focused": "bold green", "neutral": "dim"}
HTML_COLOUR = {"procedural": "#fde2e1", "change_focused": "#ddf3e4", "neutral": "#f2f2f2"}


def _reasons(s: dict[str, Any]) -> tuple[str, str]:
    """(codebook category line, words line) for one explained segment; either may be empty."""
    cat = s.get("category")
    cat_line = f"codebook: {cat['title']} ({', '.join(cat['words'])})" if cat else ""
    words = [b["feature"] for b in s["because"] if b.get("kind", "word") == "word"]
    return cat_line, ("words: " + ", ".join(words)) if words else ""


def explain_terminal(ex: dict[str, Any], colour: bool) -> str:
    """The verdict first, then the note back, a segment per line, marked; colour in a terminal."""
    from rich.console import Console
    from rich.text import Text

    from .explain import verdict

    buf = io.StringIO()
    con = Console(file=buf, width=WIDTH, force_terminal=colour, color_system="standard" if colour else None,
                  highlight=False, emoji=False)
    con.print(Text(verdict(ex), style="bold" if colour else ""))
    con.print(Text(ex["summary"]))
    con.print(Text("P = procedural, C = change-focused, N = neutral (probability in brackets).",
                   style="dim" if colour else ""))
    con.print()
    for s in ex["segments"]:
        p = s["p"][s["label"]]
        line = Text(f"[{MARK[s['label']]} {p:.2f}] ", style=STYLE[s["label"]] if colour else "")
        line.append(s["text"].replace("\n", " "), style=STYLE[s["label"]] if colour and s["label"] != "neutral" else "")
        con.print(line)
        for part in _reasons(s):
            if part:
                con.print(Text("        " + part, style="italic" if colour else ""))
        if s.get("a_change_focused_account_would_record"):
            con.print(Text("        a change-focused account would record: "
                           + s["a_change_focused_account_would_record"], style="cyan" if colour else ""))
    return buf.getvalue()


def explain_html(ex: dict[str, Any], form: bool = False) -> str:
    """A small self-contained page with the verdict and the highlighted note (with a paste box when served)."""
    from html import escape

    from .explain import verdict

    items = []
    for s in ex["segments"]:
        cat_line, words_line = _reasons(s)
        why = "; ".join(p for p in (cat_line, words_line) if p)
        tip = f"{s['label'].replace('_', '-')} {s['p'][s['label']]:.2f}" + (f": {why}" if why else "")
        guide = s.get("a_change_focused_account_would_record")
        items.append(
            f"<div class=seg style='background:{HTML_COLOUR[s['label']]}' title='{escape(tip, quote=True)}'>"
            f"<span class=tag>{MARK[s['label']]} {s['p'][s['label']]:.2f}</span> {escape(s['text'])}"
            + "".join(f"<div class=why>{escape(p)}</div>" for p in (cat_line, words_line) if p)
            + (f"<div class=guide>A change-focused account would record: {escape(guide)}</div>" if guide else "")
            + "</div>")
    style = ("body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#222}"
             ".seg{padding:.4rem .6rem;margin:.25rem 0;border-radius:4px}.tag{font-family:monospace;font-weight:bold}"
             ".why{font-size:.8rem;color:#555}.guide{font-size:.85rem;color:#1f5f8b}.sum{margin:.5rem 0 1rem}"
             ".verdict{font-size:1.2rem;font-weight:bold}.key span{padding:0 .4rem;margin-right:.5rem}"
             "textarea{width:100%;min-height:8rem;font:inherit}")
    key = "".join(f"<span style='background:{HTML_COLOUR[lab]}'>{MARK[lab]} = {lab.replace('_', '-')}</span>"
                  for lab in LABELS)
    box = ("<form method=post><label for=note>Paste a note</label><textarea id=note name=note></textarea>"
           "<p><button type=submit>Explain</button></p></form>") if form else ""
    body = ("" if not ex["segments"] else
            f"<p class=verdict>{escape(verdict(ex))}</p><p class=sum>{escape(ex['summary'])}</p>"
            f"<p class=key>{key}</p>" + "".join(items))
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'><title>Explained note</title>"
            f"<style>{style}</style></head><body><h1>Explained note</h1>{box}{body}"
            "<p>This describes how the note is written, sentence by sentence, using the project's codebook; "
            "it is not a judgement of the practice behind it.</p></body></html>")
