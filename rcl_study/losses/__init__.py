"""Losses: the contrastive family (SupCon, BCL, RCL) and classification losses."""

from .checks import check_class_counts, check_labels, check_loss_inputs
from .classification import cross_entropy, logit_adjusted_cross_entropy
from .contrastive import contrastive_loss
from .presets import OFF_VALUES, PRESETS, LossSpec, resolve_loss, total_loss

__all__ = [
    "OFF_VALUES",
    "PRESETS",
    "LossSpec",
    "check_class_counts",
    "check_labels",
    "check_loss_inputs",
    "contrastive_loss",
    "cross_entropy",
    "logit_adjusted_cross_entropy",
    "resolve_loss",
    "total_loss",
]
