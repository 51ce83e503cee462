"""What the sensitivity and learning-curve figures draw, computed apart from the drawing.

:func:`sensitivity_data` orders a swept key's values (a categorical key in the study's order,
a numeric one ascending) and says whether a line may join them; :func:`curve_panels` splits
many variants' learning curves into small multiples. :mod:`.figures` only draws these.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rcl_study.report.labels import Labels

#: up to this many variants' learning curves share one panel; more get one panel each
MAX_OVERLAID = 4
#: the reference curve's colour index in small multiples (grey), and the others' (all but it)
REFERENCE_COLOR = 7
_COLORS = [c for c in range(10) if c != REFERENCE_COLOR]


@dataclass(frozen=True)
class SensitivityData:
    """One swept key's points: positions, tick labels (categorical), means and intervals."""

    key: str
    label: str
    numeric: bool
    x: list[Any]
    ticks: list[str] | None
    mean: list[float]
    ci: list[Any]


def is_numeric(values: list[Any]) -> bool:
    """Whether every value is a number (a bool is not one)."""
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)


def sensitivity_data(
    rows: list[dict[str, Any]], key: str, order: list[Any], labels: Labels
) -> SensitivityData:
    """``rows`` (``{key, "mean", "ci"}``) in the order and form they are drawn.

    A numeric key ascending, its points joined by a line; a categorical one in ``order`` (the
    grid's), as separate points with their intervals, ticked by display name.
    """
    xs = [r[key] for r in rows]
    numeric = is_numeric(xs)
    if numeric:
        rows = sorted(rows, key=lambda r: r[key])
    else:
        rank = {str(v): i for i, v in enumerate(order)}
        rows = sorted(rows, key=lambda r: rank.get(str(r[key]), len(rank)))
    values = [r[key] for r in rows]
    return SensitivityData(
        key=key,
        label=labels.name(key),
        numeric=numeric,
        x=values if numeric else list(range(len(values))),
        ticks=None if numeric else [labels.value(key, v) for v in values],
        mean=[r["mean"] for r in rows],
        ci=[r.get("ci") for r in rows],
    )


@dataclass(frozen=True)
class Curve:
    """One variant's learning curve: epochs, mean and interval per epoch, its colour index."""

    label: str
    epochs: list[int]
    mean: list[float]
    lo: list[float]
    hi: list[float]
    color: int
    reference: bool = False


@dataclass(frozen=True)
class CurvePanel:
    """One panel of the learning-curve figure (its title: None for a single panel)."""

    title: str | None
    curves: list[Curve]


def _curves(rows: list[dict[str, Any]], labels: Labels) -> list[Curve]:
    out = []
    for i, v in enumerate(dict.fromkeys(r["variant"] for r in rows)):
        rs = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["epoch"])
        mean = [r["mean"] for r in rs]
        lo = [r["ci"][0] if r["ci"] else r["mean"] for r in rs]
        hi = [r["ci"][1] if r["ci"] else r["mean"] for r in rs]
        out.append(Curve(labels.name(v), [r["epoch"] for r in rs], mean, lo, hi, i % 10))
    return out


def curve_panels(rows: list[dict[str, Any]], labels: Labels) -> list[CurvePanel]:
    """The learning curves' panels: all in one up to :data:`MAX_OVERLAID` variants.

    More variants get one panel each (small multiples with shared axes), the first variant
    (the report's first, its baseline in an ablation) drawn in grey in every other panel as
    the reference.
    """
    curves = _curves(rows, labels)
    if len(curves) <= MAX_OVERLAID:
        return [CurvePanel(None, curves)]
    curves = [replace(c, color=_COLORS[i % len(_COLORS)]) for i, c in enumerate(curves)]
    ref = replace(curves[0], color=REFERENCE_COLOR, reference=True)
    return [CurvePanel(c.label, [c] if i == 0 else [ref, c]) for i, c in enumerate(curves)]
