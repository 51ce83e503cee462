"""``--overwrite`` deletes exactly what the toolkit wrote (issue 23, class 2).

Each study folder starts as a run leaves it: the toolkit's writers put ``records.jsonl``,
``plan.json``, a trial's ``config.json``, ``result.json`` and ``checkpoint.pt`` in the records
folder and ``index.md`` in the report folder (the marker's manifest records each). A row of
OVERWRITE_CASES then changes the folders as a person might (a file added with a toolkit-like name,
a toolkit file edited, a hand-edited manifest...) and names every file that must survive
``--overwrite``: exactly those survive, and one line says how many were kept and where.

Rows of ADOPTION_CASES are folders a study may be pointed at: used only when new, empty, or
marked by a valid marker naming the study. Rows of OLD_CASES are folders marked before the
manifest existed: ``--overwrite`` is refused there (exit 2, one line) and deletes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from rcl_study import run
from rcl_study.config import ConfigError
from rcl_study.files import atomic_write, atomic_write_text
from rcl_study.study import local
from rcl_study.study.checks import check_folders
from rcl_study.study.runner import prepare_folder
from rcl_study.trials.folder import StudyFolder
from tests.conftest import TINY_STUDY

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
BOOKKEEPING = {".rcl_study", ".rcl_study.files"}


@pytest.fixture
def no_training(monkeypatch):
    """The local executor trains nothing: these tests are about folders."""
    monkeypatch.setattr(local.LocalExecutor, "run", lambda *a, **k: None)


def files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative, the marker and manifest left out)."""
    got = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(f for f in got if f not in BOOKKEEPING)


def a_run(tmp: Path) -> tuple[Path, Path]:
    """A records folder and a report folder as a run of the study leaves them."""
    cfg = TINY_STUDY.parse(SEC, name=NAME)
    out = prepare_folder(cfg, overwrite=False)
    folder = StudyFolder(out)
    folder.append(RECORD)
    folder.write_plan([{"trial_id": "t__s0"}], {"study": NAME})
    trial = folder.trial_dir("t__s0")
    atomic_write_text(trial / "config.json", json.dumps({"config": {}}))
    atomic_write_text(trial / "result.json", json.dumps({"status": "ok"}))
    atomic_write(trial / "checkpoint.pt", lambda f: f.write(b"\x00" * 64))  # no digest: mtime
    rep = Path("reports") / NAME
    from rcl_study.trials.ownership import claim

    claim(rep, NAME)
    atomic_write_text(rep / "index.md", "# old report\n")
    return out, rep


def _touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _same_size_edit(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-2] + b"0}" if data.endswith(b"}") else data[::-1])


def _manifest_line(out: Path, entry: dict) -> None:
    with (out / ".rcl_study.files").open("a") as f:
        f.write(json.dumps(entry) + "\n")


class OverwriteCase(NamedTuple):
    """``change(out, rep, outside)`` edits the folders; ``kept``: what must survive, by folder."""

    name: str
    change: Callable[[Path, Path, Path], None]
    kept_out: tuple[str, ...] = ()
    kept_rep: tuple[str, ...] = ()


OVERWRITE_CASES = [
    OverwriteCase(
        "a backup with a toolkit-like name",
        lambda o, r, x: (o / "records.jsonl.bak").write_text("mine\n"),
        kept_out=("records.jsonl.bak",),
    ),
    OverwriteCase(
        "a note in trials/",
        lambda o, r, x: (o / "trials" / "note.txt").write_text("mine\n"),
        kept_out=("trials/note.txt",),
    ),
    OverwriteCase(
        "a note inside a trial's folder",
        lambda o, r, x: (o / "trials" / "t__s0" / "why.md").write_text("mine\n"),
        kept_out=("trials/t__s0/why.md",),
    ),
    OverwriteCase(
        "a figure the user added to the report's figures/",
        lambda o, r, x: ((r / "figures").mkdir(), (r / "figures" / "mine.png").write_bytes(b"p")),
        kept_rep=("figures/mine.png",),
    ),
    OverwriteCase(
        "a toolkit file the user edited (other size)",
        lambda o, r, x: (o / "trials" / "t__s0" / "result.json").write_text('{"mine": 1}\n'),
        kept_out=("trials/t__s0/result.json",),
    ),
    OverwriteCase(
        "a toolkit file edited to the same size",
        lambda o, r, x: _same_size_edit(o / "trials" / "t__s0" / "config.json"),
        kept_out=("trials/t__s0/config.json",),
    ),
    OverwriteCase(
        "a checkpoint touched later (no digest: its time)",
        lambda o, r, x: _touch_later(o / "trials" / "t__s0" / "checkpoint.pt"),
        kept_out=("trials/t__s0/checkpoint.pt",),
    ),
    OverwriteCase(
        "the report edited by hand",
        lambda o, r, x: (r / "index.md").write_text("# my notes\n"),
        kept_rep=("index.md",),
    ),
    OverwriteCase(
        "a file the toolkit wrote replaced by a folder of the user's",
        lambda o, r, x: (
            (o / "plan.json").unlink(),
            (o / "plan.json").mkdir(),
            (o / "plan.json" / "x").write_text("mine"),
        ),
        kept_out=("plan.json/x",),
    ),
    OverwriteCase(
        "a trial's folder replaced by a file of the user's",
        lambda o, r, x: (
            shutil.rmtree(o / "trials" / "t__s0"),
            (o / "trials" / "t__s0").write_text("mine"),
        ),
        kept_out=("trials/t__s0",),
    ),
    OverwriteCase(
        "a hand-made manifest line climbing out (..)",
        lambda o, r, x: _manifest_line(o, {"path": "../../outside.txt", "size": 4, "mtime_ns": 0}),
    ),
    OverwriteCase(
        "a hand-made manifest line with an absolute path",
        lambda o, r, x: _manifest_line(o, {"path": str(x), "size": 4, "mtime_ns": 0}),
    ),
    OverwriteCase(
        "a crash's temporary file beside a trial's files: goes",
        lambda o, r, x: (o / "trials" / "t__s0" / ".result.json.123.deadbeef.tmp").write_text("{"),
    ),
    OverwriteCase(
        "a temporary-file name in a folder of the user's: stays",
        lambda o, r, x: (
            (o / "mine").mkdir(),
            (o / "mine" / ".x.1.deadbeef.tmp").write_text("mine"),
        ),
        kept_out=("mine/.x.1.deadbeef.tmp",),
    ),
    OverwriteCase("nothing changed: everything the toolkit wrote goes", lambda o, r, x: None),
]


