"""A driver that trains nothing never imports torch.

Reading a study file, planning it, checking it, running it through Ray (whose workers train) and
writing its report need no torch; its import is the largest part of a Ray driver's start. Each
test runs in a fresh interpreter, where ``sys.modules`` says what was imported.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_STUDY

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())

TINY_HERE = {
    "train": {"epochs": 2},
    "study": {"components": ["margin"], "seeds": [0]},
    "resources": {"max_concurrent": 1, "pack": 1, "executor": "ray"},
}


def _python(code: str, cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last, returned."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    env.pop("RAY_ADDRESS", None)
    # Ray's socket paths must stay short: its own default, not a test's deep temporary folder
    env.setdefault("RAY_TMPDIR", "/tmp")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _study(tmp_path: Path, pack: int | str = 1) -> Path:
    return TINY_STUDY.write(
        tmp_path,
        TINY_HERE,
        study={"output_dir": str(tmp_path / "runs")},
        resources={"pack": pack},
        report={"dir": str(tmp_path / "report")},
    )


RUN = """
import json, sys
from rcl_study.run import main
status = main({argv!r})
print(json.dumps({{"status": status, "torch": "torch" in sys.modules}}))
"""


CHECK = """
import json, sys
import rcl_study.report.render, rcl_study.run, rcl_study.study.ray_tune
from rcl_study.config import load_study
from rcl_study.study.checks import check_machine, check_study
from rcl_study.study.tracking import check_tracking, make_trackers

cfg = load_study({path!r})
plans = check_study(cfg)
check_machine(cfg)
check_tracking(cfg)
make_trackers(cfg, plans)
print(json.dumps({{"plans": len(plans), "torch": "torch" in sys.modules}}))
"""


@pytest.mark.parametrize("pack", [1, "auto"])
def test_reading_checking_and_planning_a_study_imports_no_torch(tmp_path, pack):
    # the Ray driver's whole path before its trials: the modules it imports, then the checks
    # (``auto`` packs: a Ray trial without a GPU share trains on the CPU, torch not asked)
    out = _python(CHECK.format(path=str(_study(tmp_path, pack))), tmp_path)
    assert out == {"plans": 2, "torch": False}


@pytest.mark.slow
def test_a_ray_study_trains_tracks_and_reports_with_no_torch_in_its_driver(tmp_path):
    out = _python(RUN.format(argv=[str(_study(tmp_path)), "--no-progress"]), tmp_path)
    assert out == {"status": 0, "torch": False}
    lines = (tmp_path / "runs" / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    assert sorted((r["trial_id"], r["status"]) for r in records) == [
        ("margin__s0", "ok"),
        ("none__s0", "ok"),
    ]
    # the TensorBoard tracker wrote each trial's run; the report was written
    for trial in ("margin__s0", "none__s0"):
        assert list((tmp_path / "runs" / "tensorboard" / trial).glob("events.out.tfevents.*"))
    assert (tmp_path / "report" / "index.md").is_file()
    # Tune's own per-trial logs (CSV, JSON, TensorBoard) are off: the study's records hold them
    assert not list((tmp_path / "runs" / "ray").rglob("progress.csv"))


TRACKER = """
import json, sys
from rcl_study.study.tracking import TensorBoardTracker

tracker = TensorBoardTracker({folder!r})
tracker.evaluation("t", {{"epoch": 1, "top1": 0.25}})
tracker.evaluation("t", {{"epoch": 2, "top1": 0.5}})
tracker.close()
without = "torch" not in sys.modules
import torch  # importable again once tensorboardX is in
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = EventAccumulator({folder!r} + "/t")
run.Reload()
scalars = {{tag: [(e.step, e.value) for e in run.Scalars(tag)] for tag in run.Tags()["scalars"]}}
print(json.dumps({{"without": without, "tensor": torch.ones(2).sum().item(), "scalars": scalars}}))
"""


def test_the_tensorboard_tracker_writes_without_importing_torch(tmp_path):
    out = _python(TRACKER.format(folder=str(tmp_path / "tb")), tmp_path)
    assert out["without"] is True
    assert out["tensor"] == 2.0
    assert out["scalars"]["acc/top1"] == [[1, 0.25], [2, 0.5]]


LOSSES = """
import json, sys
import rcl_study.losses as losses

before = "torch" in sys.modules
from rcl_study.losses import contrastive, total

same = losses.total_loss is total.total_loss
same = same and losses.contrastive_loss is contrastive.contrastive_loss
listed = {"total_loss", "contrastive_loss", "PRESETS"} <= set(dir(losses))
try:
    losses.nope
    missing = ""
except AttributeError as err:
    missing = str(err)
print(json.dumps({"before": before, "after": "torch" in sys.modules, "same": same, "listed": listed,
                  "missing": missing}))
"""


def test_the_loss_functions_load_with_torch_on_first_use(tmp_path):
    assert _python(LOSSES, tmp_path) == {
        "before": False,
        "after": True,
        "same": True,
        "listed": True,
        "missing": "module 'rcl_study.losses' has no attribute 'nope'",
    }
