"""Where labelled notes are read into a table, grouped and counted.

Everything is kept as sufficient statistics: per note, the counts of procedural, change-focused
and neutral segments, and the grouping values. The statistics that turn counts into team-level
statements (worker-clustered intervals, tests, outliers, milestone, mirroring) are in
``culture.py``; the binomial mixed model behind the culture analysis is in ``mixed.py``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import unicodedata
import zlib
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import numpy as np

from .classify import LABELS
from .culture import (
    clustered_difference,
    group_interval,
    groups_differ,
    mirroring_corrected,
    pairwise_clustered,
    within_worker_change,
    worker_outliers,
)
from .report_dask import Mapper, local_map

DERIVED = ("month", "quarter", "year")
UNKNOWN = "unknown"


# --- dates and derived keys ------------------------------------------------------------------

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})")


def parse_date(value: Any, dayfirst: bool = False) -> dt.date | None:
    """ISO dates (and datetimes); dd/mm/yyyy only when ``dayfirst`` is set, never guessed."""
    if not isinstance(value, str):
        return None
    m = _ISO.match(value.strip())
    if m:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return None
    m = _DMY.match(value.strip())
    if m and dayfirst:
        try:
            return dt.date(int(m[3]), int(m[2]), int(m[1]))
        except ValueError:
            return None
    return None


def pseudonym(value: str, key: bytes, prefix: str = "W") -> str:
    """A stable keyed pseudonym: the same name and key always give the same code."""
    return f"{prefix}-{hmac.new(key, value.encode('utf-8'), sha256).hexdigest()[:8]}"


# --- the table of labelled notes ---------------------------------------------------------------


class Column:
    """One grouping field, dictionary-encoded as it is read: a 4-byte code per note and each
    distinct value stored once, so a million notes of a few hundred workers cost 4 MB, not a
    million Python strings. Iterating gives the values, as a list of them would."""

    __slots__ = ("_codes", "values", "index")

    def __init__(self) -> None:
        self._codes = array("i")
        self.values: list[str] = []
        self.index: dict[str, int] = {}

    def append(self, value: str) -> None:
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.values)
            self.values.append(value)
        self._codes.append(code)

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, i: int) -> str:
        return self.values[self._codes[i]]

    def __iter__(self) -> Iterator[str]:
        values = self.values
        return (values[c] for c in self._codes)

    @property
    def codes(self) -> np.ndarray:
        """The codes as an int32 array (a view: no copy)."""
        return np.frombuffer(self._codes, dtype=np.int32) if len(self._codes) else np.zeros(0, np.int32)

    @property
    def names(self) -> np.ndarray:
        """The distinct values, in order of first appearance (``names[codes]`` is the column)."""
        return np.array(self.values, dtype=object)

    def code_of(self, value: str) -> int:
        """The code of ``value``, or -1 when no note has it."""
        return self.index.get(value, -1)


@dataclass
class NoteTable:
    """One row per labelled note: grouping values (as codes), segment counts and the day, nothing else.

    Counts are int32 and dates day ordinals (0: no date) in flat buffers; example sentences are
    kept only for the notes that have them (``--include-examples``).
    """

    keys: dict[str, Column] = field(default_factory=lambda: defaultdict(Column))
    _counts: array = field(default_factory=lambda: array("i"))
    _days: array = field(default_factory=lambda: array("i"))
    examples: dict[int, list[tuple[str, str, float]]] = field(default_factory=dict)
    quality: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def __len__(self) -> int:
        return len(self._days)

    def add(self, counts: dict[str, int], date: dt.date | None, examples: list[tuple[str, str, float]]) -> None:
        if examples:
            self.examples[len(self)] = examples
        self._counts.extend((counts["procedural"], counts["change_focused"], counts["neutral"]))
        self._days.append(date.toordinal() if date else 0)

    def _arrays(self) -> np.ndarray:
        return (np.frombuffer(self._counts, dtype=np.int32) if len(self._counts)
                else np.zeros(0, np.int32)).reshape(-1, 3)

    @property
    def P(self) -> np.ndarray:
        return self._arrays()[:, 0]

    @property
    def C(self) -> np.ndarray:
        return self._arrays()[:, 1]

    @property
    def N(self) -> np.ndarray:
        return self._arrays()[:, 2]

    @property
    def days(self) -> np.ndarray:
        """Each note's date as a day ordinal (``date.toordinal()``), 0 when it has none."""
        return np.frombuffer(self._days, dtype=np.int32) if len(self._days) else np.zeros(0, np.int32)

    def codes(self, key: str) -> np.ndarray:
        return self.keys[key].codes

    def column(self, key: str) -> np.ndarray:
        """The values of a field as an object array (8 bytes a note; the strings are shared)."""
        col = self.keys[key]
        return col.names[col.codes] if len(col.values) else np.full(len(col), "", dtype=object)

    def months(self) -> tuple[np.ndarray, np.ndarray]:
        """Month codes of the notes and the month names ('YYYY-MM', 'unknown' for undated notes)."""
        if "month" in self.keys:
            col = self.keys["month"]
            return col.codes, col.names
        days = self.days.astype(np.int64)
        m = np.where(days > 0, (days - _EPOCH).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64), -1)
        codes, uniques = factorize_int(m)
        names = np.array([f"{1970 + int(u) // 12}-{int(u) % 12 + 1:02d}" if u >= 0 else UNKNOWN for u in uniques],
                         dtype=object)
        return codes, names


