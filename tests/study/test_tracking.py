"""Live tracking: every trial and pack member as its own TensorBoard / MLflow run, read back."""

import json
import sys

import pytest

from rcl_study.config import ConfigError, parse_study
from rcl_study.study.runner import run_study
from rcl_study.study.tracking import TAGS, TensorBoardTracker, Trackers, tag

TINY = {
    "name": "tracked",
    "data": {"dataset": "digits_lt", "imbalance_ratio": 10, "test_limit": 60},
    "model": {"arch": "small_cnn", "width": 8, "proj_hidden": 16, "proj_dim": 8},
    "train": {
        "epochs": 2,
        "batch_size": 32,
        "max_steps_per_epoch": 2,
        "warmup_epochs": 1,
        "threads": 1,
        "progress": False,
    },
    "loss": {"preset": "bcl+rcl", "balance": 1.0, "scale": 1.5, "margin": 0.5},
    # 4 variants at one seed: two packs of two members with pack: 2
    "study": {"kind": "ablation", "seeds": [0], "components": ["balance", "margin"]},
    "resources": {"cpus_per_trial": 1, "executor": "local", "pack": 2},
}

#: what every evaluation must track (the issue's list)
WANTED = ("loss", "loss_cls", "loss_con", "lr", "top1", "balanced_acc", "seconds_per_epoch")


def _study(tmp_path, **resources):
    raw = json.loads(json.dumps(TINY))
    raw["study"]["output_dir"] = str(tmp_path / "runs")
    raw["report"] = {"dir": str(tmp_path / "report")}
    raw["resources"].update(resources)
    return parse_study(raw)


def _tensorboard_runs(folder):
    """{run name: {tag: [(step, value)]}} read with TensorBoard's own reader."""
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    runs = {}
    for run in sorted(p for p in folder.iterdir() if p.is_dir()):
        acc = ea_mod.EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        runs[run.name] = {
            t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]
        }
    return runs


def _expected(record):
    """{tag: [(epoch, value)]} of the record's history, for the keys that are numbers."""
    out = {}
    for h in record.history:
        for k, v in h.items():
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.setdefault(tag(k), []).append((h["epoch"], float(v)))
    return out


def _check_tensorboard(folder, records):
    runs = _tensorboard_runs(folder)
    assert set(runs) == {r.trial_id for r in records}  # one run per trial, pack members too
    for r in records:
        assert r.ok and len(r.history) == 2
        expected = _expected(r)
        for key in WANTED:
            assert tag(key) in expected
        for t, points in expected.items():
            got = runs[r.trial_id][t]
            assert [s for s, _ in got] == [s for s, _ in points]
            assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6)


def test_local_packs_write_one_tensorboard_run_per_trial(tmp_path):
    cfg = _study(tmp_path)  # tracking defaults to [tensorboard]
    assert cfg.resources.tracking == ["tensorboard"]
    records = run_study(cfg, progress=False)
    assert len(records) == 4 and len({r.pack for r in records}) == 2  # two packs of two
    _check_tensorboard(tmp_path / "runs" / "tensorboard", records)
    # the learning rate is the schedule's: warm-up to train.lr in epoch 1, cosine after
    lrs = [h["lr"] for h in records[0].history]
    assert lrs[0] == pytest.approx(cfg.train.lr) and 0 <= lrs[1] < lrs[0]
    assert {"many_acc", "medium_acc", "few_acc"} & set(records[0].history[0])
    # the status as text and the hyperparameters for the HParams tab
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(tmp_path / "runs" / "tensorboard" / records[0].trial_id))
    acc.Reload()
    assert "status/text_summary" in acc.Tags()["tensors"]
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hp = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hp["variant"].string_value == records[0].variant and hp["status"].string_value == "ok"


def test_mlflow_on_sqlite_every_trial_is_a_run(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    cfg = _study(tmp_path, tracking=["mlflow"], mlflow_uri=uri)
    records = run_study(cfg, progress=False)
    assert not (tmp_path / "runs" / "tensorboard").exists()
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tracked")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {r.trial_id for r in records}
    for r in records:
        run = runs[r.trial_id]
        assert run.info.status == "FINISHED"
        assert run.data.tags["status"] == "ok" and run.data.tags["variant"] == r.variant
        assert run.data.tags["pack"] == r.pack
        assert run.data.params["seed"] == str(r.seed)
        assert {k: str(v) for k, v in r.overrides.items()}.items() <= run.data.params.items()
        for t, points in _expected(r).items():
            got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, t))
            assert [s for s, _ in got] == [s for s, _ in points]
            assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6)


