"""Long-tail construction: class-count profiles, subsets (LDAM-DRW convention) and shot groups."""

from __future__ import annotations

import numpy as np

#: shot-group thresholds on TRAINING images per class: many > 100, medium 20..100, few < 20
MANY_ABOVE = 100
FEW_BELOW = 20


def class_counts(
    n_max: int, num_classes: int, imbalance_ratio: float, profile: str = "exponential"
) -> list[int]:
    """Images kept per class, class 0 the head.

    ``exponential`` (LDAM-DRW, Cao et al. 2019): ``n_c = int(n_max * (1/IR) ** (c / (C - 1)))``.
    ``step``: the first half of the classes keep ``n_max``, the rest ``int(n_max / IR)``.
    """
    if imbalance_ratio < 1:
        raise ValueError(f"imbalance_ratio must be >= 1, got {imbalance_ratio}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    factor = 1.0 / imbalance_ratio
    if profile == "exponential":
        counts = [int(n_max * factor ** (c / (num_classes - 1.0))) for c in range(num_classes)]
    elif profile == "step":
        half = num_classes // 2
        counts = [n_max] * half + [int(n_max * factor)] * (num_classes - half)
    else:
        raise ValueError(f"unknown profile '{profile}' (expected 'exponential' or 'step')")
    if min(counts) < 1:
        raise ValueError(
            f"imbalance_ratio {imbalance_ratio} with n_max {n_max} leaves a tail class with 0 "
            f"images (counts {counts}); use an imbalance ratio <= {n_max}"
        )
    return counts


def long_tail_indices(labels: np.ndarray, counts: list[int], seed: int = 0) -> np.ndarray:
    """Indices of the kept images, class by class, as LDAM-DRW's ``gen_imbalanced_data``.

    One ``RandomState(seed)`` (the same stream as ``np.random.seed(seed)``) shuffles each class's
    indices in class order and keeps the first ``counts[c]``, so seed 0 gives the published splits.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    keep = []
    for c, n_c in enumerate(counts):
        idx = np.where(labels == c)[0]
        if len(idx) < n_c:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than the {n_c} asked for")
        rng.shuffle(idx)
        keep.append(idx[:n_c])
    return np.concatenate(keep)


def long_tail_split(
    labels: np.ndarray, counts: list[int], val_per_class: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """The kept training indices and a class-balanced validation set from the discarded images.

    Each class's indices are shuffled exactly as :func:`long_tail_indices` does (one
    ``RandomState(seed)``, class order), so the kept images are the published LDAM-DRW split;
    the validation images are the next ``val_per_class`` of the same shuffled order, i.e. images
    the long-tailed subsampling discarded. A class with fewer than ``val_per_class`` discarded
    images (the head class keeps all of its images) gives the missing ones from the end of its
    kept images, which then leave training.

    Returns ``(keep, val, moved)``: ``moved`` is how many images left training that way (0 for
    every class whose discarded images suffice).
    """
    if val_per_class < 0:
        raise ValueError(f"val_per_class must be >= 0, got {val_per_class}")
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    keep, val, moved = [], [], 0
    for c, n_c in enumerate(counts):
        idx = np.where(labels == c)[0]
        if len(idx) < n_c:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than the {n_c} asked for")
        if len(idx) < val_per_class + 1:
            raise ValueError(
                f"class {c} has {len(idx)} images: too few for {val_per_class} validation "
                "images and one training image (lower data.val_per_class)"
            )
        rng.shuffle(idx)
        n_train = min(n_c, len(idx) - val_per_class)
        moved += n_c - n_train
        keep.append(idx[:n_train])
        val.append(idx[n_train : n_train + val_per_class])
    return np.concatenate(keep), np.concatenate(val), moved


def stratified_holdout(
    labels: np.ndarray, per_class: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(rest, held)``: ``per_class`` seeded random indices of each class held out, sorted.

    For training sets used as they are (exported or already long-tailed files without a
    validation part); every class must keep at least one training image.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    held = []
    for c in np.unique(labels):
        idx = np.where(labels == c)[0]
        if len(idx) < per_class + 1:
            raise ValueError(
                f"class {c} has {len(idx)} training images: too few to hold out {per_class} "
                "for validation and keep one (lower data.val_per_class, or give a validation set)"
            )
        held.append(rng.permutation(idx)[:per_class])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), held_idx)
    return rest, held_idx


def shot_groups(train_counts: np.ndarray | list[int]) -> dict[str, np.ndarray]:
    """Class indices of the many- (> 100), medium- (20..100) and few-shot (< 20) groups."""
    counts = np.asarray(train_counts)
    return {
        "many": np.where(counts > MANY_ABOVE)[0],
        "medium": np.where((counts >= FEW_BELOW) & (counts <= MANY_ABOVE))[0],
        "few": np.where(counts < FEW_BELOW)[0],
    }


def stratified_subset(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` indices of each class (in order), for smoke runs and test limits."""
    labels = np.asarray(labels)
    out = [np.where(labels == c)[0][:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(out))
