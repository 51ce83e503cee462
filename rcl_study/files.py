"""The one atomic writer and the one durable line appender of the toolkit, and its file manifest.

Every file that matters (records, plans, trial configs and results, checkpoints, the scripts'
outputs) is written through :func:`atomic_write_bytes`: a temporary file beside the target,
``fsync``, then ``os.replace``, so a crash leaves the old file or the new one, never half of one,
and no temporary file is left behind on an error. Append-only logs (``records.jsonl``, the side
file of damaged lines) add one fsynced line at a time with :func:`append_line`.

**No link inside a study folder.** A study folder is one that holds the marker :data:`MARKER` (a
regular file, see :mod:`rcl_study.trials.ownership`). Every write walks its path one folder at a
time through file descriptors; from the first marked folder down, each component is opened with
``O_NOFOLLOW``, so a link planted there at any time, also during a run, is never followed: the
write fails with ``ELOOP`` naming it. Above the study folder (``~/runs`` linked to a scratch disk)
links are the user's own and are followed.

**The manifest.** Beside the marker, :data:`MANIFEST` lists what the toolkit wrote in that
folder: one JSON line per write, appended (``O_APPEND``, one ``write`` call per line) right after
the file is in place: ``{"path": relative path, "size": bytes, "mtime_ns": ..., "sha256": ...}``
(``sha256`` where the bytes are in hand, i.e. every file but checkpoints, and the report's
figures). The last line of a path wins (:func:`compact_manifest` keeps an earlier line that
proves the same bytes by digest, an equivalent one). ``--overwrite`` deletes a listed file only
while it still matches its line (:func:`matches`), so a file the user added or changed is never
deleted. A crash between a write and its line leaves the file unlisted: it is kept, never
wrongly deleted.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatchcase as fnmatch
from pathlib import Path
from typing import Any, BinaryIO

#: the marker file of a study folder (which study owns it; see rcl_study.trials.ownership)
MARKER = ".rcl_study"
#: the manifest beside the marker: one JSON line per file the toolkit wrote in the folder
MANIFEST = ".rcl_study.files"
_PATH_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _is_marker(dir_fd: int) -> bool:
    """Whether the folder ``dir_fd`` holds a marker that is a regular file (not a link)."""
    try:
        return stat.S_ISREG(os.stat(MARKER, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _link_error(where: Path) -> OSError:
    return OSError(
        errno.ELOOP, "a symbolic link inside a study folder; the toolkit follows none", str(where)
    )


class _Folder:
    """An open folder reached without links below the study folder (``root``, when any)."""

    def __init__(self, fd: int, path: Path, root: Path | None, root_fd: int | None) -> None:
        self.fd, self.path, self.root, self.root_fd = fd, path, root, root_fd

    def check_name(self, name: str) -> None:
        """Refuse (``ELOOP``) an entry ``name`` of this folder that is a link, in a study folder."""
        if self.root is None:
            return
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise _link_error(self.path / name)

    def record(self, name: str, st: os.stat_result, sha256: str | None = None) -> None:
        """Add the file ``name`` of this folder to the study folder's manifest (when any)."""
        if self.root is None or self.root_fd is None:
            return
        rel = (self.path / name).relative_to(self.root).as_posix()
        if rel in (MARKER, MANIFEST):
            return
        entry: dict[str, Any] = {"path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if sha256 is not None:
            entry["sha256"] = sha256
        line = (json.dumps(entry, ensure_ascii=True) + "\n").encode()
        fd = os.open(
            MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666, dir_fd=self.root_fd
        )
        try:
            os.write(fd, line)  # one call: lines of concurrent writers never interleave
        finally:
            os.close(fd)


@contextmanager
def open_folder(folder: str | Path, create: bool = True) -> Iterator[_Folder]:
    """The folder ``folder`` opened component by component (created when missing).

    From the first folder that holds a marker down, no component may be a symbolic link
    (``OSError`` ``ELOOP`` naming it); the nearest marked folder is the study folder whose
    manifest records what is written there.
    """
    path = Path(os.path.abspath(folder))
    parts = path.parts
    fd = os.open(parts[0], _PATH_FLAGS)
    cur, root, root_fd, guarded = Path(parts[0]), None, None, False
    try:
        for name in parts[1:]:
            if _is_marker(fd):
                guarded, root = True, cur
                if root_fd is not None:
                    os.close(root_fd)
                root_fd = os.dup(fd)
            flags = _PATH_FLAGS | (_NOFOLLOW if guarded else 0)
            try:
                nfd = os.open(name, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(name, flags, dir_fd=fd)
            except OSError as err:
                if guarded and err.errno in (errno.ELOOP, errno.ENOTDIR):
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        raise _link_error(cur / name) from None
                raise
            os.close(fd)
            fd, cur = nfd, cur / name
        if _is_marker(fd):
            root = cur
            if root_fd is not None:
                os.close(root_fd)
            root_fd = os.dup(fd)
        yield _Folder(fd, cur, root, root_fd)
    finally:
        os.close(fd)
        if root_fd is not None:
            os.close(root_fd)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver them to their handlers.

    A Ctrl-C or SIGTERM that lands inside a write (``torch.save``'s zip writer turns the
    ``KeyboardInterrupt`` into a ``RuntimeError``, a traceback instead of a clean stop) waits
    for the write to finish; the signal is then raised again, so the installed handlers (e.g.
    ``rcl_study.run``'s SIGTERM-as-Ctrl-C) see it as they would have. Outside the main thread,
    where handlers cannot be set, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    names = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.getsignal(s) for s in names}
    for s in names:
        if callable(before[s]) or before[s] is signal.default_int_handler:
            signal.signal(s, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], object], sha256: str | None = None
) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    The parent folder is created when missing, and reached through no link inside a study folder
    (:func:`open_folder`); a link at ``path`` itself there is refused (``ELOOP``). On any error
    the temporary file is removed and ``path`` keeps what it held. In a study folder the file is
    then recorded in the manifest (``sha256``: the written bytes' digest, when known). A Ctrl-C
    or SIGTERM during the write is delivered when it is done (:func:`interrupts_deferred`).
    """
    path = Path(path)
    with interrupts_deferred(), open_folder(path.parent) as folder:
        folder.check_name(path.name)
        # a new file of a name no one can guess (O_EXCL): a link planted at a temporary name is
        # never followed (issue 23)
        tmp = f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        fd = os.open(tmp, flags, 0o666, dir_fd=folder.fd)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
                st = os.fstat(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=folder.fd)
            except FileNotFoundError:
                pass
            raise
        folder.record(path.name, st, sha256)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data), hashlib.sha256(data).hexdigest())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def append_line(path: str | Path, line: str | bytes) -> None:
    """Append one line to ``path`` and fsync it; a newline is added where the file lacks one.

    When the file's last line is unfinished (a crash mid-write), a newline goes first, so the
    damaged fragment stays a line of its own and the new line is whole. ``line`` must not contain
    a newline. In a study folder the file's new size is recorded in the manifest.
    """
    data = line.encode("utf-8") if isinstance(line, str) else line
    if b"\n" in data:
        raise ValueError("append_line: the line contains a newline")
    append_bytes(path, data + b"\n", whole_lines=True)


def append_bytes(path: str | Path, data: bytes, whole_lines: bool = False) -> None:
    """Append ``data`` to ``path`` (created when missing) and fsync it, never through a link.

    ``whole_lines``: when the file's last line is unfinished, a newline goes first. In a study
    folder the file is recorded in the manifest after the append.
    """
    path = Path(path)
    with open_folder(path.parent) as folder:
        with _open_append(path.name, folder.fd) as f:
            f.seek(0, os.SEEK_END)
            if whole_lines and f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    data = b"\n" + data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            st = os.fstat(f.fileno())
        folder.record(path.name, st)


def _open_append(name: str, dir_fd: int | None = None) -> BinaryIO:
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW
    fd = os.open(name, flags, 0o666, dir_fd=dir_fd)
    return os.fdopen(fd, "ab+")


def open_append(path: str | Path) -> BinaryIO:
    """``path`` opened to read and append (created when missing), never through a link.

    Raises:
        OSError: ``path`` is a symbolic link (``ELOOP``), or cannot be opened.

    """
    return _open_append(str(path))


def make_folder(path: str | Path) -> Path:
    """Create the folder ``path`` (and its parents) through no link inside a study folder."""
    with open_folder(path):
        pass
    return Path(path)


def open_read(path: str | Path) -> BinaryIO:
    """``path`` opened to read, reached through no link inside a study folder (``ELOOP``)."""
    path = Path(path)
    with open_folder(path.parent, create=False) as folder:
        folder.check_name(path.name)
        fd = os.open(path.name, os.O_RDONLY | _NOFOLLOW, dir_fd=folder.fd)
    return os.fdopen(fd, "rb")


def remove_file(path: str | Path) -> bool:
    """Delete the file ``path`` (reached through no link); whether there was one to delete."""
    path = Path(path)
    try:
        with open_folder(path.parent, create=False) as folder:
            folder.check_name(path.name)
            os.unlink(path.name, dir_fd=folder.fd)
    except FileNotFoundError:
        return False
    return True


def rename_file(path: str | Path, new_name: str) -> bool:
    """Rename the file ``path`` to ``new_name`` in its folder, through no link, and record it.

    Returns whether there was a regular file to rename (a link there is ``ELOOP``).
    """
    path = Path(path)
    try:
        with open_folder(path.parent, create=False) as folder:
            folder.check_name(path.name)
            folder.check_name(new_name)
            st = os.stat(path.name, dir_fd=folder.fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                return False
            os.replace(path.name, new_name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
            folder.record(new_name, os.stat(new_name, dir_fd=folder.fd, follow_symlinks=False))
    except FileNotFoundError:
        return False
    return True


def read_manifest(root: str | Path) -> dict[str, dict[str, Any]]:
    """The manifest of the study folder ``root``: its last entry per relative path.

    Lines that do not parse (a crash mid-line, a hand edit) and entries whose path is absolute,
    climbs out (``..``) or names the marker or the manifest are skipped: such a file counts as
    not written by the toolkit, so it is kept.
    """
    return {e["path"]: e for e in _manifest_entries(root)}


def _manifest_entries(root: str | Path) -> list[dict[str, Any]]:
    """Every valid entry of the manifest of ``root``, in the order written."""
    try:
        with open_folder(root, create=False) as folder:
            fd = os.open(MANIFEST, os.O_RDONLY | _NOFOLLOW, dir_fd=folder.fd)
            with os.fdopen(fd, "rb") as f:
                lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for raw in lines:
        try:
            e = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(e, dict) and _valid_entry(e):
            entries.append(e)
    return entries


def _same_bytes(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two entries of one path prove the same bytes (both by digest)."""
    digest = a.get("sha256")
    return a["size"] == b["size"] and digest is not None and digest == b.get("sha256")


def _valid_entry(e: dict[str, Any]) -> bool:
    p = e.get("path")
    if not isinstance(p, str) or not p or p.startswith("/") or "\\" in p or "\x00" in p:
        return False
    parts = p.split("/")
    if any(x in ("", ".", "..") for x in parts) or p in (MARKER, MANIFEST):
        return False
    size, mtime, digest = e.get("size"), e.get("mtime_ns"), e.get("sha256")
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (size, mtime))
    return ints and (digest is None or isinstance(digest, str))


