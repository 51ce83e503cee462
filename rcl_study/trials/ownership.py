"""Which folders a study may write into and delete from.

A study writes its records to ``study.output_dir`` (default ``runs/<name>``) and its report to
``report.dir`` (default ``reports/<name>``). Each folder is *claimed* when the toolkit creates it:
a marker file :data:`MARKER` holds the study's name and names the manifest
(:data:`~rcl_study.files.MANIFEST`) in which every file the toolkit writes there is recorded as it
is written (:mod:`rcl_study.files`). A folder is adopted only when it is new, empty (but for a
driver lock), or marked by a valid marker: a regular file, parseable, naming this study. An
unmarked folder that holds anything, however toolkit-like its names, is refused.

``--overwrite`` (:func:`clear`) deletes only the files the manifest lists that still match their
entry (size, then SHA-256 or modification time), and then the folders that held them once they
are empty; everything else (a file the user added or changed, a folder that still holds
anything, the marker, a driver lock) stays, and what stayed is said in one line. A folder marked
before manifests existed (its marker names no manifest) is refused by ``--overwrite``: nothing
there is known to be the toolkit's. The working folder, its parents, the home folder, the file
system root and this toolkit's own checkout are never used.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from rcl_study.config import ConfigError
from rcl_study.files import (
    MANIFEST,
    MARKER,
    atomic_write_text,
    compact_manifest,
    matches,
    open_folder,
    open_read,
    read_manifest,
    record_tree,
)

__all__ = ["MANIFEST", "MARKER", "check_folder", "check_links", "check_pair", "claim", "clear"]

#: what other libraries write into a records folder for the toolkit (TensorBoard, MLflow, Ray,
#: Optuna): recorded in the manifest when the run ends (:func:`record_libraries`)
LIBRARY_NAMES = ("tensorboard", "mlflow.db*", "mlartifacts", "ray", "ray-train", "optuna.journal*")
#: the driver lock: the toolkit's, but never deleted (it belongs to whichever driver holds it)
LOCK_NAME = "driver.lock"
#: the records: a run appends to them, so ``--overwrite`` refuses to keep a changed one
RECORDS_NAME = "records.jsonl"
#: a temporary file of the atomic writer (``.<name>.<pid>.<8 hex>.tmp``), left by a crash
_TEMP = re.compile(r"\..+\.[0-9]+\.[0-9a-f]{8}\.tmp")
_TOOLKIT_ROOT = Path(__file__).resolve().parents[1]


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker of the folder ``path`` (None when it has none).

    Raises:
        ValueError: the marker is not a regular file, not JSON, or names no study.

    """
    m = Path(path) / MARKER
    try:
        st = os.lstat(m)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ValueError(f"cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > 65536:
        raise ValueError("is not a file the toolkit wrote (not a small regular file)")
    try:
        fd = os.open(m, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"is damaged ({type(err).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("study"), str):
        raise ValueError("is damaged (it names no study)")
    return data


def owner(path: Path) -> str | None:
    """The study named in ``path``'s marker (None without a valid marker)."""
    try:
        data = read_marker(Path(path))
    except ValueError:
        return None
    return None if data is None else data["study"]


def check_folder(path: Path, study: str, role: str, key: str, source: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` may hold this study's ``role`` files.

    The folder may be used when it is new, empty (a driver lock aside), or marked by a valid
    marker naming ``study``; an unmarked folder holding anything is refused.

    Args:
        path: the folder (relative to the working folder, or absolute).
        study: the study's name (written in and compared with the marker).
        role: ``"records"`` or ``"report"``.
        key: the study-file key that names the folder (for the message).
        source: the study file (for the message).

    """
    p = Path(path).expanduser().resolve()
    cwd = Path.cwd().resolve()
    where = f"{source}: {key}: {path}"
    if p == cwd or p in cwd.parents:
        raise ConfigError(f"{where} is the working folder or one of its parents; name a subfolder")
    if p == Path.home().resolve() or p == Path(p.anchor):
        raise ConfigError(f"{where} is the home folder or the file system root; name a subfolder")
    if p == _TOOLKIT_ROOT or p in _TOOLKIT_ROOT.parents:
        raise ConfigError(f"{where} holds the rcl_study checkout; name a subfolder")
    if ".git" in p.parts or ".git" in Path(path).expanduser().parts:
        raise ConfigError(f"{where} is inside a git folder (.git); name a folder outside it")
    if not p.exists():
        return
    if not p.is_dir():
        raise ConfigError(f"{where} is a file, not a folder")
    check_links(p, where)
    try:
        marker = read_marker(p)
    except ValueError as err:
        raise ConfigError(
            f"{where}: its marker {MARKER} {err}; name a new or empty folder"
        ) from None
    if marker is not None and marker["study"] != study:
        raise ConfigError(
            f"{where} belongs to study '{marker['study']}'; give this study its own folder"
        )
    if marker is None:
        try:
            held = sorted(e.name for e in p.iterdir() if e.name != LOCK_NAME)
        except OSError as err:
            raise ConfigError(f"{where} cannot be read ({err.strerror})") from None
        if held:
            raise ConfigError(
                f"{where} holds files the toolkit did not write (e.g. '{held[0]}'; no "
                f"{MARKER} marker claims the folder); name a new or empty folder"
            )


def find_link(path: Path) -> Path | None:
    """The first symbolic link inside the folder ``path`` (walked without following links).

    Every path the toolkit writes, appends to, reads as its own state or deletes lies in such a
    folder, so a folder without links is one where no link is followed (issue 23).
    """
    for top, dirs, files in os.walk(path, followlinks=False):
        dirs.sort()
        for name in sorted(dirs + files):
            if os.path.islink(os.path.join(top, name)):
                return Path(top, name)
    return None


def check_links(path: Path, where: str) -> None:
    """Raise :class:`ConfigError` naming the first symbolic link inside the folder ``path``."""
    link = find_link(Path(path)) if Path(path).is_dir() else None
    if link is not None:
        raise ConfigError(
            f"{where}: {link} is a symbolic link; the toolkit follows no link inside its "
            "folders (remove it or name another folder)"
        )


def check_pair(records: Path, report: Path, source: str) -> None:
    """Refuse a records folder and a report folder that are the same or nested."""
    a, b = Path(records).expanduser().resolve(), Path(report).expanduser().resolve()
    if a == b or a in b.parents or b in a.parents:
        raise ConfigError(
            f"{source}: report.dir: {report} and study.output_dir {records} overlap; "
            "give each its own folder"
        )


def claim(path: Path, study: str) -> Path:
    """Create ``path`` if needed and mark it as this study's (call after :func:`check_folder`).

    A new marker names the manifest, so that :func:`clear` may later delete what the toolkit
    records there; an existing marker of the same study is kept as it is.
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    if owner(p) != study:
        atomic_write_text(p / MARKER, json.dumps({"study": study, "manifest": MANIFEST}) + "\n")
    return p


def check_clear(path: Path, study: str) -> None:
    """Raise :class:`ConfigError` unless :func:`clear` may delete in ``path`` for ``study``.

    The folder must be missing, or marked by this study with a marker that names a manifest: a
    folder from before manifests existed holds nothing known to be the toolkit's.
    """
    p = Path(path)
    if not p.exists():
        return
    try:
        marker = read_marker(p)
    except ValueError as err:
        raise ConfigError(f"{path}: its marker {MARKER} {err}; nothing deleted") from None
    if marker is None and all(e.name == LOCK_NAME for e in p.iterdir()):
        return  # empty: nothing to delete
    if marker is None or marker["study"] != study:
        raise ConfigError(f"{path}: not marked as study '{study}''s folder; nothing deleted")
    if marker.get("manifest") != MANIFEST:
        raise ConfigError(
            f"{path} was written before rcl_study recorded the files it writes, so --overwrite "
            "deletes nothing there: delete its files yourself, or name a new folder"
        )
    if _changed(p, RECORDS_NAME):
        raise ConfigError(
            f"{p / RECORDS_NAME} changed since the toolkit wrote it (a hand edit, or a line cut "
            "by a crash); --overwrite never deletes a changed file, and the new run would add "
            "to it: move it away (or finish the study with --resume), then run again"
        )


def _changed(root: Path, rel: str) -> bool:
    """Whether the file ``rel`` of the study folder ``root`` exists but is not as recorded."""
    try:
        st = os.lstat(root / rel)
    except FileNotFoundError:
        return False
    entry = read_manifest(root).get(rel)
    return entry is None or not matches(entry, st, lambda: _read(root / rel))


def record_libraries(path: Path, since_ns: int, names: tuple[str, ...] = LIBRARY_NAMES) -> int:
    """Record in ``path``'s manifest what TensorBoard, MLflow, Ray or Optuna wrote since then.

    Called when a run ends (also on Ctrl-C or SIGTERM): the files under those libraries' names
    modified since the run started (``since_ns``, :func:`time.time_ns`). A run killed outright
    records none; :func:`clear` keeps them and says so. The manifest is then compacted to one
    line per file (:func:`~rcl_study.files.compact_manifest`). Returns how many were recorded.
    """
    n = record_tree(path, names, since_ns)
    try:
        if read_marker(Path(path)) is not None:
            compact_manifest(path)  # one line per file again (no trial writes now)
    except (OSError, ValueError):
        pass
    return n


def clear(path: Path, study: str, role: str = "records") -> tuple[list[str], list[str]]:
    """Delete what the toolkit wrote in ``path``; (relative paths deleted, relative paths kept).

    Deleted: each file the manifest lists that still matches its entry (reached without
    following any link; a link met is ``OSError`` ``ELOOP``), the atomic writer's temporary
    files (``.<name>.<pid>.<8 hex>.tmp``) in the folders the manifest lists files in, then
    every folder that held a deleted file once it is empty. Kept: everything else (the marker
    and manifest, a driver lock, files the user added or changed, folders that still hold
    anything). The manifest is emptied afterwards. ``role`` is kept for callers' clarity.

    Raises:
        ConfigError: see :func:`check_clear`.

    """
    p = Path(path)
    check_clear(p, study)
    if not p.exists():
        return [], []
    entries = read_manifest(p)
    gone: list[str] = []
    parents: set[str] = set()
    for rel in sorted(entries):
        if rel == LOCK_NAME:
            continue
        parent, _, name = rel.rpartition("/")
        try:
            with open_folder(p / parent if parent else p, create=False) as here:
                st = os.stat(name, dir_fd=here.fd, follow_symlinks=False)
                if not matches(entries[rel], st, lambda fd=here.fd, n=name: _read_at(fd, n)):
                    continue
                os.unlink(name, dir_fd=here.fd)
        except (FileNotFoundError, NotADirectoryError):  # gone, or a folder became a file
            continue
        gone.append(rel)
        while parent:
            parents.add(parent)
            parent = parent.rpartition("/")[0]
    # folders the toolkit writes into: the top, and every folder of a listed file
    ours = {"."} | {f"{r.rpartition('/')[0] or '.'}" for r in entries}
    kept: list[str] = []
    for top, dirs, files in os.walk(p, followlinks=False):
        rel_top = Path(top).relative_to(p).as_posix()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(top, d))]):
            rel = name if rel_top == "." else f"{rel_top}/{name}"
            if rel in (MARKER, MANIFEST, LOCK_NAME):
                continue
            temp = _TEMP.fullmatch(name) and rel_top in ours
            if temp and not os.path.islink(os.path.join(top, name)):
                with open_folder(top, create=False) as here:
                    os.unlink(name, dir_fd=here.fd)
                gone.append(rel)
                continue
            kept.append(rel)
    for rel in sorted(parents, key=lambda r: (-r.count("/"), r)):  # deepest first
        parent, _, name = rel.rpartition("/")
        try:
            with open_folder(p / parent if parent else p, create=False) as here:
                st = os.stat(name, dir_fd=here.fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(name, dir_fd=here.fd)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.ENOTDIR):
                raise
    atomic_write_text(p / MANIFEST, "")
    return gone, kept


def kept_note(kept: dict[Path, list[str]], shown: int = 5) -> str | None:
    """One line saying how many files ``--overwrite`` kept, and where (None: none kept).

    ``kept``: the relative paths kept, by folder. At most ``shown`` paths are named.
    """
    folders = [f for f, rels in kept.items() if rels]
    if not folders:
        return None
    items = [rel if len(folders) == 1 else f"{f / rel}" for f in folders for rel in kept[f]]
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return (
        f"note: --overwrite kept {len(items)} file(s) in {', '.join(map(str, folders))} that "
        f"the toolkit did not write (or that changed since): {', '.join(items[:shown])}{more}"
    )


def _read(path: Path) -> bytes:
    with open_read(path) as f:  # through no link
        return f.read()


def _read_at(dir_fd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        return f.read()
