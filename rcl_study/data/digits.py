"""The 8x8 digits shipped with the package: real handwriting, offline, the default dataset.

``digits_split.npz`` beside this module holds scikit-learn's ``load_digits`` (1,797 digits of
the UCI "Optical Recognition of Handwritten Digits" set, Alpaydin and Kaynak 1998, CC BY 4.0),
pixel values 0..16 scaled to 0..255 uint8, split into training and test sets by a stratified
30% split (scikit-learn's ``train_test_split``, seed 0), indices sorted. Reading it takes a few
milliseconds and imports nothing beyond NumPy; ``tests/data/test_digits.py`` rebuilds it from
scikit-learn and checks every array is equal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rcl_study.data.types import Split

#: the shipped split (see the module docstring)
DIGITS_FILE = Path(__file__).with_name("digits_split.npz")


def read_digits() -> Split:
    """The shipped digits as a :class:`Split` (1,257 training and 540 test images, 8x8x1)."""
    with np.load(DIGITS_FILE, allow_pickle=False) as f:
        return Split(
            train_x=f["train_x"], train_y=f["train_y"], test_x=f["test_x"], test_y=f["test_y"]
        )


def digits_from_scikit_learn(test_fraction: float = 0.3) -> Split:
    """The same split built from scikit-learn (``pip install scikit-learn``), as the file was."""
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
