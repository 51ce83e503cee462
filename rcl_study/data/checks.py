"""What every reader shares: :class:`DataError`, the size limits and the checks on arrays/files."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """Missing, corrupt or inconsistent data; the message names the path and how to fix it."""


#: labels must lie below this before anything is sized by them (``np.bincount`` of a label of 1e9
#: allocates 8 GB). 100,000 is ten times the largest public long-tailed benchmark (iNaturalist
#: 2021: 10,000 classes; iNaturalist 2018: 8,142) and bounds a per-class table to 800 kB.
MAX_CLASSES = 100_000
#: the smallest image side the models take (scikit-learn's digits are 8x8; data.image_size >= 8)
MIN_SIDE = 8


def memory_cap() -> int:
    """Bytes one data array may take: half of this machine's physical memory."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def check_labels(
    y: object, path: object, name: str, n_images: int, num_classes: int | None = None
) -> np.ndarray:
    """Labels as int64 after checking them: 1-D integers, one per image, in ``[0, classes)``.

    ``classes`` is ``num_classes`` when given, else :data:`MAX_CLASSES`. Raises :class:`DataError`
    naming ``path`` and the array ``name``; nothing is allocated by the label values.
    """
    arr = np.asarray(y) if not isinstance(y, np.ndarray) else y
    if arr.ndim != 1:
        raise DataError(f"{path}: '{name}' must be 1-D labels, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise DataError(f"{path}: '{name}' must hold integer labels, got dtype {arr.dtype}")
    if arr.size == 0:
        raise DataError(f"{path}: '{name}' is empty")
    if arr.size != n_images:
        raise DataError(f"{path}: '{name}' has {arr.size} labels for {n_images} images")
    limit = num_classes if num_classes is not None else MAX_CLASSES
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= limit:
        bad = lo if lo < 0 else hi
        raise DataError(f"{path}: '{name}' holds label {bad}, outside [0, {limit})")
    return arr.astype(np.int64)


def check_images(x: np.ndarray, path: object, name: str) -> np.ndarray:
    """uint8 images ``[N, H, W, C]`` (``[N, H, W]`` gets ``C = 1``), C in {1, 3}, H, W >= 8."""
    if x.dtype != np.uint8:
        raise DataError(f"{path}: '{name}' must be uint8 images, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{path}: '{name}' must be [N, H, W, C] images, got shape {x.shape}")
    n, h, w, c = x.shape
    if n == 0:
        raise DataError(f"{path}: '{name}' is empty")
    if c not in (1, 3):
        raise DataError(f"{path}: '{name}' must have 1 or 3 channels, got {c} (shape {x.shape})")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise DataError(f"{path}: '{name}' images are {h}x{w}; at least {MIN_SIDE}x{MIN_SIDE}")
    return x


def need(path: Path, what: str, dataset: str) -> Path:
    """``path`` if it exists, else a :class:`DataError` saying what belongs there.

    Only a folder or a regular file of plausible size (at most :func:`memory_cap` bytes) is
    read: a device (``/dev/zero``), a FIFO or a socket is refused before it is opened.
    """
    if not path.exists():
        raise DataError(
            f"{path}: not found; expected {what} there. Set data.root to the folder that holds it, "
            f"or data.download: true to fetch {dataset} with torchvision"
        )
    st = path.stat()
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise DataError(f"{path}: not a regular file (a device, FIFO or socket); expected {what}")
    if stat.S_ISREG(st.st_mode) and st.st_size > memory_cap():
        raise DataError(
            f"{path}: {st.st_size} bytes, more than this machine's memory cap "
            f"({memory_cap()} bytes); expected {what}"
        )
    return path


def download_into(fetch: Callable[[], object], root: Path, dataset: str) -> None:
    """Run ``fetch`` (a torchvision download into ``root``); any failure is a :class:`DataError`."""
    try:
        fetch()
    except Exception as err:  # network errors come as URLError, OSError, RuntimeError...
        raise DataError(
            f"{root}: could not download {dataset} there ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); put the "
            "files there yourself and set data.download: false"
        ) from None


def check_plugin_split(raw: object, who: str, num_classes: int | None) -> None:
    """A plugin reader's :class:`~rcl_study.data.types.Split`, checked before it is used.

    Images uint8 ``[N, H, W, C]`` (or decoded on demand), labels 1-D integers one per image in
    ``[0, C)`` (``C``: ``num_classes``, else one past the largest label), every class with a
    training image, the validation pair both given or neither. Raises :class:`DataError` whose
    message starts with ``who`` (the plugin: its package and entry point).
    """
    n_classes = num_classes
    for part in ("train", "test", "val"):
        x, y = getattr(raw, f"{part}_x"), getattr(raw, f"{part}_y")
        if part == "val" and x is None and y is None:
            continue
        if x is None or y is None:
            raise DataError(f"{who}: gave {part}_x without {part}_y or the reverse")
        if isinstance(x, np.ndarray):
            check_images(x, who, f"{part}_x")
        elif not hasattr(x, "subset"):
            raise DataError(f"{who}: '{part}_x' is {type(x).__name__}, not an image array")
        check_labels(y, who, f"{part}_y", len(x), num_classes)
        if n_classes is None and part == "train":
            n_classes = int(np.asarray(y).max()) + 1
    counts = np.bincount(np.asarray(raw.train_y, dtype=np.int64), minlength=n_classes or 0)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise DataError(
            f"{who}: class {int(empty[0])} has no training image ({empty.size} empty of "
            f"{counts.size}); every class in [0, {counts.size}) needs one"
        )
