"""What a report states beyond its main table (pure functions of the records and the study).

The declared primary contrasts tested at each look, the feature measures with intervals, the
paired per-class differences, and which variance the intervals over seeds include.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rcl_study.config import StudyFile
from rcl_study.config.metrics import PROJECTION_METRICS
from rcl_study.report.report_stats import Interval, _Part
from rcl_study.report.stats import t_interval
from rcl_study.trials import sequential
from rcl_study.trials.design import expand
from rcl_study.trials.records import TrialRecord

#: the feature measures a report shows with intervals: the projections', then the backbone's
FEATURE_METRICS = (*PROJECTION_METRICS, "compactness", "equiangular_gap_deg")


@dataclass(frozen=True)
class LookRow(_Part):
    """One primary contrast at one look (``decision``: reject, futile, continue, or earlier)."""

    look: int
    seeds: int
    contrast: str
    mean: float
    se: float
    p: float
    level: float | None
    nominal: float | None
    rci: Interval
    decision: str


@dataclass(frozen=True)
class SequentialSummary(_Part):
    """The primary contrasts as declared, and their test at every look the records reach.

    ``declared``: from ``report.primary`` (True) or the default family; ``plan_declared``: the
    declaration ``plan.json`` holds from the run's start (None for runs from before it existed);
    ``boundaries``: each look's z boundary at the family level ``alpha / m``.
    """

    rounds: list[int]
    alpha: float
    sesoi: float | None
    metric: str
    primary: list[str]
    declared: bool
    plan_declared: dict[str, Any] | None
    boundaries: list[float]
    looks: list[LookRow]
    decided: dict[str, list[Any]]
    seeds_run: int
    seeds_planned: int


@dataclass(frozen=True)
class FeatureRow(_Part):
    """One variant's feature measures: ``[mean, t-interval low, high]`` over its finished seeds."""

    variant: str
    n: int
    measures: dict[str, list[float | None]]


@dataclass(frozen=True)
class PerClassRow(_Part):
    """One class's paired accuracy difference in one primary contrast, over seeds."""

    contrast: str
    label: int
    n: int
    train_images: float | None
    diff: float
    ci: Interval


def _mean_interval(values: Sequence[float]) -> tuple[float, Interval]:
    """(mean, 95% Student-t interval) of ``values`` (:func:`.stats.t_interval`; None below 2)."""
    ci = t_interval(values)
    return float(np.mean(values)), None if ci is None else list(ci)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def intervals_include(records: Sequence[TrialRecord]) -> str | None:
    """Which variance the report's intervals over seeds include, from the records' configs."""
    draws = {(r.config.get("data") or {}).get("split_seed") for r in records if r.config}
    if not records or not draws:
        return None
    if draws == {"trial"}:
        return "seeds and data draws (data.split_seed: trial: each seed its own training split)"
    if "trial" in draws:
        return "seeds, and data draws for some trials only (data.split_seed differs)"
    return (
        "seeds only: every seed trains on the same data draw (data.split_seed fixed), so the "
        "intervals leave out the variance of drawing the long-tailed subset"
    )


def primary_of(cfg: StudyFile) -> tuple[list, list[sequential.Contrast]]:
    """The planned trials and the primary contrasts, for a study that declares or tests them.

    Empty lists for a search, and for a study with neither ``study.rounds`` nor
    ``report.primary`` (its comparisons with the baseline are then the report's only family).
    """
    if cfg.study.kind == "search" or not (cfg.study.rounds or cfg.report.primary):
        return [], []
    plans = expand(cfg)
    return plans, sequential.primary_contrasts(cfg, plans)


