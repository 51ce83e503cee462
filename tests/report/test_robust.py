"""rliable's statistics against hand values and scipy."""

import time

import numpy as np
import pytest
from scipy import stats as sps

from rcl_study.report import robust, stats


def test_iqm_of_known_lists():
    assert robust.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert robust.iqm([5, 1, 100, 2, 4, 3, 3, -50]) == pytest.approx(3.0)  # mean of 2, 3, 3, 4
    assert robust.iqm([]) is None


def test_iqm_interval_is_seeded_and_brackets():
    x = [0.61, 0.64, 0.59, 0.66, 0.62, 0.60, 0.63, 0.65, 0.58, 0.67]  # 10: the fewest
    a = robust.iqm_interval(x, n_boot=1000)
    assert a == robust.iqm_interval(x, n_boot=1000)
    assert a[0] <= robust.iqm(x) <= a[1] and min(x) <= a[0] and a[1] <= max(x)


def test_prob_improvement_counts_ties_half():
    x, y = [1, 2, 3], [2, 2, 0]
    # pairs: 1 vs (2, 2, 0): 0 + 0 + 1; 2: 0.5 + 0.5 + 1; 3: 1 + 1 + 1 -> 6 / 9
    assert robust.prob_improvement(x, y) == pytest.approx(6 / 9)
    # lower is better: 1: 1 + 1 + 0; 2: 0.5 + 0.5 + 0; 3: 0 -> 3 / 9
    assert robust.prob_improvement(x, y, mode="min") == pytest.approx(3 / 9)
    u = sps.mannwhitneyu(x, y).statistic
    assert robust.prob_improvement(x, y) == pytest.approx(u / 9)
    lo, hi = robust.prob_improvement_interval(x * 4, y * 4, n_boot=500)  # 12 runs each
    assert 0 <= lo <= 6 / 9 <= hi <= 1


def test_performance_profile_by_hand():
    runs = [0.1, 0.2, 0.3, 0.4] * 3  # 12 runs: a band
    prof = robust.performance_profile({"a": runs}, [0.0, 0.25, 0.4], n_boot=200)
    assert prof["a"]["share"] == pytest.approx([1.0, 0.5, 0.0])  # strictly above tau
    assert np.all(np.array(prof["a"]["lo"]) <= prof["a"]["share"])
    low = robust.performance_profile({"a": [0.1, 0.2, 0.3, 0.4]}, [0.25], mode="min", n_boot=10)
    assert low["a"]["share"] == [0.5]


# ------------------------------------------------------------ P(improve): 50,000 resamples


def test_prob_improvement_interval_has_rliable_resamples_and_agrees_with_scipy():
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.62, 0.02, 12), rng.normal(0.60, 0.02, 10)
    assert robust.PI_REPS == 50_000
    t0 = time.perf_counter()
    lo, hi = robust.prob_improvement_interval(x, y)
    assert time.perf_counter() - t0 < 2.0  # vectorised: 50,000 resamples in well under 2 s

    def stat(a, b, axis=-1):
        d = a[..., :, None] - b[..., None, :]
        return ((d > 0) + 0.5 * (d == 0)).mean(axis=(-2, -1))

    ref = sps.bootstrap(
        (x, y),
        stat,
        n_resamples=50_000,
        method="percentile",
        vectorized=True,
        batch=2000,
        random_state=np.random.default_rng(9),
    ).confidence_interval
    # two Monte Carlo estimates of the same quantiles: at 50,000 reps they agree to ~0.005
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)
    # the report's comparisons use the same 50,000 resamples, whatever report.bootstrap says
    c = stats.paired_comparison(y[:10], x[:10], n_boot=100)
    assert c["prob_improvement_ci"] == pytest.approx(
        robust.prob_improvement_interval(x[:10], y[:10])
    )


def test_prob_improvement_interval_matches_a_plain_loop():
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, 10), np.round(rng.normal(0.3, 1, 11), 1)
    got = robust.prob_improvement_interval(x, y, n_boot=3000, seed=4)
    g = np.random.default_rng(4)  # the same draws: all of X's resamples, then all of Y's
    ix, iy = g.integers(0, len(x), (3000, len(x))), g.integers(0, len(y), (3000, len(y)))
    reps = [robust.prob_improvement(x[a], y[b]) for a, b in zip(ix, iy)]
    assert got == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])))
