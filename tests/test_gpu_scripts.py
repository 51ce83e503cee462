"""scripts/gpu: the metrics log a killed run leaves, and the smoke check's choice of CUDA tests."""

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "gpu" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_metrics_log_survives_a_cut_line_and_keeps_the_last_of_each_epoch(tmp_path):
    tl = _load("train_logged")
    path = tmp_path / "m.jsonl"
    log = tl.MetricsLog(path)
    log({"epoch": 5, "top1": 0.3})
    log({"epoch": 10, "top1": 0.4})
    log({"epoch": 10})  # a non-main process's report: not logged
    log({"epoch": 10, "top1": 0.45})  # the same epoch again after a resume
    with open(path, "a") as f:
        f.write('{"epoch": 15, "top1": 0.')  # killed mid-line
    assert len(path.read_text().splitlines()) == 4
    rows = tl.read_metrics(path)
    assert [(r["epoch"], r["top1"]) for r in rows] == [(5, 0.3), (10, 0.45)]
    assert tl.read_metrics(tmp_path / "absent.jsonl") == []
    assert json.loads(path.read_text().splitlines()[0]) == {"epoch": 5, "top1": 0.3}


def test_smoke_runs_the_tests_that_skip_without_cuda():
    smoke = _load("smoke")
    ids = smoke.cuda_test_ids(ROOT / "tests")
    assert "tests/test_augment.py::test_cpu_and_gpu_agree_in_distribution" in ids
    assert "tests/test_augment.py::test_crop_keeps_content_and_zero_pads" not in ids
    assert all(Path(ROOT / i.split("::")[0]).is_file() for i in ids)


@pytest.mark.slow
def test_a_stopped_run_leaves_its_curve_and_a_checkpoint_that_resumes(tmp_path):
    study = {
        "name": "t",
        "data": {"dataset": "digits_lt", "test_limit": 50},
        "model": {"arch": "small_cnn", "width": 4, "proj_hidden": 8, "proj_dim": 4},
        "train": {
            "epochs": 400,
            "batch_size": 32,
            "max_steps_per_epoch": 2,
            "warmup_epochs": 0,
            "progress": False,
            "threads": 1,
            "eval_every": 1,
            "checkpoint_every": 1,
        },
        "loss": {"preset": "bcl"},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    work, metrics, out = tmp_path / "w", tmp_path / "w" / "m.jsonl", tmp_path / "r.json"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "gpu" / "train_logged.py"),
        str(path),
        "--workdir",
        str(work),
        "--metrics",
        str(metrics),
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and (
        not metrics.exists() or len(metrics.read_text().splitlines()) < 3
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 1
    res = json.loads(out.read_text())
    assert res["status"] == "stopped" and res["epoch"] >= 3
    assert [h["epoch"] for h in res["history"]] == list(range(1, res["epoch"] + 1))
    ckpt = torch.load(work / "checkpoint.pt", map_location="cpu", weights_only=True)
    # killed between an evaluation and its checkpoint at worst: one epoch behind the curve
    assert int(ckpt["epoch"]) in (res["epoch"] - 1, res["epoch"])
    # resumed to a shorter end, it trains only the epochs after the checkpoint
    study["train"]["epochs"] = int(ckpt["epoch"]) + 1
    path.write_text(yaml.safe_dump(study))
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    res = json.loads(out.read_text())
    assert res["status"] == "ok" and res["epoch"] == int(ckpt["epoch"]) + 1
    epochs = [r["epoch"] for r in _load("train_logged").read_metrics(metrics)]
    assert epochs == list(range(1, res["epoch"] + 1))
