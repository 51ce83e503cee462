"""Compatibility: the study space moved to :mod:`rcl_study.space` (``report/`` reads it too)."""

from ..records import TrialPlan
from ..space import (
    SLUG_MAX,
    ablation_variants,
    baseline_variant,
    describe,
    expand,
    grid_variants,
    params_id,
    search_distributions,
    trial_config,
    variant_id,
)

__all__ = [
    "SLUG_MAX",
    "TrialPlan",
    "ablation_variants",
    "baseline_variant",
    "describe",
    "expand",
    "grid_variants",
    "params_id",
    "search_distributions",
    "trial_config",
    "variant_id",
]
