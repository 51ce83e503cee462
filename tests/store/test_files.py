"""The one primitive of :mod:`rcl_study.store`: no link followed, plain files, bounded reads.

Rows of LINK_CASES plant a symbolic link inside a study folder *after* any check a command makes
at its start, right before a write or append: the operation fails (``ELOOP``, naming the link)
and the link's target outside is exactly as it was. Rows of SPECIAL_CASES put a FIFO, a folder,
a device or a hard-linked file where a toolkit file belongs: every read, append and replace
refuses it (:class:`~rcl_study.store.FolderError`, one line naming the path) at once, and the
file, or the one it is linked to, is unchanged.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from rcl_study import run, store
from rcl_study.store import FolderError
from rcl_study.study import local
from rcl_study.trials.folder import StudyFolder
from tests.conftest import TINY_STUDY

files = store  # the writers, as the cases below name them


def study_folder(tmp: Path) -> Path:
    root = tmp / "runs" / "s"
    root.mkdir(parents=True)
    (root / ".rcl_study").write_text(json.dumps({"study": "s"}))
    return root


# ------------------------------------------------------------- links planted at write time


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (files with their bytes, folders as None)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in folder.rglob("*")
    }


def plant(at: Path, to: Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(to)


class LinkCase(NamedTuple):
    """``act(root, outside)`` plants the link and then writes; ``link``: the name in the error."""

    name: str
    act: Callable[[Path, Path], None]
    link: str


LINK_CASES = [
    LinkCase(
        "trials/ to a folder outside, then a trial's config",
        lambda r, o: (
            plant(r / "trials", o),
            files.atomic_write_text(r / "trials" / "t" / "config.json", "{}"),
        ),
        "trials",
    ),
    LinkCase(
        "a trial's folder to a folder outside, then its result",
        lambda r, o: (
            plant(r / "trials" / "t", o),
            files.atomic_write_text(r / "trials" / "t" / "result.json", "{}"),
        ),
        "t",
    ),
    LinkCase(
        "plan.json itself to a file outside, then the plan",
        lambda r, o: (
            plant(r / "plan.json", o / "f"),
            files.atomic_write_text(r / "plan.json", "{}"),
        ),
        "plan.json",
    ),
    LinkCase(
        "a subfolder to a folder outside, then an append",
        lambda r, o: (plant(r / "sub", o), files.append_line(r / "sub" / "records.jsonl", "{}")),
        "sub",
    ),
    LinkCase(
        "tensorboard/ to a folder outside, then a checkpoint-like write",
        lambda r, o: (
            plant(r / "tensorboard", o),
            files.atomic_write(r / "tensorboard" / "x" / "ev", lambda f: f.write(b"e")),
        ),
        "tensorboard",
    ),
]


@pytest.mark.parametrize("case", LINK_CASES, ids=[c.name for c in LINK_CASES])
def test_a_link_planted_before_a_write_is_never_followed(case, tmp_path):
    root = study_folder(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("keep\n")
    with pytest.raises(OSError) as err:
        case.act(root, outside)
    assert err.value.errno == errno.ELOOP, err.value
    assert Path(err.value.filename).name == case.link
    after = snapshot(outside)
    assert after.get("f") == b"keep\n"
    assert set(after) <= {"f", "t", "t/config.json"}  # nothing created outside
    assert all(v is None or v in (b"keep\n", b"{}") for v in after.values()), after


def test_a_link_planted_during_a_run_is_exit_2_naming_it(tmp_path, monkeypatch, capsys):
    from rcl_study import run

    outside = tmp_path / "outside"
    outside.mkdir()

    def plant_then_write(self, cfg, units, folder, sink) -> None:
        plant(folder.root / "trials", outside)  # after every check at the start
        files.atomic_write_text(folder.trial_dir("t__s0") / "config.json", "{}")

    monkeypatch.setattr(local.LocalExecutor, "run", plant_then_write)
    monkeypatch.chdir(tmp_path)
    study = TINY_STUDY.write(
        tmp_path, name="s", resources={"executor": "local"}, study={"seeds": [0]}
    )
    assert run.main([str(study)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "symbolic link" in err and "trials" in err, err
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_inside_a_write_waits_for_the_write(tmp_path, signum):
    # torch.save turned a Ctrl-C inside its zip writer into a RuntimeError traceback (seen with
    # SIGTERM to `rcl_study.train` during a checkpoint); the signal now waits for the write
    target = tmp_path / "f.bin"
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as run.py: SIGTERM is Ctrl-C
    try:

        def write(f):
            f.write(b"a" * 1000)
            signal.raise_signal(signum)
            f.write(b"b" * 1000)

        with pytest.raises(KeyboardInterrupt):
            files.atomic_write(target, write)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert target.read_bytes() == b"a" * 1000 + b"b" * 1000  # whole, then the interrupt
    assert not list(tmp_path.glob(".*.tmp"))


def _fifo(at: Path, outside: Path) -> None:
    os.mkfifo(at)


def _folder(at: Path, outside: Path) -> None:
    at.mkdir()


def _hard_link(at: Path, outside: Path) -> None:
    os.link(outside, at)


def _device(at: Path, outside: Path) -> None:
    at.symlink_to("/dev/zero")  # no mknod without privileges: a link to one is refused as a link


#: (name, how the special file is made at a path, given a file outside the folder)
SPECIAL_CASES = [
    ("a FIFO", _fifo),
    ("a folder", _folder),
    ("a hard link to a file outside the folder", _hard_link),
    ("a link to a device", _device),
]
#: (name, the operation on a toolkit path)
OPERATIONS = [
    ("append a line", lambda p: store.append_line(p, "{}")),
    ("read it", lambda p: store.read_bytes(p, 1 << 20)),
    ("read its lines", lambda p: list(store.read_lines(p, 1 << 20))),
    ("open it to read", lambda p: store.open_read(p).close()),
    ("rename it", lambda p: store.rename_file(p, "other.jsonl")),
    ("remove it", lambda p: store.remove_file(p)),
]


@pytest.mark.parametrize("op_name,op", OPERATIONS, ids=[o[0] for o in OPERATIONS])
@pytest.mark.parametrize("name,make", SPECIAL_CASES, ids=[c[0] for c in SPECIAL_CASES])
def test_a_special_file_is_refused_at_once_and_left_as_it_was(name, make, op_name, op, tmp_path):
    root = study_folder(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    target = root / "records.damaged.jsonl"
    make(target, outside)
    before = os.lstat(target)
    started = time.monotonic()
    with pytest.raises(FolderError) as err:
        op(target)
    assert time.monotonic() - started < 5  # never waits on a FIFO
    assert str(target) in str(err.value) and "\n" not in str(err.value)
    assert outside.read_text() == "keep\n"  # not appended to through the link
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode, after.st_size) == (
        before.st_ino,
        before.st_mode,
        before.st_size,
    )
    assert not (root / "other.jsonl").exists()


def test_moving_damaged_lines_into_a_hard_linked_side_file_is_refused(tmp_path):
    """The side file of damaged lines hard-linked to a file outside the study folder: the append
    is refused, the outside file unchanged, records.jsonl left as it was."""
    root = study_folder(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    os.link(outside, root / "records.damaged.jsonl")
    records = json.dumps({"trial_id": "a", "status": "ok"}) + "\n{cut\n"
    (root / "records.jsonl").write_text(records)
    with pytest.raises(FolderError, match="hard links"):
        StudyFolder(root).move_damaged_lines()
    assert outside.read_text() == "keep\n"
    assert (root / "records.jsonl").read_text() == records


def test_a_replace_refuses_a_folder_at_its_target_and_leaves_no_temporary(tmp_path):
    root = study_folder(tmp_path)
    (root / "plan.json").mkdir()
    (root / "plan.json" / "x").write_text("the user's")
    with pytest.raises(FolderError, match="is a folder"):
        store.atomic_write_text(root / "plan.json", "{}")
    assert (root / "plan.json" / "x").read_text() == "the user's"
    assert not list(root.glob(".*.tmp"))


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.json"
    target.write_text("old")

    def write(f):
        f.write(b"half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        store.atomic_write(target, write)
    assert target.read_text() == "old" and not list(tmp_path.glob(".*.tmp"))


def test_an_append_after_a_cut_line_starts_a_line_of_its_own(tmp_path):
    target = tmp_path / "records.jsonl"
    target.write_bytes(b'{"a": 1}\n{"cut')
    store.append_line(target, '{"b": 2}')
    assert target.read_bytes() == b'{"a": 1}\n{"cut\n{"b": 2}\n'


def _sparse_records(root: Path) -> Path:
    path = root / "records.jsonl"
    path.write_text(json.dumps({"trial_id": "a", "status": "ok"}) + "\n")
    os.truncate(path, 8 * 1024**3)  # 8 GiB, sparse: no disk used
    return path


def test_a_sparse_8_gib_records_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    root = study_folder(tmp_path)
    path = _sparse_records(root)
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    with pytest.raises(FolderError, match="larger than") as err:
        StudyFolder(root).records()
    assert str(path) in str(err.value) and not reads


def test_report_only_refuses_a_sparse_8_gib_records_file_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs" / "s"
    runs.mkdir(parents=True)
    path = _sparse_records(runs)
    study = TINY_STUDY.write(tmp_path, name="s", resources={"executor": "local"})
    assert run.main([str(study), "--report-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "larger than" in err[0], err
    assert path.stat().st_size == 8 * 1024**3


def test_a_link_outside_a_study_folder_is_the_users_own(tmp_path):
    """Above the study folder links are followed (``~/runs`` on a scratch disk)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (tmp_path / "runs").symlink_to(scratch)
    store.atomic_write_text(tmp_path / "runs" / "s" / "plan.json", "{}")
    assert (scratch / "s" / "plan.json").read_text() == "{}"
