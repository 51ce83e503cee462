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
)
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
    "best_top1": ("max", (0.0, 1.0)),
    "best_balanced_acc": ("max", (0.0, 1.0)),
    "compactness": ("max", (-1.0, 1.0)),
    # sd (degrees) of the pairwise angles between class means; 0 = all equal (equiangular)
    "equiangular_gap_deg": ("min", (0.0, 180.0)),
}
#: metric keys renamed since records were first written: old -> new (old records stay readable)
RENAMED_METRICS = {"balancedness": "equiangular_gap_deg"}
