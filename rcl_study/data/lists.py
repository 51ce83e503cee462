"""List-file datasets (ImageNet-LT, iNaturalist, Places-LT): ``relative/path.jpg label`` lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rcl_study.data.checks import MAX_CLASSES, DataError, need
from rcl_study.data.types import ListImages, Split


def read_list_file(path: Path, num_classes: int | None) -> tuple[list[str], np.ndarray]:
    """``relative/path.jpg label`` per line (ImageNet-LT, iNaturalist, Places-LT list files)."""
    need(path, "an ImageNet-LT-style list file ('relative/path.jpg label' per line)", "the dataset")
    paths, labels = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte offset {err.start})") from None
    limit = num_classes if num_classes is not None else MAX_CLASSES
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if (
            len(parts) != 2
            or not parts[1].lstrip("-").isascii()
            or not parts[1].lstrip("-").isdigit()
        ):
            raise DataError(f"{path}:{i}: expected 'relative/path.jpg label', got {line[:200]!r}")
        label = int(parts[1]) if len(parts[1]) < 20 else limit
        if label < 0 or label >= limit:
            raise DataError(f"{path}:{i}: label {parts[1][:20]} out of range [0, {limit})")
        paths.append(parts[0])
        labels.append(label)
    if not paths:
        raise DataError(f"{path}: list file is empty")
    return paths, np.asarray(labels, dtype=np.int64)


def read_lists(
    root: Path,
    train_list: str,
    test_list: str,
    num_classes: int | None,
    image_size: int,
    val_list: str | None = None,
    workers: int = 8,
) -> Split:
    """The list files (relative to ``root`` unless absolute), every named image checked present.

    The images stay on disk (:class:`ListImages`, decoded at ``image_size``); the split is marked
    already long-tailed. ``val_list`` (optional) is the dataset's official validation list;
    ``workers`` threads decode each batch.
    """
    rel = lambda p: Path(p) if Path(p).is_absolute() else root / p  # noqa: E731
    tr_paths, tr_y = read_list_file(rel(train_list), num_classes)
    te_paths, te_y = read_list_file(rel(test_list), num_classes)
    lists = [(train_list, tr_paths), (test_list, te_paths)]
    va_paths, va_y = None, None
    if val_list:
        va_paths, va_y = read_list_file(rel(val_list), num_classes)
        lists.append((val_list, va_paths))
        shared = set(va_paths) & (set(tr_paths) | set(te_paths))
        if shared:
            raise DataError(
                f"{rel(val_list)}: {len(shared)} image(s) also in the training or test list, "
                f"e.g. '{sorted(shared)[0]}'; the validation set must be disjoint from both"
            )
    for lst, paths in lists:
        missing = [p for p in paths if not (root / p).is_file()]
        if missing:
            raise DataError(
                f"{rel(lst)}: {len(missing)} image(s) named in the list file are missing under "
                f"{root}, e.g. '{missing[0]}'"
            )
    return Split(
        train_x=ListImages(root, tr_paths, image_size, workers),
        train_y=tr_y,
        test_x=ListImages(root, te_paths, image_size, workers),
        test_y=te_y,
        already_long_tailed=True,
        val_x=ListImages(root, va_paths, image_size, workers) if va_paths is not None else None,
        val_y=va_y,
    )
