"""What a metric of a record may hold, checked when the record is read.

A metric (a key of a record's ``metrics``, or of one of its ``history`` evaluations) is a number
(an ``int`` or a ``float``, or NumPy's scalar of one in a record not yet written; never a bool:
JSON's ``true`` is not 1), ``None`` (not measured), the
text of a text metric (``device``), or a flat list of numbers and ``None`` (``per_class_acc``,
``train_counts``). A number is an integer where the metric counts (epochs, images, processes); a
finite number lies in the metric's declared range (:data:`rcl_study.config.METRIC_INFO`, for
its ``val_``, ``chosen_`` and ``best_`` forms too, within :data:`TOLERANCE`) and within
:data:`MAX_MAGNITUDE`, so sums and squares of many stay finite. A float that is not finite
(NaN, infinity, as a diverged trial writes it) is kept: the report counts a trial whose study
metric is not finite as failed. Anything else is refused with a :class:`ValueError` naming the
key, so the line is set aside as damaged.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

from numpy import bool_ as np_bool

from rcl_study.config.metrics import METRIC_INFO, RENAMED_METRICS

#: the largest magnitude of any metric: squares and sums of a study's values stay finite
MAX_MAGNITUDE = 1e100
#: how far a finite value may lie outside its metric's declared range (float rounding)
TOLERANCE = 1e-6
#: metrics that count, so hold integers
INTEGER_METRICS = frozenset(
    {
        "epoch",
        "processes",
        "epochs_trained",
        "n_train",
        "n_val",
        "n_test",
        "resumed_from_epoch",
        "restarts",
        "chosen_epoch_top1",
        "chosen_epoch_balanced_acc",
        "best_epoch_top1",
        "best_epoch_balanced_acc",
    }
)
#: list metrics of integers (images per class)
INTEGER_LISTS = frozenset({"train_counts"})
#: the metrics that hold text
TEXT_METRICS = frozenset({"device"})
#: list metrics whose elements have a range (accuracies per class)
LIST_RANGES = {"per_class_acc": (-TOLERANCE, 1.0 + TOLERANCE, 0.0, 1.0)}
_WIDE = (-MAX_MAGNITUDE, MAX_MAGNITUDE, -MAX_MAGNITUDE, MAX_MAGNITUDE)
_FORMS = ("", "val_", "chosen_", "chosen_val_", "best_")


def _ranges() -> dict[str, tuple[float, float, float, float]]:
    """Each bounded metric's range widened by TOLERANCE, then as declared, under every name."""
    named = {**METRIC_INFO, **{old: METRIC_INFO[new] for old, new in RENAMED_METRICS.items()}}
    out: dict[str, tuple[float, float, float, float]] = {}
    for name, (_, bounds) in named.items():
        if bounds is not None:
            lo, hi = bounds
            pad = TOLERANCE * max(1.0, hi - lo)
            for form in _FORMS:
                out.setdefault(form + name, (lo - pad, hi + pad, lo, hi))
    return out


_RANGES = _ranges()
#: the lowest and highest value accepted of each bounded metric (the fast path's lookup)
_LIMITS = {key: bounds[:2] for key, bounds in _RANGES.items()}
_WIDE_LIMITS = _WIDE[:2]


def _refuse(where: str, key: str, value: Any, why: str) -> ValueError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return ValueError(f"{where} {key!r} is {shown}: {why}")


def _number(value: Any, bounds: tuple[float, ...], integer: bool) -> str | None:
    """Why ``value`` is no valid value of a numeric metric within ``bounds`` (None: it is).

    ``bounds``: the lowest and highest value accepted, then the range as declared.
    """
    lo, hi = bounds[0], bounds[1]
    kind = type(value)
    if kind is not float and kind is not int and value is not None:  # NumPy's scalars, others
        if isinstance(value, (bool, np_bool)):
            return "a bool is not a number"
        if not isinstance(value, Real):
            return "a number is expected"
        value = int(value) if isinstance(value, Integral) else float(value)
        kind = type(value)
    if kind is float:
        if integer and not value.is_integer():  # 3.0 counts as 3 (JSON keeps the point)
            return "an integer is expected"
        if lo <= value <= hi or value != value or abs(value) == float("inf"):
            return None  # in range, or not finite (the report counts it as not finished)
    elif kind is int:
        if lo <= value <= hi:
            return None
    elif value is None:
        return None
    return f"outside [{bounds[2]:g}, {bounds[3]:g}]"


def check_metrics(values: dict[str, Any], where: str = "metric") -> None:
    """Check one mapping of metrics (a record's ``metrics`` or one ``history`` evaluation).

    Raises:
        ValueError: the first metric that breaks the rules of the module docstring, named.

    """
    limits, integers = _LIMITS, INTEGER_METRICS
    for key, value in values.items():  # the common cases first: a number in range, None
        kind = type(value)
        if kind is float:
            lo, hi = limits.get(key, _WIDE_LIMITS)
            if lo <= value <= hi and key not in integers:
                continue
        elif kind is int:
            lo, hi = limits.get(key, _WIDE_LIMITS)
            if lo <= value <= hi:
                continue
        elif value is None:
            continue
        _check_one(key, value, where)


def _check_one(key: str, value: Any, where: str) -> None:
    """Check one metric in full (lists, text, NumPy's scalars, and every refusal)."""
    kind = type(value)
    if kind is list:
        bounds = LIST_RANGES.get(key, _WIDE)
        integer = key in INTEGER_LISTS
        for item in value:
            if (why := _number(item, bounds, integer)) is not None:
                raise _refuse(where, key, value, f"an element {item!r}: {why}")
    elif kind is str:
        if key not in TEXT_METRICS:
            raise _refuse(where, key, value, "a number is expected, not text")
    else:
        bounds = _RANGES.get(key, _WIDE)
        if (why := _number(value, bounds, key in INTEGER_METRICS)) is not None:
            raise _refuse(where, key, value, why)
