"""``python -m rcl_study.data export --dataset cifar10_lt --imbalance-ratio 100 --out F.npz``.

``--out F.npz.xz`` writes the same arrays xz-compressed (about 20% smaller, slower to write).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from rcl_study.config import DataConfig
from rcl_study.config.base import SEED_LIMIT
from rcl_study.config.flags import OneLineParser, number
from rcl_study.data.checks import DataError
from rcl_study.data.load import load_data
from rcl_study.data.types import ListImages
from rcl_study.store import atomic_write_bytes


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m rcl_study.data export",
        description="Write the exact long-tailed training split (with its source indices) and "
        "the test set as an .npz, for data.dataset: arrays (e.g. on a machine without the "
        "source files).",
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="the registered dataset to read (data.dataset: digits_lt, cifar10_lt, ... or a "
        "plugin's; not list-file datasets)",
    )
    p.add_argument(
        "--imbalance-ratio",
        type=number(float, low=1),
        required=True,
        help="largest over smallest training class (data.imbalance_ratio, e.g. 100)",
    )
    p.add_argument("--root", default=None, help="the folder of the source files (data.root)")
    p.add_argument(
        "--profile",
        default="exponential",
        choices=["exponential", "step"],
        help="how class sizes fall from the largest to the smallest (data.profile)",
    )
    p.add_argument(
        "--split-seed",
        type=number(int, low=0, high=SEED_LIMIT - 1),
        default=0,
        help="seed of the images kept in each class (data.split_seed; default 0)",
    )
    p.add_argument(
        "--val-per-class",
        type=number(int, low=0, high=100_000),
        default=20,
        help="validation images per class, stored as val_x/val_y (data.val_per_class; 0: none)",
    )
    p.add_argument(
        "--head-images",
        type=number(int, low=1, high=10_000_000),
        default=None,
        help="images of the head class before the long tail (data.head_images)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch CIFAR or Fashion-MNIST into --root when absent (needs a network)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="the file to write: F.npz (compressed), or F.npz.xz (xz, about 20%% smaller)",
    )
    return p


def export(argv: list[str] | None = None) -> int:
    """Write the exact long-tailed split (with source indices) and the test set as an ``.npz``."""
    a = _parser().parse_args(argv)
    try:
        cfg = DataConfig(
            dataset=a.dataset,
            root=a.root,
            imbalance_ratio=a.imbalance_ratio,
            profile=a.profile,
            split_seed=a.split_seed,
            download=a.download,
            val_per_class=a.val_per_class,
            head_images=a.head_images,
        )
        data = load_data(cfg)
    except (DataError, ValueError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    if isinstance(data.train_x, ListImages):
        print(
            "error: list-file datasets are exported as their list files, not arrays",
            file=sys.stderr,
        )
        return 2
    out = Path(a.out)
    extra = {"test_mask": data.test_mask} if data.test_mask is not None else {}
    if data.val_y is not None:
        extra.update(val_x=data.val_x, val_y=data.val_y)
    save = np.savez if out.suffix == ".xz" else np.savez_compressed
    buffer = io.BytesIO()
    save(
        buffer,
        train_x=data.train_x,
        train_y=data.train_y,
        test_x=data.test_x,
        test_y=data.test_y,
        train_index=data.train_index,
        imbalance_ratio=np.float64(a.imbalance_ratio),
        source=np.str_(a.dataset),
        **extra,
    )
    payload = buffer.getvalue()
    if out.suffix == ".xz":
        import lzma

        payload = lzma.compress(payload, preset=9)
    try:  # a read-only folder, a full disk: one line, the temporary file removed
        atomic_write_bytes(out, payload)
    except OSError as err:
        print(f"error: {out}: cannot be written ({err.strerror or err})", file=sys.stderr)
        return 2
    print(
        f"wrote {out}: {len(data.train_y)} training images "
        f"{data.train_counts.tolist()}, "
        f"{0 if data.val_y is None else len(data.val_y)} validation and "
        f"{len(data.test_y)} test images"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``export`` is the only sub-command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        _parser().print_help()
        return 0
    if not argv or argv[0] != "export":
        print(
            "usage: python -m rcl_study.data export --dataset D --imbalance-ratio R --out F.npz",
            file=sys.stderr,
        )
        return 2
    return export(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
