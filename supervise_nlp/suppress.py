"""Small-group suppression, enforced over every section of a built report.

A group with fewer than ``min_notes`` notes is never shown on its own. Hiding its row is not
enough: anyone can subtract what is shown from a total that is also shown. So, over the report
dict that :func:`supervise_nlp.aggregate.build_report` built, and the note table behind it:

- **groups**: within every parent group (the overall figure, and each team when grouping by team
  and worker, which a ``--by team`` report shows), what is held back must never be a single
  group, nor a single group with procedural or change-focused sentences (an all-neutral second
  group hides nothing): the smallest shown sibling is held back too, until that holds;
- **overall**: suppressed when it has fewer than ``min_notes`` notes, or when a ``--where``
  filter leaves only held-back notes (the filter then names a small group);
- **trend**: the same rule for months against the overall figure, and for the months on each
  side of the milestone against that side's figure; a side with fewer than ``min_notes`` notes
  suppresses the milestone comparison;
- **culture**: a team's worker rows are dropped when its held-back workers are one worker, a
  team's mirroring entry when its other note types (read as neither supervision nor visit, with
  ``--type-map``) are one small type, and the mixed model's shrunken estimates of any team or
  worker with fewer than ``min_notes`` notes;
- **validation**: ``report --validation`` corrects only the groups and overall figure left shown.

Every function takes the report (and the table) and changes the report in place; :func:`enforce`
runs them all and is called once, at the end of ``build_report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

UNKNOWN = "unknown"


def _block(table, mask: np.ndarray) -> dict[str, int]:
    """Notes and informative segments of a mask or of an array of rows."""
    notes = int(mask.sum()) if mask.dtype == bool else len(mask)
    return {"notes": notes, "informative": int(table.C[mask].sum() + table.P[mask].sum())}


def _exposed(blocks: list[dict[str, int]]) -> bool:
    """Would subtracting the shown groups from their total reveal one held-back group?"""
    if not blocks:
        return False
    informative = [b for b in blocks if b["informative"] > 0]
    return len(blocks) == 1 or len(informative) == 1


def _note(report: dict[str, Any], what: str, n: int = 1) -> None:
    if n:
        held = report.setdefault("held_back", {})
        held.setdefault("secondary", {})
        held["secondary"][what] = held["secondary"].get(what, 0) + n


# --- groups -----------------------------------------------------------------------------------


def _group_masks(table, by: Sequence[str]) -> dict[tuple[str, ...], np.ndarray]:
    """Each group's rows (ascending note indices; a mask would cost a byte a note per group)."""
    from .aggregate import combined_codes

    cols = [table.keys[k] for k in by]
    gc = combined_codes([c.codes for c in cols])
    order = np.argsort(gc, kind="stable")
    bounds = np.r_[0, np.flatnonzero(np.diff(gc[order])) + 1, len(gc)]
    return {tuple(c[int(order[s])] for c in cols): order[s:e] for s, e in zip(bounds[:-1], bounds[1:])}


def suppress_groups(report: dict[str, Any], table, by: Sequence[str], min_notes: int, n_perm: int,
                    seed: int, codes=None) -> None:
    """Hold back shown groups until no parent's held-back part is a single (informative) group."""
    by = list(by)
    masks = _group_masks(table, by)
    shown = {tuple(str(g["key"][k]) for k in by) for g in report["groups"]}
    blocks = {k: _block(table, m) for k, m in masks.items()}
    newly: set[tuple[str, ...]] = set()
    changed = True
    while changed:
        changed = False
        for level in range(len(by)):
            parents: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
            for key in masks:
                parents.setdefault(key[:level], []).append(key)
            for children in parents.values():
                held = [blocks[k] for k in children if k not in shown]
                if not _exposed(held):
                    continue
                candidates = [k for k in children if k in shown]
                if not candidates:
                    continue
                useful = [k for k in candidates if blocks[k]["informative"] > 0] or candidates
                victim = min(useful, key=lambda k: (blocks[k]["notes"], k))
                shown.discard(victim)
                newly.add(victim)
                changed = True
    if not newly:
        return
    keep = [g for g in report["groups"] if tuple(str(g["key"][k]) for k in by) not in newly]
    report["groups"] = keep
    held_keys = [k for k in masks if k not in shown]
    report["held_back"]["groups"] = len(held_keys)
    report["held_back"]["notes"] = int(sum(blocks[k]["notes"] for k in held_keys))
    _note(report, "groups held back so that held-back groups cannot be worked out", len(newly))
    _recompare(report, table, by, keep, masks, n_perm, seed, codes)


