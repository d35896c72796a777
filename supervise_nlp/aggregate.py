"""Where labelled notes are counted: balances per group, honest intervals, and culture analysis.

Sentences in one note are not independent (one worker, one visit, one style), so every interval
and test here resamples or permutes whole notes, never sentences:

- a group's **balance** is the codebook's pooled change share, with a percentile bootstrap
  interval over its notes (fixed seed, so a report is reproducible);
- **whether groups differ** is a permutation test that shuffles notes between groups; pairwise
  differences get Bonferroni-widened intervals and Holm-adjusted p-values (statsmodels);
- the **culture analysis** splits the variation in notes' change share into team, worker-within-
  team and within-worker parts with a linear mixed model (statsmodels MixedLM, REML), finds
  workers who differ from the rest of their team, compares each team's supervision with its
  visits (mirroring), and follows the balance by month and across a milestone.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import unicodedata
import warnings
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import numpy as np

from .classify import LABELS, change_share

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


@dataclass
class NoteTable:
    """One row per labelled note: grouping values and segment counts, nothing else."""

    keys: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    counts: list[tuple[int, int, int]] = field(default_factory=list)
    dates: list[dt.date | None] = field(default_factory=list)
    examples: list[list[tuple[str, str, float]]] = field(default_factory=list)
    quality: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def P(self) -> np.ndarray:
        return np.array([c[0] for c in self.counts], dtype=np.int64)

    @property
    def C(self) -> np.ndarray:
        return np.array([c[1] for c in self.counts], dtype=np.int64)

    @property
    def N(self) -> np.ndarray:
        return np.array([c[2] for c in self.counts], dtype=np.int64)

    def column(self, key: str) -> np.ndarray:
        return np.array(self.keys[key], dtype=object)


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
        t.counts.append((counts["procedural"], counts["change_focused"], counts["neutral"]))
        t.dates.append(date)
        t.examples.append(examples)
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
    """Pooled change share of ``n_boot`` resamples of the notes (with replacement)."""
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


def group_summary(C: np.ndarray, P: np.ndarray, N: np.ndarray, boot: np.ndarray) -> dict[str, Any]:
    shares = [change_share({"procedural": p, "change_focused": c}) for p, c in zip(P.tolist(), C.tolist())]
    defined = [s for s in shares if s is not None]
    total_c, total_p = int(C.sum()), int(P.sum())
    return {
        "notes": len(C),
        "procedural": total_p,
        "change_focused": total_c,
        "neutral": int(N.sum()),
        "balance": change_share({"procedural": total_p, "change_focused": total_c}),
        "balance_ci": percentile_ci(boot),
        "change_focused_notes": (sum(s > 0.5 for s in defined) / len(defined)) if defined else None,
        "classified_notes": len(defined),
    }


@dataclass
class GroupResult:
    key: dict[str, str]
    rows: np.ndarray
    summary: dict[str, Any]
    boot: np.ndarray


def group_by(table: NoteTable, by: Sequence[str], n_boot: int, seed: int) -> list[GroupResult]:
    cols = [table.column(k) for k in by]
    P, C, N = table.P, table.C, table.N
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(*cols)):
        index[key].append(i)
    out = []
    for key, rows in index.items():
        r = np.array(rows)
        boot = bootstrap_balances(C[r], P[r], n_boot, _rng(seed, "|".join(key)))
        out.append(GroupResult(dict(zip(by, key)), r, group_summary(C[r], P[r], N[r], boot), boot))
    return out


# --- are the groups different? ----------------------------------------------------------------


def permutation_test(C: np.ndarray, P: np.ndarray, labels: np.ndarray, n_perm: int, seed: int) -> dict[str, Any]:
    """Do balances differ between groups more than shuffling notes between them would give?

    Statistic: the segment-weighted spread of group balances around the pooled balance
    (the numerator of a chi-square), computed on whole notes so clustering is respected.
    """
    codes, groups = np.unique(labels, return_inverse=True)
    k = len(codes)
    if k < 2:
        return {"test": "permutation", "groups": k, "p_value": None}

    def stat(g: np.ndarray) -> float:
        c = np.bincount(g, weights=C, minlength=k)
        p = np.bincount(g, weights=P, minlength=k)
        tot = c + p
        overall = c.sum() / max(tot.sum(), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            bal = np.where(tot > 0, c / np.maximum(tot, 1), overall)
        return float(np.sum(tot * (bal - overall) ** 2))

    observed = stat(groups)
    rng = np.random.default_rng(seed)
    exceed = sum(stat(rng.permutation(groups)) >= observed - 1e-12 for _ in range(n_perm))
    return {
        "test": "permutation test on notes (statistic: segment-weighted spread of group balances)",
        "groups": k,
        "statistic": observed,
        "permutations": n_perm,
        "p_value": (exceed + 1) / (n_perm + 1),
    }


def pairwise(groups: Sequence[GroupResult], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Every pair's difference in balance, with Bonferroni intervals and Holm-adjusted p-values."""
    from scipy.stats import norm
    from statsmodels.stats.multitest import multipletests

    pairs = []
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            a, b = groups[i], groups[j]
            if a.summary["balance"] is None or b.summary["balance"] is None:
                continue
            se = float(np.sqrt(np.nanvar(a.boot) + np.nanvar(b.boot)))
            diff = a.summary["balance"] - b.summary["balance"]
            testable = bool(np.isfinite(se) and se > 0 and a.summary["notes"] >= 2 and b.summary["notes"] >= 2)
            p = float(2 * norm.sf(abs(diff) / se)) if testable else None
            pairs.append({"a": a.key, "b": b.key, "difference": diff, "se": se if testable else None, "p": p})
    tested = [x for x in pairs if x["p"] is not None]
    m = len(tested)
    if m:
        z = norm.ppf(1 - alpha / (2 * m))
        adjusted = multipletests([x["p"] for x in tested], alpha=alpha, method="holm")[1]
        for x, adj in zip(tested, adjusted):
            x["ci_bonferroni"] = [x["difference"] - z * x["se"], x["difference"] + z * x["se"]]
            x["p_holm"] = float(adj)
            x["significant"] = bool(adj < alpha)
    for x in pairs:
        if x["p"] is None:  # a single note, or no variation between resamples: nothing to test
            x.update({"ci_bonferroni": [None, None], "p_holm": None, "significant": None})
    return pairs