@pytest.mark.parametrize("case", OVERWRITE_CASES, ids=[c.name for c in OVERWRITE_CASES])
def test_overwrite_deletes_exactly_what_the_toolkit_wrote(
    case, tmp_path, monkeypatch, capsys, no_training
):
    monkeypatch.chdir(tmp_path)
    out, rep = a_run(tmp_path)
    assert files(out) == TOOLKIT and files(rep) == REPORT  # the run as a run leaves it
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    case.change(out, rep, outside)
    capsys.readouterr()
    cfg = TINY_STUDY.parse(SEC, name=NAME)
    prepare_folder(cfg, overwrite=True)
    assert files(out) == sorted(case.kept_out)
    assert files(rep) == sorted(case.kept_rep)
    assert outside.read_text() == "keep"
    assert not (out / "trials" / "t__s0").exists() or case.kept_out  # emptied folders go
    err = capsys.readouterr().err.strip()
    kept = [*case.kept_out, *case.kept_rep]
    if kept:
        assert len(err.splitlines()) == 1, err
        assert f"kept {len(kept)} file(s)" in err and all(k in err for k in kept), err
    else:
        assert err == ""


def test_a_folder_the_user_made_inside_stays_even_empty(tmp_path, monkeypatch, no_training):
    monkeypatch.chdir(tmp_path)
    out, _ = a_run(tmp_path)
    (out / "trials" / "mine").mkdir()
    prepare_folder(TINY_STUDY.parse(SEC, name=NAME), overwrite=True)
    assert (out / "trials" / "mine").is_dir() and not (out / "trials" / "t__s0").exists()


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
]


