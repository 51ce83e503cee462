"""scikit-learn's 8x8 digits, scaled to uint8 and split into training and test sets."""

from __future__ import annotations

import numpy as np

from rcl_study.data.types import Split


def read_digits(test_fraction: float = 0.3) -> Split:
    """scikit-learn's ``load_digits`` (1,797 real 8x8 digits, shipped with scikit-learn).

    Pixel values 0..16 are scaled to 0..255; a fixed stratified split (seed 0) gives the test set.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    idx_train, idx_test = train_test_split(
        np.arange(len(d.target)), test_size=test_fraction, stratify=d.target, random_state=0
    )
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    return Split(
        train_x=images[idx_train],
        train_y=d.target[idx_train].astype(np.int64),
        test_x=images[idx_test],
        test_y=d.target[idx_test].astype(np.int64),
    )
