"""SIGTERM stops a study as Ctrl-C does: finished trials recorded, exit 130, --resume finishes.

The local executor also records the trial it interrupted, ``stopped``; --resume
trains it again.

Slurm (preemption, the time limit, scancel) and other batch systems stop a job with SIGTERM, and
a driver started in the background of a batch script has SIGINT ignored; a second SIGTERM (Slurm
signals every process of the job, the script forwards its own) must not cut the stop short.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rcl_study.signals import _SigtermAsCtrlC
from tests.conftest import TINY_STUDY

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())

TINY = {
    "name": "tiny",
    "data": {"dataset": "digits_lt", "imbalance_ratio": 10, "test_limit": 100},
    "model": {"arch": "small_cnn", "width": 8, "proj_hidden": 16, "proj_dim": 8},
    "train": {"epochs": 3, "batch_size": 32, "warmup_epochs": 0, "threads": 1},
    "loss": {"preset": "bcl+rcl", "balance": 1.0, "margin": 0.5},
    "study": {"kind": "ablation", "components": ["margin"], "seeds": [0, 1]},
    "resources": {"cpus_per_trial": 1, "max_concurrent": 1, "pack": 1},
}
TRIALS = ["margin__s0", "margin__s1", "none__s0", "none__s1"]


def test_the_first_sigterm_calls_the_sigint_handler_and_later_ones_are_ignored(monkeypatch):
    calls = []
    monkeypatch.setattr(signal, "getsignal", lambda sig: lambda s, f: calls.append(s))
    handler = _SigtermAsCtrlC()
    handler(signal.SIGTERM, None)
    handler(signal.SIGTERM, None)
    assert calls == [signal.SIGINT]


@pytest.mark.parametrize("sigint", [signal.SIG_IGN, signal.SIG_DFL])
def test_sigterm_is_a_keyboard_interrupt_where_sigint_has_no_python_handler(monkeypatch, sigint):
    monkeypatch.setattr(signal, "getsignal", lambda sig: sigint)
    with pytest.raises(KeyboardInterrupt):
        _SigtermAsCtrlC()(signal.SIGTERM, None)


def _study(tmp_path, executor: str, epochs: int) -> Path:
    raw = json.loads(json.dumps(TINY))
    raw["resources"]["executor"] = executor
    raw["train"]["epochs"] = epochs
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _records(out: Path) -> list[dict]:
    path = out / "records.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ignore_sigint() -> None:  # as bash does for a background job of a script
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_with_sigterm(tmp_path, path: Path, every: float | None = None) -> tuple[int, str, dict]:
    """SIGTERM once the first record is in; with ``every``, again every so many seconds until
    the driver exits (while Tune stops the trials, then while Ray's instance stops).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rcl_study.run", str(path), "--no-progress"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_ignore_sigint,
        )
    out = tmp_path / "runs/tiny"
    deadline = time.time() + 300
    while not _records(out) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # into the next trial
    proc.send_signal(signal.SIGTERM)  # to the driver only, as a batch script's trap does
    end = time.time() + 180
    while every is not None and proc.poll() is None and time.time() < end:
        time.sleep(every)
        proc.send_signal(signal.SIGTERM)  # nothing, once the driver has exited
    try:
        proc.wait(timeout=max(1.0, end - time.time()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    err = errors.read_text()
    return proc.returncode, err, {r["trial_id"]: r["finished"] for r in _records(out)}


def _resume(tmp_path, path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "rcl_study.run", str(path), "--resume", "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _check_stop_and_resume(tmp_path, path, code, err, before):
    why = f"exit {code}, records {sorted(before)}, stderr:\n{err[-3000:]}"
    assert code == 130, why
    assert f"finish with: python -m rcl_study.run {path} --resume" in err, why
    assert "Traceback" not in err and "SIGTERM received" not in err, why
    assert 1 <= len(before) < 4, why
    out = tmp_path / "runs/tiny"
    rows = _records(out)
    # no trial blamed for the stop: finished ones ok, the one it interrupted (local executor)
    # recorded "stopped" with its progress
    assert all(r["status"] in ("ok", "stopped") for r in rows), why
    stopped = {r["trial_id"] for r in rows if r["status"] == "stopped"}
    assert all(r["reason"].startswith("stopped by ") for r in rows if r["status"] != "ok")
    assert not (out / "driver.lock").exists(), why
    resumed = _resume(tmp_path, path)
    why += f"\n--resume: exit {resumed.returncode}, stderr:\n{resumed.stderr[-3000:]}"
    assert resumed.returncode == 0, why
    after = _records(out)
    last = {r["trial_id"]: r for r in after}
    assert sorted(last) == TRIALS and all(r["status"] == "ok" for r in last.values()), why
    assert len(after) == len(TRIALS) + len(stopped), why  # each trial once, a stopped one again
    for tid, r in last.items():
        if tid in before and tid not in stopped:
            assert r["finished"] == before[tid], why


@pytest.mark.slow
def test_sigterm_stops_a_local_study_like_ctrl_c(tmp_path):
    path = _study(tmp_path, "local", epochs=20)
    code, err, before = _stop_with_sigterm(tmp_path, path)
    _check_stop_and_resume(tmp_path, path, code, err, before)


@pytest.mark.slow
def test_sigterm_again_and_again_stops_a_ray_study_gracefully(tmp_path):
    pytest.importorskip("ray")
    path = _study(tmp_path, "ray", epochs=30)
    code, err, before = _stop_with_sigterm(tmp_path, path, every=0.3)
    assert "stopping the running trials" in err, f"exit {code}, stderr:\n{err[-3000:]}"
    _check_stop_and_resume(tmp_path, path, code, err, before)


def test_sigterm_stops_a_study_like_ctrl_c(tmp_path, cli):
    path = TINY_STUDY.write(
        tmp_path,
        train={"epochs": 3, "max_steps_per_epoch": 4, "progress": False},
        study={"components": ["margin"]},
        resources={"executor": "local", "pack": 1},
        report={"bootstrap": 100},
    )
    out = tmp_path / "runs/tiny"
    stopped = cli.stop_midway(path, records=out, at_least=1, sig=signal.SIGTERM, poll=0.2)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert f"finish with: python -m rcl_study.run {path} --resume" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    # finished trials ok; the one interrupted recorded "stopped", none blamed
    assert any(r["status"] == "ok" for r in stopped.rows)
    assert all(r["status"] in ("ok", "stopped") for r in stopped.rows)
    assert all(r["reason"].startswith("stopped by ") for r in stopped.rows if r["status"] != "ok")


# ------------------------------------------------- python -m rcl_study.train, stopped midway

#: (name, signals sent one after the other, whether SIGINT is ignored in the command)
TRAIN_STOPS = [
    ("SIGTERM", (signal.SIGTERM,), False),
    ("SIGTERM twice", (signal.SIGTERM, signal.SIGTERM), False),
    ("SIGTERM with SIGINT ignored (a background job)", (signal.SIGTERM,), True),
    ("SIGINT (Ctrl-C)", (signal.SIGINT,), False),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,sigs,ignore", TRAIN_STOPS, ids=[c[0] for c in TRAIN_STOPS])
def test_a_stopped_single_trial_command_is_one_line_and_exit_130(tmp_path, name, sigs, ignore):
    raw = json.loads(json.dumps(TINY))
    raw["train"].update(epochs=400, max_steps_per_epoch=2, eval_every=400)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    work = tmp_path / "w"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rcl_study.train", str(path), "--workdir", str(work)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_ignore_sigint if ignore else None,
    )
    deadline = time.time() + 300
    while not (work / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.1)
    for sig in sigs:
        proc.send_signal(sig)
        time.sleep(0.2)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    why = f"exit {proc.returncode}, stderr:\n{err[-3000:]}"
    assert proc.returncode == 130, why
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("interrupted: ") and str(work) in lines[-1], why
    assert "Traceback" not in err and out == "", why  # no metrics line: it did not finish
    import torch  # the checkpoint left is whole (written atomically)

    state = torch.load(work / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert 1 <= state["epoch"] < 400, why
