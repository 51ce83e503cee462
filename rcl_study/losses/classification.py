"""Classification losses: cross-entropy and logit-adjusted cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rcl_study.losses.checks import check_class_counts, check_labels


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Plain cross-entropy.

    Shape:
        - logits: ``[B, C]``; labels: ``[B]`` int64; output: scalar.
    """
    if logits.dim() != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"logits must be [B, C] and labels [B], got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    return F.cross_entropy(logits.float(), labels)


def logit_adjusted_cross_entropy(
    logits: Tensor,
    labels: Tensor,
    class_counts: Tensor,
    tau_la: float = 1.0,
    *,
    validate: bool = False,
) -> Tensor:
    """Logit-adjusted cross-entropy (Menon et al. 2021): CE on ``logits + tau_la * log(pi)``.

    With ``tau_la = 1`` this is Balanced Softmax (Ren et al. 2020). Evaluation uses raw logits.
    Shapes are checked per call (no device read); positive counts and labels in range only with
    ``validate=True``, or once per trial through :func:`rcl_study.losses.check_loss_inputs`.

    Shape:
        - logits: ``[B, C]``; labels: ``[B]`` int64; class_counts: ``[C]``; output: scalar.
    """
    if class_counts.shape != (logits.shape[-1],):
        raise ValueError(
            f"class_counts must be [C] = [{logits.shape[-1]}], got {tuple(class_counts.shape)}"
        )
    if validate:
        check_class_counts(class_counts)
        check_labels(labels, logits.shape[-1])
    counts = class_counts.to(device=logits.device, dtype=torch.float32)
    log_prior = torch.log(counts / counts.sum())
    return cross_entropy(logits.float() + tau_la * log_prior, labels)


# The registered classification losses (``loss.classification``; ``rcl_study.registry``): each is
# ``fn(logits [B, C], labels [B], class_counts [C], **loss.classification_params) -> scalar``.


def cross_entropy_loss(logits: Tensor, labels: Tensor, class_counts: Tensor) -> Tensor:
    """The registered ``cross_entropy``: plain cross-entropy (``class_counts`` unused)."""
    return cross_entropy(logits, labels)


def logit_adjusted_loss(
    logits: Tensor, labels: Tensor, class_counts: Tensor, tau: float = 1.0
) -> Tensor:
    """The registered ``logit_adjusted``: logit-adjusted cross-entropy at ``tau``."""
    return logit_adjusted_cross_entropy(logits, labels, class_counts, tau)
