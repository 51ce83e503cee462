"""Every command's expected errors are exit 2 with one line (issue 23, class 8).

Rows of EXPORT_CASES and TRAIN_CASES break ``python -m rcl_study.data export`` and
``python -m rcl_study.train`` the ways a user's machine does (missing data, an output under a
file, a full disk): exit 2, one line starting ``error:``, no traceback, no temporary file left.
SIGTERM stops a study as Ctrl-C does: 130, finished trials kept, the --resume command printed.
"""

from __future__ import annotations

import errno
import signal
from pathlib import Path

import pytest

from rcl_study import store as files
from rcl_study import train
from rcl_study.data import __main__ as data_cli
from tests.conftest import TINY_STUDY


def full_disk(monkeypatch) -> None:
    """Every fsync of the atomic writer fails as on a full disk."""

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", fsync)


def one_error_line(capsys) -> str:
    """The one error line (a trial's per-epoch progress lines may come before it)."""
    err = capsys.readouterr().err.strip()
    errors = [x for x in err.splitlines() if not x.startswith("[")]
    assert len(errors) == 1 and errors[0].startswith("error: "), err
    assert "Traceback" not in err
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


EXPORT_CASES = ["out under a file", "full disk", "out is a folder"]


@pytest.mark.parametrize("case", EXPORT_CASES)
def test_export_errors_are_one_line(case, tmp_path, monkeypatch, capsys):
    out = tmp_path / "d.npz"
    if case == "out under a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "d.npz"
    elif case == "full disk":
        full_disk(monkeypatch)
    else:
        out.mkdir()
    argv = ["export", "--dataset", "digits_lt", "--imbalance-ratio", "10", "--out", str(out)]
    assert data_cli.main(argv) == 2
    one_error_line(capsys)
    assert leftovers(tmp_path) == []
    assert case == "out is a folder" or not out.is_file()


TRAIN_CASES = ["missing data", "out under a file", "full disk for --out"]


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train_errors_are_one_line(case, tmp_path, monkeypatch, capsys):
    data = (
        {"dataset": "arrays", "path": str(tmp_path / "nowhere.npz")}
        if case == "missing data"
        else {}
    )
    study = TINY_STUDY.write(
        tmp_path, name="one", data=data, train={"epochs": 1, "max_steps_per_epoch": 1}
    )
    out = tmp_path / "result.json"
    if case == "out under a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "result.json"
    elif case == "full disk for --out":
        full_disk(monkeypatch)
    monkeypatch.chdir(tmp_path)
    argv = [str(study), "--workdir", str(tmp_path / "work"), "--out", str(out)]
    assert train.main(argv) == 2
    err = one_error_line(capsys)
    assert (str(study) in err) or (str(out) in err), err
    assert leftovers(tmp_path) == []


def test_sigterm_stops_a_study_like_ctrl_c(tmp_path, cli):
    path = TINY_STUDY.write(
        tmp_path,
        train={"epochs": 3, "max_steps_per_epoch": 4, "progress": False},
        study={"components": ["margin"]},
        resources={"executor": "local", "pack": 1},
        report={"bootstrap": 100},
    )
    out = tmp_path / "runs/tiny"
    stopped = cli.stop_midway(path, records=out, at_least=1, sig=signal.SIGTERM, poll=0.2)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert f"finish with: python -m rcl_study.run {path} --resume" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    # finished trials ok; the one interrupted recorded "stopped" (issue 21), none blamed
    assert any(r["status"] == "ok" for r in stopped.rows)
    assert all(r["status"] in ("ok", "stopped") for r in stopped.rows)
    assert all(r["reason"].startswith("stopped by ") for r in stopped.rows if r["status"] != "ok")
