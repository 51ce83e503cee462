"""The metrics a study can optimise or compare: names, directions and ranges, declared once.

Read by the schema (``study.metric`` and ``study.mode``) and by the report (tables, figures,
summaries); the trainer computes them (:mod:`rcl_study.trainer.metrics`).
"""

from __future__ import annotations

#: scalar test metrics a study can optimise or compare (see ``rcl_study.trainer.metrics``)
METRICS = (
    "top1",
    "balanced_acc",
    "many_acc",
    "medium_acc",
    "few_acc",
    "top1_lossless",
    "balanced_acc_lossless",
    "compactness",
    "equiangular_gap_deg",
    "proj_compactness",
    "proj_compactness_many",
    "proj_compactness_medium",
    "proj_compactness_few",
    "proj_min_angle_deg",
    "proj_mean_angle_deg",
    "proj_ncm_balanced_acc",
)
#: the measures of the normalised projections, where the contrastive loss acts
#: (:func:`rcl_study.trainer.metrics.projection_measures`)
PROJECTION_METRICS = tuple(m for m in METRICS if m.startswith("proj_"))
#: the one declaration of each metric's direction ("max": higher is better) and range (None:
#: unbounded), used by study.mode's check, the report's tables, figures and summary
METRIC_INFO: dict[str, tuple[str, tuple[float, float] | None]] = {
    "top1": ("max", (0.0, 1.0)),
    "balanced_acc": ("max", (0.0, 1.0)),
    "many_acc": ("max", (0.0, 1.0)),
    "medium_acc": ("max", (0.0, 1.0)),
    "few_acc": ("max", (0.0, 1.0)),
    "top1_lossless": ("max", (0.0, 1.0)),
    "balanced_acc_lossless": ("max", (0.0, 1.0)),
    # test score at the epoch chosen on validation (rcl_study.trainer.evaluation.chosen_of)
    "chosen_top1": ("max", (0.0, 1.0)),
    "chosen_balanced_acc": ("max", (0.0, 1.0)),
    # old records: the maximum over evaluations, chosen on the test set (optimistic)
    "best_top1": ("max", (0.0, 1.0)),
    "best_balanced_acc": ("max", (0.0, 1.0)),
    "compactness": ("max", (-1.0, 1.0)),
    # sd (degrees) of the pairwise angles between class means; 0 = all equal (equiangular)
    "equiangular_gap_deg": ("min", (0.0, 180.0)),
    # the same kind of measures on the normalised projections (the contrastive loss's space)
    "proj_compactness": ("max", (-1.0, 1.0)),
    "proj_compactness_many": ("max", (-1.0, 1.0)),
    "proj_compactness_medium": ("max", (-1.0, 1.0)),
    "proj_compactness_few": ("max", (-1.0, 1.0)),
    "proj_min_angle_deg": ("max", (0.0, 180.0)),
    "proj_mean_angle_deg": ("max", (0.0, 180.0)),
    "proj_ncm_balanced_acc": ("max", (0.0, 1.0)),
}
#: the metrics an evaluation also computes on the validation split, as ``val_`` + name
VALIDATED = ("top1", "balanced_acc", "many_acc", "medium_acc", "few_acc")


def val_key(metric: str) -> str:
    """The record key of ``metric`` on the validation split: ``val_<metric>``."""
    return f"val_{metric}"


def selection_metric(metric: str, has_validation: bool) -> str:
    """The key every choice about ``metric`` is made on: ``val_<metric>`` when validated.

    A grid's best value, a search's objective (Optuna, ASHA) and the best epoch all read this
    key; ``metric`` itself (the test score) is only reported. Without a validation split
    (``data.val_per_class: 0``) or for a metric without a validation counterpart, the test key
    is returned: the caller must then say the choice was made on test.
    """
    return val_key(metric) if has_validation and metric in VALIDATED else metric


#: metric keys renamed since records were first written: old -> new (old records stay readable)
RENAMED_METRICS = {"balancedness": "equiangular_gap_deg"}
