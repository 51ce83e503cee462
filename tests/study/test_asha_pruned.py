"""A search under ASHA: ``study.asha`` takes its settings, and Optuna's storage says PRUNED.

Checked without starting Ray: the scheduler the executor builds, and the searcher's report to
Optuna of a trial that ended without its final result (what ASHA's stop leaves).
"""

import pytest

from rcl_study.config import ConfigError
from tests.conftest import TINY_STUDY

optuna = pytest.importorskip("optuna")
pytest.importorskip("ray")

from rcl_study.study.optuna_pruned import PrunedAwareOptunaSearch  # noqa: E402
from rcl_study.study.ray_tune import asha_scheduler  # noqa: E402

SEARCH = {
    "kind": "search",
    "n_trials": 4,
    "space": {"loss.scale": {"low": 1, "high": 2}},
}


def _cfg(asha):
    return TINY_STUDY.parse({"train": {"epochs": 9}}, study={**SEARCH, "asha": asha})


def test_asha_takes_its_settings():
    sched = asha_scheduler(_cfg({"grace_period": 2, "reduction_factor": 2, "max_t": 8}))
    assert (sched._max_t, sched._reduction_factor) == (8, 2)
    assert [r[0] for r in sched._brackets[0]._rungs] == [8, 4, 2]  # rungs 2, 4, 8 epochs
    assert sched._stop_last_trials is False  # a trial at max_t trains on to its last epoch


def test_asha_true_keeps_its_defaults():
    sched = asha_scheduler(_cfg(True))
    assert (sched._max_t, sched._reduction_factor) == (10, 3)  # one past the last epoch
    assert [r[0] for r in sched._brackets[0]._rungs] == [9, 3, 1]


def test_asha_refuses_a_bad_setting():
    with pytest.raises(ConfigError, match="reduction_factor"):
        _cfg({"reduction_factor": 1})
    with pytest.raises(ConfigError, match="grace"):
        _cfg({"grace": 2})


def test_a_trial_stopped_before_its_final_result_is_pruned_in_optunas_storage():
    storage = optuna.storages.InMemoryStorage()
    space = {"x": optuna.distributions.FloatDistribution(0, 1)}
    search = PrunedAwareOptunaSearch(
        space=space, metric="val_top1", mode="max", storage=storage, study_name="s"
    )
    for t in ("cut", "done", "broken"):
        search.suggest(t)
    search.on_trial_complete("cut", {"val_top1": 0.4, "epoch": 1.0})  # ASHA's stop
    search.on_trial_complete("done", {"val_top1": 0.6, "epoch": 3.0, "trial_finished": 1.0})
    search.on_trial_complete("broken", None, error=True)
    study = optuna.load_study(study_name="s", storage=storage)
    states = [t.state for t in study.trials]
    TS = optuna.trial.TrialState
    assert states == [TS.PRUNED, TS.COMPLETE, TS.FAIL]
    assert study.best_value == 0.6


def test_a_pruned_trial_records_the_device_its_last_evaluation_named():
    """The driver's recorder reads the device from the last report of a stopped trial."""
    import json
    from types import SimpleNamespace

    from rcl_study.study.ray_trial import DEVICE, EVALS, tune_report
    from rcl_study.study.ray_tune import _Recorder
    from rcl_study.trainer.result import Evaluation, TrialStatus
    from rcl_study.trials.records import TrialPlan
    from rcl_study.trials.unit import Unit

    cfg = TINY_STUDY.parse(study={"kind": "search", "space": {"loss.scale": {"low": 1, "high": 2}}})
    plan = TrialPlan("search-x", "search", 0, {"loss.scale": 1.5})
    sent: list[dict] = []
    report = tune_report(Unit.single(plan), lambda payload, **kw: sent.append(payload))
    report(Evaluation(2, {"search-x": {"epoch": 2, "balanced_acc": 0.4}}, device="cpu"))
    assert sent[-1][DEVICE] == "cpu" and json.loads(sent[-1][EVALS])["search-x"]["epoch"] == 2

    got = []
    sink = SimpleNamespace(record=got.append)
    recorder = _Recorder(cfg, None, None, sink, None)
    trial = SimpleNamespace(
        trial_id="t1", config={"loss.scale": 1.5}, last_result=sent[-1], num_failures=0
    )
    recorder._record(trial, TrialStatus.OK, "")  # ended without its final result: ASHA stopped it
    assert [r.status for r in got] == [TrialStatus.PRUNED]
    assert got[0].metrics["device"] == "cpu"
