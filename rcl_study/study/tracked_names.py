"""What a tracker calls each metric of an evaluation, and which values it tracks.

Shared by every tracker (:mod:`.tracking`, :mod:`.wandb_tracker`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the name under which each metric of an evaluation is tracked (``epoch`` is the step)
TAGS = {
    "top1": "acc/top1",
    "balanced_acc": "acc/balanced",
    "many_acc": "acc/many",
    "medium_acc": "acc/medium",
    "few_acc": "acc/few",
    "top1_lossless": "acc/top1_lossless",
    "balanced_acc_lossless": "acc/balanced_lossless",
    "loss": "loss/total",
    "loss_cls": "loss/cls",
    "loss_con": "loss/con",
    "lr": "lr",
    "seconds_per_epoch": "time/seconds_per_epoch",
    "epoch_seconds": "time/epoch_seconds",
    "compactness": "features/compactness",
    "equiangular_gap_deg": "features/equiangular_gap_deg",
}


def tag(key: str) -> str:
    """The tracked name of metric ``key`` (:data:`TAGS`, else ``other/<key>``)."""
    return TAGS.get(key, f"other/{key}")


def scalars(metrics: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    """(the epoch, the tracked name -> value of every other finite number in ``metrics``)."""
    step = int(metrics.get("epoch", 0))
    out = {}
    for k, v in metrics.items():
        if k == "epoch" or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if v == v and abs(v) != float("inf"):  # NaN and infinities are not plotted
            out[tag(k)] = float(v)
    return step, out
