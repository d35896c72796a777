"""Team-level inference: workers, not notes, are the units a team's culture is measured over.

A team's notes are written by a handful of workers, and workers differ. Resampling notes answers
"what is the balance of *these notes*"; a team's culture is "the balance expected of *this team's
workers in general*", whose uncertainty is driven by how many workers there are and how much they
differ. Everything here works on sufficient statistics (per-note, per-worker and per-team sums of
change-focused and procedural segments), so it costs what counting costs:

- ``cluster_ratio``: the pooled change share (a ratio estimator) with a cluster-robust,
  linearised variance by worker, the CR2 small-sample correction (Bell and McCaffrey) and a t
  interval with k-1 degrees of freedom (k = workers);
- ``groups_differ``: whole workers permuted between teams (one matrix of permutations), or, when
  workers write in several groups (months, note types), a cluster-robust Wald test;
- ``pairwise_clustered``: every pair of groups on the same basis, Holm-adjusted;
- ``worker_outliers``: each worker against the rest of their team, allowing for how much workers
  ordinarily differ (a between-worker variance, as in over-dispersed funnel plots), Benjamini-Hochberg
  control of the false-discovery rate across the organisation, intervals at the matching (FCR) level;
- ``within_worker_change``: a milestone's before/after change within the same workers;
- ``mirroring_corrected``: the team supervision-versus-visit correlation corrected for the noise
  in each team's two estimates (disattenuation), with a bootstrap over teams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ALPHA = 0.05
WINSOR_Z = 2.0  # z-scores are winsorised here when measuring how much workers ordinarily differ
SCREEN_Z = 2.5  # a worker this far from the rest of their team is left out of that measure
NOTES_DESC = "these notes"
TEAM_DESC = "this group, allowing for differences between its workers"


def _tq(df: float, level: float = 0.95) -> float:
    from scipy.stats import t

    return float(t.ppf(1 - (1 - level) / 2, df))


# --- one ratio with clusters -----------------------------------------------------------------------


def cluster_ratio(c: np.ndarray, t: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """Pooled ratio sum(c)/sum(t) over clusters with per-cluster totals ``c`` (successes) and ``t``.

    Linearised (delta-method) variance: the ratio is the weighted least-squares intercept of the
    cluster shares with weights t, and its cluster-robust variance is sum(e_j^2) / T^2 with
    e_j = c_j - R t_j. CR2 scales each e_j^2 by 1/(1 - h_j), h_j = t_j / T (the exact CR2
    leverage for an intercept-only weighted fit); with equal clusters that is the familiar
    k/(k-1). The interval is R +/- t(k-1) se, clipped to [0, 1].
    """
    c = np.asarray(c, dtype=float)
    t = np.asarray(t, dtype=float)
    keep = t > 0
    c, t = c[keep], t[keep]
    k = int(len(t))
    T = float(t.sum())
    if T == 0:
        return {"ratio": None, "se": None, "df": None, "ci": [None, None], "clusters": k}
    R = float(c.sum() / T)
    if k < 2:
        return {"ratio": R, "se": None, "df": None, "ci": [None, None], "clusters": k}
    e = c - R * t
    h = t / T
    with np.errstate(divide="ignore", invalid="ignore"):
        v = float(np.sum(np.where(h < 1, e**2 / (1 - h), 0.0)) / T**2)
    se = float(np.sqrt(v))
    q = _tq(k - 1, level)
    return {"ratio": R, "se": se, "df": k - 1, "ci": [max(0.0, R - q * se), min(1.0, R + q * se)], "clusters": k}


def ratio_cr1_variance(c: np.ndarray, t: np.ndarray) -> float:
    """The CR1 (Stata/statsmodels) variance of the same ratio: k/(k-1) sum(e^2)/T^2 (for tests)."""
    c, t = np.asarray(c, float), np.asarray(t, float)
    k, T = len(t), t.sum()
    R = c.sum() / T
    return float(k / (k - 1) * np.sum((c - R * t) ** 2) / T**2)


def group_interval(c_note: np.ndarray, t_note: np.ndarray, worker_codes: np.ndarray | None,
                   worker_known: np.ndarray | None, within_one_worker: bool) -> dict[str, Any]:
    """The headline interval for one group, and what it describes.

    Workers are the clusters when the group holds notes of workers (a team, a month, a type);
    notes with no worker named count as their own cluster. A group inside one worker (``--by
    worker``) is described by its notes. Fewer than two workers: "too few workers to estimate".
    """
    notes = cluster_ratio(c_note, t_note)
    out: dict[str, Any] = {"notes_interval": notes}
    if worker_codes is None or within_one_worker or not worker_known.any():
        out.update(basis="notes", describes=NOTES_DESC, interval=notes, workers=None, notice=None)
        return out
    known = worker_known
    codes = np.where(known, worker_codes, -1 - np.arange(len(worker_codes)))  # unknown: own cluster
    _, inv = np.unique(codes, return_inverse=True)
    cc = np.bincount(inv, weights=c_note)
    tt = np.bincount(inv, weights=t_note)
    k_known = len(np.unique(worker_codes[known & (t_note > 0)]))
    iv = cluster_ratio(cc, tt)
    notice = None
    if k_known < 2:
        iv = {**iv, "se": None, "df": None, "ci": [None, None]}
        notice = "too few workers to estimate: one worker's notes cannot speak for a group"
    else:
        if k_known < 3:
            notice = "only two workers: the group and its workers cannot be told apart"
        # the group's workers in general are never known better than these notes: with two or three
        # workers the cluster variance rests on one or two degrees of freedom and can come out tiny
        lo, hi = iv["ci"]
        nlo, nhi = notes["ci"]
        if None not in (lo, hi, nlo, nhi):
            iv = {**iv, "ci": [min(lo, nlo), max(hi, nhi)]}
    out.update(basis="workers", describes=TEAM_DESC, interval=iv, workers=k_known, notice=notice)
    return out


# --- do groups differ? -------------------------------------------------------------------------------


def spread_statistic(c: np.ndarray, t: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """Segment-weighted spread of group balances around the pooled balance, for each row of ``groups``.

    ``groups`` is (B, n) or (n,): group codes of the n units; the same statistic as the old
    note-level test, computed for every permutation at once.
    """
    g = np.atleast_2d(groups)
    B = g.shape[0]
    flat = (g + (np.arange(B) * k)[:, None]).ravel()
    cs = np.bincount(flat, weights=np.tile(c, B), minlength=B * k).reshape(B, k)
    ts = np.bincount(flat, weights=np.tile(t, B), minlength=B * k).reshape(B, k)
    overall = c.sum() / max(t.sum(), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        bal = np.where(ts > 0, cs / np.maximum(ts, 1e-300), overall)
    return np.sum(ts * (bal - overall) ** 2, axis=1)


def permutation_p(c: np.ndarray, t: np.ndarray, groups: np.ndarray, n_perm: int,
                  rng: np.random.Generator, chunk_cells: int = 1_000_000) -> tuple[float, float]:
    """Observed statistic and permutation p-value, shuffling whole units (rows) between groups.

    Permutations are drawn ``chunk_cells // units`` at a time (about 40 MB of working arrays
    whatever the input size); each row is shuffled in turn from one stream, so the chunk size
    does not change the p-value."""
    k = int(groups.max()) + 1
    observed = float(spread_statistic(c, t, groups, k)[0])
    n = len(groups)
    exceed = 0
    step = max(1, chunk_cells // max(n, 1))
    for s in range(0, n_perm, step):
        b = min(step, n_perm - s)
        perms = rng.permuted(np.tile(groups, (b, 1)), axis=1)
        exceed += int(np.sum(spread_statistic(c, t, perms, k) >= observed * (1 - 1e-12) - 1e-15))
    return observed, (exceed + 1) / (n_perm + 1)


def cluster_scores(c: np.ndarray, t: np.ndarray, gcode: np.ndarray, ccode: np.ndarray, k: int):
    """Per-cluster linearised scores of each group's ratio (CR2-adjusted), clusters x groups."""
    ng = int(ccode.max()) + 1
    idx = ccode * k + gcode
    cs = np.bincount(idx, weights=c, minlength=ng * k).reshape(ng, k)
    ts = np.bincount(idx, weights=t, minlength=ng * k).reshape(ng, k)
    T = ts.sum(axis=0)
    R = cs.sum(axis=0) / np.maximum(T, 1e-300)
    h = ts / np.maximum(T, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        S = np.where(h < 1, (cs - R * ts) / np.sqrt(np.maximum(1 - h, 1e-300)), 0.0) / np.maximum(T, 1e-300)
    return R, S, ts


def wald_differ(c: np.ndarray, t: np.ndarray, gcode: np.ndarray, ccode: np.ndarray, k: int) -> dict[str, Any]:
    """Cluster-robust Wald test that all group ratios are equal (clusters may span groups)."""
    from scipy.stats import f as fdist

    R, S, _ = cluster_scores(c, t, gcode, ccode, k)
    G = S.shape[0]
    q = k - 1
    V = S.T @ S
    L = np.hstack([np.ones((q, 1)), -np.eye(q)])
    d = L @ R
    M = L @ V @ L.T
    try:
        W = float(d @ np.linalg.pinv(M) @ d)
    except np.linalg.LinAlgError:
        return {"p_value": None, "statistic": None}
    if G - q < 1:
        return {"p_value": None, "statistic": W, "reason": "fewer workers than groups to compare"}
    F = W * (G - q) / (q * (G - 1))
    return {"statistic": W, "F": F, "df": [q, G - q], "p_value": float(fdist.sf(F, q, G - q))}


def groups_differ(c: np.ndarray, t: np.ndarray, group_codes: np.ndarray, worker_codes: np.ndarray | None,
                  n_perm: int, rng: np.random.Generator) -> dict[str, Any]:
    """Do the groups' balances differ by more than their workers' differences would give?

    - each worker writes in one group only (teams): permute whole workers between groups;
    - workers write in several groups (months, types): cluster-robust Wald test by worker;
    - no workers named: permute notes (the only units there are).
    """
    k = int(group_codes.max()) + 1
    if k < 2:
        return {"test": None, "groups": k, "p_value": None}
    if worker_codes is None:
        stat, p = permutation_p(c, t, group_codes, n_perm, rng)
        return {"test": "permutation test shuffling notes between groups (no workers named); statistic: "
                "segment-weighted spread of group balances", "unit": "notes", "groups": k, "statistic": stat,
                "permutations": n_perm, "p_value": p}
    _, wk = np.unique(worker_codes, return_inverse=True)
    pair = wk * k + group_codes
    per_worker_groups = np.bincount(np.unique(pair) // k, minlength=wk.max() + 1)
    if per_worker_groups.max() == 1:
        cw = np.bincount(wk, weights=c)
        tw = np.bincount(wk, weights=t)
        gw = np.zeros(len(cw), dtype=np.int64)
        gw[wk] = group_codes
        stat, p = permutation_p(cw, tw, gw, n_perm, rng)
        return {"test": "permutation test shuffling whole workers between groups; statistic: segment-weighted "
                "spread of group balances", "unit": "workers", "groups": k, "workers": int(len(cw)),
                "statistic": stat, "permutations": n_perm, "p_value": p}
    out = wald_differ(c, t, group_codes, wk, k)
    return {"test": "cluster-robust Wald test (workers as clusters, CR2, F approximation): workers write in "
            "several of these groups", "unit": "workers (clusters)", "groups": k, "workers": int(wk.max() + 1),
            **out}


def pairwise_clustered(summ: Sequence[dict[str, Any]], keys: Sequence[dict[str, str]],
                       alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Every pair's difference on the basis of its headline intervals (worker-clustered where there
    are workers), Welch-Satterthwaite degrees of freedom, Holm-adjusted p-values and
    Bonferroni-widened intervals (statsmodels for Holm)."""
    from scipy.stats import t as tdist
    from statsmodels.stats.multitest import multipletests

    pairs = []
    for i in range(len(summ)):
        for j in range(i + 1, len(summ)):
            a, b = summ[i], summ[j]
            if a["ratio"] is None or b["ratio"] is None:
                continue
            diff = a["ratio"] - b["ratio"]
            testable = a["se"] is not None and b["se"] is not None and (a["se"] > 0 or b["se"] > 0)
            row: dict[str, Any] = {"a": keys[i], "b": keys[j], "difference": diff, "se": None, "df": None, "p": None}
            if testable:
                va, vb = a["se"] ** 2, b["se"] ** 2
                se = float(np.sqrt(va + vb))
                df = (va + vb) ** 2 / ((va**2 / a["df"] if va else 0) + (vb**2 / b["df"] if vb else 0))
                row.update(se=se, df=float(df), p=float(2 * tdist.sf(abs(diff) / se, df)))
            pairs.append(row)
    tested = [x for x in pairs if x["p"] is not None]
    m = len(tested)
    if m:
        adjusted = multipletests([x["p"] for x in tested], alpha=alpha, method="holm")[1]
        for x, adj in zip(tested, adjusted):
            q = float(tdist.ppf(1 - alpha / (2 * m), x["df"]))
            # a difference of two shares lies in [-1, 1]: with few workers the t interval can run past it
            x["ci_bonferroni"] = [max(-1.0, x["difference"] - q * x["se"]), min(1.0, x["difference"] + q * x["se"])]
            x["p_holm"] = float(adj)
            x["significant"] = bool(adj < alpha)
    for x in pairs:
        if x["p"] is None:  # too few workers (or no variation) to say anything
            x.update({"ci_bonferroni": [None, None], "p_holm": None, "significant": None})
    return pairs


# --- workers against the rest of their team ------------------------------------------------------------


def note_ratio_var(c: np.ndarray, t: np.ndarray) -> float:
    """Linearised variance of a pooled ratio over notes (notes as clusters, CR2)."""
    r = cluster_ratio(c, t)
    return float(r["se"] ** 2) if r["se"] is not None else float("nan")


def worker_outliers(c: np.ndarray, t: np.ndarray, team: np.ndarray, worker: np.ndarray,
                    team_names: np.ndarray, worker_names: np.ndarray, min_notes: int,
                    alpha: float = ALPHA, max_rounds: int = 10) -> dict[str, Any]:
    """Workers who differ from the rest of their team by more than workers here ordinarily differ.

    Workers ordinarily differ from each other, so testing a worker's notes against their colleagues'
    notes (sampling noise alone) flags most workers once they write enough notes. As in funnel plots
    with over-dispersion (Spiegelhalter 2005), the between-worker variance tau^2 is added instead:

    For worker w in team T (workers with at least ``min_notes`` notes; teams of at least two), with R
    the reference (T's other workers, pooled by segments): d = balance(w) - balance(R) and
    Var(d) = v_w + v_R + tau^2 (1 + H_R), where v are the linearised note-level variances and
    H_R = sum(t_j^2) / t_R^2 (the reference's own workers vary too). tau^2 is the within-team variance
    of workers' true balances, measured across the organisation on pairs of workers of the same team
    (``_between_worker_variance``: winsorised z-scores, w's own pairs left out of w's test), without
    the workers set aside and without those screened out first (``_screen``). p-values (normal)
    go through one Benjamini-Hochberg step over every worker tested (false-discovery rate 5%). Then,
    team by team, the most unusual flagged worker is set aside from their colleagues' reference and
    from tau^2 (a team of two that differs leaves tau^2 too), and the tests are redone until no more
    are set aside, so real outliers neither make colleagues look unusual nor make ordinary variation
    look larger. Each ``ci`` is at the false-coverage level 1 - R*alpha/m (Benjamini-Yekutieli) with
    the same se, so it excludes zero exactly when the worker is flagged. In a team of two the pair is
    reported as differing: the data cannot say which of them is unusual.
    """
    from scipy.stats import norm
    from statsmodels.stats.multitest import multipletests

    empty = {"rule": OUTLIER_RULE, "method": OUTLIER_METHOD, "tested": 0, "flagged": 0, "workers": []}
    pos = t > 0
    if not pos.any():  # no named worker with a classified note: nothing to test
        return empty
    c, t, team, worker = c[pos], t[pos], team[pos], worker[pos]
    order = np.lexsort((worker, team))
    c, t, team, worker = c[order], t[order], team[order], worker[order]
    bounds = np.flatnonzero(np.r_[True, (np.diff(team) != 0) | (np.diff(worker) != 0), True])
    members: dict[int, list[int]] = {}
    units = []  # (team, worker, c, t, v, notes)
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e - s >= min_notes:
            cw, tw = c[s:e], t[s:e]
            v = note_ratio_var(cw, tw)
            units.append((int(team[s]), int(worker[s]), float(cw.sum()), float(tw.sum()),
                          v if np.isfinite(v) else 0.0, int(e - s)))
    for i, u in enumerate(units):
        members.setdefault(u[0], []).append(i)
    members = {tm: ix for tm, ix in members.items() if len(ix) >= 2}
    tested = [i for ix in members.values() for i in (ix if len(ix) > 2 else ix[:1])]
    if not tested:
        return empty
    uc = np.array([u[2] for u in units])
    ut = np.array([u[3] for u in units])
    uv = np.array([u[4] for u in units])
    ub = uc / ut
    uteam = np.array([u[0] for u in units])
    in_team = np.zeros(len(units), dtype=bool)
    in_team[[i for ix in members.values() for i in ix]] = True
    screened = _screen(members, ub, uv, ut, uteam, in_team)
    excluded: set[int] = set()  # set aside from colleagues' reference and from tau^2
    pairs_out: set[int] = set()  # teams of two that differ: both workers left out of tau^2
    for _ in range(max_rounds):
        # each tested row: difference from the reference and its note-level variance, as things stand
        d = np.zeros(len(tested))
        v_notes = np.zeros(len(tested))
        H = np.zeros(len(tested))
        refs = []
        for r, i in enumerate(tested):
            ref = [j for j in members[units[i][0]] if j != i and j not in excluded]
            tr = ut[ref].sum()
            d[r] = ub[i] - uc[ref].sum() / tr
            # note-level variance of the reference's pooled ratio: its workers' variances, pooled
            v_notes[r] = uv[i] + float(np.sum(uv[ref] * ut[ref] ** 2) / tr**2)
            H[r] = float(np.sum(ut[ref] ** 2) / tr**2)
            refs.append(ref)
        # ordinary variation is measured on workers not set aside; each test's own estimate leaves its worker out
        keep = np.zeros(len(units), dtype=bool)
        for tm, ix in members.items():
            if tm not in pairs_out:
                keep[[j for j in ix if j not in excluded and j not in screened]] = True
        tau2_all, tau2_w = _between_worker_variance(ub, uv, uteam, keep)
        tau2_loo = tau2_w[tested]
        rows = []
        for r, i in enumerate(tested):
            tm, ref = units[i][0], refs[r]
            var = v_notes[r] + tau2_loo[r] * (1 + H[r])
            se = float(np.sqrt(var)) if var > 0 else None
            # no variance to test against (one note each side, or identical notes): untestable, never flagged
            p = float(2 * norm.sf(abs(d[r]) / se)) if se else 1.0
            rows.append({"i": i, "team": str(team_names[tm]), "worker": str(worker_names[units[i][1]]),
                         "notes": units[i][5], "balance": float(ub[i]),
                         "rest_of_team_balance": float(ub[i] - d[r]), "difference": float(d[r]), "se": se,
                         "se_notes": float(np.sqrt(v_notes[r])) if v_notes[r] > 0 else None,
                         "between_worker_sd": float(np.sqrt(tau2_loo[r])), "p": p,
                         "team_workers": len(members[tm]), "reference_workers": len(ref)})
            if len(members[tm]) == 2:
                rows[-1]["other_worker"] = str(worker_names[units[ref[0]][1]])
        reject = multipletests([r["p"] for r in rows], alpha=alpha, method="fdr_bh")[0]
        grew = False
        for tm, ix in members.items():
            left = [j for j in ix if j not in excluded]
            cand = [r for r, rej in zip(rows, reject) if rej and r["i"] in left]
            if len(ix) >= 3 and cand and len(left) >= 3:
                excluded.add(min(cand, key=lambda r: r["p"])["i"])
                grew = True
            elif len(ix) == 2 and cand and tm not in pairs_out:
                pairs_out.add(tm)
                grew = True
        if not grew:
            break
    m = len(rows)
    reject, q, _, _ = multipletests([r["p"] for r in rows], alpha=alpha, method="fdr_bh")
    R = int(reject.sum())
    level = 1 - max(R, 1) * alpha / m
    z = float(norm.ppf(1 - (1 - level) / 2))
    for r, rej, qq in zip(rows, reject, q):
        del r["i"]
        r["q_bh"] = float(qq)
        r["ci"] = [r["difference"] - z * r["se"], r["difference"] + z * r["se"]] if r["se"] else [None, None]
        r["ci_level"] = level
        r["outlier"] = bool(rej) and r["team_workers"] >= 3
        r["pair_differs"] = bool(rej) and r["team_workers"] == 2
    rows.sort(key=lambda r: r["p"])
    return {"rule": OUTLIER_RULE, "method": OUTLIER_METHOD, "tested": m, "flagged": R, "ci_level": level,
            "between_worker_sd": float(np.sqrt(tau2_all)),
            "between_worker_basis": int(keep.sum()), "set_aside": len(excluded) + 2 * len(pairs_out),
            "workers": rows}


def _screen(members: dict[int, list[int]], ub: np.ndarray, uv: np.ndarray, ut: np.ndarray, uteam: np.ndarray,
            in_team: np.ndarray, rounds: int = 10) -> set[int]:
    """Workers left out of the measure of ordinary variation before any test: in turn, the most
    unusual worker of a team of three or more whose z against the rest of their team exceeds
    ``SCREEN_Z``, with tau^2 from the median of pairs (high breakdown). Where a third of teams have
    an unusual worker, even the median is pulled up; screening brings it back down."""
    screened: set[int] = set()
    for _ in range(rounds):
        keep = in_team.copy()
        keep[list(screened)] = False
        tau2, _ = _between_worker_variance(ub, uv, uteam, keep, statistic="median")
        grew = False
        for ix in members.values():
            left = [j for j in ix if j not in screened]
            if len(ix) < 3 or len(left) < 3:
                continue
            best, bz = None, SCREEN_Z
            for i in left:
                ref = [j for j in left if j != i]
                tr = ut[ref].sum()
                d = ub[i] - ub[ref] @ ut[ref] / tr
                var = uv[i] + np.sum(uv[ref] * ut[ref] ** 2) / tr**2 + tau2 * (1 + np.sum(ut[ref] ** 2) / tr**2)
                z = abs(d) / np.sqrt(var) if var > 0 else 0.0
                if z > bz:
                    best, bz = i, z
            if best is not None:
                screened.add(best)
                grew = True
        if not grew:
            break
    return screened


def _between_worker_variance(b: np.ndarray, v: np.ndarray, team: np.ndarray, keep: np.ndarray,
                             statistic: str = "winsorised", c: float = WINSOR_Z, grid: int = 300,
                             max_pairs: int = 2000) -> tuple[float, np.ndarray]:
    """Between-worker variance tau^2 from pairs of workers in the same team, robust to outliers;
    and the same estimate without each worker in turn (for their own test).

    For two ordinary workers j, k of one team, z_jk(tau) = (b_j - b_k) / sqrt(v_j + v_k + 2 tau^2) is
    standard normal. tau^2 solves mean min(z_jk^2, c^2) = E[min(Z^2, c^2)] over the pairs of workers in
    ``keep`` (a method of moments on winsorised z-scores, in the spirit of Spiegelhalter 2005, with the
    normal consistency constant so that it is unbiased when no worker is unusual; ``statistic="median"``
    matches the median of z^2 to that of chi-square(1) instead); tau^2 = 0 when the
    differences are no wider than notes alone explain. Pairs, not each worker against a team mean, so
    an unusual worker spoils only the pairs they are in, and winsorising bounds what those add. Every
    equation is solved at once on a grid of tau (shares), linear interpolation between grid points.
    A team with more than ``max_pairs`` pairs uses a fixed random sample of them.
    """
    from scipy.stats import norm

    n = len(b)
    kappa = float((2 * norm.cdf(c) - 1) - 2 * c * norm.pdf(c) + 2 * c**2 * norm.sf(c))
    rng = np.random.default_rng(0)
    pj, pk = [], []
    for tm in np.unique(team[keep]):
        ix = np.flatnonzero(keep & (team == tm))
        a, bb = np.triu_indices(len(ix), 1)
        if len(a) > max_pairs:
            pick = rng.choice(len(a), max_pairs, replace=False)
            a, bb = a[pick], bb[pick]
        pj.append(ix[a])
        pk.append(ix[bb])
    if not pj or sum(map(len, pj)) < 1:
        return 0.0, np.zeros(n)
    pj, pk = np.concatenate(pj), np.concatenate(pk)
    if len(pj) == 0:
        return 0.0, np.zeros(n)
    dd = (b[pj] - b[pk]) ** 2
    vv = v[pj] + v[pk]
    taus = np.r_[0.0, np.geomspace(1e-4, 0.5, grid - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        z2 = dd[:, None] / (vv[:, None] + 2 * taus[None, :] ** 2)
    z2 = np.where(np.isfinite(z2), z2, 0.0)  # a pair with no variance and no difference

    def solve(excess: np.ndarray) -> np.ndarray:
        """tau^2 where each row of ``excess`` (decreasing in tau) crosses zero."""
        j = (excess > 0).sum(axis=1)  # above zero on the first j grid points
        out = np.zeros(len(excess))
        r = np.flatnonzero((j > 0) & (j < grid))
        e0, e1 = excess[r, j[r] - 1], excess[r, j[r]]
        out[r] = taus[j[r] - 1] + e0 / np.maximum(e0 - e1, 1e-300) * (taus[j[r]] - taus[j[r] - 1])
        out[j == grid] = taus[-1]
        return out**2

    if statistic == "median":  # median(z^2) = the median of chi-square(1): one worker moves it by a rank
        tau2 = float(solve((np.median(z2, axis=0) - 0.454936)[None, :])[0])
        return tau2, np.full(n, tau2)
    rho = np.minimum(z2, c**2)
    total, m = rho.sum(axis=0), len(pj)
    tau2 = float(solve((total / m - kappa)[None, :])[0])
    loo = np.full(n, tau2)
    # without worker i: drop the pairs they are in
    drop = np.zeros((n, grid))
    np.add.at(drop, pj, rho)
    np.add.at(drop, pk, rho)
    cnt = np.bincount(pj, minlength=n) + np.bincount(pk, minlength=n)
    has = np.flatnonzero((cnt > 0) & (cnt < m))
    loo[has] = solve((total[None, :] - drop[has]) / (m - cnt[has, None]) - kappa)
    return tau2, loo


OUTLIER_METHOD = ("worker minus the rest of their team (balances); normal test, variance = the note-level "
                  "variances + the between-worker variance tau^2 (times 1 + H for the reference's own workers); "
                  "tau^2 by the method of moments on winsorised z-scores (|z| <= 2) of pairs of workers in the "
                  "same team across the organisation, the tested worker's pairs left out, workers more than "
                  "2.5 SD from their team (median-of-pairs tau^2) and set-aside workers left out; "
                  "Benjamini-Hochberg across the organisation; the most unusual flagged worker of a team set "
                  "aside in turn; intervals at the false-coverage level")
OUTLIER_RULE = ("workers in a team ordinarily differ from each other, so a worker is flagged only when their notes "
                "differ from the rest of their team by clearly more than workers here ordinarily differ "
                "(false-discovery rate 5% across all workers tested in the organisation); a flagged worker is "
                "left out of their colleagues' comparison and of the measure of ordinary differences; each "
                "interval excludes zero exactly when the worker is flagged; in a team of two, the pair is "
                "reported as differing")


# --- milestone: the same workers before and after ------------------------------------------------------


def within_worker_change(c: np.ndarray, t: np.ndarray, worker: np.ndarray, after: np.ndarray,
                         dated: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """Average change in balance within workers who wrote notes on both sides of the milestone.

    Each such worker j contributes d_j = balance after - balance before, weighted by
    w_j = tb*ta/(tb+ta) (segments before and after; the precision weight of a difference).
    The weighted mean's variance is cluster-robust by worker (CR1 k/(k-1)); t interval with k-1
    df. Workers on one side only (joiners and leavers) cannot fake a change: they are left out
    and counted.
    """
    sel = dated & (t > 0)
    nw = int(worker.max()) + 1 if len(worker) else 0
    cb = np.bincount(worker[sel & ~after], weights=c[sel & ~after], minlength=nw)
    tb = np.bincount(worker[sel & ~after], weights=t[sel & ~after], minlength=nw)
    ca = np.bincount(worker[sel & after], weights=c[sel & after], minlength=nw)
    ta = np.bincount(worker[sel & after], weights=t[sel & after], minlength=nw)
    both = (tb > 0) & (ta > 0)
    out: dict[str, Any] = {"by": "worker", "workers_both_sides": int(both.sum()),
                           "workers_before_only": int(((tb > 0) & (ta == 0)).sum()),
                           "workers_after_only": int(((ta > 0) & (tb == 0)).sum())}
    out["groups"] = out["workers_both_sides"]
    k = int(both.sum())
    if k == 0:
        return {**out, "change": None, "change_ci": [None, None], "verdict": "no worker wrote on both sides"}
    d = ca[both] / ta[both] - cb[both] / tb[both]
    w = tb[both] * ta[both] / (tb[both] + ta[both])
    W = w.sum()
    mean = float(np.dot(w, d) / W)
    if k < 2:
        return {**out, "change": mean, "change_ci": [None, None], "verdict": "too few workers to estimate"}
    v = k / (k - 1) * float(np.sum((w * (d - mean)) ** 2)) / W**2
    se = float(np.sqrt(v))
    q = _tq(k - 1, level)
    ci = [mean - q * se, mean + q * se]
    clear = ci[0] > 0 or ci[1] < 0
    verdict = ("a clear rise" if clear and mean > 0 else "a clear fall" if clear else "no clear change")
    return {**out, "change": mean, "se": se, "df": k - 1, "change_ci": ci, "verdict": verdict}


# --- mirroring --------------------------------------------------------------------------------------


def mirroring_corrected(S: np.ndarray, V: np.ndarray, vs: np.ndarray, vv: np.ndarray, cov_sv: np.ndarray,
                        n_boot: int, rng: np.random.Generator, level: float = 0.95) -> dict[str, Any]:
    """Correlation of teams' true supervision and visit balances, corrected for estimation noise.

    Observed team balances S, V carry noise with variances vs, vv (and covariance cov_sv: the
    same workers write both). The true-score covariance matrix is the observed one minus the mean
    noise covariance (method of moments, Fuller 1987); r = cov / sqrt(var_s var_v), clipped to
    [-1, 1]. Interval: percentile bootstrap over teams (one index matrix, vectorised).
    """
    K = len(S)

    def corr(idx: np.ndarray) -> np.ndarray:
        s, v = S[idx], V[idx]
        n = idx.shape[-1]
        sm, vm = s.mean(axis=-1, keepdims=True), v.mean(axis=-1, keepdims=True)
        css = ((s - sm) ** 2).sum(axis=-1) / (n - 1) - vs[idx].mean(axis=-1)
        cvv = ((v - vm) ** 2).sum(axis=-1) / (n - 1) - vv[idx].mean(axis=-1)
        csv = ((s - sm) * (v - vm)).sum(axis=-1) / (n - 1) - cov_sv[idx].mean(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where((css > 0) & (cvv > 0), csv / np.sqrt(np.maximum(css * cvv, 1e-300)), np.nan)
        return np.clip(r, -1, 1)

    r = float(corr(np.arange(K)[None, :])[0])
    boot = corr(rng.integers(0, K, size=(n_boot, K)))
    ok = boot[np.isfinite(boot)]
    a = (1 - level) / 2
    ci = [float(np.quantile(ok, a)), float(np.quantile(ok, 1 - a))] if len(ok) >= 0.5 * n_boot else [None, None]
    reliability = [float(1 - np.mean(vs) / np.var(S, ddof=1)) if np.var(S, ddof=1) > 0 else None,
                   float(1 - np.mean(vv) / np.var(V, ddof=1)) if np.var(V, ddof=1) > 0 else None]
    return {"r": None if np.isnan(r) else r, "ci": ci, "reliability": {"supervision": reliability[0],
                                                                        "visit": reliability[1]},
            "bootstrap_undefined": int(n_boot - len(ok))}


def clustered_difference(c: np.ndarray, t: np.ndarray, side: np.ndarray, cluster: np.ndarray,
                         level: float = 0.95) -> dict[str, Any]:
    """Ratio of side 1 minus ratio of side 0, clusters (workers) possibly on both sides.

    Var = sum_j (s_j1 - s_j0)^2 over clusters of the CR2-scaled linearised scores: a worker who
    writes on both sides contributes to both ratios, and the covariance is kept.
    """
    _, cc = np.unique(cluster, return_inverse=True)
    R, S, ts = cluster_scores(c.astype(float), t.astype(float), side.astype(np.int64), cc, 2)
    if (ts.sum(axis=0) == 0).any():
        return {"change": None, "change_ci": [None, None]}
    k = int(np.sum(ts.sum(axis=1) > 0))
    d = float(R[1] - R[0])
    if k < 2:
        return {"change": d, "change_ci": [None, None], "clusters": k}
    se = float(np.sqrt(np.sum((S[:, 1] - S[:, 0]) ** 2)))
    q = _tq(k - 1, level)
    return {"change": d, "se": se, "df": k - 1, "change_ci": [d - q * se, d + q * se], "clusters": k}
