"""The team-level statistics (culture.py, mixed.py) against values computed another way."""

import itertools

import numpy as np
import pytest

from supervise_nlp.culture import (
    cluster_ratio,
    clustered_difference,
    groups_differ,
    mirroring_corrected,
    pairwise_clustered,
    ratio_cr1_variance,
    within_worker_change,
    worker_outliers,
)


def test_cluster_variance_matches_statsmodels_wls_with_cluster_covariance():
    """The ratio is the WLS intercept of note shares (weights = segments); its CR1 variance is
    statsmodels' cluster-robust one, and CR2 equals CR1 when clusters are the same size."""
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    t = rng.integers(3, 20, size=60).astype(float)
    worker = np.repeat(np.arange(12), 5)
    c = rng.binomial(t.astype(int), 0.3 + 0.04 * worker).astype(float)
    fit = sm.WLS(c / t, np.ones((60, 1)), weights=t).fit(cov_type="cluster", cov_kwds={"groups": worker})
    cw, tw = np.bincount(worker, weights=c), np.bincount(worker, weights=t)
    assert fit.params[0] == pytest.approx(c.sum() / t.sum())
    assert fit.bse[0] ** 2 == pytest.approx(ratio_cr1_variance(cw, tw), rel=1e-10)
    # CR2 with equal totals: leverage 1/k, so 1/(1-h) = k/(k-1) as in CR1
    eq = cluster_ratio(np.array([3.0, 5, 9, 4]), np.array([10.0, 10, 10, 10]))
    assert eq["se"] ** 2 == pytest.approx(ratio_cr1_variance(np.array([3.0, 5, 9, 4]), np.full(4, 10.0)))
    # t with k-1 df, by hand
    from scipy.stats import t as tdist

    r = cluster_ratio(cw, tw)
    assert r["df"] == 11
    assert r["ci"][1] - r["ratio"] == pytest.approx(tdist.ppf(0.975, 11) * r["se"])
    assert cluster_ratio(np.array([3.0]), np.array([9.0]))["ci"] == [None, None]


def test_worker_permutation_p_value_matches_explicit_enumeration():
    """Two teams of three workers: 20 ways to split six workers; the vectorised permutation
    p-value converges to the exact enumeration's."""
    cw = np.array([2.0, 3, 4, 8, 9, 7])
    tw = np.array([10.0, 10, 12, 11, 10, 10])
    team = np.array([0, 0, 0, 1, 1, 1])

    def stat(g):
        R = cw.sum() / tw.sum()
        return sum(tw[g == k].sum() * (cw[g == k].sum() / tw[g == k].sum() - R) ** 2 for k in (0, 1))

    obs = stat(team)
    splits = [np.isin(np.arange(6), list(s)).astype(int) for s in itertools.combinations(range(6), 3)]
    exact = np.mean([stat(g) >= obs - 1e-12 for g in splits])
    # one note per worker: the notes are the workers
    res = groups_differ(cw, tw, team, np.arange(6), 40_000, np.random.default_rng(1))
    assert res["unit"] == "workers" and res["statistic"] == pytest.approx(obs)
    assert res["p_value"] == pytest.approx(exact, abs=0.01)
    # several notes per worker give the same answer: workers, not notes, are permuted
    c_notes, t_notes = np.repeat(cw / 2, 2), np.repeat(tw / 2, 2)
    res2 = groups_differ(c_notes, t_notes, np.repeat(team, 2), np.repeat(np.arange(6), 2), 40_000,
                         np.random.default_rng(1))
    assert res2["statistic"] == pytest.approx(obs) and res2["p_value"] == pytest.approx(exact, abs=0.01)


def test_wald_test_when_workers_write_in_several_groups():
    rng = np.random.default_rng(2)
    worker = np.repeat(np.arange(30), 8)
    group = np.tile(np.arange(2), 120)
    t = np.full(240, 10.0)
    c = rng.binomial(10, 0.4, 240).astype(float)
    res = groups_differ(c, t, group, worker, 99, rng)
    assert res["unit"].startswith("workers") and 0 <= res["p_value"] <= 1
    # with two groups the Wald statistic is the squared t of the clustered difference
    diff = clustered_difference(c, t, group, worker)
    assert res["statistic"] == pytest.approx((diff["change"] / diff["se"]) ** 2)


