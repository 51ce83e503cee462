"""Losses: the contrastive family (SupCon, BCL, RCL) and classification losses.

The presets and a trial's resolved loss (:mod:`rcl_study.losses.presets`) are values and import
no torch; the loss functions load with their modules on first use (``rcl_study.losses.X``), so
that reading a study file, planning it and writing its report never import torch.
"""

from importlib import import_module

from rcl_study.losses.presets import OFF_VALUES, PRESETS, LossSpec, resolve_loss

#: each loss function, and the module that defines it
_FUNCTIONS = {
    "check_class_counts": "checks",
    "check_labels": "checks",
    "check_loss_inputs": "checks",
    "contrastive_loss": "contrastive",
    "cross_entropy": "classification",
    "logit_adjusted_cross_entropy": "classification",
    "total_loss": "total",
}

__all__ = ["OFF_VALUES", "PRESETS", "LossSpec", "resolve_loss", *_FUNCTIONS]


def __getattr__(name: str):
    """``rcl_study.losses.<function>``: the loss function, its module imported (with torch)."""
    module = _FUNCTIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'rcl_study.losses' has no attribute '{name}'")
    return getattr(import_module(f"rcl_study.losses.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_FUNCTIONS])
