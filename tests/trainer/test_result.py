"""The trainer's typed values: TrialResult on disk and on Ray's channel, Evaluation, stops."""

import json

import pytest

import rcl_study.trainer.loop as train
import rcl_study.trainer.pack as pack
from rcl_study.study import execute
from rcl_study.study.recording import make_record
from rcl_study.trainer.budget import TrialsStopped
from rcl_study.trainer.result import Evaluation, TrialResult, TrialStatus
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialPlan
from rcl_study.trials.records import TrialStatus as RecordStatus
from tests.conftest import DROP, TINY_STUDY

TINY_HERE = {
    "name": "r",
    "data": {"imbalance_ratio": DROP},
    "train": {"epochs": 2, "eval_every": 1, "max_steps_per_epoch": 3, "progress": False},
    "loss": DROP,
    "study": DROP,
    "resources": DROP,
}

#: a stopped pack member as the study layer completes it, written by hand
HAND = TrialResult(
    status=TrialStatus.STOPPED,
    reason="stopped by SIGTERM after epoch 2 of 3",
    device="cpu",
    processes=1,
    epochs_trained=2,
    metrics={"top1": 0.5, "per_class_acc": [0.25, 0.75], "epoch": 2, "n_train": 40},
    history=[{"epoch": 1, "top1": 0.4}, {"epoch": 2, "top1": 0.5}],
    loss_spec={"balance": 1.0},
    plan={"trial_id": "a__s0", "variant": "a", "seed": 0, "overrides": {}},
    config_hash="0123456789abcdef",
    wall_time=3.5,
    environment={"python": "3.11"},
    pack="pack__s0",
    pack_wall_time=7.0,
)
#: HAND on disk: its fields beside the metrics
HAND_JSON = {
    "status": "stopped",
    "reason": "stopped by SIGTERM after epoch 2 of 3",
    "device": "cpu",
    "processes": 1,
    "epochs_trained": 2,
    "top1": 0.5,
    "per_class_acc": [0.25, 0.75],
    "epoch": 2,
    "n_train": 40,
    "history": [{"epoch": 1, "top1": 0.4}, {"epoch": 2, "top1": 0.5}],
    "loss_spec": {"balance": 1.0},
    "plan": {"trial_id": "a__s0", "variant": "a", "seed": 0, "overrides": {}},
    "config_hash": "0123456789abcdef",
    "wall_time": 3.5,
    "environment": {"python": "3.11"},
    "pack": "pack__s0",
    "pack_wall_time": 7.0,
}


def test_a_result_writes_and_reads_back_as_its_hand_written_json():
    assert HAND.to_json() == HAND_JSON
    assert list(HAND.to_json()) == list(HAND_JSON)
    assert TrialResult.from_json(json.loads(json.dumps(HAND_JSON))) == HAND
    # the record's metrics: device, processes, epochs trained, the metrics, the wall time
    assert HAND.record_metrics() == {
        "device": "cpu",
        "processes": 1,
        "epochs_trained": 2,
        "top1": 0.5,
        "per_class_acc": [0.25, 0.75],
        "epoch": 2,
        "n_train": 40,
        "wall_time": 3.5,
    }
    assert list(HAND.record_metrics())[:4] == ["device", "processes", "epochs_trained", "top1"]


def test_one_status_enum_from_the_trainer_to_the_record():
    assert RecordStatus is TrialStatus
    assert TrialResult(status="diverged").status is TrialStatus.DIVERGED
    assert TrialResult.from_json({"status": "ok"}) == TrialResult(status=TrialStatus.OK)


DAMAGED = [
    ("not an object", [1]),
    ("no status", {"top1": 0.5}),
    ("an unknown status", {"status": "exploded"}),
    ("a history that is not a list", {"status": "ok", "history": "x"}),
    ("a history entry that is not a mapping", {"status": "ok", "history": [1]}),
    ("processes as text", {"status": "ok", "processes": "1"}),
    ("epochs trained as a boolean", {"status": "stopped", "epochs_trained": True}),
    ("a wall time as text", {"status": "ok", "wall_time": "3 s"}),
    ("a hash that is not text", {"status": "ok", "config_hash": 7}),
    ("a plan that is not a mapping", {"status": "ok", "plan": "a__s0"}),
    ("a reason that is not text", {"status": "failed", "reason": 3}),
]


@pytest.mark.parametrize("name,row", DAMAGED, ids=[c[0] for c in DAMAGED])
def test_a_damaged_result_is_refused_and_a_stored_one_counts_as_none(tmp_path, name, row):
    with pytest.raises(ValueError):
        TrialResult.from_json(row)
    plan = TrialPlan("a__s0", "a", 0, {})
    folder = StudyFolder(tmp_path)
    folder.trial_dir(plan.trial_id).mkdir(parents=True)
    (folder.trial_dir(plan.trial_id) / "result.json").write_text(json.dumps(row))
    assert execute.stored_result(folder, plan) is None


def test_a_metric_named_as_a_field_is_refused():
    with pytest.raises(ValueError, match="wall_time"):
        TrialResult(status=TrialStatus.OK, metrics={"wall_time": 1.0})