# --- culture: team, worker, within ---------------------------------------------------------------


def variance_components(shares: np.ndarray, teams: np.ndarray, workers: np.ndarray) -> dict[str, Any]:
    """Split note change-share variance into team, worker-within-team and within-worker parts.

    A linear mixed model with random intercepts for team and for worker nested in team, fitted
    by REML (statsmodels MixedLM). In a balanced design its estimates equal the classic nested
    ANOVA ones; it also copes with unbalanced data, which real teams always are.
    """
    import pandas as pd
    import statsmodels.formula.api as smf

    df = pd.DataFrame({"share": shares, "team": teams, "worker": [f"{t}|{w}" for t, w in zip(teams, workers)]})
    if df["team"].nunique() < 2 or df["worker"].nunique() <= df["team"].nunique():
        return {"method": None, "reason": "needs at least two teams and more workers than teams"}
    if float(np.var(shares)) == 0.0:
        return {"method": None, "reason": "every note has the same change share: there is no variation to split"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = smf.mixedlm("share ~ 1", df, groups=df["team"], re_formula="1",
                                vc_formula={"worker": "0 + C(worker)"})
            fit = model.fit(reml=True, method=["lbfgs", "powell"])
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as e:
            return {"method": None, "reason": f"the mixed model could not be fitted ({e})"}
    team_var = max(float(fit.cov_re.iloc[0, 0]), 0.0)
    worker_var = max(float(fit.vcomp[0]), 0.0)
    within = float(fit.scale)
    total = team_var + worker_var + within
    notes_msgs = sorted({str(w.message).splitlines()[0] for w in caught if "converge" in str(w.message).lower()})
    return {
        "method": "linear mixed model (REML): note change share ~ 1 + (1 | team) + (1 | team:worker)",
        "notes": int(len(df)),
        "teams": int(df["team"].nunique()),
        "workers": int(df["worker"].nunique()),
        "variance": {"team": team_var, "worker_within_team": worker_var, "within_worker": within},
        "share_of_variance": {"team": team_var / total, "worker_within_team": worker_var / total,
                              "within_worker": within / total},
        "icc_team": team_var / total,
        "icc_worker": (team_var + worker_var) / total,
        "mean_share": float(fit.fe_params.iloc[0]),
        "warnings": notes_msgs,
    }


def _pair_permutation_p(Ca: np.ndarray, Pa: np.ndarray, Cb: np.ndarray, Pb: np.ndarray, n_perm: int,
                        rng: np.random.Generator) -> float:
    """Two-sided permutation p-value for a difference in pooled change share, shuffling notes."""
    C = np.concatenate([Ca, Cb]).astype(float)
    P = np.concatenate([Pa, Pb]).astype(float)
    is_a = np.zeros(len(C), dtype=bool)
    is_a[: len(Ca)] = True

    def diff(mask: np.ndarray) -> np.ndarray:
        ca, pa = mask @ C, mask @ P
        cb, pb = (~mask) @ C, (~mask) @ P
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.abs(ca / (ca + pa) - cb / (cb + pb))

    observed = diff(is_a[None, :])[0]
    perms = rng.permuted(np.tile(is_a, (n_perm, 1)), axis=1)
    null = diff(perms)
    return float((np.sum(null >= observed - 1e-12) + 1) / (n_perm + 1))


def outlier_workers(table: NoteTable, min_notes: int, n_boot: int, seed: int, alpha: float = 0.05,
                    n_perm: int = 2000) -> list[dict[str, Any]]:
    """Workers whose recording differs from each of their colleagues in the team.

    Every pair of workers in a team (each with ``min_notes`` notes) is compared by a permutation
    test that shuffles their notes; p-values are Holm-adjusted within the team (the question asked
    is "is anyone in this team unusual?"). A worker in a team of three or more is an ``outlier``
    only when they differ significantly, in the same direction, from *each* colleague, so a real
    outlier does not make their colleagues look unusual too.
    With two workers the data cannot say which is unusual: the pair is reported as differing.
    """
    from statsmodels.stats.multitest import multipletests

    teams, workers = table.column("team"), table.column("worker")
    C, P = table.C, table.P
    pairs: list[dict[str, Any]] = []
    members: dict[str, list[str]] = {}
    for team in np.unique(teams):
        in_team = teams == team
        names = [str(w) for w in np.unique(workers[in_team])
                 if w != UNKNOWN and (in_team & (workers == w)).sum() >= min_notes]
        if len(names) < 2:
            continue
        members[str(team)] = names
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ma, mb = in_team & (workers == a), in_team & (workers == b)
                ba = change_share({"procedural": int(P[ma].sum()), "change_focused": int(C[ma].sum())})
                bb = change_share({"procedural": int(P[mb].sum()), "change_focused": int(C[mb].sum())})
                if ba is None or bb is None:
                    continue
                p = _pair_permutation_p(C[ma], P[ma], C[mb], P[mb], n_perm, _rng(seed, f"pair|{team}|{a}|{b}"))
                pairs.append({"team": str(team), "a": a, "b": b, "difference": ba - bb, "p": p})
    if not pairs:
        return []
    for team in members:
        in_team = [x for x in pairs if x["team"] == team]
        if not in_team:
            continue
        adjusted = multipletests([x["p"] for x in in_team], alpha=alpha, method="holm")[1]
        for x, adj in zip(in_team, adjusted):
            x["p_holm"] = float(adj)
    rows = []
    for team, names in members.items():
        for w in names if len(names) > 2 else names[:1]:
            mine = (teams == team) & (workers == w)
            rest = (teams == team) & (workers != w) & np.isin(workers, names)
            wb = change_share({"procedural": int(P[mine].sum()), "change_focused": int(C[mine].sum())})
            rb = change_share({"procedural": int(P[rest].sum()), "change_focused": int(C[rest].sum())})
            mine_pairs = [x for x in pairs if x["team"] == team and w in (x["a"], x["b"])]
            if wb is None or rb is None or not mine_pairs:
                continue
            signs = {np.sign(x["difference"] if x["a"] == w else -x["difference"]) for x in mine_pairs}
            all_differ = all(x["p_holm"] < alpha for x in mine_pairs) and len(signs) == 1
            bm = bootstrap_balances(C[mine], P[mine], n_boot, _rng(seed, f"w|{team}|{w}"))
            br = bootstrap_balances(C[rest], P[rest], n_boot, _rng(seed, f"r|{team}|{w}"))
            row = {"team": team, "worker": w, "notes": int(mine.sum()), "balance": wb,
                   "rest_of_team_balance": rb, "difference": wb - rb,
                   "ci": percentile_ci(bm - br), "team_workers": len(names),
                   "p": max(x["p"] for x in mine_pairs), "p_holm": max(x["p_holm"] for x in mine_pairs),
                   "outlier": all_differ and len(names) >= 3, "pair_differs": all_differ and len(names) == 2}
            if len(names) == 2:
                row["other_worker"] = names[1]
            rows.append(row)
    return sorted(rows, key=lambda r: r["p_holm"])


def mirroring(table: NoteTable, min_notes: int, n_boot: int, seed: int) -> dict[str, Any]:
    """Each team's supervision balance against its visit balance, and how they move together."""
    from scipy.stats import pearsonr, spearmanr

    teams = table.column("team")
    types = np.array([str(t).strip().lower() for t in table.column("type")], dtype=object)
    C, P = table.C, table.P
    rows = []
    for team in np.unique(teams):
        entry: dict[str, Any] = {"team": str(team)}
        ok = True
        for kind in ("supervision", "visit"):
            m = (teams == team) & (types == kind)
            bal = change_share({"procedural": int(P[m].sum()), "change_focused": int(C[m].sum())})
            if m.sum() < min_notes or bal is None:
                ok = False
                break
            boot = bootstrap_balances(C[m], P[m], n_boot, _rng(seed, f"m|{team}|{kind}"))
            entry[kind] = {"notes": int(m.sum()), "balance": bal, "balance_ci": percentile_ci(boot)}
        if ok:
            entry["gap"] = entry["supervision"]["balance"] - entry["visit"]["balance"]
            rows.append(entry)
    out: dict[str, Any] = {"teams": rows}
    if len(rows) >= 3:
        s = np.array([r["supervision"]["balance"] for r in rows])
        v = np.array([r["visit"]["balance"] for r in rows])
        r, p = pearsonr(s, v)
        out["pearson_r"] = float(r)
        out["pearson_p"] = float(p)
        if len(rows) > 3 and abs(r) < 1:
            z, se = np.arctanh(r), 1 / np.sqrt(len(rows) - 3)
            out["pearson_r_ci"] = [float(np.tanh(z - 1.96 * se)), float(np.tanh(z + 1.96 * se))]
        out["spearman_rho"] = float(spearmanr(s, v)[0])
        out["mean_absolute_gap"] = float(np.mean(np.abs(s - v)))
    return out


def trend(table: NoteTable, n_boot: int, seed: int, milestone: dt.date | None = None,
          stratum: str | None = None, min_notes: int = 1) -> dict[str, Any]:
    """Balance by month and, across a milestone date, before against after.

    Beside the raw before/after change, the change *within* each stratum (team, by default) is
    averaged with segment weights, so a shift in which teams wrote the notes is not mistaken for
    a change in how they write.
    """
    months = table.column("month") if "month" in table.keys else np.array(
        [f"{d.year}-{d.month:02d}" if d else UNKNOWN for d in table.dates], dtype=object)
    C, P = table.C, table.P
    series = []
    held_months = 0
    for m in sorted(set(months.tolist()) - {UNKNOWN}):
        sel = months == m
        if sel.sum() < min_notes:  # small months are not shown on their own either
            held_months += 1
            continue
        boot = bootstrap_balances(C[sel], P[sel], n_boot, _rng(seed, f"month|{m}"))
        series.append({"month": m, "notes": int(sel.sum()),
                       "balance": change_share({"procedural": int(P[sel].sum()), "change_focused": int(C[sel].sum())}),
                       "balance_ci": percentile_ci(boot)})
    out: dict[str, Any] = {"by_month": series, "months_held_back": held_months}
    if milestone:
        dated = np.array([d is not None for d in table.dates])
        after = np.array([d is not None and d >= milestone for d in table.dates])
        before = dated & ~after
        parts = {}
        boots = {}
        for name, sel in (("before", before), ("after", after)):
            boots[name] = bootstrap_balances(C[sel], P[sel], n_boot, _rng(seed, f"milestone|{name}"))
            parts[name] = {"notes": int(sel.sum()),
                           "balance": change_share({"procedural": int(P[sel].sum()),
                                                    "change_focused": int(C[sel].sum())}),
                           "balance_ci": percentile_ci(boots[name])}
        change = None
        if parts["before"]["balance"] is not None and parts["after"]["balance"] is not None:
            change = parts["after"]["balance"] - parts["before"]["balance"]
        out["milestone"] = {"date": milestone.isoformat(), **parts, "change": change,
                            "change_ci": percentile_ci(boots["after"] - boots["before"])}
        if stratum and stratum in table.keys:
            out["milestone"]["within"] = within_change(table, stratum, before, after, n_boot, seed)
    return out


def within_change(table: NoteTable, stratum: str, before: np.ndarray, after: np.ndarray, n_boot: int,
                  seed: int) -> dict[str, Any]:
    """Segment-weighted mean of each stratum's after-minus-before balance, stratified bootstrap CI."""
    C, P = table.C, table.P
    col = table.column(stratum)
    diffs, weights, boots = [], [], []
    for g in np.unique(col):
        b, a = before & (col == g), after & (col == g)
        tb, ta = int(C[b].sum() + P[b].sum()), int(C[a].sum() + P[a].sum())
        if not tb or not ta:
            continue
        diffs.append(C[a].sum() / ta - C[b].sum() / tb)
        weights.append(tb + ta)
        boots.append(bootstrap_balances(C[a], P[a], n_boot, _rng(seed, f"wa|{g}"))
                     - bootstrap_balances(C[b], P[b], n_boot, _rng(seed, f"wb|{g}")))
    if not diffs:
        return {"by": stratum, "groups": 0, "change": None, "change_ci": [None, None]}
    w = np.array(weights, dtype=float) / sum(weights)
    return {"by": stratum, "groups": len(diffs), "change": float(np.dot(w, diffs)),
            "change_ci": percentile_ci(np.nansum(np.vstack(boots) * w[:, None], axis=0))}


def note_shares(table: NoteTable) -> tuple[np.ndarray, np.ndarray]:
    """Each note's change share, and which notes have one."""
    C, P = table.C.astype(float), table.P.astype(float)
    ok = (C + P) > 0
    return np.where(ok, C / np.maximum(C + P, 1), np.nan), ok


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
) -> dict[str, Any]:
    """Everything the report shows, as plain data (the JSON format is exactly this)."""
    groups = group_by(table, by, n_boot, seed)
    shown = [g for g in groups if g.summary["notes"] >= min_notes]
    held = [g for g in groups if g.summary["notes"] < min_notes]
    if len(held) == 1 and shown and min_notes > 1:
        # one held-back group could be recovered as overall minus the rest: hold back the next smallest too
        smallest = min(shown, key=lambda g: g.summary["notes"])
        shown.remove(smallest)
        held.append(smallest)
    shown.sort(key=lambda g: (g.summary["balance"] is None, g.summary["balance"] or 0))
    rows = []
    for g in shown:
        row = {"key": g.key, **g.summary}
        if include_examples:
            row["examples"] = top_examples(table, g.rows, include_examples)
        rows.append(row)
    overall_boot = bootstrap_balances(table.C, table.P, n_boot, _rng(seed, "overall"))
    report: dict[str, Any] = {
        "input": input_counts,
        "by": list(by),
        "min_notes": min_notes,
        "groups": rows,
        "held_back": {"groups": len(held), "notes": int(sum(g.summary["notes"] for g in held))},
        "overall": group_summary(table.C, table.P, table.N, overall_boot) if len(table) else None,
        "data_quality": dict(table.quality),
        "method": {"bootstrap_resamples": n_boot, "permutations": n_perm, "seed": seed,
                   "interval": "95% percentile bootstrap over notes"},
    }
    if len(shown) >= 2:
        labels = np.empty(len(table), dtype=object)
        labels[:] = None
        for i, g in enumerate(shown):
            labels[g.rows] = str(i)
        keep = np.array([x is not None for x in labels])
        report["comparison"] = {
            "overall": permutation_test(table.C[keep], table.P[keep], labels[keep].astype(str), n_perm, seed),
            "pairwise": pairwise(shown),
        }
    else:
        report["comparison"] = {"overall": None, "pairwise": []}
    report["culture"] = culture_analysis(table, min_notes, n_boot, seed, milestone, n_perm) \
        if culture and len(table) else None
    from .suppress import enforce

    return enforce(report, table, by, min_notes, n_perm, seed)  # across every section, in one place


