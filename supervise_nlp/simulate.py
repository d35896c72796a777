"""Simulation study of the report's statistics against known truth.

    python -m supervise_nlp.simulate                 # full size (minutes; quoted in the README)
    python -m supervise_nlp.simulate --quick         # reduced size, seconds (used by a test)
    python -m supervise_nlp.simulate --scenario coverage --replicates 200

Data are made as in the audit of issue 16: the logit of a segment's chance of being
change-focused is mu + team effect + worker effect + note effect; 3-25 segments per note, 5-40
notes per worker, teams of 2-6 workers. The **team-level truth** is the share expected of the
team's workers in general: expit(mu + u_team + v + e) averaged over worker and note effects.
Each scenario runs the report's own code (``build_report`` and the functions it calls) and
compares what it says with the truth, against the nominal level.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

GH_X, GH_W = np.polynomial.hermite_e.hermegauss(60)
GH_W = GH_W / GH_W.sum()


def expit(x):
    return 1 / (1 + np.exp(-x))


def marginal_share(eta: np.ndarray | float, sd: float) -> np.ndarray:
    """E[expit(eta + z)], z ~ N(0, sd^2), by Gauss-Hermite quadrature."""
    eta = np.asarray(eta, dtype=float)
    return (expit(eta[..., None] + sd * GH_X) * GH_W).sum(axis=-1)


@dataclass
class Data:
    team: np.ndarray
    worker: np.ndarray
    C: np.ndarray
    P: np.ndarray
    kind: np.ndarray | None = None
    after: np.ndarray | None = None
    truth: dict[str, Any] | None = None


def make(rng: np.random.Generator, n_teams: int = 10, team_sd: float = 0.0, worker_sd: float = 0.5,
         note_sd: float = 0.5, mu: float = -0.3, workers: tuple[int, int] = (2, 6), notes: tuple[int, int] = (5, 40),
         segments: tuple[int, int] = (3, 25), outlier_shift: float = 0.0, outlier_teams: float = 0.0) -> Data:
    """One organisation. With ``outlier_shift``, a share ``outlier_teams`` of teams have one worker
    whose logit is shifted by that much."""
    u = rng.normal(0, team_sd, n_teams)
    team, worker, C, P, is_out = [], [], [], [], []
    wid = 0
    for tm in range(n_teams):
        k = int(rng.integers(workers[0], workers[1] + 1))
        planted = outlier_shift and rng.random() < outlier_teams
        for j in range(k):
            v = rng.normal(0, worker_sd) + (outlier_shift if planted and j == 0 else 0.0)
            n = int(rng.integers(notes[0], notes[1] + 1))
            m = rng.integers(segments[0], segments[1] + 1, size=n)
            c = rng.binomial(m, expit(mu + u[tm] + v + rng.normal(0, note_sd, n)))
            team += [tm] * n
            worker += [wid] * n
            C.append(c)
            P.append(m - c)
            is_out.append(bool(planted and j == 0))
            wid += 1
    truth = {"team_share": marginal_share(mu + u, float(np.hypot(worker_sd, note_sd))),
             "outlier_worker": np.array(is_out)}
    return Data(np.array(team), np.array(worker), np.concatenate(C), np.concatenate(P), truth=truth)


def table_of(d: Data, kinds: np.ndarray | None = None, dates: list | None = None):
    from .aggregate import build_table

    notes = []
    for i in range(len(d.C)):
        f = {"team": f"T{d.team[i]:03d}", "worker": f"W{d.worker[i]:05d}"}
        if kinds is not None:
            f["type"] = str(kinds[i])
        if dates is not None:
            f["date"] = dates[i]
        notes.append((f, {"procedural": int(d.P[i]), "change_focused": int(d.C[i]), "neutral": 0}, []))
    return build_table(notes, ["team"])


def report_of(d: Data, n_perm: int, **kw):
    from .aggregate import build_report

    return build_report(table_of(d), ["team"], {"records": 0, "labelled": 0, "rejected": 0}, min_notes=1,
                        n_perm=n_perm, culture=False, seed=int(kw.pop("seed", 1)))


# --- claims ---------------------------------------------------------------------------------------


def claim_coverage(rng, reps, n_perm, worker_sd, team_sd=0.5, **kw) -> dict[str, Any]:
    """Team intervals (workers as clusters) against the team-level truth; note intervals beside."""
    hit = tot = hit_n = 0
    widths = []
    for _ in range(reps):
        d = make(rng, team_sd=team_sd, worker_sd=worker_sd, **kw)
        rep = report_of(d, n_perm, seed=int(rng.integers(1 << 30)))
        for g in rep["groups"]:
            lo, hi = g["balance_ci"]
            if lo is None:
                continue
            truth = d.truth["team_share"][int(g["key"]["team"][1:])]
            tot += 1
            hit += lo <= truth <= hi
            nlo, nhi = g["balance_ci_notes"]
            hit_n += nlo <= truth <= nhi
            widths.append(hi - lo)
    return {"value": hit / tot, "nominal": 0.95, "notes_interval": hit_n / tot, "intervals": tot,
            "median_width": float(np.median(widths))}


def claim_differ(rng, reps, n_perm, worker_sd, team_sd=0.0, **kw) -> dict[str, Any]:
    """How often "the teams differ" (p < .05), and how many pairs differ after Holm."""
    rej = 0
    sig_pairs, n_pairs = [], []
    for _ in range(reps):
        d = make(rng, team_sd=team_sd, worker_sd=worker_sd, **kw)
        rep = report_of(d, n_perm, seed=int(rng.integers(1 << 30)))
        p = rep["comparison"]["overall"]["p_value"]
        rej += p < 0.05
        pairs = rep["comparison"]["pairwise"]
        sig_pairs.append(sum(bool(x["significant"]) for x in pairs))
        n_pairs.append(len(pairs))
    return {"value": rej / reps, "nominal": 0.05 if team_sd == 0 else None,
            "pairs_significant_mean": float(np.mean(sig_pairs)), "pairs": int(np.median(n_pairs)),
            "any_pair_significant": float(np.mean(np.array(sig_pairs) > 0))}


def claim_outliers(rng, reps, worker_sd, shift=1.5, **kw) -> dict[str, Any]:
    """Flag rate of planted outliers (power) and of ordinary workers (false flags) in teams of three or
    more; the false-discovery proportion among those flags (averaged over organisations: the FDR); and
    how often a team of two with no planted outlier is reported as a pair that differs."""
    from .culture import worker_outliers

    fp = ordinary = tp = planted = 0
    fdp = []
    pairs = pairs_flagged = 0
    by_size: dict[int, list[int]] = {}
    for _ in range(reps):
        d = make(rng, team_sd=0.5, worker_sd=worker_sd, outlier_shift=shift, outlier_teams=0.5, **kw)
        names = np.array([str(i) for i in range(d.worker.max() + 1)], dtype=object)
        res = worker_outliers(d.C.astype(float), (d.C + d.P).astype(float), d.team, d.worker,
                              np.array([str(i) for i in range(d.team.max() + 1)], dtype=object), names, 5)
        flagged = {int(r["worker"]) for r in res["workers"] if r["outlier"]}
        pair_flag = {int(r["team"]) for r in res["workers"] if r["pair_differs"]}
        first = np.unique(d.worker, return_index=True)[1]
        team_of = d.team[first]
        sizes = np.bincount(team_of)
        f_here = t_here = 0
        for w in range(d.worker.max() + 1):
            tm = int(team_of[w])
            if sizes[tm] < 3:
                continue  # a pair cannot say which worker is unusual: counted as pairs below
            if d.truth["outlier_worker"][w]:
                planted += 1
                tp += w in flagged
                t_here += w in flagged
                by_size.setdefault(int(sizes[tm]), []).append(int(w in flagged))
            else:
                ordinary += 1
                fp += w in flagged
                f_here += w in flagged
        fdp.append(f_here / (f_here + t_here) if f_here + t_here else 0.0)
        for tm in np.flatnonzero(sizes == 2):
            if not d.truth["outlier_worker"][team_of == tm].any():
                pairs += 1
                pairs_flagged += int(tm) in pair_flag
    return {"value": tp / max(planted, 1), "false_positive_rate": fp / max(ordinary, 1),
            "fdr": float(np.mean(fdp)), "ordinary_pairs_flagged": pairs_flagged / max(pairs, 1),
            "power_by_team_size": {k: float(np.mean(v)) for k, v in sorted(by_size.items())},
            "nominal": None}


def claim_milestone(rng, reps, worker_sd=0.5, change=0.0, turnover=0.4, joiner_shift=1.0, **kw) -> dict[str, Any]:
    """Within-worker change across a milestone when a share of workers leave and joiners record
    differently (``joiner_shift`` on the logit): turnover must not read as change."""
    from .culture import within_worker_change

    hit = clear = 0
    for _ in range(reps):
        mu, sn = -0.3, 0.5
        team, worker, C, P, after, truth_d, wts = [], [], [], [], [], [], []
        wid = 0
        for tm in range(10):
            u = rng.normal(0, 0.5)
            for _j in range(int(rng.integers(2, 7))):
                v = rng.normal(0, worker_sd)
                leaves = rng.random() < turnover
                sides = [0] if leaves else [0, 1]
                tot = {}
                for side in sides:
                    n = int(rng.integers(3, 21))
                    m = rng.integers(3, 26, size=n)
                    c = rng.binomial(m, expit(mu + u + v + change * side + rng.normal(0, sn, n)))
                    team += [tm] * n
                    worker += [wid] * n
                    C.append(c)
                    P.append(m - c)
                    after += [side] * n
                    tot[side] = m.sum()
                if not leaves:
                    truth_d.append(marginal_share(mu + u + v + change, sn) - marginal_share(mu + u + v, sn))
                    wts.append(tot[0] * tot[1] / (tot[0] + tot[1]))
                wid += 1
                if leaves:  # a joiner who records differently takes their place after the milestone
                    n = int(rng.integers(3, 21))
                    m = rng.integers(3, 26, size=n)
                    c = rng.binomial(m, expit(mu + u + rng.normal(0, worker_sd) + joiner_shift + change
                                              + rng.normal(0, sn, n)))
                    team += [tm] * n
                    worker += [wid] * n
                    C.append(c)
                    P.append(m - c)
                    after += [1] * n
                    wid += 1
        Cn, Pn = np.concatenate(C), np.concatenate(P)
        res = within_worker_change(Cn.astype(float), (Cn + Pn).astype(float), np.array(worker),
                                   np.array(after, dtype=bool), np.ones(len(Cn), dtype=bool))
        truth = float(np.dot(wts, truth_d) / np.sum(wts))
        lo, hi = res["change_ci"]
        hit += lo <= truth <= hi
        clear += res["verdict"] != "no clear change"
    return {"value": hit / reps, "nominal": 0.95, "clear_change_rate": clear / reps}


def claim_icc(rng, reps, segments=(3, 25), team_sd=1.0, worker_sd=0.5, note_sd=0.5, **kw) -> dict[str, Any]:
    """Latent team share of variation from the mixed model against the true latent ICC."""
    from .mixed import fit_mixed

    truth = team_sd**2 / (team_sd**2 + worker_sd**2 + note_sd**2 + np.pi**2 / 3)
    est, hit, secs = [], 0, []
    for _ in range(reps):
        d = make(rng, n_teams=kw.pop("n_teams", 20), team_sd=team_sd, worker_sd=worker_sd, note_sd=note_sd,
                 segments=segments)
        t0 = time.perf_counter()
        r = fit_mixed(d.C, d.C + d.P, d.team, d.worker, seed=int(rng.integers(1 << 30)), max_rows=8000)
        secs.append(time.perf_counter() - t0)
        est.append(r["icc_team"])
        lo, hi = r["icc_team_ci"]
        hit += lo <= truth <= hi
    return {"value": float(np.mean(est)), "truth": float(truth), "bias": float(np.mean(est) - truth),
            "ci_coverage": hit / reps, "nominal": 0.95, "seconds_per_fit": float(np.median(secs))}


def claim_mirroring(rng, reps, n_boot, per_type=(10, 30), rho=0.7, n_teams=30, team_sd=0.5, worker_sd=0.5,
                    note_sd=0.5) -> dict[str, Any]:
    """Noise-corrected supervision-visit correlation across teams against the true correlation
    of the teams' true supervision and visit balances (population value, by simulation)."""
    from .aggregate import Codes, mirroring

    mu = -0.3
    sd_wn = float(np.hypot(worker_sd, note_sd))
    z = rng.multivariate_normal([0, 0], team_sd**2 * np.array([[1, rho], [rho, 1]]), 200_000)
    true_r = float(np.corrcoef(marginal_share(mu + z[:, 0], sd_wn), marginal_share(mu + z[:, 1], sd_wn))[0, 1])
    hit = hit_obs = 0
    misses_below = 0
    for _ in range(reps):
        zs = rng.multivariate_normal([0, 0], team_sd**2 * np.array([[1, rho], [rho, 1]]), n_teams)
        team, worker, C, P, kind = [], [], [], [], []
        wid = 0
        for tm in range(n_teams):
            k = int(rng.integers(2, 7))
            vs = rng.normal(0, worker_sd, k)
            for ki, kname in enumerate(("supervision", "visit")):
                n = int(rng.integers(per_type[0], per_type[1] + 1))
                w = rng.integers(0, k, n)
                m = rng.integers(3, 26, size=n)
                c = rng.binomial(m, expit(mu + zs[tm, ki] + vs[w] + rng.normal(0, note_sd, n)))
                team += [tm] * n
                worker += list(wid + w)
                C.append(c)
                P.append(m - c)
                kind += [kname] * n
            wid += k
        d = Data(np.array(team), np.array(worker), np.concatenate(C), np.concatenate(P))
        kinds = np.array(kind, dtype=object)
        table = table_of(d, kinds)
        res = mirroring(table, Codes.of(table), kinds, 1, n_boot, int(rng.integers(1 << 30)))
        lo, hi = res["r_corrected_ci"]
        if lo is not None:
            hit += lo <= true_r <= hi
            misses_below += hi < true_r
        from scipy.stats import pearsonr

        r = pearsonr(*[[t[k]["balance"] for t in res["teams"]] for k in ("supervision", "visit")])[0]
        zf, se = np.arctanh(r), 1 / np.sqrt(n_teams - 3)
        hit_obs += np.tanh(zf - 1.96 * se) <= true_r <= np.tanh(zf + 1.96 * se)
    return {"value": hit / reps, "nominal": 0.95, "uncorrected_fisher_coverage": hit_obs / reps,
            "misses_below_truth": misses_below / reps, "true_r": true_r}


