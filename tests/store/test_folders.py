"""Whose folder is this, checked once at the start; ``--overwrite`` moves the old study aside.

Rows of OVERWRITE_CASES start from a records folder and a report folder as a run leaves them,
change them as a person might (a file added with a toolkit-like name, a toolkit file edited, a
folder where a file was...) and run ``--overwrite``'s preparation: every byte that was there is
in the sibling ``<folder>.replaced-<UTC time>`` (nothing deleted), the folders start afresh, and
one stderr line per folder says where it went. Rows of ADOPTION_CASES are folders a study may be
pointed at: used only when new, empty, or marked by a valid marker naming the study. Rows of
SPECIAL_CASES put a FIFO, a folder or a hard link where a toolkit file belongs: every command
refuses in one line (exit 2), never waits, never renames.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from rcl_study import run
from rcl_study.config import ConfigError
from rcl_study.store import atomic_write, atomic_write_text
from rcl_study.store.folders import claim
from rcl_study.study import local
from rcl_study.study.checks import check_folders
from rcl_study.study.runner import prepare_folder
from rcl_study.trials.folder import StudyFolder
from tests.conftest import TINY_STUDY

ROOT = Path(__file__).resolve().parents[2]
NAME = "own"
SEC = {"resources": {"executor": "local"}, "study": {"seeds": [0]}}
RECORD = {"trial_id": "t__s0", "variant": "t", "seed": 0, "status": "ok", "metrics": {}}
#: what the toolkit wrote in the records folder (relative paths), and in the report folder
TOOLKIT = [
    "plan.json",
    "records.jsonl",
    "trials/t__s0/checkpoint.pt",
    "trials/t__s0/config.json",
    "trials/t__s0/result.json",
]
REPORT = ["index.md"]


@pytest.fixture
def no_training(monkeypatch):
    """The local executor trains nothing: these tests are about folders."""
    monkeypatch.setattr(local.LocalExecutor, "run", lambda *a, **k: None)


def files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative, the marker left out)."""
    got = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(f for f in got if f != ".rcl_study")


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` with its bytes (folders and links as None)."""
    return {
        p.relative_to(folder).as_posix(): (
            p.read_bytes() if p.is_file() and not p.is_symlink() else None
        )
        for p in folder.rglob("*")
    }


def replaced(folder: Path) -> list[Path]:
    """The siblings ``--overwrite`` moved ``folder``'s old contents to."""
    return sorted(folder.parent.glob(f"{folder.name}.replaced-*"))


def a_run(tmp: Path) -> tuple[Path, Path]:
    """A records folder and a report folder as a run of the study leaves them."""
    cfg = TINY_STUDY.parse(SEC, name=NAME)
    check_folders(cfg)
    out = prepare_folder(cfg, overwrite=False)
    folder = StudyFolder(out)
    folder.append(RECORD)
    folder.write_plan([{"trial_id": "t__s0"}], {"study": NAME})
    trial = folder.trial_dir("t__s0")
    atomic_write_text(trial / "config.json", json.dumps({"config": {}}))
    atomic_write_text(trial / "result.json", json.dumps({"status": "ok"}))
    atomic_write(trial / "checkpoint.pt", lambda f: f.write(b"\x00" * 64))
    rep = Path("reports") / NAME
    claim(rep, NAME)
    atomic_write_text(rep / "index.md", "# old report\n")
    return out, rep


def _same_size_edit(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-2] + b"0}" if data.endswith(b"}") else data[::-1])


def _old_marker(folder: Path) -> None:
    (folder / ".rcl_study").write_text(json.dumps({"study": NAME}) + "\n")


class OverwriteCase(NamedTuple):
    """``change(out, rep)`` edits the folders as a person might."""

    name: str
    change: Callable[[Path, Path], None]


OVERWRITE_CASES = [
    OverwriteCase("nothing changed", lambda o, r: None),
    OverwriteCase(
        "a backup with a toolkit-like name", lambda o, r: (o / "records.jsonl.bak").write_text("m")
    ),
    OverwriteCase("a note in trials/", lambda o, r: (o / "trials" / "note.txt").write_text("m")),
    OverwriteCase(
        "a figure the user added to the report's figures/",
        lambda o, r: ((r / "figures").mkdir(), (r / "figures" / "mine.png").write_bytes(b"p")),
    ),
    OverwriteCase(
        "a toolkit file the user edited",
        lambda o, r: (o / "trials" / "t__s0" / "result.json").write_text('{"mine": 1}\n'),
    ),
    OverwriteCase(
        "a toolkit file edited to the same size",
        lambda o, r: _same_size_edit(o / "trials" / "t__s0" / "config.json"),
    ),
    OverwriteCase("the report edited by hand", lambda o, r: (r / "index.md").write_text("# mine")),
    OverwriteCase(
        "a damaged records.jsonl (a line cut by a crash)",
        lambda o, r: (o / "records.jsonl").open("a").write('{"trial_id": "cut'),
    ),
    OverwriteCase(
        "a trial's folder replaced by a file of the user's",
        lambda o, r: (
            shutil.rmtree(o / "trials" / "t__s0"),
            (o / "trials" / "t__s0").write_text("mine"),
        ),
    ),
    OverwriteCase(
        "a crash's temporary file beside a trial's files",
        lambda o, r: (o / "trials" / "t__s0" / ".result.json.123.deadbeef.tmp").write_text("{"),
    ),
    OverwriteCase("folders marked before manifests existed", lambda o, r: _old_marker(o)),
    OverwriteCase(
        "a report marked before manifests existed, with a manifest",
        lambda o, r: (_old_marker(r), (r / ".rcl_study.files").write_text("{}\n")),
    ),
]


@pytest.mark.parametrize("case", OVERWRITE_CASES, ids=[c.name for c in OVERWRITE_CASES])
def test_overwrite_moves_the_old_study_aside_and_deletes_nothing(
    case, tmp_path, monkeypatch, capsys, no_training
):
    monkeypatch.chdir(tmp_path)
    out, rep = a_run(tmp_path)
    assert files(out) == TOOLKIT and files(rep) == REPORT  # the run as a run leaves it
    case.change(out, rep)
    before = {"out": tree(out), "rep": tree(rep)}
    capsys.readouterr()
    cfg = TINY_STUDY.parse(SEC, name=NAME)
    check_folders(cfg)
    prepare_folder(cfg, overwrite=True)
    (old_out,), (old_rep,) = replaced(out), replaced(rep)
    assert {"out": tree(old_out), "rep": tree(old_rep)} == before  # every byte kept
    assert files(out) == [] and (out / ".rcl_study").is_file()  # afresh, this study's
    assert not rep.exists() or files(rep) == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    for line, folder, moved in zip(err, (out, rep), (old_out, old_rep), strict=True):
        assert str(folder) in line and str(moved) in line and " on disk)" in line, line
    assert old_out.name.startswith(f"{NAME}.replaced-2") and old_out.name.endswith("Z")


def test_overwrite_twice_in_one_second_gets_a_name_of_its_own(tmp_path, monkeypatch, no_training):
    monkeypatch.chdir(tmp_path)
    out, _ = a_run(tmp_path)
    cfg = TINY_STUDY.parse(SEC, name=NAME)
    stamp = out.parent / f"{NAME}.replaced-20261206T081500Z"
    stamp.mkdir()
    (stamp / "older.txt").write_text("an earlier replaced study")
    monkeypatch.setattr(
        "time.gmtime", lambda *a: __import__("time").struct_time((2026, 12, 6, 8, 15, 0, 6, 340, 0))
    )
    prepare_folder(cfg, overwrite=True)
    assert (stamp / "older.txt").read_text() == "an earlier replaced study"
    assert files(out.parent / f"{NAME}.replaced-20261206T081500Z-2") == TOOLKIT


def test_overwrite_keeps_the_driver_lock_in_place(tmp_path, monkeypatch, no_training):
    monkeypatch.chdir(tmp_path)
    out, _ = a_run(tmp_path)
    (out / "driver.lock").write_text('{"pid": 1}')
    prepare_folder(TINY_STUDY.parse(SEC, name=NAME), overwrite=True)
    assert (out / "driver.lock").read_text() == '{"pid": 1}'
    assert "driver.lock" not in files(replaced(out)[0])


def _unmarked(*names: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        folder.mkdir(parents=True)
        for n in names:
            (folder / n).parent.mkdir(parents=True, exist_ok=True)
            (folder / n).write_text("{}\n")

    return make


def _marker(content: str | None, as_folder: bool = False) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "records.jsonl").write_text(json.dumps(RECORD) + "\n")
        if as_folder:
            (folder / ".rcl_study").mkdir()
        elif content is not None:
            (folder / ".rcl_study").write_text(content)

    return make


#: (name, how the records folder looks, whether the study may use it)
ADOPTION_CASES = [
    ("unmarked, only records.jsonl", _unmarked("records.jsonl"), False),
    ("unmarked, plan.json and trials/", _unmarked("plan.json", "trials/t/config.json"), False),
    ("unmarked, only tensorboard/", _unmarked("tensorboard/events"), False),
    ("unmarked, only a temporary file", _unmarked(".plan.json.1.tmp"), False),
    ("marker is a folder", _marker(None, as_folder=True), False),
    ("marker is not JSON", _marker("study: own\n"), False),
    ("marker is a JSON list", _marker('["own"]'), False),
    ("marker names no study", _marker('{"name": "own"}'), False),
    ("marker names another study", _marker('{"study": "other"}'), False),
    ("new", lambda f: None, True),
    ("empty", lambda f: f.mkdir(parents=True), True),
    ("only a driver lock", _unmarked("driver.lock"), True),
    ("marked by this study", _marker('{"study": "own"}'), True),
    ("marked by this study, before manifests", _marker('{"study": "own", "manifest": "x"}'), True),
]


@pytest.mark.parametrize("name,make,usable", ADOPTION_CASES, ids=[c[0] for c in ADOPTION_CASES])
def test_a_folder_is_used_only_when_new_empty_or_validly_marked(
    name, make, usable, tmp_path, monkeypatch, capsys, no_training
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / NAME
    make(out)
    before = tree(out) if out.exists() else None
    cfg = TINY_STUDY.parse(SEC, name=NAME)
    if usable:
        check_folders(cfg)
        return
    with pytest.raises(ConfigError) as err:
        check_folders(cfg)
    assert "\n" not in str(err.value) and "runs/own" in str(err.value)
    study = TINY_STUDY.write(tmp_path, SEC, name=NAME)
    for argv in (["--resume"], ["--overwrite"]):
        assert run.main([str(study), *argv]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert tree(out) == before and not replaced(out)  # nothing adopted, nothing moved


def test_a_fresh_clone_overwrite_of_a_shipped_report_moves_it_aside(tmp_path, monkeypatch, capsys):
    """A clone: reports/<name>/ shipped (marked before manifests) with a file of the user's, no
    runs/. ``--overwrite`` trains afresh (exit 0); the user's file is in the moved-aside folder."""
    monkeypatch.chdir(tmp_path)
    rep = tmp_path / "reports" / NAME
    rep.mkdir(parents=True)
    _old_marker(rep)
    (rep / "index.md").write_text("# the shipped report\n")
    (rep / "records.jsonl").write_text(json.dumps(RECORD) + "\n")
    (rep / "my-notes.txt").write_text("mine\n")
    before = tree(rep)
    study = TINY_STUDY.write(tmp_path, SEC, name=NAME)
    assert run.main([str(study), "--overwrite", "--no-progress"]) == 0, capsys.readouterr().err
    (old,) = replaced(rep)
    assert tree(old) == before
    assert (old / "my-notes.txt").read_text() == "mine\n"
    assert "the shipped report" not in (rep / "index.md").read_text()  # a new report
    assert not list(tmp_path.rglob(".rcl_study.files"))  # no run writes a manifest


def _fifo(at: Path) -> None:
    os.mkfifo(at)


def _folder(at: Path) -> None:
    at.mkdir()
    (at / "x").write_text("the user's")


def _hard_link(at: Path) -> None:
    outside = at.parent.parent.parent / "outside.txt"
    outside.write_text("keep\n")
    os.link(outside, at)


#: (name, where, what): a special file where a toolkit file belongs
SPECIAL_CASES = [
    ("a FIFO as driver.lock", "runs", "driver.lock", _fifo),
    ("a FIFO as records.jsonl", "runs", "records.jsonl", _fifo),
    ("a FIFO as the report's records.jsonl", "reports", "records.jsonl", _fifo),
    ("a folder as driver.lock", "runs", "driver.lock", _folder),
    ("a folder as plan.json", "runs", "plan.json", _folder),
    ("records.damaged.jsonl hard-linked outside", "runs", "records.damaged.jsonl", _hard_link),
    ("records.jsonl hard-linked outside", "runs", "records.jsonl", _hard_link),
]


#: the commands that read or check a study folder without training
COMMANDS = (("--resume",), ("--dry-run",), ("--report-only",))
#: runs each command in turn, in one process, and prints their exit statuses
_SCRIPT = (
    "import sys; from rcl_study import run; "
    f"print([run.main([sys.argv[1], *a]) for a in {COMMANDS!r}])"
)


@pytest.mark.parametrize("name,where,what,make", SPECIAL_CASES, ids=[c[0] for c in SPECIAL_CASES])
def test_a_special_file_where_a_toolkit_file_belongs_is_refused_in_one_line(
    name, where, what, make, tmp_path
):
    runs, reports = tmp_path / "runs" / NAME, tmp_path / "reports" / NAME
    for folder in (runs, reports):
        folder.mkdir(parents=True)
        _old_marker(folder)
    (runs / "records.jsonl").write_text(json.dumps(RECORD) + "\n{cut\n")
    target = (runs if where == "runs" else reports) / what
    if target.exists():
        target.unlink()
    make(target)
    study = TINY_STUDY.write(tmp_path, SEC, name=NAME)
    before = tree(tmp_path)
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(study)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=180,  # a FIFO opened for reading would wait for ever
    )
    statuses = done.stdout.strip().splitlines()[-1]  # after --dry-run's trial list
    assert statuses == str([2] * len(COMMANDS)), done.stdout + done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == len(COMMANDS), done.stderr  # one line each, no traceback
    assert all(line.startswith("error: ") and what in line for line in err), err
    assert tree(tmp_path) == before  # nothing renamed, appended to or written