def test_a_record_takes_what_the_result_carries_and_nothing_of_the_study_layer():
    cfg = TINY_STUDY.parse(TINY_HERE)
    plan = TrialPlan("a__s0", "a", 0, {})
    config = execute.Resolver(cfg)(plan)[1]
    rec = make_record(plan, config, HAND, 99.0, "pack__s0")
    assert rec.status is TrialStatus.STOPPED and rec.reason == HAND.reason
    assert rec.metrics == HAND.record_metrics() and rec.history == HAND.history
    assert (rec.loss_spec, rec.wall_time, rec.device, rec.python) == (
        {"balance": 1.0},
        3.5,
        "cpu",
        "3.11",
    )
    bare = make_record(plan, config, TrialResult(status=TrialStatus.FAILED, reason="boom"), 9.0)
    assert (bare.metrics, bare.history, bare.wall_time, bare.device) == ({}, [], 9.0, "unknown")


def _stop_in_epoch(monkeypatch, module, name, epoch):
    """SIGTERM (as a KeyboardInterrupt) in the trainer's epoch ``epoch`` (1-based)."""
    real = getattr(module, name)

    def run(x, e, *rest):
        if e + 1 == epoch:
            raise KeyboardInterrupt("SIGTERM")
        return real(x, e, *rest)

    monkeypatch.setattr(module, name, run)


def test_a_stopped_trial_and_a_stopped_pack_name_their_results(monkeypatch):
    cfg = TINY_STUDY.parse(TINY_HERE)
    _stop_in_epoch(monkeypatch, train, "train_epoch", 2)
    with pytest.raises(TrialsStopped) as one:
        train.train_trial(cfg, log=lambda s: None, name="t")
    assert list(one.value.results) == ["t"]
    (result,) = one.value.results.values()
    assert result.status is TrialStatus.STOPPED and result.epochs_trained == 1
    assert [h["epoch"] for h in result.history] == [1]
    _stop_in_epoch(monkeypatch, pack, "train_pack_epoch", 2)
    cfgs = [TINY_STUDY.parse(TINY_HERE, loss={"margin": m}) for m in (0.0, 0.5)]
    with pytest.raises(TrialsStopped) as both:
        pack.train_pack(cfgs, ["a", "b"], log=lambda s: None)
    assert list(both.value.results) == ["a", "b"]
    assert all(r.epochs_trained == 1 for r in both.value.results.values())


def test_a_trial_and_a_pack_report_the_same_typed_evaluation():
    seen: list[Evaluation] = []
    train.train_trial(TINY_STUDY.parse(TINY_HERE), seen.append, log=lambda s: None, name="t")
    assert [(e.epoch, list(e.metrics), e.training) for e in seen] == [(1, ["t"], 1), (2, ["t"], 1)]
    cfgs = [TINY_STUDY.parse(TINY_HERE, loss={"margin": m}) for m in (0.0, 0.5)]
    packed: list[Evaluation] = []
    pack.train_pack(cfgs, ["a", "b"], packed.append, log=lambda s: None)
    assert [(e.epoch, list(e.metrics), e.training) for e in packed] == [
        (1, ["a", "b"], 2),
        (2, ["a", "b"], 2),
    ]
    # the study's callback hands each member's scalars on by name, whichever it was
    got: list[tuple[str, float]] = []
    report = execute.evaluations(lambda tid, m: got.append((tid, m["epoch"])))
    for e in [*seen, *packed, Evaluation(3)]:  # the last: a data-parallel rank's, no metrics
        report(e)
    assert got == [("t", 1.0), ("t", 2.0), ("a", 1.0), ("b", 1.0), ("a", 2.0), ("b", 2.0)]


def test_results_cross_rays_channel_as_they_left_and_a_damaged_one_is_none():
    pytest.importorskip("ray")
    from rcl_study.study.ray_trial import RESULTS, final, results_of
    from rcl_study.trials.unit import Unit

    plan = TrialPlan("a__s0", "a", 0, {})
    last = final(Unit.single(plan), {"a__s0": HAND})
    assert last["top1"] == 0.5 and last["trial_finished"] == 1.0  # a single trial's scalars
    assert results_of(json.loads(json.dumps(last))) == {"a__s0": HAND}
    damaged = {RESULTS: json.dumps({"a__s0": {"status": "ok", "history": 3}, "b__s0": HAND_JSON})}
    assert results_of(damaged) == {"b__s0": HAND}
    assert results_of({RESULTS: "{cut"}) == {} and results_of({}) == {}


def test_the_training_split_travels_as_a_field():
    split = {"digest": "ab" * 32, "class_counts": [5, 1], "class_order": [1, 0], "split_seed": 3}
    result = TrialResult(status=TrialStatus.OK, metrics={"top1": 0.5}, train_split=split)
    row = result.to_json()
    assert row["train_split"] == split and "train_split" not in result.record_metrics()
    assert TrialResult.from_json(row) == result
    with pytest.raises(ValueError, match="train_split"):
        TrialResult.from_json({**row, "train_split": [1, 2]})
