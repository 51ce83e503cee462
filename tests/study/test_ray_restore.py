"""A restarted Ray trial's checkpoint is restored through the no-link writer.

Tune hands a restarted trial its last reported checkpoint; :func:`ray_trial.restore` copies it
into the trial's folder. Each row of RESTORE_CASES sets the scene (a good checkpoint, a damaged
one, a link planted at the trial's folder): the copy is in the trial's folder as a plain file,
and is never written through a link.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")

from rcl_study.study import ray_trial  # noqa: E402
from rcl_study.trials.folder import StudyFolder  # noqa: E402
from rcl_study.trials.records import TrialPlan  # noqa: E402
from rcl_study.trials.unit import Unit  # noqa: E402


class FakeCheckpoint:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextmanager
    def as_directory(self):
        yield str(self.folder)


def _good(src: Path, root: Path, outside: Path) -> None:
    torch.save({"epoch": 3}, src / "checkpoint.pt")


def _damaged(src: Path, root: Path, outside: Path) -> None:
    (src / "checkpoint.pt").write_bytes(b"not a checkpoint")


def _linked(src: Path, root: Path, outside: Path) -> None:
    _good(src, root, outside)
    (root / "trials").symlink_to(outside)


#: (name, scene, epoch returned or the exception, the files then in the study folder)
RESTORE_CASES = [
    ("a good checkpoint: copied", _good, 3, ["trials/t__s0/checkpoint.pt"]),
    ("a damaged checkpoint: removed", _damaged, None, []),
    ("trials/ planted as a link: refused, nothing written outside", _linked, OSError, []),
]


@pytest.mark.parametrize("name,scene,want,listed", RESTORE_CASES, ids=[c[0] for c in RESTORE_CASES])
def test_a_restored_checkpoint_is_copied_and_never_written_through_a_link(
    name, scene, want, listed, tmp_path, monkeypatch
):
    root, src, outside = tmp_path / "runs" / "s", tmp_path / "ray-ckpt", tmp_path / "outside"
    for d in (root, src, outside):
        d.mkdir(parents=True)
    (root / ".rcl_study").write_text(json.dumps({"study": "s"}))
    scene(src, root, outside)
    monkeypatch.setattr(ray_trial.tune, "get_checkpoint", lambda: FakeCheckpoint(src))
    unit = Unit.single(TrialPlan("t__s0", "t", 0, {}))
    if want is OSError:
        with pytest.raises(OSError):
            ray_trial.restore(unit, StudyFolder(root))
        assert list(outside.iterdir()) == []
    else:
        assert ray_trial.restore(unit, StudyFolder(root)) == want
    trials = root / "trials"
    present = [] if trials.is_symlink() else [p for p in trials.rglob("*") if p.is_file()]
    assert sorted(p.relative_to(root).as_posix() for p in present) == listed
