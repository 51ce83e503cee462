"""An expected error as a user meets it: a full disk, one ``error:`` line, what is left behind."""

from __future__ import annotations

import errno
from pathlib import Path

from rcl_study import store as files


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
