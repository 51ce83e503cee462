"""The study folder: the one way the toolkit opens, reads, replaces and appends to its own files.

Every path goes through :func:`_open_in` (a replace through :func:`atomic_write`): its folder is
opened one component at a time, and from the first folder that holds the marker :data:`MARKER`
(the study folder) down, no link is followed; above it, links are the user's own (``~/runs`` on
a scratch disk). The file is opened ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO is never waited on) and
``fstat`` must show a regular file with one link. Anything else where a toolkit file belongs is a
:class:`FolderError`, one line naming the path. Reads are bounded by that size before a byte is
read; a replace writes a temporary file of a name no one can guess, fsyncs and renames it; an
append adds whole fsynced lines. Whose folder it is: :mod:`rcl_study.store.folders`.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from rcl_study.signals import interrupts_deferred

#: the marker of a study folder: which study owns it (:mod:`rcl_study.store.folders`)
MARKER = ".rcl_study"
_DIR = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class FolderError(OSError):
    """A path the toolkit refuses as its own file or folder; ``str`` is one line naming it."""

    def __init__(self, path: str | Path, why: str, code: int = errno.EINVAL) -> None:
        super().__init__(code, why, str(path))

    def __str__(self) -> str:
        return f"{self.filename} {self.strerror}"


def refusal(path: Path, st: os.stat_result) -> FolderError | None:
    """Why ``path`` (``st`` from ``lstat`` or ``fstat``) is no toolkit file; None: a plain one."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        why = "is a symbolic link; the toolkit follows no link inside its folders"
        return FolderError(path, why, errno.ELOOP)
    if stat.S_ISDIR(mode):
        return FolderError(path, "is a folder where the toolkit keeps a file")
    if not stat.S_ISREG(mode):
        return FolderError(path, "is a FIFO, socket or device where the toolkit keeps a file")
    if st.st_nlink != 1:
        return FolderError(path, f"has {st.st_nlink} hard links; the toolkit's files have one")
    return None


