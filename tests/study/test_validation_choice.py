"""Every choice on validation, every reported number on test."""

from __future__ import annotations

import pytest

from rcl_study.config import ConfigError
from rcl_study.config.metrics import selection_metric
from rcl_study.study.search import best_search_trial
from rcl_study.trials.records import TrialRecord, TrialStatus


def _rec(i: int, test: float, val: float | None, variant: str = "search", ok: bool = True):
    metrics = {"balanced_acc": test}
    if val is not None:
        metrics["val_balanced_acc"] = val
    return TrialRecord(
        trial_id=f"search__{i:04d}__s0",
        variant=variant,
        seed=0,
        overrides={"loss.scale": 1.0 + i},
        status=TrialStatus.OK if ok else TrialStatus.FAILED,
        metrics=metrics,
    )


def test_the_best_search_trial_is_the_best_on_validation_not_on_test():
    records = [_rec(0, 0.90, 0.50), _rec(1, 0.60, 0.70), _rec(2, 0.95, 0.70), _rec(3, 0.99, None)]
    best = best_search_trial(records, "val_balanced_acc", "max")
    assert best is not None and best.trial_id == "search__0001__s0"  # first of the equal bests
    assert best_search_trial(records, "val_balanced_acc", "min").trial_id == "search__0000__s0"
    # re-runs, failed trials and unscored trials are never chosen
    others = [_rec(5, 0.1, 0.99, variant="best"), _rec(6, 0.1, 0.98, ok=False), _rec(3, 1, None)]
    assert best_search_trial(others, "val_balanced_acc", "max") is None


@pytest.mark.parametrize(
    "metric,val,expected",
    [
        ("balanced_acc", True, "val_balanced_acc"),
        ("top1", True, "val_top1"),
        ("few_acc", True, "val_few_acc"),
        ("balanced_acc", False, "balanced_acc"),
        ("compactness", True, "compactness"),  # no validation counterpart
    ],
)
def test_selection_metric(metric, val, expected):
    assert selection_metric(metric, val) == expected


def test_a_study_chooses_on_validation_by_default(tiny_study):
    cfg = tiny_study.parse(study={"kind": "search", "space": {"loss.scale": {"low": 1, "high": 2}}})
    assert cfg.data.val_per_class > 0 and cfg.selection_metric == "val_balanced_acc"
    assert tiny_study.parse(data={"val_per_class": 0}).selection_metric == "balanced_acc"


@pytest.mark.parametrize("metric", ["compactness", "top1_lossless", "equiangular_gap_deg"])
def test_a_search_on_a_metric_without_validation_is_refused(tiny_study, metric):
    mode = "min" if metric == "equiangular_gap_deg" else "max"
    search = {"kind": "search", "space": {"loss.scale": {"low": 1, "high": 2}}}
    with pytest.raises(ConfigError, match="validation counterpart"):
        tiny_study.parse(study={**search, "metric": metric, "mode": mode})
    # a grid may still compare on it (nothing is searched)
    tiny_study.parse(
        study={"kind": "grid", "grid": {"loss.scale": [1, 2]}, "metric": metric, "mode": mode}
    )
