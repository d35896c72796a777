"""The culture analysis's engine: a binomial mixed model of segments in notes, workers and teams.

    logit P(segment is change-focused) = b0 + u_team + v_worker + e_note,
    u ~ N(0, s_team^2), v ~ N(0, s_worker^2), e ~ N(0, s_note^2)

fitted with statsmodels' ``BinomialBayesMixedGLM`` (mean-field variational Bayes, L-BFGS-B;
maintained, no optimiser of ours). On the latent (logit) scale a segment's residual variance is
pi^2/3, so the team share of variation (latent ICC) is s_team^2 / (s_team^2 + s_worker^2 +
s_note^2 + pi^2/3): unlike a linear model on note shares it does not depend on how long notes
are. Its interval comes from the variational posterior of the log standard deviations.

The model needs one row per segment (statsmodels' binomial family takes 0/1 outcomes only), so
a large input is fitted on a stated random subsample: whole teams, workers within them and
notes per worker (see ``subsample``), chosen with the report's
seed. Shrunken team and worker balances are the model's posterior means (for the teams and
workers fitted).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

LATENT_RESIDUAL = float(np.pi**2 / 3)


def _rank_within(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random rank of each element within its group (0, 1, 2, ...)."""
    order = np.lexsort((rng.random(len(groups)), groups))
    g = groups[order]
    start = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    first = np.repeat(start, np.diff(np.r_[start, len(g)]))
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(g)) - first
    return rank


def subsample(t: np.ndarray, team: np.ndarray, worker: np.ndarray, max_rows: int,
              rng: np.random.Generator, max_teams: int = 30, max_workers: int = 6) -> tuple[np.ndarray, str | None]:
    """Which notes to fit on: all of them when their segments fit in ``max_rows``.

    Otherwise a random sample of whole teams (at most ``max_teams``), of workers within them (at
    most ``max_workers`` per team) and of notes per worker (as many as fit, at least 3). Thin
    samples (many teams with a few notes each) make the variational fit lose the team component,
    so depth within fewer teams is preferred: the variance split is a property of the
    organisation, and every team's own balance is reported from all its notes anyway.
    """
    if t.sum() <= max_rows:
        return np.ones(len(t), dtype=bool), None
    teams = np.unique(team)
    chosen = rng.permutation(teams)[:max_teams]
    keep = np.isin(team, chosen)
    wk_team = np.zeros(int(worker.max()) + 1, dtype=np.int64)
    wk_team[worker] = team
    keep &= _rank_within(wk_team, rng)[worker] < max_workers
    note_rank = _rank_within(worker, rng)
    cap = 3
    for c in range(int(np.bincount(worker[keep]).max()), 2, -1):
        if t[keep & (note_rank < c)].sum() <= max_rows:
            cap = c
            break
    keep &= note_rank < cap
    return keep, (f"a random sample of {min(len(teams), max_teams)} teams, up to {max_workers} workers per team and "
                  f"{cap} notes per worker: {int(keep.sum())} notes")


