"""Fashion-MNIST from its four gzip IDX files, each header checked before its body is read."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from rcl_study.data.checks import (
    DataError,
    check_images,
    check_labels,
    download_into,
    memory_cap,
    need,
)
from rcl_study.data.types import Split

FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def _read_idx(path: Path) -> np.ndarray:
    """A uint8 IDX file (gzip): header checked against the file before the body is read."""
    try:
        with open(path, "rb") as f:  # gzip's trailer holds the data size (mod 2**32)
            f.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", f.read(4))[0]
        with gzip.open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: truncated IDX header")
            zero, dtype_code, ndim = struct.unpack(">HBB", head)
            if zero != 0 or dtype_code != 0x08:
                raise DataError(f"{path}: expected uint8 IDX data, got type code {dtype_code:#x}")
            if ndim not in (1, 3):
                raise DataError(
                    f"{path}: expected 1 (labels) or 3 (images) IDX dimensions, got {ndim}"
                )
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            count = 1
            for d in dims:
                count *= d
            if (4 + 4 * ndim + count) % 2**32 != isize or count > memory_cap():
                raise DataError(
                    f"{path}: IDX header declares {dims} = {count} values, which the file "
                    "does not hold"
                )
            body = f.read(count + 1)
    except (OSError, EOFError, ValueError, struct.error) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: corrupt or truncated gzip IDX file ({err})") from None
    if len(body) != count:
        raise DataError(f"{path}: IDX file holds {len(body)} values, its header says {count}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_fashion_mnist(root: Path | None, download: bool = False) -> Split:
    """Fashion-MNIST from the four gzip IDX files (torchvision's ``raw/`` or Debian's folder)."""
    root = root or DEBIAN_FASHION
    if download and not any(
        (c / FASHION_FILES[0]).exists() for c in (root, root / "raw", root / "FashionMNIST" / "raw")
    ):
        import torchvision

        download_into(
            lambda: torchvision.datasets.FashionMNIST(str(root), train=True, download=True),
            root,
            "Fashion-MNIST",
        )
    for cand in (root, root / "raw", root / "FashionMNIST" / "raw"):
        if (cand / FASHION_FILES[0]).exists():
            break
    else:
        raise DataError(
            f"{root}: no '{FASHION_FILES[0]}' there (nor in raw/ or FashionMNIST/raw/); set "
            "data.root, install Debian's dataset-fashion-mnist, or set data.download: true"
        )
    paths = [need(cand / f, "a Fashion-MNIST IDX file", "Fashion-MNIST") for f in FASHION_FILES]
    arrs = [_read_idx(p) for p in paths]
    train_x = check_images(arrs[0], paths[0], "images")
    test_x = check_images(arrs[2], paths[2], "images")
    return Split(
        train_x=train_x,
        train_y=check_labels(arrs[1], paths[1], "labels", len(train_x), 10),
        test_x=test_x,
        test_y=check_labels(arrs[3], paths[3], "labels", len(test_x), 10),
    )
