"""Late movement of the learning curves: the last fifth of each variant's mean learning curve.

Criterion (the report's "Late movement of the learning curves"): over the last fifth of the
training epochs, the variant's mean learning curve (the mean over its seeds at each evaluated
epoch) moves the metric by less than the sample sd over seeds of its final value. Movement is the
range (max - min) of that mean curve over the evaluated epochs ``e >= E - E / 5``, ``E`` the last
epoch (a curve that does not move at all meets it too). It is a descriptive criterion, not a
statistical test: it says whether the reported numbers were still moving, so that a conclusion is
not one about a training budget. A variant whose seeds disagree widely (a large sd) meets it more
easily; the report says so.

Pure functions of the records' histories; nothing is chosen by it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from rcl_study.trials.records import TrialRecord

#: the fraction of the training epochs that forms the tail of the curve
TAIL = 0.2


def _curve(record: TrialRecord, key: str) -> dict[int, float]:
    """``epoch -> value`` of ``key`` over a record's evaluations (finite values only)."""
    out: dict[int, float] = {}
    for point in record.history:
        epoch, value = point.get("epoch"), point.get(key)
        if isinstance(epoch, int) and isinstance(value, (int, float)) and math.isfinite(value):
            out[epoch] = float(value)
    return out


def variant_plateau(curves: list[dict[int, float]]) -> dict[str, Any]:
    """The criterion for one variant from its seeds' curves (``epoch -> value`` each).

    Returns ``{"n", "last_epoch", "tail_epochs", "movement", "sd", "plateau", "why"}``:
    ``plateau`` is True or False, or None with ``why`` when it cannot be checked (fewer than 2
    seeds, seeds that end at different epochs, fewer than 2 evaluations in the last fifth).
    """
    out: dict[str, Any] = {"n": len(curves), "last_epoch": None, "tail_epochs": []}
    out.update(movement=None, sd=None, plateau=None, why="")
    curves = [c for c in curves if c]
    if len(curves) < 2:
        out["why"] = "fewer than 2 seeds with a learning curve"
        return out
    ends = {max(c) for c in curves}
    if len(ends) != 1:
        out["why"] = f"seeds end at different epochs ({', '.join(map(str, sorted(ends)))})"
        return out
    last = ends.pop()
    common = set.intersection(*(set(c) for c in curves))
    start = last - TAIL * last
    tail = sorted(e for e in common if e >= start)
    out["last_epoch"], out["tail_epochs"] = last, tail
    if len(tail) < 2:
        out["why"] = f"fewer than 2 evaluations in the last fifth (epochs {start:g}-{last})"
        return out
    mean = [float(np.mean([c[e] for c in curves])) for e in tail]
    out["movement"] = max(mean) - min(mean)
    out["sd"] = float(np.std([c[last] for c in curves], ddof=1))
    # a curve that does not move at all is flat, even where the seeds agree exactly (sd 0)
    out["plateau"] = bool(out["movement"] < out["sd"] or out["movement"] == 0)
    return out


def curve_key(metric: str) -> str:
    """The history key whose curve ``metric`` is read from.

    A ``chosen_<m>`` or ``best_<m>`` summary (one value a trial) has the learning curve of ``<m>``.
    """
    for prefix in ("chosen_val_", "chosen_", "best_"):
        if metric.startswith(prefix):
            return ("val_" if prefix == "chosen_val_" else "") + metric[len(prefix) :]
    return metric


def plateau_check(records: list[TrialRecord], key: str) -> list[dict[str, Any]]:
    """The criterion for every variant of ``records`` (finished trials only) on metric ``key``.

    One row per variant, in the records' order: ``{"variant", **variant_plateau(...)}``.
    """
    key = curve_key(key)
    by_variant: dict[str, list[dict[int, float]]] = defaultdict(list)
    for r in records:
        if r.status == "ok":
            by_variant[r.variant].append(_curve(r, key))
    return [{"variant": v, **variant_plateau(c)} for v, c in by_variant.items()]
