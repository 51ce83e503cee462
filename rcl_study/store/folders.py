"""Whose folder is this, checked once before a command runs; ``--overwrite``'s move aside.

The toolkit *claims* a folder when it first writes there: the marker :data:`MARKER` names the
study. A folder handed to a command is used only when it is new, empty (``keep`` aside: a driver
lock) or marked as the study's; it may hold no symbolic link among its entries or its
subfolders' entries (deeper paths are reached only through :mod:`rcl_study.store`, which refuses
a link at every step), and the toolkit's own files there must be plain files. Someone writing into
a study folder while a run uses it is outside this model (as in Optuna, Ray and Lightning).
``--overwrite`` deletes nothing: :func:`move_to_replaced` moves the old contents to a sibling.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from rcl_study.store import MARKER, FolderError, atomic_write_text, open_folder, read_bytes, refusal


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker of the folder ``path`` (None: it has none); ValueError when damaged."""
    try:
        data = json.loads(read_bytes(Path(path) / MARKER, 65536).decode("utf-8"))
    except FileNotFoundError:
        return None
    except FolderError as err:
        raise ValueError(err.strerror) from None
    except (OSError, ValueError) as err:
        raise ValueError(f"is damaged ({type(err).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("study"), str):
        raise ValueError("is damaged (it names no study)")
    return data


def claim(path: Path, study: str) -> Path:
    """Create ``path`` if needed and mark it as this study's (an existing marker of it is kept)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    try:
        marked = (read_marker(p) or {}).get("study") == study
    except ValueError:
        marked = False
    if not marked:
        atomic_write_text(p / MARKER, json.dumps({"study": study}) + "\n")
    return p


def find_link(path: Path) -> Path | None:
    """The first symbolic link among the entries of ``path`` and of its subfolders."""
    subs = sorted(e for e in Path(path).iterdir() if stat.S_ISDIR(os.lstat(e).st_mode))
    for top in [Path(path), *subs]:
        for entry in sorted(top.iterdir()):
            if entry.is_symlink():
                return entry
    return None


def folder_problem(
    path: Path, study: str, where: str, keep: tuple, files: tuple, write: bool = True
) -> str | None:
    """Why the folder ``path`` may not hold ``study``'s files (one line from ``where``); None.

    ``keep``: names an unmarked folder may hold; ``files``: the toolkit's own files there, plain
    when present. ``write=False``: the folder is only read, so whose it is does not matter.
    """
    p = Path(path).expanduser().resolve()
    if not p.exists():
        return None
    if not p.is_dir():
        return f"{where} is a file, not a folder"
    try:
        link = find_link(p)
        held = sorted(e.name for e in p.iterdir() if e.name not in keep)
    except OSError as err:
        return f"{where} cannot be read ({err.strerror})"
    if link is not None:
        return (
            f"{where}: {link} is a symbolic link; the toolkit follows no link inside its "
            "folders (remove it or name another folder)"
        )
    try:
        marker = read_marker(p) if write else {"study": study}
    except ValueError as err:
        return f"{where}: its marker {MARKER} {err}; name a new or empty folder"
    if marker is not None and marker["study"] != study:
        return f"{where} belongs to study '{marker['study']}'; give this study its own folder"
    if marker is None and held:
        return (
            f"{where} holds files the toolkit did not write (e.g. '{held[0]}'; no {MARKER} "
            "marker claims the folder); name a new or empty folder"
        )
    for name in files:
        if os.path.lexists(p / name) and (bad := refusal(p / name, os.lstat(p / name))):
            return f"{where}: {bad}; move it away"
    return None


def move_to_replaced(path: Path, keep: tuple[str, ...] = ()) -> Path | None:
    """Move the entries of ``path`` (but ``keep``) into a new sibling; returns it (None: empty).

    The sibling is ``<name>.replaced-<UTC time>`` (``-2``, ``-3``... when taken). Each entry is
    renamed as it is, links and all: nothing is read, copied or deleted.
    """
    p = Path(path)
    names = sorted(e for e in os.listdir(p) if e not in keep) if p.is_dir() else []
    if not names:
        return None
    base = p.with_name(f"{p.name}.replaced-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    target, n = base, 1
    while True:
        try:
            os.mkdir(target)
            break
        except FileExistsError:
            n += 1
            target = base.with_name(f"{base.name}-{n}")
    with open_folder(p, create=False) as src, open_folder(target, create=False) as dst:
        for name in names:
            os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)
    return target
