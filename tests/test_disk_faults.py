"""A disk that cannot take a write: no space, a quota, a file-size limit, met anywhere.

Every such write ends as one :class:`~rcl_study.store.DiskError` line naming the path and what
the write needed; an append lands whole or not at all; a checkpoint that could not be written is
said in words; the commands end in one ``error:`` line, exit 2 (130 with ``--resume`` named when
trials were running). Faults are simulated (``os.write`` or ``fsync`` of the store raising) and
real: a file-size limit (``RLIMIT_FSIZE``) in a subprocess, a full tmpfs when run as root.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rcl_study import run, train
from rcl_study import store as files
from tests.conftest import TINY_STUDY
from tests.helpers.errors import full_disk, leftovers, one_error_line

ROOT = Path(__file__).resolve().parents[1]
WORDS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file size limit exceeded (ulimit -f)",
}
TWO_TRIALS = {
    "name": "disk",
    "study": {"kind": "ablation", "components": ["margin"], "seeds": [0]},
    "resources": {"executor": "local"},
    "train": {"epochs": 1, "max_steps_per_epoch": 1},
}


def failing_write(monkeypatch, code: int, after: int = 0, only: str = "") -> None:
    """The store's ``os.write`` writes ``after`` bytes, then fails with ``code``.

    ``only``: fail only on files whose path holds it (other writes are whole).
    """
    real = os.write
    budget = [after]

    def write(fd: int, data) -> int:
        if only and only not in os.readlink(f"/proc/self/fd/{fd}"):
            return real(fd, data)
        if budget[0] <= 0:
            raise OSError(code, os.strerror(code))
        n = real(fd, bytes(data[: budget[0]]))
        budget[0] -= n
        return n

    monkeypatch.setattr(files.os, "write", write)


# ------------------------------------------------------------------ the store's primitives


RECORD = '{"b": 2, "padding": "' + "x" * 100 + '"}'


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
@pytest.mark.parametrize("after", [0, 7])
def test_an_append_lands_whole_or_not_at_all(code, after, tmp_path, monkeypatch):
    target = tmp_path / "records.jsonl"
    target.write_bytes(b'{"a": 1}\n')
    failing_write(monkeypatch, code, after)
    with pytest.raises(OSError) as caught:
        files.append_line(target, RECORD)
    assert target.read_bytes() == b'{"a": 1}\n'  # cut back: no half line
    line = str(caught.value)
    assert "\n" not in line and str(target) in line and WORDS[code] in line, line
    assert f"it needed {len(RECORD) + 1} bytes" in line, line  # the line and its newline


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_a_checkpoint_not_written_says_so_in_words(code, tmp_path, monkeypatch):
    import torch

    from rcl_study.trainer.checkpoint import atomic_save

    (tmp_path / "checkpoint.pt").write_bytes(b"old")
    failing_write(monkeypatch, code, after=100)
    with pytest.raises(OSError) as caught:
        atomic_save({"w": torch.zeros(50_000)}, tmp_path / "checkpoint.pt")
    line = str(caught.value)
    assert line.startswith(f"checkpoint not written: {WORDS[code]}"), line
    assert str(tmp_path / "checkpoint.pt") in line and "or more" in line, line
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"old" and leftovers(tmp_path) == []


# ------------------------------------------------------------------- the commands, in process


def _records(folder: Path) -> list[dict]:
    path = folder / "records.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_full_disk_under_a_run_is_one_line_naming_resume(tmp_path, monkeypatch, capsys):
    study = TINY_STUDY.write(tmp_path, TWO_TRIALS)
    monkeypatch.chdir(tmp_path)
    full_disk(monkeypatch)
    assert run.main([str(study), "--no-progress"]) == 130
    line = one_error_line(capsys)
    assert WORDS[errno.ENOSPC] in line and "--resume" in line and str(study) in line, line


def test_a_checkpoint_on_a_full_disk_is_a_failed_trial_in_words(tmp_path, monkeypatch, capsys):
    study = TINY_STUDY.write(tmp_path, TWO_TRIALS)
    monkeypatch.chdir(tmp_path)
    failing_write(monkeypatch, errno.ENOSPC, only="checkpoint.pt")
    assert run.main([str(study), "--no-progress"]) == 1  # no trial succeeded
    assert "Traceback" not in capsys.readouterr().err
    reasons = [r["reason"] for r in _records(tmp_path / "runs" / "disk")]
    assert len(reasons) == 2, reasons
    for reason in reasons:
        assert reason.startswith("checkpoint not written: no space left on device ("), reason
        assert "checkpoint.pt" in reason, reason


def test_report_only_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    study = TINY_STUDY.write(tmp_path, TWO_TRIALS)
    monkeypatch.chdir(tmp_path)
    assert run.main([str(study), "--no-progress"]) == 0
    capsys.readouterr()
    real = _child(["-m", "rcl_study.run", str(study), "--report-only"], tmp_path, 16 * 1024)
    errors = [x for x in real.stderr.splitlines() if not x.startswith("note:")]
    assert real.returncode == 2 and "Traceback" not in real.stderr, real.stderr
    assert len(errors) == 1 and WORDS[errno.EFBIG] in errors[0], real.stderr
    assert str(tmp_path / "reports") in errors[0], errors[0]
    failing_write(monkeypatch, errno.ENOSPC, after=10)
    assert run.main([str(study), "--report-only"]) == 2
    line = one_error_line(capsys)
    assert WORDS[errno.ENOSPC] in line and str(tmp_path / "reports") in line, line
    assert leftovers(tmp_path / "reports") == []


def test_train_workdir_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    study = TINY_STUDY.write(tmp_path, TWO_TRIALS)
    monkeypatch.chdir(tmp_path)
    failing_write(monkeypatch, errno.EDQUOT, after=1000, only="checkpoint.pt")
    assert train.main([str(study), "--workdir", str(tmp_path / "work")]) == 2
    line = one_error_line(capsys)
    assert "checkpoint not written: disk quota exceeded" in line, line
    assert str(tmp_path / "work" / "checkpoint.pt") in line, line


# ------------------------------------------------------------------ real limits, in a subprocess


def _limited(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def _child(args: list[str], cwd: Path, limit: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_limited(limit) if limit else None,
    )


def test_an_append_past_a_real_file_size_limit_leaves_no_cut_line(tmp_path):
    target = tmp_path / "records.jsonl"
    target.write_bytes(b"x" * 990 + b"\n")
    code = textwrap.dedent(
        f"""
        from rcl_study.store import append_line
        try:
            append_line({str(target)!r}, "y" * 100)
        except OSError as err:
            print(err)
        """
    )
    done = _child(["-c", code], tmp_path, limit=1024)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert target.read_bytes() == b"x" * 990 + b"\n"  # no cut line left behind
    assert WORDS[errno.EFBIG] in done.stdout, done.stdout


def _tmpfs(at: Path, size: str) -> bool:
    at.mkdir()
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(at)])
    return done.returncode == 0


@pytest.mark.parametrize("limit", ["file size limit", "full tmpfs"])
def test_train_checkpoint_past_a_real_limit_is_one_line(limit, tmp_path):
    study = TINY_STUDY.write(tmp_path, TWO_TRIALS)
    work, size = tmp_path / "work", None
    if limit == "full tmpfs":
        if not _tmpfs(work, "32k"):
            pytest.skip("mounting a tmpfs needs root")
    else:
        size = 32 * 1024  # the checkpoint is about 75 kB
    try:
        done = _child(["-m", "rcl_study.train", str(study), "--workdir", str(work)], tmp_path, size)
        left = leftovers(work)
    finally:
        if limit == "full tmpfs":
            subprocess.run(["umount", str(work)], check=True)
    errors = [x for x in done.stderr.splitlines() if not x.startswith("[")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and errors[0].startswith("error: "), done.stderr
    words = WORDS[errno.EFBIG if size else errno.ENOSPC]
    assert f"checkpoint not written: {words}" in errors[0], errors[0]
    assert str(work / "checkpoint.pt") in errors[0] and left == []
