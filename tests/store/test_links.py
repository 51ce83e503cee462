"""No link is followed inside a study's folders.

Each row of LINK_CASES plants one symbolic link inside a study's records or report folder,
pointing outside it. The command must end in exit 2 with one line naming the link, and the
target outside must be exactly as it was (not appended to, not read into the study, not
deleted). The writers themselves (the atomic writer's temporary file, the line appender) never
write through a link either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from rcl_study import run
from rcl_study.store import append_line, atomic_write_text
from rcl_study.study import local
from tests.conftest import TINY_STUDY

NAME = "links"
RECORD = {"trial_id": "t__s0", "variant": "t", "seed": 0, "status": "ok", "metrics": {}}


@pytest.fixture
def no_training(monkeypatch):
    """The local executor trains nothing: a folder test must never start trials."""
    monkeypatch.setattr(local.LocalExecutor, "run", lambda *a, **k: None)


def make_study(tmp: Path) -> tuple[Path, Path, Path]:
    """A study file, its records folder (marked, one record, one damaged line), its outside."""
    study = TINY_STUDY.write(tmp, name=NAME, resources={"executor": "local"}, study={"seeds": [0]})
    runs = tmp / "runs" / NAME
    runs.mkdir(parents=True)
    (runs / ".rcl_study").write_text(json.dumps({"study": NAME}) + "\n")
    (runs / "records.jsonl").write_text(json.dumps(RECORD) + "\n{cut\n")
    outside = tmp / "outside"
    outside.mkdir()
    (outside / ".bashrc").write_text("export SAFE=1\n")
    (outside / "dir").mkdir()
    (outside / "dir" / "keep.txt").write_text("mine\n")
    return study, runs, outside


def link(at: Path, to: Path) -> Path:
    """A symbolic link at ``at`` to ``to`` (the file at ``at`` replaced)."""
    if at.exists() and not at.is_symlink():
        if at.is_dir():
            at.rmdir()
        else:
            at.unlink()
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(to)
    return at


class LinkCase(NamedTuple):
    """Where the link goes (given runs, outside, reports), and the command's extra arguments."""

    name: str
    plant: Callable[[Path, Path, Path], Path]
    argv: tuple[str, ...] = ("--resume",)


LINK_CASES = [
    LinkCase(
        "records.damaged.jsonl to a shell start-up file",
        lambda r, o, rep: link(r / "records.damaged.jsonl", o / ".bashrc"),
    ),
    LinkCase(
        "records.damaged.jsonl dangling outside",
        lambda r, o, rep: link(r / "records.damaged.jsonl", o / "new-file"),
    ),
    LinkCase(
        "records.jsonl to a file outside",
        lambda r, o, rep: link(r / "records.jsonl", o / ".bashrc"),
    ),
    LinkCase("plan.json to a file outside", lambda r, o, rep: link(r / "plan.json", o / ".bashrc")),
    LinkCase("trials to a folder outside", lambda r, o, rep: link(r / "trials", o / "dir")),
    LinkCase(
        "a trial folder to a folder outside",
        lambda r, o, rep: link(r / "trials" / "t__s0", o / "dir"),
    ),
    LinkCase(
        "the marker to a file outside", lambda r, o, rep: link(r / ".rcl_study", o / ".bashrc")
    ),
    LinkCase(
        "tensorboard to a folder outside", lambda r, o, rep: link(r / "tensorboard", o / "dir")
    ),
    LinkCase(
        "--overwrite: trials to a folder outside",
        lambda r, o, rep: link(r / "trials", o / "dir"),
        ("--overwrite",),
    ),
    LinkCase(
        "--report-only: records.jsonl to a file outside",
        lambda r, o, rep: link(r / "records.jsonl", o / ".bashrc"),
        ("--report-only",),
    ),
    LinkCase(
        "--report-only: the report's figures to a folder outside",
        lambda r, o, rep: link(rep / "figures", o / "dir"),
        ("--report-only",),
    ),
]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", LINK_CASES, ids=[c.name for c in LINK_CASES])
def test_a_link_in_a_study_folder_is_exit_2_naming_it(
    case, tmp_path, monkeypatch, capsys, no_training
):
    study, runs, outside = make_study(tmp_path)
    reports = tmp_path / "reports" / NAME
    reports.mkdir(parents=True)
    (reports / ".rcl_study").write_text(json.dumps({"study": NAME}) + "\n")
    planted = case.plant(runs, outside, reports)
    before = snapshot(outside)
    monkeypatch.chdir(tmp_path)
    assert run.main([str(study), *case.argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "symbolic link" in err and planted.name in err, err
    assert snapshot(outside) == before  # nothing outside written, appended to or deleted
    assert sorted(p.name for p in outside.iterdir()) == [".bashrc", "dir"]


WRITER_CASES = ["atomic temporary name", "append target", "append dangling target"]


@pytest.mark.parametrize("case", WRITER_CASES)
def test_the_writers_never_write_through_a_link(case, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    folder = tmp_path / "f"
    folder.mkdir()
    if case == "atomic temporary name":  # the name the writer used to pick (pid only)
        link(folder / f".plan.json.{os.getpid()}.tmp", outside)
        atomic_write_text(folder / "plan.json", "{}")
        assert (folder / "plan.json").read_text() == "{}"
    elif case == "append target":
        link(folder / "records.jsonl", outside)
        with pytest.raises(OSError):
            append_line(folder / "records.jsonl", "{}")
    else:
        link(folder / "records.jsonl", tmp_path / "created-outside")
        with pytest.raises(OSError):
            append_line(folder / "records.jsonl", "{}")
        assert not (tmp_path / "created-outside").exists()
    assert outside.read_text() == "keep\n"