def test_default_mlflow_store_is_the_study_folder_and_overwrite_moves_it(tmp_path, capsys):
    pytest.importorskip("mlflow")
    cfg = _study(tmp_path, tracking=["tensorboard", "mlflow"])
    from rcl_study.study.tracking import make_trackers, mlflow_uri, tracking_text

    assert mlflow_uri(cfg) == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    assert "mlflow ui --backend-store-uri sqlite:///" in tracking_text(cfg)
    (tmp_path / "runs").mkdir()
    trackers = make_trackers(cfg)
    assert [t.name for t in trackers] == ["tensorboard", "mlflow"]
    Trackers(trackers).close()
    assert (tmp_path / "runs" / "mlflow.db").exists()
    from rcl_study.store.folders import claim, move_to_replaced

    (tmp_path / "runs" / "tensorboard").mkdir()
    (tmp_path / "runs" / "tensorboard" / "events").write_text("e")
    claim(tmp_path / "runs", "tracked")
    moved = move_to_replaced(tmp_path / "runs")  # what --overwrite does
    assert moved is not None and (moved / "mlflow.db").exists()
    assert (moved / "tensorboard" / "events").read_text() == "e"
    assert not (tmp_path / "runs" / "tensorboard").exists()


class Broken:
    name = "broken"

    def __init__(self):
        self.calls = 0

    def evaluation(self, trial_id, metrics):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("disk full\nsecond line")

    def finished(self, record):
        self.calls += 1

    def close(self):
        pass


def test_a_tracker_that_raises_mid_study_loses_nothing(tmp_path, capsys):
    cfg = _study(tmp_path)
    broken = Broken()
    tb = TensorBoardTracker(tmp_path / "tb")
    records = run_study(cfg, progress=False, trackers=[broken, tb])
    assert len(records) == 4 and all(r.ok for r in records)
    assert broken.calls == 2  # switched off at its failure
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "tracker broken" in ln]
    assert len(warnings) == 1 and "RuntimeError: second line" in warnings[0]
    _check_tensorboard(tmp_path / "tb", records)  # the other tracker saw everything


def test_trackers_fanout_warns_once_and_closes_the_failed_tracker():
    lines, closed = [], []

    class Bad:
        name = "bad"

        def evaluation(self, trial_id, metrics):
            raise ValueError("x")

        def close(self):
            closed.append(1)

    fan = Trackers([Bad()], lines.append)
    fan.evaluation("t", {"epoch": 1.0})
    fan.evaluation("t", {"epoch": 2.0})
    fan.close()
    assert len(lines) == 1 and closed == [1]


def test_wandb_offline_every_trial_and_pack_member_is_a_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from tests.helpers.wandb_log import read_offline_run

    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = _study(tmp_path, tracking=["wandb"], wandb_project="proj")
    assert cfg.resources.wandb_mode == "offline"  # nothing is sent unless asked
    records = run_study(cfg, progress=False)
    files = sorted((tmp_path / "runs" / "wandb").glob("offline-run-*/run-*.wandb"))
    runs = {r.name: r for r in map(read_offline_run, files)}
    assert len(files) == 4 and set(runs) == {r.trial_id for r in records}
    assert len({r.pack for r in records}) == 2  # two packs of two: members are runs too
    for r in records:
        run = runs[r.trial_id]
        assert run.group == r.variant and run.exit_code == 0
        assert run.config["seed"] == r.seed
        assert {k: run.config[k] for k in r.overrides} == r.overrides
        assert run.summary["status"] == "ok"
        for t, points in _expected(r).items():
            got = [(h["_step"], h[t]) for h in run.history if t in h]
            assert [s for s, _ in got] == [s for s, _ in points]
            assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6)


def test_missing_wandb_is_refused_at_the_dry_run(tmp_path, tiny_study, monkeypatch, capsys):
    from rcl_study import run

    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    path = tiny_study.write(tmp_path, resources={"tracking": ["tensorboard", "wandb"]})
    assert run.main([str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "resources.tracking: wandb needs the wandb package" in err
    assert 'pip install "rcl_study[wandb]"' in err and "\n" not in err.strip()


def test_missing_mlflow_is_one_config_error_before_any_trial(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    cfg = _study(tmp_path, tracking=["tensorboard", "mlflow"])

    class NeverRun:
        name = "local"

        def start(self, study):
            raise AssertionError("the executor must not start")

        def stop(self):
            pass

    with pytest.raises(ConfigError) as err:
        run_study(cfg, progress=False, executor=NeverRun())
    msg = str(err.value)
    assert "\n" not in msg and "resources.tracking" in msg
    assert 'pip install "rcl_study[mlflow]"' in msg
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "value, error",
    [(["neptune"], "tracking"), (["none", "mlflow"], "none"), (["mlflow", "mlflow"], "twice")],
)
def test_tracking_key_is_validated(tmp_path, value, error):
    with pytest.raises(ConfigError, match=error):
        _study(tmp_path, tracking=value)


def test_tracking_none_and_a_single_name(tmp_path):
    assert _study(tmp_path, tracking="none").resources.tracking == ["none"]
    from rcl_study.study.tracking import make_trackers

    assert make_trackers(_study(tmp_path, tracking="none")) == []
    assert set(TAGS.values()) >= {"acc/top1", "acc/balanced", "lr", "time/seconds_per_epoch"}


@pytest.mark.slow
def test_ray_trials_and_pack_members_appear_in_tensorboard(tmp_path):
    pytest.importorskip("ray")
    cfg = _study(tmp_path, executor="ray", max_concurrent=1)
    records = run_study(cfg, progress=False)
    assert len(records) == 4 and all(r.ok and r.pack for r in records)
    _check_tensorboard(tmp_path / "runs" / "tensorboard", records)