def matches(entry: dict[str, Any], st: os.stat_result, read: Callable[[], bytes]) -> bool:
    """Whether a regular file (``st``; ``read`` gives its bytes) is still as its manifest entry.

    The size must match, then the SHA-256 where the entry has one (so a copied or unpacked study
    folder still matches), else the modification time: to the microsecond (an archive that
    stores times as floating-point seconds), or to the second when the file's time has no
    fraction of a second (a tar archive that keeps whole seconds only).
    """
    if not stat.S_ISREG(st.st_mode) or st.st_size != entry["size"]:
        return False
    if entry.get("sha256") is not None:
        return hashlib.sha256(read()).hexdigest() == entry["sha256"]
    if abs(st.st_mtime_ns - entry["mtime_ns"]) <= 1000:
        return True
    whole = st.st_mtime_ns % 1_000_000_000 == 0
    return whole and st.st_mtime_ns // 1_000_000_000 == entry["mtime_ns"] // 1_000_000_000


def compact_manifest(root: str | Path) -> int:
    """Rewrite the manifest of ``root`` with one line per file still there; returns how many.

    Called where no other process writes into the folder (a run's end): the manifest grows by
    a line per write (a checkpoint per epoch), and this keeps it at one line per file: the last
    written, except that a file rewritten with the same bytes (both entries with a digest, which
    alone proves such a file) keeps its earlier entry, so that rebuilding a report leaves its
    manifest, like its files, byte for byte as it was (a committed report stays clean in git).
    """
    root = Path(root)
    entries: dict[str, dict[str, Any]] = {}
    for e in _manifest_entries(root):
        if e["path"] not in entries or not _same_bytes(entries[e["path"]], e):
            entries[e["path"]] = e
    keep = []
    for rel, entry in entries.items():
        try:
            if stat.S_ISREG(os.lstat(root / rel).st_mode):
                keep.append(json.dumps(entry, ensure_ascii=True) + "\n")
        except OSError:
            continue
    if entries or (root / MANIFEST).exists():
        atomic_write_text(root / MANIFEST, "".join(keep))
    return len(keep)


