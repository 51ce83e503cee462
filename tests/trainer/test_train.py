"""The trainer on CPU with tiny models: presets, metrics, resume, divergence, two processes."""

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rcl_study.train as train_cli
import rcl_study.trainer.batches as batches
import rcl_study.trainer.checkpoint as checkpoint
import rcl_study.trainer.evaluation as evaluation
import rcl_study.trainer.loop as train
import rcl_study.trainer.setup as trial_setup
from rcl_study.data.checks import DataError
from rcl_study.losses import PRESETS
from rcl_study.trainer.metrics import classification_metrics, confusion_matrix, feature_measures
from rcl_study.trainer.models import ResNet32, build_model, count_parameters
from rcl_study.trainer.result import TrialStatus
from tests.conftest import DROP, TINY_STUDY

HELPERS = Path(__file__).resolve().parents[1] / "helpers"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: this file's tiny study: one trial of 3 steps; loss, study and resources left to defaults
TINY_HERE = {
    "name": "t",
    "data": {"imbalance_ratio": DROP},
    "train": {"max_steps_per_epoch": 3, "progress": False},
    "loss": DROP,
    "study": DROP,
    "resources": DROP,
}
#: the trial of ``helpers/train_worker.py``: one step, no augmentation, no normalisation layers
WORKER = {
    "name": "dist",
    "data": {"imbalance_ratio": DROP, "augment": "none", "test_limit": 50},
    "model": {"norm": "none"},
    "train": {"max_steps_per_epoch": 1, "threads": DROP, "progress": False},
    "loss": {"balance": DROP, "scale": 1.3, "margin": 0.4},
    "study": DROP,
    "resources": DROP,
}


def _cfg(**sections):
    return TINY_STUDY.parse(TINY_HERE, **sections)


def _quiet(msg):
    pass


@pytest.mark.parametrize("preset", list(PRESETS))
def test_one_epoch_of_every_preset(preset):
    res = train.train_trial(_cfg(loss={"preset": preset}), log=_quiet)
    assert res.status is TrialStatus.OK and res.metrics["epoch"] == 1
    for key in (
        "top1",
        "balanced_acc",
        "loss",
        "loss_cls",
        "loss_con",
        "compactness",
        "equiangular_gap_deg",
    ):
        assert math.isfinite(res.metrics[key]), key
    assert len(res.metrics["per_class_acc"]) == 10
    if preset in ("ce", "la"):
        assert res.metrics["loss_con"] == 0