# --- the study ------------------------------------------------------------------------------------

def scenarios(quick: bool) -> dict[str, tuple[str, Callable[..., dict[str, Any]], dict[str, Any]]]:
    perm = 199 if quick else 999
    return {
        "coverage_sd0.5": ("team interval covers the team-level truth (worker SD 0.5)", claim_coverage,
                           {"n_perm": perm, "worker_sd": 0.5}),
        "coverage_sd1.0": ("team interval covers the team-level truth (worker SD 1.0)", claim_coverage,
                           {"n_perm": perm, "worker_sd": 1.0}),
        "coverage_few_notes": ("team interval covers the truth, 5-10 notes per worker", claim_coverage,
                               {"n_perm": perm, "worker_sd": 0.5, "notes": (5, 10)}),
        "typeI_sd0.5": ("teams equal, workers differ (SD 0.5): 'teams differ'", claim_differ,
                        {"n_perm": perm, "worker_sd": 0.5}),
        "typeI_sd1.0": ("teams equal, workers differ (SD 1.0): 'teams differ'", claim_differ,
                        {"n_perm": perm, "worker_sd": 1.0}),
        "power_team0.5": ("teams differ (team SD 0.5, worker SD 0.5): power", claim_differ,
                          {"n_perm": perm, "worker_sd": 0.5, "team_sd": 0.5}),
        "outliers_sd0": ("outlier (+1.5 logit) flagged, colleagues equal", claim_outliers, {"worker_sd": 0.0}),
        "outliers_sd0.5": ("outlier (+1.5 logit) flagged, workers differ (SD 0.5)", claim_outliers,
                           {"worker_sd": 0.5}),
        "outliers_sd1.0": ("outlier (+1.5 logit) flagged, workers differ (SD 1.0)", claim_outliers,
                           {"worker_sd": 1.0}),
        "outliers_shift1.0": ("outlier (+1.0 logit) flagged, workers differ (SD 0.5)", claim_outliers,
                              {"worker_sd": 0.5, "shift": 1.0}),
        "outliers_shift2.0": ("outlier (+2.0 logit) flagged, workers differ (SD 0.5)", claim_outliers,
                              {"worker_sd": 0.5, "shift": 2.0}),
        "milestone_null": ("no change, 40% turnover, joiners +1 logit: within-worker CI covers", claim_milestone,
                           {"change": 0.0}),
        "milestone_change": ("+0.5 logit change, 40% turnover: within-worker CI covers", claim_milestone,
                             {"change": 0.5}),
        "icc_long": ("latent team ICC, 3-25 segments per note", claim_icc, {"segments": (3, 25)}),
        "icc_short": ("latent team ICC, 1-2 segments per note", claim_icc, {"segments": (1, 2)}),
        "mirroring_10_30": ("mirroring corrected r covers truth, 10-30 notes per type", claim_mirroring,
                            {"n_boot": 500 if quick else 1000, "per_type": (10, 30)}),
        "mirroring_5_12": ("mirroring corrected r covers truth, 5-12 notes per type", claim_mirroring,
                           {"n_boot": 500 if quick else 1000, "per_type": (5, 12)}),
    }


