"""The study folder: the one way the toolkit opens, reads, replaces and appends to its own files.

Every path goes through :func:`_open_in` (a replace through :func:`atomic_write`): its folder is
opened one component at a time, and from the first folder that holds the marker :data:`MARKER`
(the study folder) down, no link is followed; above it, links are the user's own (``~/runs`` on
a scratch disk). The file is opened ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO is never waited on) and
``fstat`` must show a regular file with one link. Anything else where a toolkit file belongs is a
:class:`FolderError`, one line naming the path. Reads are bounded by that size before a byte is
read; a replace writes a temporary file of a name no one can guess, fsyncs and renames it; an
append adds whole fsynced lines, or nothing (a failed append is cut back to the size before).
A full disk, a quota or a file-size limit met by any write here is a :class:`DiskError`, one
line naming the path and what the write needed. Whose folder it is: :mod:`rcl_study.store.folders`.
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


#: the errors of a disk that cannot take a write: no space, a quota, a file-size limit
DISK_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file size limit exceeded",
}


class DiskError(OSError):
    """A write the disk could not take (:data:`DISK_ERRNOS`); ``str`` is one line.

    ``doing`` says what was lost (``not written``, ``checkpoint not written``), ``need`` how
    many bytes the write needed (``exact``: all of it; else at least that many).
    """

    def __init__(
        self, path: str | Path, code: int, need: int, exact: bool, doing: str = "not written"
    ) -> None:
        super().__init__(code, DISK_ERRNOS.get(code, os.strerror(code)), str(path))
        self.need, self.exact, self.doing = need, exact, doing

    def __reduce__(self):
        """Pickled with its own arguments (a Ray worker's error travels to the driver)."""
        return (DiskError, (self.filename, self.errno, self.need, self.exact, self.doing))

    def about(self, doing: str) -> DiskError:
        """The same error saying ``doing`` (what the caller lost)."""
        return DiskError(self.filename, self.errno, self.need, self.exact, doing)

    def __str__(self) -> str:
        need = f"{self.need:,} bytes" + ("" if self.exact else " or more")
        limit = " (ulimit -f)" if self.errno == errno.EFBIG else ""
        return f"{self.doing}: {self.strerror}{limit} ({self.filename}; it needed {need})"


def disk_error(err: BaseException | None) -> DiskError | None:
    """The :class:`DiskError` that ``err`` is, or was raised from (its causes); None: none."""
    seen = 0
    while err is not None and seen < 20:
        if isinstance(err, DiskError):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


class _Raw:
    """A file descriptor written through ``os.write`` (64 kB buffered); keeps the first error.

    What a failed write leaves in the buffer stays there: nothing writes it later.
    """

    def __init__(self, fd: int) -> None:
        self.fd, self.written, self.error = fd, 0, None
        self._buf = bytearray()

    def writable(self) -> bool:
        """Yes (a writer may ask)."""
        return True

    def seekable(self) -> bool:
        """No: written once, front to back."""
        return False

    def tell(self) -> int:
        """Bytes written so far, buffered ones included."""
        return self.written + len(self._buf)

    def write(self, data) -> int:
        """Buffer ``data``; a buffer of 64 kB or more is written out, large data directly."""
        if len(self._buf) + len(data) < 1 << 16:
            self._buf += data
            return len(data)
        self.flush()
        self._write_all(data)
        return len(data)

    def flush(self) -> None:
        """Write out everything buffered, all of it or an ``OSError``."""
        data, self._buf = bytes(self._buf), bytearray()
        self._write_all(data)

    def _write_all(self, data) -> None:
        with memoryview(data) as whole:
            view = whole
            while view:
                try:
                    n = os.write(self.fd, view)
                except OSError as err:
                    self.error = self.error or err
                    raise
                self.written += n
                view = view[n:]


@contextmanager
def as_disk_error(
    path: str | Path, raw: _Raw | None = None, size: int | None = None
) -> Iterator[None]:
    """Turn a disk's refusal met in the block (or recorded by ``raw``) into a :class:`DiskError`.

    ``size``: the bytes the write needed, when known (else: more than ``raw`` wrote).

    A writer that wraps the file (``torch.save`` raises ``RuntimeError``) hides the ``OSError``
    that ``raw`` kept; the error kept is the one reported.
    """
    try:
        yield
    except DiskError:
        raise
    except Exception as err:
        cause = raw.error if raw is not None and raw.error is not None else err
        if not isinstance(cause, OSError) or cause.errno not in DISK_ERRNOS:
            raise
        written = raw.written if raw is not None else 0
        need = size if size is not None else written + 1
        raise DiskError(path, cause.errno, need, size is not None) from None


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
                    with suppress(FileExistsError), as_disk_error(cur / name, size=4096):
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


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], object], size: int | None = None
) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    The folder is created when missing (:func:`open_folder`); an entry at ``path`` that is no
    regular file is refused. The temporary file's name is unguessable, created ``O_EXCL``; on
    any error it is removed and ``path`` keeps what it held; a disk that cannot take it is a
    :class:`DiskError` (``size``: the bytes written, when known). A Ctrl-C waits for the write.
    """
    path = Path(path)
    with interrupts_deferred(), open_folder(path.parent) as dir_fd:
        _check_entry(dir_fd, path.name, path)
        tmp = f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        with as_disk_error(path, size=size):
            fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
        raw = _Raw(fd)
        try:
            with as_disk_error(path, raw, size):
                try:
                    write(raw)  # type: ignore[arg-type]
                    raw.flush()
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data), len(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def append_bytes(path: str | Path, data: bytes, whole_lines: bool = False) -> None:
    """Append ``data`` to ``path`` (created when missing) and fsync it (see :func:`_open_in`).

    All of ``data`` lands, or none: a failed write (a full disk, a file-size limit) cuts the
    file back to its size before, and a disk's refusal is a :class:`DiskError`. ``whole_lines``:
    after an unfinished last line (a crash mid-write) a newline goes first, so the cut fragment
    stays a line of its own.
    """
    path = Path(path)
    with as_disk_error(path, size=len(data) + 1):
        fd, _ = _open_in(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        if whole_lines and end > 0 and os.pread(fd, 1, end - 1) != b"\n":
            data = b"\n" + data
        raw = _Raw(fd)
        with interrupts_deferred(), as_disk_error(path, raw, len(data)):
            try:
                raw.write(data)
                raw.flush()
                os.fsync(fd)
            except BaseException:
                with suppress(OSError):  # back to the size before: no cut line is left
                    os.ftruncate(fd, end)
                raise
    finally:
        os.close(fd)


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