def fit_mixed(c: np.ndarray, t: np.ndarray, team: np.ndarray, worker: np.ndarray,
              team_names: np.ndarray | None = None, worker_names: np.ndarray | None = None,
              seed: int = 0, max_rows: int = 12_000, note_effect: bool | None = None,
              n_draws: int = 4000) -> dict[str, Any]:
    """Fit the model on per-note counts ``c`` (change-focused) of ``t`` (change-focused + procedural).

    ``team`` and ``worker`` are integer codes (worker codes unique across teams).
    """
    import scipy.sparse as sp
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    c = np.asarray(c, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    ok = t > 0
    c, t, team, worker = c[ok], t[ok], np.asarray(team)[ok], np.asarray(worker)[ok]
    n_teams, n_workers = len(np.unique(team)), len(np.unique(worker))
    if n_teams < 2 or n_workers <= n_teams:
        return {"method": None, "reason": "needs at least two teams and more workers than teams"}
    C, T = int(c.sum()), int(t.sum())
    if C == 0 or C == T:
        return {"method": None, "reason": "every segment has the same label: there is no variation to split"}
    rng = np.random.default_rng([seed, 77])
    keep, how = subsample(t, team, worker, max_rows, rng)
    c, t, team, worker = c[keep], t[keep], team[keep], worker[keep]
    if note_effect is None:
        note_effect = bool(np.mean(t) >= 2)
    # one 0/1 row per segment
    note = np.repeat(np.arange(len(t)), t)
    first = np.r_[0, np.cumsum(t)[:-1]]
    y = ((np.arange(len(note)) - first[note]) < c[note]).astype(float)
    cols = [("team", team[note]), ("worker", worker[note])]
    if note_effect:
        cols.append(("note", note))
    mats, ident, levels = [], [], {}
    for j, (name, col) in enumerate(cols):
        u, inv = np.unique(col, return_inverse=True)
        levels[name] = u
        mats.append(sp.csr_matrix((np.ones(len(inv)), (np.arange(len(inv)), inv)), shape=(len(inv), len(u))))
        ident.append(np.full(len(u), j))
    Z = sp.hstack(mats).tocsr()
    model = BinomialBayesMixedGLM(y, np.ones((len(y), 1)), Z, np.concatenate(ident), vcp_p=1.0, fe_p=2.0,
                                  fep_names=["intercept"], vcp_names=[n for n, _ in cols])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # statsmodels starts the fit from random values: seeded, so the same seed gives the same
            # figures; and on one BLAS thread, because the fit's sums otherwise depend on how many
            # threads the machine's BLAS uses (different figures on different machines) and a
            # busy machine's threads slowed it 3-25 times
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"):
                res = model.fit_vb(fit_method="L-BFGS-B", rng=np.random.default_rng([seed, 78]))
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as e:
            return {"method": None, "reason": f"the mixed model could not be fitted ({e})"}
    msgs = sorted({str(w.message).splitlines()[0] for w in caught if "converge" in str(w.message).lower()})
    sd = np.exp(res.vcp_mean)
    var = {"team": float(sd[0] ** 2), "worker_within_team": float(sd[1] ** 2),
           "note_within_worker": float(sd[2] ** 2) if note_effect else 0.0, "segment": LATENT_RESIDUAL}
    total = sum(var.values())
    draws = np.exp(2 * (res.vcp_mean[None, :] + res.vcp_sd[None, :] * rng.standard_normal((n_draws, len(sd)))))
    tot_d = draws.sum(axis=1) + LATENT_RESIDUAL
    icc_t, icc_w = draws[:, 0] / tot_d, (draws[:, 0] + draws[:, 1]) / tot_d

    def q(x):
        return [float(np.quantile(x, 0.025)), float(np.quantile(x, 0.975))]

    b0 = float(res.fe_mean[0])
    re = res.vc_mean
    nt, nw = len(levels["team"]), len(levels["worker"])
    u, v = re[:nt], re[nt:nt + nw]
    team_of_worker = {int(w): int(tm) for w, tm in zip(worker, team)}
    t_index = {int(x): i for i, x in enumerate(levels["team"])}

    def expit(x):
        return 1 / (1 + np.exp(-x))

    tname = (lambda i: str(team_names[i])) if team_names is not None else str
    wname = (lambda i: str(worker_names[i])) if worker_names is not None else str
    teams_out = [{"team": tname(int(x)), "effect": float(u[i]), "balance": float(expit(b0 + u[i]))}
                 for i, x in enumerate(levels["team"])]
    workers_out = [{"team": tname(team_of_worker[int(x)]), "worker": wname(int(x)), "effect": float(v[i]),
                    "balance": float(expit(b0 + u[t_index[team_of_worker[int(x)]]] + v[i]))}
                   for i, x in enumerate(levels["worker"])]
    return {
        "method": "binomial mixed model of segments: logit P(change-focused) ~ 1 + (1 | team) + (1 | worker)"
                  + (" + (1 | note)" if note_effect else "")
                  + "; statsmodels BinomialBayesMixedGLM, variational Bayes",
        "scale": "latent (logit); a segment's own residual variance is pi^2/3",
        "fitted_on": how or "all notes",
        "notes": int(len(t)), "segments": int(len(y)), "teams": nt, "workers": nw,
        "variance": var,
        "share_of_variance": {"team": var["team"] / total, "worker_within_team": var["worker_within_team"] / total,
                              "within_worker": (var["note_within_worker"] + var["segment"]) / total},
        "icc_team": var["team"] / total, "icc_team_ci": q(icc_t),
        "icc_worker": (var["team"] + var["worker_within_team"]) / total, "icc_worker_ci": q(icc_w),
        "sd": {"team": float(sd[0]), "worker_within_team": float(sd[1]),
               "note_within_worker": float(sd[2]) if note_effect else 0.0},
        "intercept": b0,
        "shrunken": {"teams": teams_out, "workers": workers_out},
        "warnings": msgs,
    }
