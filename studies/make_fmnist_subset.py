"""Write the balanced Fashion-MNIST subset that ``studies/fmnist_lt_losses.yaml`` reads.

Lossless real data from Debian's ``dataset-fashion-mnist`` (``apt-get install
dataset-fashion-mnist``): a seeded random 300 training images per class (the study then makes it
long-tailed at imbalance ratio 100: 300, 179, ..., 3 images per class) and the full test set.

    python studies/make_fmnist_subset.py data/fmnist_balanced300.npz
"""

import sys
from pathlib import Path

import numpy as np

from rcl_study.data.fashion_mnist import read_fashion_mnist

PER_CLASS = 300


def main(out: str) -> None:
    """Save ``train_x [N, 28, 28]``, ``train_y``, ``test_x``, ``test_y`` (uint8 / int64)."""
    raw = read_fashion_mnist(None)
    rng = np.random.default_rng(0)
    y = raw.train_y
    idx = np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(y == c), PER_CLASS, replace=False) for c in range(10)]
        )
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        train_x=raw.train_x[idx, ..., 0],
        train_y=y[idx],
        test_x=raw.test_x[..., 0],
        test_y=raw.test_y,
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/fmnist_balanced300.npz")
