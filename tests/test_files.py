"""The one writer and appender: the manifest they keep, and no link followed at write time.

Rows of RECORD_CASES write through :mod:`rcl_study.files` in a marked study folder (or outside
one) and name the manifest entries that must follow, checked against the files as they are on
disk (size, SHA-256 of the bytes, modification time). Rows of LINK_CASES plant a symbolic link
inside a study folder *after* any check a command makes at its start, right before a write,
append or delete: the operation fails (``ELOOP``, naming the link) and the link's target outside
is exactly as it was (issue 23, class 1 at the time of the write).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from rcl_study import files
from rcl_study.study import local
from rcl_study.trials import ownership
from rcl_study.trials.folder import StudyFolder
from tests.conftest import TINY_STUDY

MANIFEST = ".rcl_study.files"


def study_folder(tmp: Path) -> Path:
    root = tmp / "runs" / "s"
    root.mkdir(parents=True)
    (root / ".rcl_study").write_text(json.dumps({"study": "s", "manifest": MANIFEST}))
    return root


def manifest(root: Path) -> dict[str, dict]:
    """The last manifest line of each path (read here, independently of the toolkit)."""
    path = root / MANIFEST
    if not path.exists():
        return {}
    return {e["path"]: e for e in map(json.loads, path.read_text().splitlines())}


def on_disk(root: Path, rel: str, digest: bool) -> dict:
    st = (root / rel).stat()
    entry = {"path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if digest:
        entry["sha256"] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    return entry


class RecordCase(NamedTuple):
    """``write(root)`` writes through the toolkit; ``expect``: (relative path, digest?) pairs."""

    name: str
    write: Callable[[Path], None]
    expect: tuple[tuple[str, bool], ...]


def _twice(root: Path) -> None:
    files.atomic_write_text(root / "plan.json", "{}")
    files.atomic_write_text(root / "plan.json", '{"trials": []}')


def _append_two(root: Path) -> None:
    files.append_line(root / "records.jsonl", '{"a": 1}')
    files.append_line(root / "records.jsonl", '{"b": 2}')


def _set_aside(root: Path) -> None:
    (root / "records.jsonl").write_text('{"trial_id": "a", "status": "ok"}\n{cut\n')
    assert StudyFolder(root).set_aside_damaged() == 1


RECORD_CASES = [
    RecordCase(
        "text at the top",
        lambda r: files.atomic_write_text(r / "plan.json", "{}"),
        (("plan.json", True),),
    ),
    RecordCase(
        "bytes in new subfolders",
        lambda r: files.atomic_write_bytes(r / "trials" / "t" / "x.bin", b"\x00\x01"),
        (("trials/t/x.bin", True),),
    ),
    RecordCase(
        "a callback writer (a checkpoint): size and time, no digest",
        lambda r: files.atomic_write(r / "trials" / "c.pt", lambda f: f.write(b"ckpt")),
        (("trials/c.pt", False),),
    ),
    RecordCase("written twice: the last write counts", _twice, (("plan.json", True),)),
    RecordCase("appended twice: the size after the last", _append_two, (("records.jsonl", False),)),
    RecordCase(
        "damaged lines set aside: the side file appended, the records rewritten",
        _set_aside,
        (("records.damaged.jsonl", False), ("records.jsonl", True)),
    ),
    RecordCase(
        "the marker itself is never listed",
        lambda r: files.atomic_write_text(r / ".rcl_study", json.dumps({"study": "s"})),
        (),
    ),
]


@pytest.mark.parametrize("case", RECORD_CASES, ids=[c.name for c in RECORD_CASES])
def test_every_write_in_a_study_folder_is_recorded(case, tmp_path):
    root = study_folder(tmp_path)
    case.write(root)
    assert manifest(root) == {rel: on_disk(root, rel, digest) for rel, digest in case.expect}


OUTSIDE_CASES = [
    ("no marker anywhere", lambda t: t / "plain"),
    ("a marker that is a link marks nothing", lambda t: t / "linked"),
    ("a marker that is a folder marks nothing", lambda t: t / "dirmark"),
]


@pytest.mark.parametrize("name,where", OUTSIDE_CASES, ids=[c[0] for c in OUTSIDE_CASES])
def test_no_manifest_outside_a_study_folder(name, where, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "real-marker").write_text(json.dumps({"study": "s"}))
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / ".rcl_study").symlink_to(tmp_path / "real-marker")
    (tmp_path / "dirmark" / ".rcl_study").mkdir(parents=True)
    folder = where(tmp_path)
    files.atomic_write_text(folder / "a" / "plan.json", "{}")
    files.append_line(folder / "records.jsonl", "{}")
    assert not list(tmp_path.rglob(MANIFEST))


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


def _clear_through_link(root: Path, out: Path) -> None:
    files.atomic_write_text(root / "trials" / "t" / "config.json", "{}")
    (out / "t").mkdir()
    (out / "t" / "config.json").write_text("{}")  # the same bytes: only the link differs
    os.unlink(root / "trials" / "t" / "config.json")
    os.rmdir(root / "trials" / "t")
    os.rmdir(root / "trials")
    plant(root / "trials", out)
    ownership.clear(root, "s", "records")


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
    LinkCase(
        "--overwrite's delete: trials/ swapped for a link to a same-content folder",
        _clear_through_link,
        "trials",
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


def test_compacting_keeps_the_entry_of_a_file_rewritten_with_the_same_bytes(tmp_path):
    """A rebuilt report rewrites its files with the same bytes: its manifest stays as it was (a
    committed report's manifest is not dirtied by a rebuild), and still proves every file."""
    root = study_folder(tmp_path)
    files.atomic_write_text(root / "index.md", "same")
    files.atomic_write_text(root / "stats.json", "one")
    first = manifest(root)
    os.utime(root / "index.md", ns=(1, 1))  # so that a rewrite cannot keep the same time
    files.atomic_write_text(root / "index.md", "same")
    files.atomic_write_text(root / "stats.json", "two")
    files.compact_manifest(root)
    now = manifest(root)
    assert now["index.md"] == first["index.md"]  # the same bytes: the first entry kept
    assert now["stats.json"] == on_disk(root, "stats.json", True)  # changed: the new one
    assert len((root / MANIFEST).read_text().splitlines()) == 2
    for rel in ("index.md", "stats.json"):  # each still the toolkit's: --overwrite deletes it
        st = os.lstat(root / rel)
        assert files.matches(now[rel], st, (root / rel).read_bytes)


def test_compacting_keeps_the_latest_entry_of_a_file_recorded_by_time(tmp_path):
    """Entries without a digest prove a file by its time: the latest one must stay."""
    root = study_folder(tmp_path)
    (root / "figures").mkdir()
    (root / "figures" / "a.png").write_bytes(b"png")
    files.record_tree(root, ("figures",), 0)
    os.utime(root / "figures" / "a.png", ns=(10**18, 10**18))
    files.record_tree(root, ("figures",), 0)
    files.compact_manifest(root)
    assert manifest(root)["figures/a.png"]["mtime_ns"] == 10**18


def test_record_tree_can_record_digests(tmp_path):
    root = study_folder(tmp_path)
    (root / "figures").mkdir()
    (root / "figures" / "a.svg").write_bytes(b"<svg/>")
    assert files.record_tree(root, ("figures",), 0, digest=True) == 1
    assert manifest(root)["figures/a.svg"] == on_disk(root, "figures/a.svg", True)


def test_compacting_a_digest_entry_then_a_time_only_one_keeps_the_later(tmp_path):
    """A time-only line after a digest line of the same size (a hand edit, an older writer)
    proves nothing about the bytes: the later line wins, and nothing crashes (review)."""
    root = study_folder(tmp_path)
    files.atomic_write_text(root / "index.md", "same")
    later = {"path": "index.md", "size": 4, "mtime_ns": 5}
    with open(root / MANIFEST, "a") as f:
        f.write(json.dumps(later) + "\n")
    assert files.compact_manifest(root) == 1
    assert manifest(root)["index.md"] == later


def test_a_file_changed_while_its_digest_is_taken_is_left_unlisted(tmp_path, monkeypatch):
    """Its size and time from one moment and its digest from another would prove the wrong bytes:
    --overwrite could then delete what the user wrote there (review)."""
    root = study_folder(tmp_path)
    (root / "figures").mkdir()
    target = root / "figures" / "a.png"
    target.write_bytes(b"png")
    real = files.hashlib.sha256

    class Meddling:
        def __init__(self) -> None:
            self.h, self.meddled = real(), False

        def update(self, block: bytes) -> None:
            if not self.meddled:  # the same file, written to while it is read (once)
                self.meddled = True
                with open(target, "ab") as f:
                    f.write(b"USER")
            self.h.update(block)

        def hexdigest(self) -> str:
            return self.h.hexdigest()

    monkeypatch.setattr(files.hashlib, "sha256", Meddling)
    assert files.record_tree(root, ("figures",), 0, digest=True) == 0
    assert "figures/a.png" not in manifest(root)
