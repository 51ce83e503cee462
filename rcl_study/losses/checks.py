"""Value checks of the loss inputs, run once per trial rather than inside every step.

Reading a device tensor's values on the host (``bool(t)``, ``int(t)``, ``torch.nonzero``) makes the
CPU wait for the GPU. The losses therefore check only shapes and dtypes per call (free: no device
read) and leave the value checks to :func:`check_loss_inputs`, which the trainer calls once per
trial on the training set's class counts and labels. The losses run the same checks per call when
given ``validate=True`` (tests, notebooks).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_class_counts(class_counts: Tensor) -> None:
    """Raise ``ValueError`` unless ``class_counts`` is ``[C]`` with ``C >= 1`` and all positive.

    Reads the values on the host (one synchronisation on a GPU): call it once per trial.

    Shape:
        - class_counts: ``[C]`` training images per class.
    """
    if class_counts.dim() != 1 or class_counts.numel() < 1:
        raise ValueError(f"class_counts must be [C], got shape {tuple(class_counts.shape)}")
    bad = torch.nonzero(class_counts <= 0).flatten().tolist()
    if bad:
        raise ValueError(f"class_counts must all be positive, got non-positive at classes {bad}")


def check_labels(labels: Tensor, num_classes: int) -> None:
    """Raise ``ValueError`` unless every label lies in ``[0, num_classes - 1]``.

    Reads the values on the host (one synchronisation on a GPU): call it once per trial, on the
    whole training label set.

    Shape:
        - labels: ``[N]`` integer class labels.
    """
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if labels.numel() == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}] (class_counts has shape "
            f"({num_classes},)), got range [{lo}, {hi}]"
        )


def check_loss_inputs(class_counts: Tensor, train_labels: Tensor) -> None:
    """The once-per-trial value checks of every loss in this package.

    Call it before the first training step, on the class counts the losses receive and on the
    labels of the whole training set (every batch's labels are a subset of them). The losses
    themselves then need no host read per step.

    Shape:
        - class_counts: ``[C]`` training images per class (all positive).
        - train_labels: ``[N]`` integer labels of the training set, in ``[0, C - 1]``.

    Raises:
        ValueError: naming the input and the offending values.

    """
    check_class_counts(class_counts)
    check_labels(train_labels, class_counts.shape[0])