def _recompare(report: dict[str, Any], table, by: list[str], keep: list[dict[str, Any]],
               masks: dict[tuple[str, ...], np.ndarray], n_perm: int, seed: int, codes) -> None:
    """The comparisons again, over the groups still shown, exactly as build_report makes them."""
    if len(keep) < 2:
        report["comparison"] = {"overall": None, "pairwise": []}
        return
    from .aggregate import Codes, _rng, group_summary
    from .culture import groups_differ, pairwise_clustered

    codes = codes if codes is not None else Codes.of(table)
    C, P, N = table.C, table.P, table.N
    rows = [masks[tuple(str(g["key"][k]) for k in by)] for g in keep]
    summaries = [group_summary(C[r], P[r], N[r], codes, r, "worker" in by) for r in rows]
    sel = np.concatenate(rows)
    gcode = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
    report["comparison"] = {
        "overall": groups_differ(C[sel].astype(float), (C + P)[sel].astype(float), gcode,
                                 codes.clusters[sel] if codes.has_workers and "worker" not in by else None,
                                 n_perm, _rng(seed, "differ")),
        "pairwise": pairwise_clustered([sm["_interval"] for sm in summaries], [g["key"] for g in keep]),
    }


# --- overall ----------------------------------------------------------------------------------


def suppress_overall(report: dict[str, Any], table, min_notes: int) -> None:
    """No overall figure for fewer than ``min_notes`` notes, or for a filter that leaves only
    held-back notes (``--where worker=X`` must not give X's figures as "overall")."""
    ov = report.get("overall")
    if not ov:
        return
    filtered = table.quality.get("filtered out by --where", 0) > 0
    if ov["notes"] < min_notes or (filtered and not report["groups"]):
        report["overall"] = None
        _note(report, "overall figure held back (too few notes, or only held-back groups after --where)")


# --- trend and milestone ----------------------------------------------------------------------


def _months(table) -> np.ndarray:
    codes, names = table.months()
    return names[codes] if len(names) else np.zeros(0, dtype=object)


def suppress_trend(report: dict[str, Any], table, min_notes: int) -> None:
    trend = (report.get("culture") or {}).get("trend")
    if not trend:
        return
    months = _months(table)
    series = trend.get("by_month") or []
    shown = {m["month"] for m in series}
    every = sorted(set(months.tolist()) - {UNKNOWN})
    blocks = {m: _block(table, months == m) for m in every}
    newly: set[str] = set()

    def hold_one(candidates: list[str]) -> bool:
        useful = [m for m in candidates if blocks[m]["informative"] > 0] or candidates
        if not useful:
            return False
        victim = min(useful, key=lambda m: (blocks[m]["notes"], m))
        shown.discard(victim)
        newly.add(victim)
        return True

    # the overall figure minus the shown months: the held-back months plus the undated notes
    while True:
        held = [blocks[m] for m in every if m not in shown]
        undated = months == UNKNOWN
        if undated.any():
            held.append(_block(table, undated))
        if not (_exposed(held) and any(blocks[m]["notes"] for m in every if m not in shown)):
            break
        if not hold_one([m for m in every if m in shown]):
            break
    ms = trend.get("milestone")
    if ms and ms.get("before") is not None:
        import datetime as dt

        days = table.days
        after = days >= dt.date.fromisoformat(ms["date"]).toordinal()
        dated = days > 0
        sides = (dated & ~after, after)
        for side in sides:
            while True:
                side_months = set(months[side].tolist())
                whole = {m for m in side_months if not ((months == m) & ~side).any()}
                held = [_block(table, side & (months == m)) for m in sorted(side_months)
                        if m not in shown or (m not in whole and (side & (months == m)).sum() < min_notes)]
                if not _exposed(held):
                    break
                if not hold_one([m for m in sorted(whole) if m in shown]):
                    break
        if any(int(side.sum()) < min_notes for side in sides):
            trend["milestone"] = {"date": ms["date"], "before": None, "after": None, "change": None,
                                  "change_ci": [None, None], "verdict": "held back", "within": None,
                                  "held_back": True}
            _note(report, "milestone comparison held back (a side has fewer notes than --min-notes)")
    if newly:
        trend["by_month"] = [m for m in series if m["month"] not in newly]
        trend["months_held_back"] = trend.get("months_held_back", 0) + len(newly)
        _note(report, "months held back so that held-back months cannot be worked out", len(newly))