def test_metrics_against_hand_computed_confusion():
    # 3 classes; train counts 150 (many), 50 (medium), 5 (few)
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[3, 1, 0], [1, 1, 0], [1, 0, 1]]
    m = classification_metrics(y_true, y_pred, np.array([150, 50, 5]))
    assert m["top1"] == pytest.approx(5 / 8)
    assert m["per_class_acc"] == pytest.approx([0.75, 0.5, 0.5])
    assert m["balanced_acc"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert (m["many_acc"], m["medium_acc"], m["few_acc"]) == pytest.approx((0.75, 0.5, 0.5))
    mask = np.array([True, True, False, False, True, False, True, False])
    m = classification_metrics(y_true, y_pred, np.array([150, 50, 5]), mask)
    assert m["top1_lossless"] == pytest.approx(4 / 4)
    empty = classification_metrics(y_true, y_pred, np.array([150, 120, 101]))
    assert empty["few_acc"] is None and empty["medium_acc"] is None


def test_feature_measures_on_known_geometry():
    # class means on a regular simplex (3 classes at 120 degrees): equiangular gap 0
    ang = torch.tensor([0.0, 120.0, 240.0]).deg2rad()
    means = torch.stack([ang.cos(), ang.sin()], 1)
    feats = means.repeat_interleave(4, 0)
    labels = torch.arange(3).repeat_interleave(4)
    m = feature_measures(feats, labels, 3)
    assert m["compactness"] == pytest.approx(1.0) and m["equiangular_gap_deg"] == pytest.approx(
        0, abs=1e-4
    )
    # angles 0, 90, 180 degrees between 3 class means: pairwise 90, 180, 90 -> std 42.43
    ang = torch.tensor([0.0, 90.0, 180.0]).deg2rad()
    m = feature_measures(torch.stack([ang.cos(), ang.sin()], 1), torch.arange(3), 3)
    assert m["equiangular_gap_deg"] == pytest.approx(np.std([90, 180, 90]), abs=1e-3)
    # two features at +-60 degrees around their class mean: cos 60 = 0.5
    f = torch.tensor(
        [
            [math.cos(math.pi / 3), math.sin(math.pi / 3)],
            [math.cos(math.pi / 3), -math.sin(math.pi / 3)],
        ]
    )
    assert feature_measures(f, torch.tensor([0, 0]), 1)["compactness"] == pytest.approx(0.5)


def test_resume_equals_uninterrupted(tmp_path):
    cfg = _cfg(train={"epochs": 4, "checkpoint_every": 1})
    full = train.train_trial(cfg, workdir=tmp_path / "a", log=_quiet)

    class Stop(Exception):
        pass

    def crash_at_epoch_3(evaluation):
        if evaluation.epoch == 3:
            raise Stop

    with pytest.raises(Stop):
        train.train_trial(cfg, crash_at_epoch_3, workdir=tmp_path / "b", log=_quiet)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2  # the last checkpoint before the crash
    resumed = train.train_trial(cfg, workdir=tmp_path / "b", log=_quiet)
    for key in ("top1", "balanced_acc", "loss", "compactness"):
        assert resumed.metrics[key] == full.metrics[key], key
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the validation-chosen evaluation survives the resume: it comes from the checkpointed
    # history
    assert len(resumed.history) == 4
    best = max(full.history, key=lambda h: h["val_top1"])
    assert resumed.metrics["chosen_top1"] == full.metrics["chosen_top1"] == best["top1"]
    assert (
        resumed.metrics["chosen_epoch_top1"] == full.metrics["chosen_epoch_top1"] == best["epoch"]
    )
    assert resumed.metrics["chosen_val_balanced_acc"] == max(
        h["val_balanced_acc"] for h in full.history
    )


def test_same_seed_same_metrics_different_seed_differs():
    a = train.train_trial(_cfg(), log=_quiet)
    b = train.train_trial(_cfg(), log=_quiet)
    c = train.train_trial(_cfg(train={"seed": 1}), log=_quiet)
    assert (
        a.metrics["loss"] == b.metrics["loss"]
        and a.metrics["per_class_acc"] == b.metrics["per_class_acc"]
    )
    assert a.metrics["loss"] != c.metrics["loss"]


def test_nan_loss_gives_diverged(monkeypatch):
    real = train.total_loss
    calls = {"n": 0}

    def nan_on_second_step(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(train, "total_loss", nan_on_second_step)
    res = train.train_trial(_cfg(train={"epochs": 2}), log=_quiet)
    assert res.status is TrialStatus.DIVERGED
    assert res.reason == "non-finite loss at epoch 1, step 2"


def test_lr_schedule_warmup_then_cosine():
    lrs = [trial_setup.lr_at(s, 100, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.1) and lrs[55] == pytest.approx(0.05, rel=0.02)
    assert lrs[-1] < 1e-3 and all(x >= y for x, y in zip(lrs[10:], lrs[11:]))


def test_models_shapes_and_resnet32_size():
    net = build_model("resnet32", 3, 10, 32)
    feats, logits, proj = net(torch.randn(2, 3, 32, 32))
    assert feats.shape == (2, 64) and logits.shape == (2, 10) and proj.shape == (2, 128)
    assert torch.allclose(proj.norm(dim=1), torch.ones(2))
    protos = net.prototypes()
    assert protos.shape == (10, 128) and torch.allclose(protos.norm(dim=1), torch.ones(10))
    # ResNet-32 for CIFAR has about 0.46 M parameters (He et al. 2016, Table 6)
    assert 0.45e6 < count_parameters(ResNet32()) < 0.48e6


@pytest.mark.slow
def test_torchvision_backbones_build():
    for arch in ("resnet50", "resnext50"):
        net = build_model(arch, 3, 5, 64, proj_hidden=32, proj_dim=16)
        net.eval()
        feats, logits, proj = net(torch.randn(1, 3, 64, 64))
        assert feats.shape == (1, 2048) and logits.shape == (1, 5) and proj.shape == (1, 16)


def test_single_trial_command(tmp_path, tiny_study, cli):
    study = tiny_study.write(tmp_path, TINY_HERE, name="cmd", filename="s.yaml")
    out = tmp_path / "m.json"
    proc = cli.run(
        study, "--set", "loss.preset=supcon", "--out", out, module="rcl_study.train", timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["config"]["loss"]["preset"] == "supcon" and res["status"] == "ok"
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "ok"


def test_two_processes_first_step_loss_matches_one(tmp_path, tiny_study):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    study = tiny_study.write(tmp_path, WORKER)
    subprocess.run(
        [sys.executable, str(HELPERS / "train_worker.py"), str(study), str(one)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            str(HELPERS / "train_worker.py"),
            str(study),
            str(two),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert b["world"] == 2 and a["world"] == 1
    assert abs(a["loss"] - b["loss"]) < 1e-5


def test_list_file_dataset_trains(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    lines = []
    for i in range(30):
        (tmp_path / "img").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
            tmp_path / "img" / f"{i}.png"
        )
        lines.append(f"img/{i}.png {i % 3}")
    (tmp_path / "train.txt").write_text("\n".join(lines[:18]) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(lines[18:24]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(lines[24:]) + "\n")
    data = {
        "dataset": "imagenet_lt",
        "root": str(tmp_path),
        "train_list": "train.txt",
        "test_list": "test.txt",
        "val_list": "val.txt",
        "image_size": 16,
        "test_limit": None,
    }
    cfg = _cfg(data=data, train={"epochs": 2, "batch_size": 4, "max_steps_per_epoch": None})
    res = train.train_trial(cfg, log=_quiet)
    assert (
        res.status is TrialStatus.OK
        and res.metrics["epoch"] == 2
        and len(res.metrics["per_class_acc"]) == 3
    )
    assert math.isfinite(res.metrics["loss"])
    assert (res.metrics["n_train"], res.metrics["n_val"], res.metrics["n_test"]) == (18, 6, 6)
    assert 0 <= res.metrics["val_balanced_acc"] <= 1 and res.metrics[
        "chosen_epoch_balanced_acc"
    ] in (1, 2)
    # without the validation list, 6 training images per class cannot give 20 to validation
    with pytest.raises(DataError, match="val_list"):
        train.train_trial(_cfg(data={**data, "val_list": None}), log=_quiet)


class _OpenOnLoad:
    """Unpickles as ``open(path, "w")``: loading it with pickle creates the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_with_pickled_code_is_refused_and_nothing_runs(tmp_path, capsys, tiny_study):
    marker = tmp_path / "pwned"
    work = tmp_path / "work"
    work.mkdir()
    ckpt = work / "checkpoint.pt"
    torch.save({"model": {}, "history": [_OpenOnLoad(marker)], "epoch": 1}, ckpt)
    with pytest.raises(checkpoint.CheckpointError, match="checkpoint.pt: not a safe checkpoint"):
        train.train_trial(_cfg(), workdir=work, log=_quiet)
    assert not marker.exists()
    study = tiny_study.write(tmp_path, TINY_HERE, filename="s.yaml")
    assert train_cli.main([str(study), "--workdir", str(work)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(ckpt) in err, err
    assert not marker.exists()


def test_chosen_of_picks_on_validation_never_on_test():
    # the test scores peak at other epochs than the validation scores: the choice follows
    # validation and reports the test score at the chosen epoch
    hist = [
        {"epoch": 1, "top1": 0.9, "balanced_acc": 0.9, "val_top1": 0.5, "val_balanced_acc": 0.4},
        {"epoch": 2, "top1": 0.6, "balanced_acc": 0.5, "val_top1": 0.7, "val_balanced_acc": 0.6},
        # ties val_top1 with epoch 2: the first epoch counts
        {"epoch": 3, "top1": 0.8, "balanced_acc": 0.55, "val_top1": 0.7, "val_balanced_acc": 0.65},
        {"epoch": 4, "top1": 0.95, "balanced_acc": 0.95, "val_top1": 0.6, "val_balanced_acc": 0.5},
    ]
    assert evaluation.chosen_of(hist) == {
        "chosen_top1": 0.6,
        "chosen_val_top1": 0.7,
        "chosen_epoch_top1": 2,
        "chosen_balanced_acc": 0.55,
        "chosen_val_balanced_acc": 0.65,
        "chosen_epoch_balanced_acc": 3,
    }
    empty = dict.fromkeys(
        [f"chosen{p}_{k}" for k in ("top1", "balanced_acc") for p in ("", "_val", "_epoch")]
    )
    assert evaluation.chosen_of([]) == empty
    # no validation scores (data.val_per_class: 0): nothing is chosen, least of all on test
    assert evaluation.chosen_of([{k: v for k, v in h.items() if "val" not in k} for h in hist]) == (
        empty
    )


def test_trial_result_has_last_and_validation_chosen_evaluation():
    res = train.train_trial(_cfg(train={"epochs": 3, "eval_every": 1}), log=_quiet)
    tops = [h["top1"] for h in res.history]
    vals = [h["val_top1"] for h in res.history]
    assert res.metrics["top1"] == tops[-1]
    assert res.metrics["chosen_epoch_top1"] == 1 + vals.index(max(vals))
    assert res.metrics["chosen_top1"] == tops[vals.index(max(vals))]
    assert res.metrics["n_val"] == 20 * 10 and res.metrics["n_train"] == sum(
        res.metrics["train_counts"]
    )


def _bf16_cpu_accelerator(cfg, find_unused):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    return Accelerator(cpu=True, mixed_precision="bf16")


def test_evaluation_runs_in_float32_when_training_runs_in_bf16(monkeypatch):
    monkeypatch.setattr(trial_setup, "_make_accelerator", _bf16_cpu_accelerator)
    trial = trial_setup.setup(_cfg(loss={"preset": "bcl"}))
    seen = []
    convs = [m for m in trial.net.core.modules() if isinstance(m, torch.nn.Conv2d)]
    for m in convs:
        m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    order = batches.epoch_order(trial.data, trial.sched, trial.gens.perm, 0)
    losses = train.train_step(trial.net, trial.spec, trial.data, order, 0, trial.gens.aug, 0.1)
    assert set(seen) == {torch.bfloat16}  # the training step does run under bf16 autocast
    assert all(v.dtype == torch.float32 and v.device == trial.device for v in losses.values())
    seen.clear()
    metrics = evaluation.evaluate_trial(trial)
    assert seen and set(seen) == {torch.float32}
    assert 0 <= metrics["top1"] <= 1