_EPOCH = dt.date(1970, 1, 1).toordinal()


def factorize_int(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (order of first appearance) of an integer array, without a Python object per element."""
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values, dtype=np.int64), sort=False)
    return codes.astype(np.int64), np.asarray(uniques)


def combined_codes(columns: Sequence[np.ndarray]) -> np.ndarray:
    """One code per distinct combination of several code columns (order of first appearance)."""
    out = np.asarray(columns[0], dtype=np.int64)
    for col in columns[1:]:
        col = np.asarray(col, dtype=np.int64)
        out, _ = factorize_int(out * (int(col.max()) + 1 if len(col) else 1) + col)
    return out if len(columns) > 1 else factorize_int(out)[0]


def build_table(
    notes: Iterable[tuple[dict[str, Any], dict[str, int], list[tuple[str, str, float]]]],
    keys: Sequence[str],
    where: Sequence[tuple[str, str]] = (),
    dayfirst: bool = False,
    pseudonymise: dict[str, bytes] | None = None,
    merge_case: bool = False,
) -> NoteTable:
    """Collect labelled notes: (fields, counts, example sentences) -> a compact table.

    ``where`` filters on raw field values (or derived month/quarter) before anything is counted.
    Missing grouping values become "unknown" and are counted in ``quality`` so the report says so.
    Names are normalised (:func:`normalise_name`); names that still differ only by case are kept
    apart and counted, or merged with ``merge_case``.
    """
    t = NoteTable()
    wanted = list(dict.fromkeys([*keys, "team", "worker", "type"]))
    where = [(k, normalise_name(v)) for k, v in where]
    spellings: dict[tuple[str, str], str] = {}  # (key, casefolded) -> the first spelling seen
    case_variants: dict[str, set[str]] = defaultdict(set)
    today = dt.date.today()
    for fields, counts, examples in notes:
        date = parse_date(fields.get("date"), dayfirst)
        values = {}
        for k in dict.fromkeys([*wanted, *(w[0] for w in where)]):
            v = _value(fields, k, date)
            if k not in DERIVED and v != UNKNOWN:
                first = spellings.setdefault((k, v.casefold()), v)
                if first != v:
                    case_variants[k].add(v.casefold())
                    v = first if merge_case else v
            values[k] = v
        if any(values[k] != v and not (merge_case and values[k].casefold() == v.casefold()) for k, v in where):
            t.quality["filtered out by --where"] += 1
            continue
        if fields.get("date") in (None, ""):
            t.quality["notes with no date"] += 1
        elif date is None:
            t.quality["notes with an unreadable date (not YYYY-MM-DD; see --dayfirst)"] += 1
        elif date.year < 1950:
            t.quality["notes dated before 1950 (check the dates)"] += 1
        elif date > today:
            t.quality["notes dated in the future (check the dates)"] += 1
        for k in wanted:
            v = values[k]
            if v == UNKNOWN and k not in DERIVED:
                t.quality[f"notes with no {k}"] += 1
            if pseudonymise and k in pseudonymise and v != UNKNOWN:
                v = pseudonym(v, pseudonymise[k], "W" if k == "worker" else "T")
            t.keys[k].append(v)
        t.add(counts, date, examples)
    for k, folded in case_variants.items():
        # a count, never the names: worker names are what pseudonymisation hides
        how = "merged by --merge-case" if merge_case else "kept apart; --merge-case merges them"
        t.quality[f"{k} names that differ only by upper/lower case ({how})"] = len(folded)
    return t


_SPACES = re.compile(r"\s+")


def normalise_name(value: str) -> str:
    """One spelling for one name: Unicode NFC, any run of whitespace (non-breaking spaces, tabs,
    line breaks) as one space, no leading or trailing space, no control or invisible format
    characters. "Team\u00a0A ", "Team  A" and a decomposed "Team Å" are each one group."""
    v = unicodedata.normalize("NFC", value)
    v = "".join(ch for ch in v if unicodedata.category(ch) not in ("Cc", "Cf") or ch in "\t\n\r")
    return _SPACES.sub(" ", v).strip()


def _value(fields: dict[str, Any], key: str, date: dt.date | None) -> str:
    if key in DERIVED and key not in fields:
        if date is None:
            return UNKNOWN
        if key == "month":
            return f"{date.year}-{date.month:02d}"
        if key == "quarter":
            return f"{date.year}-Q{(date.month - 1) // 3 + 1}"
        return str(date.year)
    v = fields.get(key)
    if v is None:
        return UNKNOWN
    v = normalise_name(str(v))
    return v or UNKNOWN


# --- balances and intervals ------------------------------------------------------------------


def _rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(label.encode("utf-8"))])


def bootstrap_balances(C: np.ndarray, P: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Pooled change share of ``n_boot`` resamples of the notes (with replacement).

    Kept for small, note-level questions; the report's intervals are linearised (culture.py).
    """
    n = len(C)
    out = np.empty(n_boot)
    if n == 0:
        out[:] = np.nan
        return out
    step = max(1, min(n_boot, 4_000_000 // max(n, 1)))
    for s in range(0, n_boot, step):
        b = min(step, n_boot - s)
        idx = rng.integers(0, n, size=(b, n))
        c, p = C[idx].sum(axis=1), P[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + b] = np.where(c + p > 0, c / np.maximum(c + p, 1), np.nan)
    return out


def percentile_ci(boot: np.ndarray, level: float = 0.95) -> list[float | None]:
    b = boot[~np.isnan(boot)]
    if not len(b):
        return [None, None]
    a = (1 - level) / 2
    return [float(np.quantile(b, a)), float(np.quantile(b, 1 - a))]


def _ratio(c: float, t: float) -> float | None:
    return float(c / t) if t > 0 else None


@dataclass
class Codes:
    """Integer codes for the clustering fields, computed once per report."""

    team: np.ndarray
    team_names: np.ndarray
    worker: np.ndarray  # a worker is (team, name): codes unique across teams
    worker_names: np.ndarray
    worker_known: np.ndarray
    has_workers: bool

    @property
    def clusters(self) -> np.ndarray:
        """Worker codes with each note of no named worker its own cluster (never one shared 'unknown')."""
        return np.where(self.worker_known, self.worker, -1 - np.arange(len(self.worker)))

    @classmethod
    def of(cls, table: NoteTable) -> Codes:
        team, worker = table.keys["team"], table.keys["worker"]
        tc = team.codes
        known = worker.codes != worker.code_of(UNKNOWN)
        # a worker is the pair (team, name), coded in order of first appearance like the names were
        pair = np.where(known, tc.astype(np.int64) * max(len(worker.values), 1) + worker.codes, -1)
        wc, uniques = factorize_int(pair)
        del pair
        wc = wc.astype(np.int32)  # int32 codes: half the memory, the same groups
        names = np.array([worker.values[int(u) % len(worker.values)] if u >= 0 else UNKNOWN for u in uniques],
                         dtype=object)
        return cls(tc, team.names, wc, names, known, bool(known.any()))


def group_summary(c: np.ndarray, p: np.ndarray, n: np.ndarray, codes: Codes | None, rows: np.ndarray | None,
                  within_one_worker: bool = False) -> dict[str, Any]:
    """Counts, balance and the headline interval of one group (or of everything)."""
    return summarise(*_summary_args(c, p, n, codes, rows, within_one_worker))


def _summary_args(c, p, n, codes: Codes | None, rows, within_one_worker: bool) -> tuple:
    """The arguments of :func:`summarise` for one group: its own slices only (a task's data)."""
    workers = codes is not None and codes.has_workers
    return (c, p, n, codes.worker[rows] if workers else None, codes.worker_known[rows] if workers else None,
            within_one_worker)


def summarise(c: np.ndarray, p: np.ndarray, n: np.ndarray, worker: np.ndarray | None,
              worker_known: np.ndarray | None, within_one_worker: bool = False) -> dict[str, Any]:
    """:func:`group_summary` from a group's own counts and worker codes (runs as one Dask task)."""
    t = c + p
    defined = t > 0
    total_c, total_p = int(c.sum()), int(p.sum())
    shares = c[defined] / t[defined]
    iv = group_interval(c.astype(float), t.astype(float), worker, worker_known, within_one_worker)
    head, notes = iv["interval"], iv["notes_interval"]
    out = {
        "notes": len(c),
        "procedural": total_p,
        "change_focused": total_c,
        "neutral": int(n.sum()),
        "balance": _ratio(total_c, total_c + total_p),
        "balance_ci": head["ci"],
        "balance_ci_describes": iv["describes"],
        "balance_ci_method": (f"95% t interval, workers as clusters (CR2, {head['df']} df)"
                              if iv["basis"] == "workers" and head["df"] else
                              "95% t interval, notes as clusters (CR2)" if iv["basis"] == "notes" else
                              "not estimated"),
        "balance_se": head["se"],
        "workers": iv["workers"],
        "balance_ci_notes": notes["ci"],
        "change_focused_notes": float(np.mean(shares > 0.5)) if len(shares) else None,
        "classified_notes": int(defined.sum()),
    }
    if iv["notice"]:
        out["notice"] = iv["notice"]
    out["_interval"] = head  # internal: used for pairwise comparisons, dropped before output
    return out


@dataclass
class GroupResult:
    key: dict[str, str]
    rows: np.ndarray
    summary: dict[str, Any]


def group_by(table: NoteTable, by: Sequence[str], codes: Codes | None = None,
             mapper: Mapper = local_map) -> list[GroupResult]:
    """The groups of ``by`` with their summaries (computed by ``mapper``: here, or on Dask)."""
    cols = [table.keys[k] for k in by]
    P, C, N = table.P, table.C, table.N
    gc = combined_codes([col.codes for col in cols])
    order = np.argsort(gc, kind="stable")
    bounds = np.r_[0, np.flatnonzero(np.diff(gc[order])) + 1, len(gc)]
    inside_worker = "worker" in by
    rows = [order[s:e] for s, e in zip(bounds[:-1], bounds[1:])]
    summaries = mapper(summarise, [_summary_args(C[r], P[r], N[r], codes, r, inside_worker) for r in rows])
    return [GroupResult({k: col[int(r[0])] for k, col in zip(by, cols)}, r, sm) for r, sm in zip(rows, summaries)]


# --- the whole report ----------------------------------------------------------------------------


def build_report(
    table: NoteTable,
    by: Sequence[str],
    input_counts: dict[str, int],
    min_notes: int = 5,
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 20260301,
    milestone: dt.date | None = None,
    include_examples: int = 0,
    culture: bool = True,
    max_model_rows: int = 12_000,
    type_map: dict[str, str] | None = None,
    mapper: Mapper = local_map,
) -> dict[str, Any]:
    """Everything the report shows, as plain data (the JSON format is exactly this).

    ``mapper`` runs the independent per-group work (group and month summaries): :func:`local_map`
    here, or a :class:`~supervise_nlp.report_dask.DaskMap` on a Dask cluster; same numbers.
    """
    codes = Codes.of(table)
    groups = group_by(table, by, codes, mapper)
    shown = [g for g in groups if g.summary["notes"] >= min_notes]
    held = [g for g in groups if g.summary["notes"] < min_notes]
    if len(held) == 1 and shown and min_notes > 1:
        # one held-back group could be recovered as overall minus the rest: hold back the next smallest too
        smallest = min(shown, key=lambda g: g.summary["notes"])
        shown.remove(smallest)
        held.append(smallest)
    shown.sort(key=lambda g: (g.summary["balance"] is None, g.summary["balance"] or 0))
    in_date_order = any(k in DERIVED for k in by)
    if in_date_order:  # months, quarters and years run in date order, 'unknown' last
        shown.sort(key=lambda g: [(g.key[k] == UNKNOWN, g.key[k]) for k in by])
    rows = []
    for g in shown:
        row = {"key": g.key, **_public(g.summary)}
        if include_examples:
            row["examples"] = top_examples(table, g.rows, include_examples)
        rows.append(row)
    C, P = table.C, table.P
    overall = group_summary(C, P, table.N, codes, np.arange(len(table)), "worker" in by) if len(table) else None
    report: dict[str, Any] = {
        "input": input_counts,
        "by": list(by),
        "min_notes": min_notes,
        "groups_order": "date" if in_date_order else "balance",
        "groups": rows,
        "held_back": {"groups": len(held), "notes": int(sum(g.summary["notes"] for g in held))},
        "overall": _public(overall) if overall else None,
        "data_quality": dict(table.quality),
        "method": {"bootstrap_resamples": n_boot, "permutations": n_perm, "seed": seed,
                   "interval": ("95% t interval with workers as clusters (cluster-robust CR2 variance of the "
                                "pooled share, k-1 df): describes the group allowing for differences between "
                                "its workers" if codes.has_workers else
                                "95% t interval with notes as clusters (no workers named): describes these notes"),
                   "interval_notes": "balance_ci_notes: 95% interval over notes (these notes only)"},
    }
    if len(shown) >= 2:
        sel = np.concatenate([g.rows for g in shown])
        gcode = np.concatenate([np.full(len(g.rows), i) for i, g in enumerate(shown)])
        t_all = (C + P).astype(float)
        report["comparison"] = {
            "overall": groups_differ(C[sel].astype(float), t_all[sel], gcode,
                                     codes.clusters[sel] if codes.has_workers and "worker" not in by else None,
                                     n_perm, _rng(seed, "differ")),
            "pairwise": pairwise_clustered([g.summary["_interval"] for g in shown], [g.key for g in shown]),
        }
    else:
        report["comparison"] = {"overall": None, "pairwise": []}
    report["culture"] = culture_analysis(table, codes, min_notes, n_boot, seed, milestone, max_model_rows,
                                         type_map, mapper) if culture and len(table) else None
    from .suppress import enforce

    # across every section, in one place; report --validation corrects only the groups left shown
    return enforce(report, table, by, min_notes, n_perm, seed, codes=codes, type_map=type_map)


def _public(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if not k.startswith("_")}


def culture_analysis(table: NoteTable, codes: Codes, min_notes: int, n_boot: int, seed: int,
                     milestone: dt.date | None, max_model_rows: int = 12_000,
                     type_map: dict[str, str] | None = None, mapper: Mapper = local_map) -> dict[str, Any]:
    from .mixed import fit_mixed
    from .note_types import read_type_counts, why_no_mirroring

    out: dict[str, Any] = {}
    C, P = table.C, table.P
    T = C + P
    team_known = table.codes("team") != table.keys["team"].code_of(UNKNOWN)
    known = (T > 0) & team_known & codes.worker_known
    if known.sum() >= 10:
        out["variance"] = fit_mixed(C[known], T[known], codes.team[known], codes.worker[known],
                                    codes.team_names, codes.worker_names, seed=seed, max_rows=max_model_rows)
    else:
        out["variance"] = {"method": None, "reason": "needs team and worker on at least 10 classified notes"}
    sel = team_known & codes.worker_known
    res = worker_outliers(C[sel].astype(float), T[sel].astype(float), codes.team[sel], codes.worker[sel],
                          codes.team_names, codes.worker_names, min_notes)
    out["outlier_workers"] = res.pop("workers")
    out["outlier_rule"] = res
    tcol = table.keys["type"]
    per_type = np.bincount(tcol.codes, minlength=len(tcol.values))
    kind_of, type_info = read_type_counts({v: int(n) for v, n in zip(tcol.values, per_type)}, type_map)
    types = note_kinds(tcol, kind_of)
    mir = mirroring(table, codes, types, min_notes, n_boot, seed) \
        if {"supervision", "visit"} <= set(kind_of.values()) else {"teams": []}
    if "pearson_r" not in mir:
        mir["reason"] = why_no_mirroring(type_info, min_notes, len(mir["teams"]), tcol.values == [UNKNOWN])
    mir["types_read_as"] = type_info["read_as"]
    out["mirroring"] = mir
    out["trend"] = trend(table, codes, milestone, min_notes=min_notes, mapper=mapper)
    return out


KIND_CODES = {"supervision": 1, "visit": 2}


def note_kinds(column: Column, kind_of: dict[str, str]) -> np.ndarray:
    """Each note's kind as a small code (1 supervision, 2 visit, 0 neither) from its type's code."""
    per_value = np.array([KIND_CODES.get(kind_of[v], 0) for v in column.values], dtype=np.int8)
    return per_value[column.codes] if len(per_value) else np.zeros(len(column), np.int8)


def _worker_interval(c: np.ndarray, t: np.ndarray, w: np.ndarray, known: np.ndarray) -> dict[str, Any]:
    return group_interval(c.astype(float), t.astype(float), w, known, False)


def mirroring(table: NoteTable, codes: Codes, types: np.ndarray, min_notes: int, n_boot: int,
              seed: int) -> dict[str, Any]:
    """Each team's supervision balance against its visit balance, and how their true values move together.

    ``types``: each note's kind as a code of :func:`note_kinds` (or by name).
    """
    from scipy.stats import pearsonr, spearmanr

    if types.dtype == object:  # each note's kind by name ('supervision', 'visit', ''), as simulate.py gives it
        types = np.array([KIND_CODES.get(k, 0) for k in types], dtype=np.int8)
    C, P = table.C.astype(float), table.P.astype(float)
    T = C + P
    rows, noise = [], []
    order = np.argsort(codes.team, kind="stable")
    bounds = np.r_[0, np.flatnonzero(np.diff(codes.team[order])) + 1, len(order)]
    for s, e in zip(bounds[:-1], bounds[1:]):
        r = order[s:e]
        name = str(codes.team_names[codes.team[r[0]]])
        if name == UNKNOWN:
            continue
        entry: dict[str, Any] = {"team": name}
        parts = {}
        for kind in ("supervision", "visit"):
            m = r[types[r] == KIND_CODES[kind]]
            if len(m) < min_notes or T[m].sum() == 0:
                break
            iv = _worker_interval(C[m], T[m], codes.worker[m], codes.worker_known[m])
            head = iv["interval"]
            se = head["se"] if head["se"] is not None else iv["notes_interval"]["se"]
            entry[kind] = {"notes": int(len(m)), "balance": head["ratio"], "balance_ci": head["ci"],
                           "workers": iv["workers"]}
            parts[kind] = (m, head["ratio"], se)
        if len(parts) < 2:
            continue
        entry["gap"] = entry["supervision"]["balance"] - entry["visit"]["balance"]
        (ms, rs, ses), (mv, rv, sev) = parts["supervision"], parts["visit"]
        # noise covariance: the same workers write both kinds of notes
        ws = np.bincount(codes.worker[ms], weights=C[ms] - rs * T[ms], minlength=len(codes.worker_names))
        wv = np.bincount(codes.worker[mv], weights=C[mv] - rv * T[mv], minlength=len(codes.worker_names))
        kboth = int(np.sum((ws != 0) | (wv != 0)))
        cov = float(np.sum(ws * wv)) / (T[ms].sum() * T[mv].sum()) * (kboth / max(kboth - 1, 1))
        noise.append((ses or 0.0) ** 2)
        noise.append((sev or 0.0) ** 2)
        noise.append(cov)
        rows.append(entry)
    out: dict[str, Any] = {"teams": rows}
    if len(rows) >= 3:
        s = np.array([r["supervision"]["balance"] for r in rows])
        v = np.array([r["visit"]["balance"] for r in rows])
        nz = np.array(noise).reshape(-1, 3)
        r_obs, p = pearsonr(s, v)
        out["pearson_r"] = float(r_obs)
        out["pearson_p"] = float(p)
        out["pearson_r_describes"] = "these estimates: noise in each team's two balances pulls it towards zero"
        corr = mirroring_corrected(s, v, nz[:, 0], nz[:, 1], nz[:, 2], n_boot, _rng(seed, "mirroring"))
        out["r_corrected"] = corr["r"]
        out["r_corrected_ci"] = corr["ci"]
        out["r_corrected_describes"] = ("the teams' true supervision and visit balances, corrected for the noise in "
                                        "each estimate (disattenuation; bootstrap over teams)")
        out["reliability"] = corr["reliability"]
        out["spearman_rho"] = float(spearmanr(s, v)[0])
        out["mean_absolute_gap"] = float(np.mean(np.abs(s - v)))
        ns = np.array([r["supervision"]["notes"] for r in rows])
        nv = np.array([r["visit"]["notes"] for r in rows])
        out["notes_per_type"] = {"supervision": {"min": int(ns.min()), "median": float(np.median(ns))},
                                 "visit": {"min": int(nv.min()), "median": float(np.median(nv))}}
    return out


def trend(table: NoteTable, codes: Codes, milestone: dt.date | None = None, min_notes: int = 1,
          mapper: Mapper = local_map) -> dict[str, Any]:
    """Balance by month and, across a milestone date, before against after, within the same workers."""
    C, P = table.C, table.P
    T = C + P
    wk = codes.worker if codes.has_workers else None
    mc, mn = table.months()
    counts = np.bincount(mc, minlength=len(mn))
    series = []
    held_months = 0
    order = np.argsort(mc, kind="stable")
    bounds = np.r_[0, np.flatnonzero(np.diff(mc[order])) + 1, len(order)]
    rows_of = {int(mc[order[s]]): order[s:e] for s, e in zip(bounds[:-1], bounds[1:])}
    shown = []
    for i in sorted(range(len(mn)), key=lambda j: str(mn[j])):
        m = str(mn[i])
        if m == UNKNOWN:
            continue
        if counts[i] < min_notes:  # small months are not shown on their own either
            held_months += 1
            continue
        shown.append((m, rows_of[i]))
    intervals = mapper(group_interval, [(C[r].astype(float), T[r].astype(float), None if wk is None else wk[r],
                                         None if wk is None else codes.worker_known[r], False) for _, r in shown])
    for (m, r), iv in zip(shown, intervals):
        series.append({"month": m, "notes": int(len(r)), "balance": _ratio(C[r].sum(), T[r].sum()),
                       "balance_ci": iv["interval"]["ci"], "balance_ci_describes": iv["describes"]})
    out: dict[str, Any] = {"by_month": series, "months_held_back": held_months}
    if milestone:
        days = table.days
        dated = days > 0
        after = days >= milestone.toordinal()
        before = dated & ~after
        parts = {}
        for name, sel in (("before", before), ("after", after)):
            r = np.flatnonzero(sel)
            iv = group_interval(C[r].astype(float), T[r].astype(float), None if wk is None else wk[r],
                                None if wk is None else codes.worker_known[r], False)
            parts[name] = {"notes": int(len(r)), "balance": _ratio(C[r].sum(), T[r].sum()),
                           "balance_ci": iv["interval"]["ci"]}
        r = np.flatnonzero(dated)
        cluster = np.where(codes.worker_known[r], codes.worker[r], -1 - r) if wk is not None else r
        raw = clustered_difference(C[r], T[r], after[r].astype(np.int64), cluster)
        ci = raw["change_ci"] or [None, None]
        out["milestone"] = {"date": milestone.isoformat(), **parts, "change": raw["change"],
                            "change_ci": raw["change_ci"],
                            "verdict": ("not estimated" if ci[0] is None else "a clear rise" if ci[0] > 0 else
                                        "a clear fall" if ci[1] < 0 else "no clear change"),
                            "change_describes": "all notes after against all notes before (workers as clusters); "
                                                "changes in who wrote the notes count here"}
        if wk is not None:
            kn = codes.worker_known
            out["milestone"]["within"] = within_worker_change(C[kn].astype(float), T[kn].astype(float),
                                                              codes.worker[kn], after[kn], dated[kn])
    return out


def top_examples(table: NoteTable, rows: np.ndarray, n: int) -> dict[str, list[dict[str, Any]]]:
    """The most clearly procedural and change-focused sentences of a group (only when asked)."""
    pool: dict[str, list[tuple[float, str]]] = {"procedural": [], "change_focused": []}
    for r in rows.tolist():
        for text, label, p in table.examples.get(r, ()):
            if label in pool:
                pool[label].append((p, text))
    return {lab: [{"text": t, "p": round(p, 3)} for p, t in sorted(items, reverse=True)[:n]]
            for lab, items in pool.items()}


__all__ = ["LABELS", "NoteTable", "build_table", "build_report", "parse_date", "pseudonym"]
