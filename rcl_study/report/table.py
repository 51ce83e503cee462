"""Stored records -> the results table of a report: one row per trial, and what reads it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rcl_study.config import METRIC_INFO, METRICS, RENAMED_METRICS
from rcl_study.config.metrics import PROJECTION_METRICS, val_key
from rcl_study.report import stats
from rcl_study.trials.records import TrialRecord

#: best-over-evaluations metrics of old records (chosen on the test set: optimistic)
BEST_COLUMNS = ("best_top1", "best_balanced_acc", "best_epoch_top1", "best_epoch_balanced_acc")
#: the metrics whose epoch a trainer chooses on validation
CHOSEN_METRICS = ("top1", "balanced_acc")
#: at the first epoch with the highest val_<m>: the epoch, test <m> and val_<m> there
CHOSEN_COLUMNS = tuple(
    f"chosen{part}_{m}" for m in CHOSEN_METRICS for part in ("_epoch", "", "_val")
)
METRIC_COLUMNS = (
    *METRICS,
    *(val_key(m) for m in METRICS if m not in PROJECTION_METRICS),  # measured on test only
    "seconds_per_epoch",
    *CHOSEN_COLUMNS,
    *BEST_COLUMNS,
)


def has_validation(df: pd.DataFrame, metric: str) -> bool:
    """True when some finished trial of ``df`` has a finite ``val_<metric>``."""
    if not len(df) or val_key(metric) not in df:
        return False
    vals = pd.to_numeric(df.loc[df["status"] == "ok", val_key(metric)], errors="coerce")
    return bool(np.isfinite(vals).any())


def direction(metric: str, mode: str | None = None) -> str:
    """``"max"`` or ``"min"``: the study's ``mode`` for its own metric, else METRIC_INFO's."""
    return mode or METRIC_INFO.get(metric, ("max", None))[0]


def bounds(metric: str) -> tuple[float, float] | None:
    """The metric's range (None: unbounded), from METRIC_INFO."""
    return METRIC_INFO.get(metric, ("max", None))[1]


def current_metrics(m: dict[str, Any]) -> dict[str, Any]:
    """A record's metrics with renamed keys mapped to today's names (old records stay readable)."""
    out = dict(m)
    for old, new in RENAMED_METRICS.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out


#: statuses that are failures; ``stopped`` (partial) and ``pruned`` (cut by the scheduler) are not
FAILURES = ("failed", "diverged")


def finite(v: Any) -> bool:
    """Whether ``v`` is a finite number (text that parses as one counts)."""
    try:
        return v is not None and bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


def results_table(records: list[TrialRecord], metric: str | None = None) -> pd.DataFrame:
    """One row per recorded trial: ids, status, swept keys and the scalar metrics.

    A trial recorded "ok" whose ``metric`` is missing or not finite (NaN, inf) counts as failed,
    with the reason saying so.
    """
    rows = []
    for r in records:
        m = current_metrics(r.metrics)
        status, reason = r.status.value, r.reason
        if metric and status == "ok" and not finite(m.get(metric)):
            status, reason = "failed", f"{metric} is {m.get(metric)} (not a finite number)"
        row = {
            "trial_id": r.trial_id,
            "variant": r.variant,
            "seed": r.seed,
            "status": status,
            "reason": reason,
            "wall_time": r.wall_time,
            "device": r.device,
        }
        # a mapping or list value (a grid over loss.classification_params) as its text: a cell
        # the table can group by
        row.update((k, str(v) if isinstance(v, dict | list) else v) for k, v in r.overrides.items())
        row.update({k: m.get(k) for k in METRIC_COLUMNS})
        rows.append(row)
    cols = ["trial_id", "variant", "seed", "status", "reason", *METRIC_COLUMNS]
    df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)
    return df


def ok_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of finished trials whose ``metric`` is a finite number."""
    if not len(df):
        return df
    vals = pd.to_numeric(df[metric], errors="coerce")
    return df[(df["status"] == "ok") & np.isfinite(vals)]


def mean_of(vals: Any) -> float | None:
    """The mean of the numeric values of ``vals`` (None when there are none)."""
    v = pd.to_numeric(pd.Series(vals), errors="coerce").dropna()
    return float(v.mean()) if len(v) else None


def interval_rows(df: pd.DataFrame, by: list[str], col: str, clip=None) -> list[dict[str, Any]]:
    """Mean and 95% t-interval (``stats.t_interval``) of ``col`` per group of ``by``.

    For the figures, so they draw the same intervals as the tables (deterministic).
    """
    out = []
    if col not in df:
        return out
    vals = df.assign(_v=pd.to_numeric(df[col], errors="coerce")).dropna(subset=["_v"])
    for key, g in vals.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        x = g["_v"].tolist()
        out.append(
            {
                **dict(zip(by, key)),
                "mean": float(np.mean(x)),
                "ci": stats.t_interval(x, bounds=clip),
                "values": x,
            }
        )
    return out
