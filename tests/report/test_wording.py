"""The report's words (``rcl_study.report.wording``): the IQM says which k of n it averages."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from rcl_study.report import robust, wording

# ------------------------------------------------------------ IQM wording


@pytest.mark.parametrize(("n", "k"), [(4, 2), (6, 4), (8, 4), (10, 6), (12, 6)])
def test_iqm_says_which_k_of_n_it_averages(n, k):
    x = np.arange(n, dtype=float) ** 2  # distinct, skewed: the trimmed mean is unambiguous
    assert robust.iqm_kept(n) == k
    middle = np.sort(x)[(n - k) // 2 : (n - k) // 2 + k]
    assert robust.iqm(x) == pytest.approx(middle.mean())
    assert robust.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25))
    text = " ".join(wording.definitions("balanced_acc", "max", 0.05, [n]))
    assert "middle 50%" not in text
    assert f"the middle {k} of {n} seeds" in text