def test_pairwise_welch_and_holm_by_hand():
    a = {"ratio": 0.3, "se": 0.05, "df": 3}
    b = {"ratio": 0.6, "se": 0.04, "df": 5}
    c = {"ratio": 0.5, "se": None, "df": None}
    pairs = pairwise_clustered([a, b, c], [{"t": "a"}, {"t": "b"}, {"t": "c"}])
    ab = pairs[0]
    df = (0.05**2 + 0.04**2) ** 2 / (0.05**4 / 3 + 0.04**4 / 5)
    from scipy.stats import t as tdist

    assert ab["df"] == pytest.approx(df)
    assert ab["p"] == pytest.approx(2 * tdist.sf(0.3 / np.hypot(0.05, 0.04), df))
    assert ab["p_holm"] == pytest.approx(ab["p"])  # the only testable pair
    assert [p["significant"] for p in pairs[1:]] == [None, None]


def test_within_worker_change_by_hand_and_turnover_is_not_change():
    # workers 0,1 on both sides (+0.1 each); worker 2 leaves (low), worker 3 joins (high)
    c = np.array([2.0, 3, 4, 5, 1, 9])
    t = np.array([10.0, 10, 10, 10, 10, 10])
    worker = np.array([0, 0, 1, 1, 2, 3])
    after = np.array([False, True, False, True, False, True])
    res = within_worker_change(c, t, worker, after, np.ones(6, dtype=bool))
    assert res["workers_both_sides"] == 2 and res["workers_before_only"] == 1 and res["workers_after_only"] == 1
    assert res["change"] == pytest.approx(0.1)
    assert res["se"] == pytest.approx(0.0) and res["verdict"] == "a clear rise"
    # the raw before/after change is dominated by the turnover
    raw = clustered_difference(c, t, after.astype(int), worker)
    assert raw["change"] == pytest.approx((3 + 5 + 9) / 30 - (2 + 4 + 1) / 30)
    # a worker whose change differs widens the interval: no clear change
    c2 = np.array([2.0, 3, 4, 3.5, 1, 9])
    res2 = within_worker_change(c2, t, worker, after, np.ones(6, dtype=bool))
    assert res2["verdict"] == "no clear change" and res2["change_ci"][0] < 0 < res2["change_ci"][1]


def test_outlier_is_named_its_colleagues_are_not_and_ci_agrees_with_flag():
    rng = np.random.default_rng(3)
    C, T, team, worker = [], [], [], []
    wid = 0
    for tm in range(6):
        for j in range(4):
            share = 0.8 if (tm < 2 and j == 0) else 0.3
            c = rng.binomial(10, share, 15)
            C += list(c)
            T += [10] * 15
            team += [tm] * 15
            worker += [wid] * 15
            wid += 1
    names = np.array([f"w{i}" for i in range(wid)], dtype=object)
    res = worker_outliers(np.array(C, float), np.array(T, float), np.array(team), np.array(worker),
                          np.array([f"t{i}" for i in range(6)], dtype=object), names, 5)
    flagged = {r["worker"] for r in res["workers"] if r["outlier"]}
    assert flagged == {"w0", "w4"}
    for r in res["workers"]:
        lo, hi = r["ci"]
        assert (lo > 0 or hi < 0) == r["outlier"]
    assert res["tested"] == 24 and res["flagged"] == 2 and res["ci_level"] == pytest.approx(1 - 2 * 0.05 / 24)