def run(names: list[str] | None = None, replicates: int | None = None, quick: bool = False, seed: int = 16,
        echo: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    table = scenarios(quick)
    out = {}
    for name in names or list(table):
        desc, fn, kw = table[name]
        reps = replicates or (_quick_reps(name) if quick else _full_reps(name))
        t0 = time.perf_counter()
        res = fn(np.random.default_rng([seed, sum(map(ord, name))]), reps, **kw)
        res.update(description=desc, replicates=reps, seconds=round(time.perf_counter() - t0, 1))
        out[name] = res
        if echo:
            echo(_line(name, res))
    return out


def _quick_reps(name: str) -> int:
    return 4 if name.startswith("icc") else 10 if name.startswith("mirroring") else 30


def _full_reps(name: str) -> int:
    return 100 if name.startswith("icc") else 300 if name.startswith("mirroring") else 1000


def _fmt(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _line(name: str, r: dict[str, Any]) -> str:
    extra = {k: v for k, v in r.items() if k not in ("value", "nominal", "description", "replicates", "seconds")}
    return (f"{name:18} {_fmt(r['value']):>7} (nominal {_fmt(r['nominal'])}) n={r['replicates']} "
            f"{r['seconds']}s  {json.dumps(extra, default=float)}  — {r['description']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m supervise_nlp.simulate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", help="Scenario name (repeatable); default: all. "
                    "Names: " + ", ".join(scenarios(True)))
    ap.add_argument("--replicates", type=int, help="Datasets per scenario (default: 1000; 300 for mirroring, "
                    "100 for the mixed model; --quick: 30/10/4).")
    ap.add_argument("--quick", action="store_true", help="Reduced size for CI: seconds, not minutes.")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--json", help="Also write the results as JSON here.")
    a = ap.parse_args(argv)
    unknown = set(a.scenario or []) - set(scenarios(True))
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    res = run(a.scenario, a.replicates, a.quick, a.seed, echo=lambda s: print(s, flush=True))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
