"""The one atomic writer and the one durable line appender of the toolkit.

Every file that matters (records, plans, trial configs and results, checkpoints, the scripts'
outputs) is written through :func:`atomic_write_bytes`: a temporary file beside the target,
``fsync``, then ``os.replace``, so a crash leaves the old file or the new one, never half of one,
and no temporary file is left behind on an error. Append-only logs (``records.jsonl``, metric
curves) add one fsynced line at a time with :func:`append_line`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    The parent folder is created when missing. On any error the temporary file is removed and
    ``path`` keeps what it held.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a new file of a name no one can guess (O_EXCL): a link planted at a temporary name is
    # never followed (issue 23)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def append_line(path: str | Path, line: str | bytes) -> None:
    """Append one line to ``path`` and fsync it; a newline is added where the file lacks one.

    When the file's last line is unfinished (a crash mid-write), a newline goes first, so the
    damaged fragment stays a line of its own and the new line is whole. ``line`` must not contain
    a newline.
    """
    data = line.encode("utf-8") if isinstance(line, str) else line
    if b"\n" in data:
        raise ValueError("append_line: the line contains a newline")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_append(path) as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                data = b"\n" + data
        f.write(data + b"\n")
        f.flush()
        os.fsync(f.fileno())


def open_append(path: str | Path) -> BinaryIO:
    """``path`` opened to read and append (created when missing), never through a link.

    Raises:
        OSError: ``path`` is a symbolic link (``ELOOP``), or cannot be opened.

    """
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o666)
    return os.fdopen(fd, "ab+")