def _organisation(shares_by_team: list[list[float]], notes: int = 20, segments: int = 20):
    """Notes with known counts: a worker of share s writes notes of s*20 -/+ 1 change-focused
    segments in turn (so each worker's notes vary a little, and their balance is exactly s)."""
    C, T, team, worker = [], [], [], []
    wid = 0
    for tm, shares in enumerate(shares_by_team):
        for s in shares:
            k = round(s * segments)
            C += [k - 1 if i % 2 == 0 else k + 1 for i in range(notes)]
            T += [segments] * notes
            team += [tm] * notes
            worker += [wid] * notes
            wid += 1
    names = np.array([f"w{i}" for i in range(wid)], dtype=object)
    tnames = np.array([f"t{i}" for i in range(len(shares_by_team))], dtype=object)
    return worker_outliers(np.array(C, float), np.array(T, float), np.array(team), np.array(worker), tnames,
                           names, 5)


ORDINARY = [[0.45, 0.5, 0.55, 0.6], [0.4, 0.5, 0.6, 0.55], [0.4, 0.45, 0.5, 0.55], [0.6, 0.5, 0.4, 0.45],
            [0.5, 0.55, 0.6, 0.45], [0.45, 0.4, 0.5, 0.6], [0.35, 0.45, 0.4, 0.5], [0.5, 0.6, 0.45, 0.55]]


def test_ordinary_differences_between_workers_are_not_outliers():
    """Workers spread 0.35-0.6 in every team: each one's notes differ from their colleagues' far beyond
    note-level noise, but no more than workers here ordinarily differ, so nobody is flagged."""
    res = _organisation(ORDINARY)
    assert res["tested"] == 32 and res["flagged"] == 0
    assert not any(r["outlier"] or r["pair_differs"] for r in res["workers"])
    beyond_noise = [r for r in res["workers"] if abs(r["difference"]) / r["se_notes"] > 4]
    assert len(beyond_noise) >= 8  # what the notes-only rule flagged
    # workers' shares within a team have SD 0.07; the estimate is of that order
    assert 0.04 < res["between_worker_sd"] < 0.12
    assert all(r["se"] > r["se_notes"] for r in res["workers"])


def test_one_clearly_different_worker_is_flagged_among_ordinary_variation():
    teams = [list(x) for x in ORDINARY]
    teams[0][0] = 0.9  # far beyond 0.35-0.6
    res = _organisation(teams)
    flagged = {r["worker"] for r in res["workers"] if r["outlier"]}
    assert flagged == {"w0"}
    w0 = next(r for r in res["workers"] if r["worker"] == "w0")
    assert w0["rest_of_team_balance"] == pytest.approx(0.55) and w0["difference"] == pytest.approx(0.35)
    for r in res["workers"]:
        lo, hi = r["ci"]
        assert (lo > 0 or hi < 0) == r["outlier"]
    # the outlier does not count towards ordinary variation
    assert res["between_worker_sd"] == pytest.approx(_organisation(ORDINARY)["between_worker_sd"], rel=0.25)


def test_with_no_differences_between_workers_an_outlier_is_still_found():
    teams = [[0.4] * 4 for _ in range(8)]
    teams[3][2] = 0.6
    res = _organisation(teams)
    assert res["between_worker_sd"] < 0.02
    assert {r["worker"] for r in res["workers"] if r["outlier"]} == {"w14"}


def test_a_pair_differs_only_beyond_ordinary_variation():
    teams = [list(x) for x in ORDINARY] + [[0.4, 0.6], [0.1, 0.9]]
    res = _organisation(teams)
    pairs = {r["team"]: r["pair_differs"] for r in res["workers"] if r["team_workers"] == 2}
    assert pairs == {"t8": False, "t9": True}
    assert not any(r["outlier"] for r in res["workers"])


