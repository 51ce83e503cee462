"""Losses: the contrastive family (SupCon, BCL, RCL) and classification losses."""

from rcl_study.losses.checks import check_class_counts, check_labels, check_loss_inputs
from rcl_study.losses.classification import cross_entropy, logit_adjusted_cross_entropy
from rcl_study.losses.contrastive import contrastive_loss
from rcl_study.losses.presets import OFF_VALUES, PRESETS, LossSpec, resolve_loss, total_loss

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