def sequential_summary(
    cfg: StudyFile,
    records: Sequence[TrialRecord],
    plan: dict[str, Any],
    primary: tuple[list, list[sequential.Contrast]],
) -> SequentialSummary | None:
    """The primary contrasts (:func:`primary_of`) tested at each look; None without any."""
    plans, contrasts = primary
    if not contrasts:
        return None
    rounds = list(cfg.study.rounds or [len(cfg.study.seeds)])
    diffs = sequential.contrast_differences(records, contrasts, cfg.study.metric, cfg.study.seeds)
    result = sequential.sequential_test(diffs, rounds, cfg.report.alpha, cfg.report.sesoi)
    looks = [
        LookRow(
            look.index,
            look.n,
            c.name,
            c.mean,
            c.se,
            c.p,
            None if math.isnan(c.level) else c.level,
            None if math.isnan(c.nominal) else c.nominal,
            None if math.isnan(c.rci[0]) else list(c.rci),
            c.decision,
        )
        for look in result.looks
        for c in look.contrasts
    ]
    level = cfg.report.alpha / len(contrasts)
    meta = plan.get("meta") if isinstance(plan, dict) else None
    return SequentialSummary(
        rounds=rounds,
        alpha=cfg.report.alpha,
        sesoi=cfg.report.sesoi,
        metric=cfg.study.metric,
        primary=[c.name for c in contrasts],
        declared=bool(cfg.report.primary),
        plan_declared=(meta or {}).get("declared") if isinstance(meta, dict) else None,
        boundaries=list(sequential.boundaries(tuple(rounds), level)),
        looks=looks,
        decided={k: [how, n] for k, (how, n) in result.decided.items()},
        seeds_run=_complete_seeds(plans, records),
        seeds_planned=len(cfg.study.seeds),
    )


def _complete_seeds(plans: Sequence, records: Sequence[TrialRecord]) -> int:
    """Seeds at which every planned variant has a finished record."""
    done = {(r.variant, r.seed) for r in records if r.ok}
    seeds = dict.fromkeys(p.seed for p in plans)
    return sum(all((p.variant, s) in done for p in plans if p.seed == s) for s in seeds)


def feature_rows(records: Sequence[TrialRecord], variants: Sequence[str]) -> list[FeatureRow]:
    """Each variant's feature measures with 95% t-intervals over its finished seeds."""
    present = [m for m in FEATURE_METRICS if any(_finite(r.metrics.get(m)) for r in records)]
    if not present:
        return []
    out = []
    for v in variants:
        rows = [r for r in records if r.variant == v and r.ok]
        measures: dict[str, list[float | None]] = {}
        for m in present:
            vals = [float(r.metrics[m]) for r in rows if _finite(r.metrics.get(m))]
            if vals:
                mean, ci = _mean_interval(vals)
                measures[m] = [mean, *(ci or [None, None])]
        out.append(FeatureRow(v, len(rows), measures))
    return out


def per_class_rows(
    cfg: StudyFile, records: Sequence[TrialRecord], contrasts: Sequence[sequential.Contrast]
) -> list[PerClassRow]:
    """Paired per-class accuracy differences of each primary contrast (descriptive, untested)."""
    by = {(r.variant, r.seed): r for r in records if r.ok}
    out = []
    for c in contrasts:
        pairs = [
            (by[(c.treatment, s)], by[(c.control, s)])
            for s in cfg.study.seeds
            if (c.treatment, s) in by and (c.control, s) in by
        ]
        accs = [(t.metrics.get("per_class_acc"), k.metrics.get("per_class_acc")) for t, k in pairs]
        accs = [(a, b) for a, b in accs if isinstance(a, list) and isinstance(b, list)]
        if not accs:
            continue
        for label in range(min(len(a) for a, _ in accs)):
            d = [a[label] - b[label] for a, b in accs if _finite(a[label]) and _finite(b[label])]
            if not d:
                continue
            counts = [_count(t, label) for t, _ in pairs]
            counts = [n for n in counts if n is not None]
            mean, ci = _mean_interval(d)
            images = float(np.mean(counts)) if counts else None
            out.append(PerClassRow(c.name, label, len(d), images, mean, ci))
    return out


def _count(record: TrialRecord, label: int) -> int | None:
    """Training images of class ``label`` in ``record``'s split (its record or its metrics)."""
    counts = (record.train_split or {}).get("class_counts") or record.metrics.get("train_counts")
    if isinstance(counts, list) and label < len(counts) and _finite(counts[label]):
        return int(counts[label])
    return None
