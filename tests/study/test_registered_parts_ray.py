"""Parts registered in a script train under the Ray executor: the study carries them along."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
import sys

import torch

from rcl_study import load_study, run_study, registry


@registry.register("contrastive", "script_supcon")
def script_supcon(features, labels, class_counts, prototypes=None, *, temperature, **knobs):
    """Plain SupCon over the views, written here (the prototypes and RCL's knobs ignored)."""
    sim = features @ features.T / temperature
    eye = torch.eye(len(labels), dtype=torch.bool)
    sim = sim.masked_fill(eye, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    return -(log_prob.masked_fill(~pos, 0).sum(1) / pos.sum(1).clamp(min=1)).mean()


@registry.register("losses", "script_ce")
def script_ce(logits, labels, class_counts):
    return torch.nn.functional.cross_entropy(logits.float(), labels)


run_study(load_study(sys.argv[1]), progress=False)
'''


def _run_script(folder: Path, text: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``text`` as ``folder/script.py`` (its ``__main__``) with ``args`` (this checkout)."""
    (folder / "script.py").write_text(text)
    return subprocess.run(
        [sys.executable, "script.py", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow
def test_parts_registered_in_a_script_train_under_ray(tmp_path, tiny_study):
    study = tiny_study.write(
        tmp_path,
        name="script_parts",
        loss={"preset": "bcl", "contrastive": "script_supcon", "classification": "script_ce"},
        study={"components": ["balance"], "seeds": [0]},
        resources={"executor": "ray", "pack": 1},
        report={"dir": str(tmp_path / "report")},
    )
    # the study file names parts only the script registers: it is refused without them
    bare = subprocess.run(
        [sys.executable, "-m", "rcl_study.run", str(study), "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert bare.returncode == 2 and "unknown loss 'script_ce'" in bare.stderr
    proc = _run_script(tmp_path, SCRIPT, str(study))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (tmp_path / "runs" / "script_parts" / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    for rec in records:
        assert rec["status"] == "ok", rec.get("reason")
        assert rec["config"]["loss"]["contrastive"] == "script_supcon"
        assert rec["metrics"]["loss_con"] > 0  # the script's loss ran on the worker


def test_a_part_that_cannot_travel_is_refused_before_any_trial(monkeypatch):
    import threading

    from rcl_study import registry
    from rcl_study.study.ray_tune import ClusterError, _carried_parts

    lock = threading.Lock()

    def holds_a_lock(logits, labels, class_counts):
        with lock:
            return logits.sum()

    registry.register("losses", "test_unpicklable")(holds_a_lock)
    try:
        with pytest.raises(ClusterError, match=r"loss 'test_unpicklable'.*cannot be sent"):
            _carried_parts()
    finally:
        registry.unregister("losses", "test_unpicklable")


PID_SCRIPT = """
import os
import sys

import torch

from rcl_study import load_study, registry, run_study

PIDS = sys.argv[2]


@registry.register("losses", "pid_ce")
def pid_ce(logits, labels, class_counts):
    with open(PIDS, "a") as f:
        f.write(f"{os.getpid()}\\n")
    return torch.nn.functional.cross_entropy(logits.float(), labels)


run_study(load_study(sys.argv[1]), progress=False)
"""


@pytest.mark.slow
def test_ray_trains_trial_after_trial_in_one_worker(tmp_path, tiny_study):
    """Start-up is paid once per worker: four trials, one at a time, one process."""
    study = tiny_study.write(
        tmp_path,
        name="reuse",
        loss={"classification": "pid_ce"},
        study={"components": ["balance", "margin"], "seeds": [0]},
        train={"max_steps_per_epoch": 1},
        resources={"executor": "ray", "pack": 1, "max_concurrent": 1},
        report={"dir": str(tmp_path / "report")},
    )
    pids = tmp_path / "pids.txt"
    proc = _run_script(tmp_path, PID_SCRIPT, str(study), str(pids))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (tmp_path / "runs" / "reuse" / "records.jsonl").read_text().splitlines()
    assert [json.loads(x)["status"] for x in lines] == ["ok"] * 4
    assert len(set(pids.read_text().split())) == 1  # every step of every trial, one process