def test_between_worker_variance_by_hand():
    """Pairs of workers whose differences are exactly as wide as note noise plus tau^2 give tau^2 back;
    one wild pair moves the winsorised estimate only a little, and not at all for its own workers."""
    from scipy.stats import norm

    from supervise_nlp.culture import _between_worker_variance

    # 200 teams of two; differences at the normal quantiles for variance v + v + 2 tau^2
    q = norm.ppf((np.arange(200) + 0.5) / 200)
    v, tau2 = 0.001, 0.01
    b = np.ravel(np.column_stack([np.full(200, 0.5), 0.5 + q * np.sqrt(2 * v + 2 * tau2)]))
    team = np.repeat(np.arange(200), 2)
    est, loo = _between_worker_variance(b, np.full(400, v), team, np.ones(400, dtype=bool))
    assert est == pytest.approx(tau2, rel=0.03)
    med, _ = _between_worker_variance(b, np.full(400, v), team, np.ones(400, dtype=bool), statistic="median")
    assert med == pytest.approx(tau2, rel=0.03)
    b[1] = 5.0  # one wild pair
    est2, loo2 = _between_worker_variance(b, np.full(400, v), team, np.ones(400, dtype=bool))
    assert tau2 < est2 < 1.05 * tau2
    assert loo2[0] == loo2[1] < est2  # without the pair the wild worker is in


def test_mirroring_correction_by_hand():
    rng = np.random.default_rng(5)
    S = rng.normal(0.5, 0.1, 40)
    V = 0.5 * S + rng.normal(0.25, 0.05, 40)
    zero = np.zeros(40)
    res = mirroring_corrected(S, V, zero, zero, zero, 200, rng)
    assert res["r"] == pytest.approx(np.corrcoef(S, V)[0, 1])
    vs, vv, cv = np.full(40, 0.002), np.full(40, 0.001), np.full(40, 0.0005)
    res = mirroring_corrected(S, V, vs, vv, cv, 200, rng)
    cov = np.cov(S, V)
    expected = (cov[0, 1] - 0.0005) / np.sqrt((cov[0, 0] - 0.002) * (cov[1, 1] - 0.001))
    assert res["r"] == pytest.approx(min(expected, 1.0))
    assert res["ci"][0] <= res["r"] <= res["ci"][1]


def test_mixed_model_recovers_latent_icc_and_shrinks():
    from supervise_nlp.mixed import fit_mixed
    from supervise_nlp.simulate import make

    d = make(np.random.default_rng(8), n_teams=20, team_sd=1.0, worker_sd=0.5, note_sd=0.5)
    r = fit_mixed(d.C, d.C + d.P, d.team, d.worker, seed=1, max_rows=6000)
    truth = 1.0 / (1.0 + 0.25 + 0.25 + np.pi**2 / 3)
    assert abs(r["icc_team"] - truth) < 0.12
    assert r["icc_team_ci"][0] < r["icc_team"] < r["icc_team_ci"][1]
    assert r["fitted_on"].startswith("a random")  # a stated subsample above max_rows
    teams = {t["team"]: t["balance"] for t in r["shrunken"]["teams"]}
    raw = {str(k): d.C[d.team == k].sum() / (d.C + d.P)[d.team == k].sum() for k in range(20)}
    # shrunken team balances follow the raw ones
    keys = sorted(teams)
    assert np.corrcoef([teams[k] for k in keys], [raw[k] for k in keys])[0, 1] > 0.9


def test_simulation_quick_mode_shows_the_nominal_properties():
    from supervise_nlp.simulate import run

    res = run(["coverage_sd1.0", "typeI_sd1.0", "milestone_null", "outliers_sd0", "outliers_sd1.0",
               "mirroring_10_30"], quick=True, seed=3)
    assert res["coverage_sd1.0"]["value"] >= 0.85  # team-level truth, workers as clusters
    assert res["coverage_sd1.0"]["notes_interval"] < 0.7  # what resampling notes would have claimed
    assert res["typeI_sd1.0"]["value"] <= 0.2
    assert res["milestone_null"]["value"] >= 0.85
    assert res["outliers_sd0"]["value"] >= 0.8 and res["outliers_sd0"]["false_positive_rate"] <= 0.05
    # workers differ (SD 1.0): ordinary workers are not outliers (the notes-only rule flagged half of them)
    assert res["outliers_sd1.0"]["false_positive_rate"] <= 0.05 and res["outliers_sd1.0"]["fdr"] <= 0.15
    assert res["mirroring_10_30"]["value"] >= 0.7