def culture_analysis(table: NoteTable, min_notes: int, n_boot: int, seed: int,
                     milestone: dt.date | None, n_perm: int = 2000) -> dict[str, Any]:
    out: dict[str, Any] = {}
    shares, ok = note_shares(table)
    teams, workers, types = table.column("team"), table.column("worker"), table.column("type")
    known = ok & (teams != UNKNOWN) & (workers != UNKNOWN)
    if known.sum() >= 10:
        out["variance"] = variance_components(shares[known], teams[known], workers[known])
    else:
        out["variance"] = {"method": None, "reason": "needs team and worker on at least 10 classified notes"}
    out["outlier_workers"] = outlier_workers(table, min_notes, n_boot, seed, n_perm=n_perm)
    kinds = {str(t).strip().lower() for t in types.tolist()}
    out["mirroring"] = mirroring(table, min_notes, n_boot, seed) if {"supervision", "visit"} <= kinds else None
    out["trend"] = trend(table, n_boot, seed, milestone, stratum="team", min_notes=min_notes)
    return out


def top_examples(table: NoteTable, rows: np.ndarray, n: int) -> dict[str, list[dict[str, Any]]]:
    """The most clearly procedural and change-focused sentences of a group (only when asked)."""
    pool: dict[str, list[tuple[float, str]]] = {"procedural": [], "change_focused": []}
    for r in rows.tolist():
        for text, label, p in table.examples[r]:
            if label in pool:
                pool[label].append((p, text))
    return {lab: [{"text": t, "p": round(p, 3)} for p, t in sorted(items, reverse=True)[:n]]
            for lab, items in pool.items()}


__all__ = ["LABELS", "NoteTable", "build_table", "build_report", "parse_date", "pseudonym"]