@pytest.mark.parametrize("name,make,usable", ADOPTION_CASES, ids=[c[0] for c in ADOPTION_CASES])
def test_a_folder_is_used_only_when_new_empty_or_validly_marked(
    name, make, usable, tmp_path, monkeypatch, capsys, no_training
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / NAME
    make(out)
    before = files(out) if out.exists() else None
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
    assert files(out) == before  # nothing adopted, nothing deleted


def _old(out: Path, rep: Path) -> None:
    (out / ".rcl_study").write_text(json.dumps({"study": NAME}) + "\n")


def _old_report(out: Path, rep: Path) -> None:
    (rep / ".rcl_study").write_text(json.dumps({"study": NAME}) + "\n")


def _old_no_manifest_file(out: Path, rep: Path) -> None:
    _old(out, rep)
    (out / ".rcl_study.files").unlink()


#: folders from before the manifest: (name, how the marker is made old)
OLD_CASES = [
    ("records folder marked without a manifest", _old),
    ("report folder marked without a manifest", _old_report),
    ("old marker, manifest file gone too", _old_no_manifest_file),
]


@pytest.mark.parametrize("name,make_old", OLD_CASES, ids=[c[0] for c in OLD_CASES])
def test_overwrite_of_a_folder_from_before_the_manifest_is_refused(
    name, make_old, tmp_path, monkeypatch, capsys, no_training
):
    monkeypatch.chdir(tmp_path)
    out, rep = a_run(tmp_path)
    make_old(out, rep)
    (out / "trials" / "note.txt").write_text("mine\n")
    before = (files(out), files(rep))
    study = TINY_STUDY.write(tmp_path, SEC, name=NAME)
    assert run.main([str(study), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "before rcl_study recorded" in err, err
    assert (files(out), files(rep)) == before


class Writes:
    """An executor that trains nothing and writes as the libraries a run drives do."""

    def __init__(self, write: Callable[[Path], None]) -> None:
        self.write = write

    def start(self, study) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, study, units, folder: StudyFolder, sink) -> None:
        self.write(folder.root)


def _old_user_file(o: Path) -> None:
    (o / "tensorboard").mkdir()
    (o / "tensorboard" / "mine.txt").write_text("mine")
    os.utime(o / "tensorboard" / "mine.txt", ns=(0, 0))  # from before the run


def _mkfile(o: Path, rel: str) -> None:
    (o / rel).parent.mkdir(parents=True, exist_ok=True)
    (o / rel).write_bytes(b"written by a library")


#: (name, what is written into the records folder during the run, what survives --overwrite)
LIBRARY_CASES = [
    ("TensorBoard event files", lambda o: _mkfile(o, "tensorboard/t__s0/events.out"), []),
    ("MLflow's store", lambda o: _mkfile(o, "mlflow.db"), []),
    ("Ray's storage", lambda o: _mkfile(o, "ray/exp/trial/result.json"), []),
    ("Optuna's journal", lambda o: _mkfile(o, "optuna.journal"), []),
    (
        "a file of the user's in tensorboard/ from before the run",
        _old_user_file,
        ["tensorboard/mine.txt"],
    ),
    (
        "a file under a name no library writes",
        lambda o: _mkfile(o, "scratch/notes.txt"),
        ["scratch/notes.txt"],
    ),
]


@pytest.mark.parametrize("name,write,kept", LIBRARY_CASES, ids=[c[0] for c in LIBRARY_CASES])
def test_what_the_libraries_wrote_during_a_run_goes_with_overwrite(
    name, write, kept, tmp_path, monkeypatch, capsys
):
    from rcl_study.study.runner import run_study

    monkeypatch.chdir(tmp_path)
    cfg = TINY_STUDY.parse(SEC, name=NAME)
    run_study(cfg, executor=Writes(write), trackers=[], progress=False)
    run_study(cfg, overwrite=True, executor=Writes(lambda o: None), trackers=[], progress=False)
    out = tmp_path / "runs" / NAME
    assert [f for f in files(out) if f != "plan.json"] == kept
    lines = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in lines if "--overwrite kept" in line]) == (1 if kept else 0)


def _tar(fmt: int) -> Callable[[Path, Path], None]:
    def copy(src: Path, dst: Path) -> None:
        import tarfile

        archive = src.parent / "study.tar"
        with tarfile.open(archive, "w", format=fmt) as tar:
            tar.add(src, arcname=dst.name)
        with tarfile.open(archive) as tar:
            tar.extractall(dst.parent, filter="tar")

    return copy


def _copytree(keep_times: bool) -> Callable[[Path, Path], None]:
    import shutil

    fn = shutil.copy2 if keep_times else shutil.copyfile
    return lambda src, dst: shutil.copytree(src, dst, copy_function=fn)


#: (name, how the study folders travel, whether --overwrite then deletes all the toolkit wrote)
TRAVEL_CASES = [
    ("a GNU tar archive (whole seconds)", "gnu", True),
    ("a ustar archive (whole seconds)", "ustar", True),
    ("a pax archive", "pax", True),
    ("a copy that keeps times", "copy2", True),
    ("a copy that drops times: records.jsonl unproven, refused", "copyfile", False),
]


@pytest.mark.parametrize("name,how,deleted", TRAVEL_CASES, ids=[c[0] for c in TRAVEL_CASES])
def test_a_study_folder_handed_on_is_still_known_by_its_manifest(
    name, how, deleted, tmp_path, monkeypatch, no_training
):
    import tarfile

    copy = {
        "gnu": _tar(tarfile.GNU_FORMAT),
        "ustar": _tar(tarfile.USTAR_FORMAT),
        "pax": _tar(tarfile.PAX_FORMAT),
        "copy2": _copytree(True),
        "copyfile": _copytree(False),
    }[how]
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    out, rep = a_run(tmp_path / "a")
    there = tmp_path / "b"
    (there / "runs").mkdir(parents=True)
    (there / "reports").mkdir()
    copy(out.resolve(), there / "runs" / NAME)
    copy(rep.resolve(), there / "reports" / NAME)
    monkeypatch.chdir(there)
    cfg = TINY_STUDY.parse(SEC, name=NAME)
    if not deleted:
        with pytest.raises(ConfigError, match="changed since the toolkit wrote it"):
            prepare_folder(cfg, overwrite=True)
        assert files(there / "runs" / NAME) == TOOLKIT  # nothing deleted
        return
    prepare_folder(cfg, overwrite=True)
    assert files(there / "runs" / NAME) == [] and files(there / "reports" / NAME) == []