# --- culture sections -------------------------------------------------------------------------


def suppress_culture(report: dict[str, Any], table, min_notes: int,
                     type_map: dict[str, str] | None = None) -> None:
    cul = report.get("culture") or {}
    if not cul or "team" not in table.keys:
        return
    teams = table.column("team")
    rows = cul.get("outlier_workers") or []
    if rows and "worker" in table.keys:
        workers = table.column("worker")
        drop = set()
        for team in {r["team"] for r in rows}:
            in_team = teams == team
            names = set(workers[in_team].tolist())
            small = [_block(table, in_team & (workers == w)) for w in sorted(names)
                     if (in_team & (workers == w)).sum() < min_notes]
            if _exposed(small):
                drop.add(team)
        if drop:
            cul["outlier_workers"] = [r for r in rows if r["team"] not in drop]
            _note(report, "teams' worker comparisons held back (they would reveal one small worker)", len(drop))
    mir = cul.get("mirroring") or {}
    if mir.get("teams") and "type" in table.keys:

        from .aggregate import note_kinds
        from .note_types import read_type_counts

        tcol = table.keys["type"]
        recorded = table.column("type")
        kinds = note_kinds(tcol, read_type_counts(dict.fromkeys(tcol.values, 1), type_map)[0])
        keep = []
        for entry in mir["teams"]:
            in_team = teams == entry["team"]
            # the team's figure minus its supervision and visit figures: its notes of other types
            others = sorted(set(recorded[in_team & (kinds == 0)].tolist()))
            small = [_block(table, in_team & (kinds == 0) & (recorded == t)) for t in others]
            if len(small) == 1 and small[0]["notes"] < min_notes and small[0]["informative"] > 0:
                continue
            keep.append(entry)
        if len(keep) < len(mir["teams"]):
            _note(report, "teams' mirroring entries held back (they would reveal one small note type)",
                  len(mir["teams"]) - len(keep))
            mir["teams"] = keep
    shrunken = (cul.get("variance") or {}).get("shrunken")
    if shrunken:
        # the mixed model's estimates, one per team and worker: none for a team or worker of few notes
        n_team = {t: int((teams == t).sum()) for t in set(teams.tolist())}
        kept_teams = [r for r in shrunken.get("teams", []) if n_team.get(r["team"], 0) >= min_notes]
        kept_workers = shrunken.get("workers", [])
        if "worker" in table.keys:
            workers = table.column("worker")
            kept_workers = [r for r in kept_workers
                            if int(((teams == r["team"]) & (workers == r["worker"])).sum()) >= min_notes]
        dropped = (len(shrunken.get("teams", [])) - len(kept_teams)
                   + len(shrunken.get("workers", [])) - len(kept_workers))
        if dropped:
            shrunken["teams"], shrunken["workers"] = kept_teams, kept_workers
            _note(report, "mixed-model estimates held back for teams or workers with too few notes", dropped)


def enforce(report: dict[str, Any], table, by: Sequence[str], min_notes: int, n_perm: int = 2000,
            seed: int = 0, codes=None, type_map: dict[str, str] | None = None) -> dict[str, Any]:
    """Every rule above, over the whole report; returns the report.

    ``report --validation`` adds corrected figures afterwards, only to the groups and overall
    figure left here, so they are covered by the same rules."""
    if min_notes <= 1 or not len(table):
        return report
    suppress_groups(report, table, by, min_notes, n_perm, seed, codes)
    suppress_overall(report, table, min_notes)
    suppress_trend(report, table, min_notes)
    suppress_culture(report, table, min_notes, type_map)
    for what, n in (report.get("held_back", {}).get("secondary") or {}).items():
        report.setdefault("data_quality", {})[what] = n
    return report
