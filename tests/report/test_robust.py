"""rliable's statistics against hand values and scipy."""

import numpy as np
import pytest
from scipy import stats as sps

from rcl_study.report import robust


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