def _entry_error(dir_fd: int, name: str, path: Path, err: OSError) -> OSError:
    """Why the entry ``name`` of an open folder could not be opened: a refusal, else ``err``."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return err
    if err.errno == errno.ENOTDIR and stat.S_ISREG(st.st_mode):
        return FolderError(path, "is a file where the toolkit keeps a folder")
    return refusal(path, st) or err


def _marked(dir_fd: int) -> bool:
    with suppress(OSError):
        return stat.S_ISREG(os.stat(MARKER, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    return False


@contextmanager
def open_folder(folder: str | Path, create: bool = True) -> Iterator[int]:
    """``folder`` opened (created when ``create``), following no link below its study folder."""
    path = Path(os.path.abspath(folder))
    fd, cur, guarded = os.open(path.anchor, _DIR), Path(path.anchor), False
    try:
        for name in path.parts[1:]:
            guarded = guarded or _marked(fd)
            flags = _DIR | (_NOFOLLOW if guarded else 0)
            try:
                try:
                    nfd = os.open(name, flags, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=fd)
                    nfd = os.open(name, flags, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _entry_error(fd, name, cur / name, err) from None
                raise
            os.close(fd)
            fd, cur = nfd, cur / name
        yield fd
    finally:
        os.close(fd)


def _open_in(path: Path, flags: int) -> tuple[int, os.stat_result]:
    """The primitive: ``path`` opened with ``flags``, checked to be a regular file with one link."""
    with open_folder(path.parent, create=bool(flags & os.O_CREAT)) as dir_fd:
        try:
            fd = os.open(path.name, flags | _NOFOLLOW | _NONBLOCK, 0o666, dir_fd=dir_fd)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise _entry_error(dir_fd, path.name, path, err) from None
            raise
    st = os.fstat(fd)
    if (why := refusal(path, st)) is not None:
        os.close(fd)
        raise why
    return fd, st


def _too_large(path: str | Path, limit: int) -> FolderError:
    return FolderError(path, f"is larger than {limit} bytes, more than the toolkit reads")


def open_read(path: str | Path, limit: int | None = None) -> BinaryIO:
    """``path`` opened to read (:func:`_open_in`); refused when larger than ``limit`` bytes."""
    fd, st = _open_in(Path(path), os.O_RDONLY)
    if limit is not None and st.st_size > limit:
        os.close(fd)
        raise _too_large(path, limit)
    return os.fdopen(fd, "rb")


def read_bytes(path: str | Path, limit: int) -> bytes:
    """The bytes of ``path``; a file over ``limit`` bytes is refused before it is read."""
    with open_read(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # grew after the check
        raise _too_large(path, limit)
    return data


def read_lines(path: str | Path, limit: int) -> Iterator[bytes]:
    """The lines of ``path`` (no newline), one at a time; none when it is missing.

    A file over ``limit`` bytes is refused (:class:`FolderError`) before a byte is read.
    """
    try:
        f = open_read(path, limit)
    except FileNotFoundError:
        return
    with f:
        read = 0
        for line in f:
            read += len(line)
            if read > limit:
                raise _too_large(path, limit)
            yield line.rstrip(b"\n")


def _check_entry(dir_fd: int, name: str, path: Path) -> None:
    """Refuse an entry ``name`` that is neither missing nor a regular file (a rename hides it)."""
    with suppress(FileNotFoundError):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) and (why := refusal(path, st)) is not None:
            raise why


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    The folder is created when missing (:func:`open_folder`); an entry at ``path`` that is no
    regular file is refused. The temporary file's name is unguessable, created ``O_EXCL``; on
    any error it is removed and ``path`` keeps what it held. A Ctrl-C waits for the write.
    """
    path = Path(path)
    with interrupts_deferred(), open_folder(path.parent) as dir_fd:
        _check_entry(dir_fd, path.name, path)
        tmp = f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def append_bytes(path: str | Path, data: bytes, whole_lines: bool = False) -> None:
    """Append ``data`` to ``path`` (created when missing) and fsync it (see :func:`_open_in`).

    ``whole_lines``: after an unfinished last line (a crash mid-write) a newline goes first, so
    the cut fragment stays a line of its own.
    """
    fd, _ = _open_in(Path(path), os.O_RDWR | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "ab+") as f:
        end = f.seek(0, os.SEEK_END)
        if whole_lines and end > 0:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                data = b"\n" + data
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def append_line(path: str | Path, line: str | bytes) -> None:
    """Append one whole line (no newline inside) to ``path`` and fsync it."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    if b"\n" in data:
        raise ValueError("append_line: the line contains a newline")
    append_bytes(path, data + b"\n", whole_lines=True)


def make_folder(path: str | Path) -> Path:
    """Create the folder ``path`` (and its parents) through no link inside a study folder."""
    with open_folder(path):
        pass
    return Path(path)


def _on_plain_file(path: Path, act: Callable[[int], object]) -> bool:
    """``act(folder descriptor)`` when ``path`` is a plain file; False when it is missing."""
    try:
        with open_folder(path.parent, create=False) as dir_fd:
            st = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
            if (why := refusal(path, st)) is not None:
                raise why
            act(dir_fd)
    except FileNotFoundError:
        return False
    return True


def remove_file(path: str | Path) -> bool:
    """Delete the toolkit's own file ``path`` (no plain file: refused); whether there was one."""
    path = Path(path)
    return _on_plain_file(path, lambda dir_fd: os.unlink(path.name, dir_fd=dir_fd))


def rename_file(path: str | Path, new_name: str) -> bool:
    """Rename the plain file ``path`` to ``new_name`` in its folder; whether there was one."""
    path = Path(path)

    def rename(dir_fd: int) -> None:
        _check_entry(dir_fd, new_name, path.with_name(new_name))
        os.replace(path.name, new_name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)

    return _on_plain_file(path, rename)
