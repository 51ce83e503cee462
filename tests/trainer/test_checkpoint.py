"""Each checkpoint carries the config hash of the trial that wrote it.

A first ``python -m rcl_study.train --workdir W`` leaves ``W/checkpoint.pt``. Each row of
RESUME_CASES then changes the study (or the checkpoint) and runs the command again: a checkpoint
that is not this configuration's is refused (exit 2, one line naming it) and left as it was,
unless ``--accept-changes``: then it is set aside as ``checkpoint.stale-<its hash>.pt`` and the
trial trains afresh, its new checkpoint carrying the new configuration's hash. In a study, a
trial whose folder holds such a checkpoint sets it aside and never resumes it (STUDY_CASES).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

import rcl_study.train as train_cli
from rcl_study.study import execute
from rcl_study.trials.design import expand
from rcl_study.trials.folder import StudyFolder
from tests.conftest import TINY_STUDY

HERE = {"name": "ck", "train": {"max_steps_per_epoch": 2, "progress": False}}


def _hash_of(path: Path) -> object:
    return torch.load(path, map_location="cpu", weights_only=True).get("config_hash")


def _rewrite(path: Path, change: Callable[[dict], None]) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    change(state)
    torch.save(state, path)


class ResumeCase(NamedTuple):
    """``prepare(ckpt)`` edits the checkpoint; ``args``: the second command's extra arguments."""

    name: str
    prepare: Callable[[Path], None]
    args: tuple[str, ...]
    refused: bool


RESUME_CASES = [
    ResumeCase("another learning rate", lambda c: None, ("--set", "train.lr=0.5"), True),
    ResumeCase("another loss margin", lambda c: None, ("--set", "loss.margin=0.1"), True),
    ResumeCase("another seed", lambda c: None, ("--set", "train.seed=7"), True),
    ResumeCase(
        "a checkpoint without a hash (from before)",
        lambda c: _rewrite(c, lambda s: s.pop("config_hash", None)),
        (),
        True,
    ),
    ResumeCase(
        "a checkpoint carrying another trial's hash",
        lambda c: _rewrite(c, lambda s: s.update(config_hash="0123456789abcdef")),
        (),
        True,
    ),
    ResumeCase(
        "another learning rate, --accept-changes",
        lambda c: None,
        ("--set", "train.lr=0.5", "--accept-changes"),
        False,
    ),
    ResumeCase(
        "a checkpoint without a hash, --accept-changes",
        lambda c: _rewrite(c, lambda s: s.pop("config_hash", None)),
        ("--accept-changes",),
        False,
    ),
]


@pytest.mark.parametrize("case", RESUME_CASES, ids=[c.name for c in RESUME_CASES])
def test_a_checkpoint_of_another_configuration_is_never_resumed(case, tmp_path, capsys):
    study = TINY_STUDY.write(tmp_path, HERE)
    work = tmp_path / "w"
    assert train_cli.main([str(study), "--workdir", str(work)]) == 0
    ckpt = work / "checkpoint.pt"
    first = _hash_of(ckpt)
    assert isinstance(first, str) and len(first) == 16  # the checkpoint names its configuration
    case.prepare(ckpt)
    before = ckpt.read_bytes()
    stored = _hash_of(ckpt)
    capsys.readouterr()
    code = train_cli.main([str(study), "--workdir", str(work), *case.args])
    err = capsys.readouterr().err.strip()
    if case.refused:
        assert code == 2
        assert len(err.splitlines()) == 1 and str(ckpt) in err and "--accept-changes" in err, err
        assert ckpt.read_bytes() == before  # left as it was, not resumed, not relabelled
        assert sorted(p.name for p in work.iterdir()) == ["checkpoint.pt"]
        return
    assert code == 0, err
    aside = work / f"checkpoint.stale-{stored if isinstance(stored, str) else 'unknown'}.pt"
    assert aside.read_bytes() == before  # the old work kept, under its own configuration
    assert _hash_of(ckpt) not in (stored, None)  # trained afresh under the new one


def test_the_same_configuration_resumes_its_checkpoint(tmp_path, capsys):
    study = TINY_STUDY.write(tmp_path, HERE)
    work = tmp_path / "w"
    assert train_cli.main([str(study), "--workdir", str(work)]) == 0
    assert train_cli.main([str(study), "--workdir", str(work)]) == 0
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint.pt"]


STUDY_CASES = [
    (
        "carrying another hash",
        lambda s: s.update(config_hash="0123456789abcdef"),
        "0123456789abcdef",
    ),
    ("carrying none (from before)", lambda s: s.pop("config_hash", None), "unknown"),
]


@pytest.mark.parametrize("packed", [False, True], ids=["a trial", "a pack"])
@pytest.mark.parametrize("name,change,aside", STUDY_CASES, ids=[c[0] for c in STUDY_CASES])
def test_a_study_sets_aside_a_checkpoint_not_of_its_configuration(
    name, change, aside, packed, tmp_path
):
    cfg = TINY_STUDY.parse(
        HERE,
        study={"components": ["margin"], "seeds": [0], "output_dir": str(tmp_path / "runs")},
        resources={"executor": "local"},
    )
    plans = expand(cfg)
    folder, resolve = StudyFolder(cfg.output_dir), execute.Resolver(cfg)

    def train() -> None:
        if packed:
            execute.train_pack_and_save(plans, "pack", resolve, folder, None, 1)
        else:
            execute.train_and_save(plans[0], resolve, folder, None, 1)

    train()
    workdir = folder.trial_dir("pack" if packed else plans[0].trial_id)
    ckpt = workdir / "checkpoint.pt"
    if packed:
        want = {
            p.trial_id: json.loads((folder.trial_dir(p.trial_id) / "result.json").read_text())[
                "config_hash"
            ]
            for p in plans
        }
        assert _hash_of(ckpt) == want  # each member's configuration
    _rewrite(ckpt, change)
    before = ckpt.read_bytes()
    train()
    assert (workdir / f"checkpoint.stale-{aside}.pt").read_bytes() == before
    trial = folder.trial_dir(plans[0].trial_id)
    stored = _hash_of(ckpt)
    own = json.loads((trial / "result.json").read_text())["config_hash"]
    assert (stored[plans[0].trial_id] if packed else stored) == own