def record_tree(
    folder: str | Path, names: tuple[str, ...], since_ns: int, digest: bool = False
) -> int:
    """Record in the manifest the files under ``folder`` whose names match ``names`` (globs).

    For what other libraries write into a study folder for the toolkit (TensorBoard event files,
    Ray's and Optuna's state, MLflow's store, the report's figures): walked without following
    links, every regular file modified at or after ``since_ns`` (the run's start) is recorded,
    at any depth below a matching entry, with its SHA-256 when ``digest`` (a file then stays
    known after a copy or a clone that drops times). Returns how many were recorded; nothing
    happens outside a study folder or when ``folder`` is missing.
    """
    base = Path(os.path.abspath(folder))
    try:
        with open_folder(base, create=False) as top:
            if top.root is None:
                return 0
        tops = [e.name for e in os.scandir(base) if any(fnmatch(e.name, p) for p in names)]
    except OSError:
        return 0
    n = 0
    for name in sorted(tops):
        if os.path.islink(base / name):
            continue
        walk = os.walk(base / name, followlinks=False) if (base / name).is_dir() else None
        groups = walk or [(str(base), [], [name])]
        for dirpath, dirs, files in groups:
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(dirpath, d))]
            try:
                with open_folder(dirpath, create=False) as here:
                    for f in files:
                        st = os.stat(f, dir_fd=here.fd, follow_symlinks=False)
                        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns < since_ns:
                            continue
                        sha = None
                        if digest:
                            st, sha = _digested(f, here.fd)  # replaced since: its own status
                            if sha is None or st.st_mtime_ns < since_ns:  # unlisted, so kept
                                continue
                        here.record(f, st, sha)
                        n += 1
            except OSError:
                continue
    return n


def _digested(name: str, dir_fd: int) -> tuple[os.stat_result, str | None]:
    """The status and SHA-256 of the regular file ``name`` of an open folder, from one open file.

    No link is followed. The digest is None when the file changed while it was read, or is not
    a regular file: it must then stay unlisted (an entry would prove other bytes).
    """
    fd = os.open(name, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return before, None
        h = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
        after = os.fstat(fd)
    same = (before.st_size, before.st_mtime_ns, before.st_ino) == (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    )
    return before, h.hexdigest() if same else None
