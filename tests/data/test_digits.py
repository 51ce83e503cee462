"""The shipped digits file equals the split scikit-learn builds, and reading it imports no more."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rcl_study.data.digits import digits_from_scikit_learn, read_digits


def test_the_shipped_digits_equal_scikit_learns_split():
    pytest.importorskip("sklearn")
    shipped, built = read_digits(), digits_from_scikit_learn()
    for name in ("train_x", "train_y", "test_x", "test_y"):
        a, b = getattr(shipped, name), getattr(built, name)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name
    assert shipped.train_x.shape == (1257, 8, 8, 1) and shipped.test_x.shape == (540, 8, 8, 1)
    per_class = np.bincount(np.concatenate([shipped.train_y, shipped.test_y]))
    assert per_class.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # UCI's
    # stratified: each class's test share within one image of 30%
    assert np.all(np.abs(np.bincount(shipped.test_y) - 0.3 * per_class) < 1)


def test_reading_the_digits_does_not_import_scikit_learn():
    code = (
        "import sys; from rcl_study.data.load import load_data; "
        "from rcl_study.config import DataConfig; load_data(DataConfig()); "
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
