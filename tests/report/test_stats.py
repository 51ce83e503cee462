"""The statistics of a report as pure functions (``rcl_study.report.stats``).

Untestable comparisons give no test (never a tiny p or "no difference"), effect sizes carry
noncentral-t intervals, bootstrap intervals need ten seeds.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from rcl_study.report import robust, stats


def test_identical_differences_give_no_test_not_tiny_p():
    # differences 0.1 on every seed, up to round-off (0.0999...98 and 0.1000...09)
    r = stats.paired_comparison([0.5, 0.6, 0.7], [0.6, 0.7, 0.8])
    assert r["p_ttest"] is None and r["p_wilcoxon"] is None
    assert "no test (no variance" in r["notes"][0]


def test_factorial_without_residual_variance_gives_no_test():
    design = np.array([b for b in itertools.product([0, 1], repeat=2) for _ in range(3)])
    y = 0.6 + 0.05 * design[:, 0] - 0.03 * design[:, 1]  # exact: residuals are round-off
    res = stats.factorial_effects(design, y, ["A", "B"])
    assert all(e["p"] is None for e in res["effects"]) and "no variance" in res["note"]


def test_paired_effect_sizes_with_noncentral_t_intervals():
    d = [0.02, 0.035, -0.01, 0.04, 0.025, 0.015]
    r = stats.paired_effect_sizes(d)
    n = len(d)
    dz = np.mean(d) / np.std(d, ddof=1)
    assert r["d_z"] == pytest.approx(dz)
    assert r["g_z"] == pytest.approx(dz * (1 - 3 / (4 * (n - 1) - 1)))
    # independent: scan the noncentrality for the 2.5% / 97.5% points of the observed t
    grid = np.linspace(-5, 15, 200001)
    cdf = sps.nct.cdf(dz * np.sqrt(n), n - 1, grid)
    lo, hi = grid[np.argmin(abs(cdf - 0.975))], grid[np.argmin(abs(cdf - 0.025))]
    assert r["d_z_ci"] == pytest.approx((lo / np.sqrt(n), hi / np.sqrt(n)), abs=1e-3)


def test_prob_improvement_is_rliable_p_x_greater_y_with_interval():
    base, var = [0.5, 0.6, 0.7, 0.6], [0.6, 0.6, 0.65, 0.9]
    r = stats.paired_comparison(base, var)
    u = sps.mannwhitneyu(var, base).statistic  # U counts ties one half
    assert r["prob_improvement"] == pytest.approx(u / 16)
    assert r["prob_improvement_ci"] is None  # 4 seeds: no bootstrap interval
    r = stats.paired_comparison(base * 3, var * 3)  # 12 seeds
    lo, hi = r["prob_improvement_ci"]
    assert lo <= r["prob_improvement"] <= hi
    again = stats.paired_comparison(base * 3, var * 3)["prob_improvement_ci"]
    assert r["prob_improvement_ci"] == again


def test_wilcoxon_note_counts_the_nonzero_differences_used():
    base = [0.5, 0.6, 0.7, 0.55, 0.65, 0.6]
    var = [0.52, 0.63, 0.7, 0.56, 0.69, 0.61]  # one zero difference: 5 used
    r = stats.paired_comparison(base, var)
    assert r["p_wilcoxon"] == pytest.approx(sps.wilcoxon(var, base).pvalue)
    assert any("5 non-zero differences (1 zero dropped) cannot reach" in n for n in r["notes"])


def test_bootstrap_interval_only_from_ten_seeds():
    x = [0.61, 0.64, 0.59, 0.66, 0.62]
    few = stats.summarize(x)
    assert few["ci_boot"] is None and any("bootstrap" in n for n in few["notes"])
    many = stats.summarize(x * 2)
    assert many["ci_boot"] is not None


NOT_COMPUTED = "not computed (n < 10: the bootstrap under-covers)"


# ------------------------------------------------------------ no bootstrap below 10 seeds


@pytest.mark.parametrize("n", [2, 3, 6, 9])
def test_no_bootstrap_interval_below_ten_seeds(n):
    rng = np.random.default_rng(n)
    x, y = rng.normal(0.6, 0.02, n), rng.normal(0.62, 0.02, n)
    s = stats.summarize(x)
    assert s["ci_boot"] is None and s["iqm_ci"] is None
    assert any(NOT_COMPUTED in note for note in s["notes"])
    c = stats.paired_comparison(x, y)
    assert c["prob_improvement_ci"] is None and c["prob_improvement"] is not None
    assert robust.iqm_interval(x) is None and robust.prob_improvement_interval(y, x) is None
    assert stats.bootstrap_interval(x) is None
    band = robust.performance_profile({"a": x}, [0.5, 0.6, 0.7], n_boot=200)["a"]
    assert band["lo"] is None and band["hi"] is None and len(band["share"]) == 3


def test_bootstrap_intervals_from_ten_seeds():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.6, 0.02, 10), rng.normal(0.62, 0.02, 10)
    s = stats.summarize(x)
    assert s["ci_boot"] is not None and s["iqm_ci"] is not None
    assert stats.paired_comparison(x, y)["prob_improvement_ci"] is not None
