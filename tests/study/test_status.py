"""``--status``: where a study stands, from another terminal, writing nothing."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import pytest

from rcl_study import run


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its SHA-256 (and every folder), to see nothing changed."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        )
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_study_module):
    """A tiny ablation (4 trials) run through the local executor."""
    tmp = tmp_path_factory.mktemp("status")
    path = tiny_study_module.write(
        tmp,
        name="st",
        study={"components": ["balance", "margin"], "seeds": [0], "output_dir": str(tmp / "runs")},
        resources={"executor": "local"},
        report={"dir": str(tmp / "report")},
    )
    assert run.main([str(path), "--no-progress"]) == 0
    return path, tmp / "runs"


@pytest.fixture(scope="module")
def tiny_study_module():
    from tests.conftest import TINY_STUDY

    return TINY_STUDY


def test_status_of_a_finished_study_counts_and_writes_nothing(finished, capsys):
    path, runs = finished
    before = _tree(runs)
    capsys.readouterr()
    assert run.main([str(path), "--status"]) == 0
    out = capsys.readouterr().out
    assert _tree(runs) == before
    assert "driver: no driver holds the study" in out
    assert "trials: 4 planned; 4 recorded (4 ok)" in out
    assert "not recorded yet: 0" in out
    records = [json.loads(x) for x in (runs / "records.jsonl").read_text().splitlines()]
    best = max(records, key=lambda r: r["metrics"]["val_balanced_acc"])
    val = best["metrics"]["val_balanced_acc"]
    assert f"best so far: {best['trial_id']} (val_balanced_acc {val:.4f}" in out


def test_the_run_leaves_a_finished_snapshot(finished):
    snap = json.loads((finished[1] / "status.json").read_text())
    assert snap["finished"] is True and snap["done"] == snap["total"] == 4
    assert snap["running"] == {} and snap["eta_seconds"] is None


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        if p.is_file():
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _snapshot(**changes):
    snap = {
        "updated": "2026-12-06T12:00:00Z",
        "pid": os.getpid(),
        "host": platform.node(),
        "total": 4,
        "done": 1,
        "left": 1,
        "epochs_per_trial": 10,
        "running": {"balance__s0": 3, "margin__s0": 5},
        "eta_seconds": 100.0,
        "finished": False,
    }
    return json.dumps({**snap, **changes})


def _lock(pid: int) -> str:
    return json.dumps({"pid": pid, "host": platform.node(), "started": "2026-12-06T11:00:00"})


@pytest.mark.parametrize(
    "lock_pid, snapshot, expect, absent",
    [
        (
            "self",
            _snapshot(),
            [
                "a driver is running (pid",
                "running: 2 (balance__s0 3/10, margin__s0 5/10); 1 left; ETA 1m40s",
            ],
            [],
        ),
        ("dead", _snapshot(), ["no driver running (its lock names pid"], ["running: 2"]),
        ("self", "{not json", ["a driver is running"], ["running:"]),
        ("self", _snapshot(running={"a": True}), ["a driver is running"], ["running:"]),
        ("self", _snapshot(eta_seconds=None), ["no ETA yet"], []),
        (None, _snapshot(), ["no driver holds the study"], ["running:"]),
    ],
)
def test_status_while_a_driver_runs(finished, tmp_path, capsys, lock_pid, snapshot, expect, absent):
    path, runs = finished
    folder = _copy(runs, tmp_path / "runs")
    if lock_pid is not None:
        pid = os.getpid() if lock_pid == "self" else _dead_pid()
        (folder / "driver.lock").write_text(_lock(pid))
    (folder / "status.json").write_text(snapshot)
    before = _tree(folder)
    capsys.readouterr()
    code = run.main([str(path), "--status", "--set", f"study.output_dir={folder}"])
    out = capsys.readouterr().out
    assert code == 0 and _tree(folder) == before
    for text in expect:
        assert text in out
    for text in absent:
        assert text not in out


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_status_of_a_study_never_run(tmp_path, tiny_study_module, capsys):
    path = tiny_study_module.write(tmp_path, study={"output_dir": str(tmp_path / "none")})
    assert run.main([str(path), "--status"]) == 0
    assert "nothing recorded yet" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()


def test_status_is_one_mode(finished, capsys):
    assert run.main([str(finished[0]), "--status", "--dry-run"]) == 2
    assert "--dry-run and --status: give one of them" in capsys.readouterr().err
