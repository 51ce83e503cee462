"""The records folder is made absolute once, before anything runs.

An executor may run trials in another working directory (Ray's workers do). Each row of
PATH_CASES names ``study.output_dir`` as a user might (left out, relative, with ``..``, with
``~``): the folder handed to the executor is absolute and is the folder the command checked,
so what a trial writes after changing directory lands there, and nothing lands where it ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rcl_study.store import atomic_write_text
from rcl_study.study.runner import run_study
from rcl_study.trials.folder import StudyFolder
from tests.conftest import TINY_STUDY

#: (study.output_dir as written, where the records must be, relative to the sandbox)
PATH_CASES = [
    (None, "work/runs/p"),
    ("out/x", "work/out/x"),
    ("sub/../out", "work/out"),
    ("../sibling/o", "sibling/o"),
    ("~/o", "home/o"),
]


class ElsewhereExecutor:
    """Trains nothing: changes directory, as a remote worker does, then writes a trial's files."""

    def __init__(self, elsewhere: Path) -> None:
        self.elsewhere = elsewhere
        self.roots: list[Path] = []

    def start(self, study) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, study, units, folder: StudyFolder, sink) -> None:
        self.roots.append(folder.root)
        os.chdir(self.elsewhere)
        atomic_write_text(folder.trial_dir("x") / "config.json", "{}")


@pytest.mark.parametrize("given,where", PATH_CASES, ids=[str(c[0]) for c in PATH_CASES])
def test_the_records_folder_is_absolute_before_anything_runs(given, where, tmp_path, monkeypatch):
    work, home, elsewhere = tmp_path / "work", tmp_path / "home", tmp_path / "elsewhere"
    for d in (work, home, elsewhere):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    cfg = TINY_STUDY.parse(
        name="p", study={"output_dir": given, "seeds": [0]}, resources={"executor": "local"}
    )
    ex = ElsewhereExecutor(elsewhere)
    run_study(cfg, executor=ex, trackers=[], progress=False)
    assert ex.roots == [tmp_path / where] and ex.roots[0].is_absolute()
    assert (tmp_path / where / "trials" / "x" / "config.json").read_text() == "{}"
    assert list(elsewhere.iterdir()) == []  # nothing written where the trial ran
