"""Which folders a study may write into and delete from.

A study writes its records to ``study.output_dir`` (default ``runs/<name>``) and its report to
``report.dir`` (default ``reports/<name>``). Each folder is *claimed* when the toolkit creates it:
a marker file :data:`MARKER` holds the study's name. A folder may be used when it is new, empty, or
claimed by the same study (a folder from before markers existed is adopted when it holds only
names the toolkit writes). ``--overwrite`` deletes only the names the toolkit writes (listed in
:data:`RECORD_NAMES` / :data:`REPORT_NAMES`), never the folder itself, so a file a person put
there survives. The working folder, its parents, the home folder, the file system root and this
toolkit's own checkout are never used.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path

from rcl_study.config import ConfigError

MARKER = ".rcl_study"
#: what the toolkit writes in a records folder (glob patterns; ``.*.tmp`` are atomic-write temps)
RECORD_NAMES = (
    "records*",  # records.jsonl and any side file of damaged lines
    "tensorboard",  # live tracking (rcl_study.study.tracking)
    "mlflow.db*",
    "mlartifacts",
    "plan.json",
    "trials",
    "ray",
    "ray-train",
    "optuna.journal*",
    ".*.tmp",
    "*.tmp",
)
#: what the toolkit writes in a report folder (records.jsonl, plan.json: the records it ships)
REPORT_NAMES = (
    "index.md",
    "index.html",
    "results.csv",
    "stats.json",
    "figures",
    "records.jsonl",
    "plan.json",
    ".*.tmp",
    "*.tmp",
)
#: the toolkit's too, but never deleted: a lock file belongs to whichever driver holds it
KEEP_NAMES = ("*.lock", ".lock*", "lock")
_TOOLKIT_ROOT = Path(__file__).resolve().parents[1]


def _names(role: str) -> tuple[str, ...]:
    return RECORD_NAMES if role == "records" else REPORT_NAMES


def _ours(name: str, role: str, deletable: bool = False) -> bool:
    pats = _names(role) if deletable else _names(role) + KEEP_NAMES
    return (name == MARKER and not deletable) or any(fnmatch.fnmatchcase(name, p) for p in pats)


def owner(path: Path) -> str | None:
    """The study named in ``path``'s marker (None without a readable marker)."""
    try:
        data = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("study") if isinstance(data, dict) else None


def check_folder(path: Path, study: str, role: str, key: str, source: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` may hold this study's ``role`` files.

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
    claimed = owner(p)
    if claimed is not None and claimed != study:
        raise ConfigError(f"{where} belongs to study '{claimed}'; give this study its own folder")
    if claimed is None:
        try:
            foreign = sorted(e.name for e in p.iterdir() if not _ours(e.name, role))
        except OSError as err:
            raise ConfigError(f"{where} cannot be read ({err.strerror})") from None
        if foreign:
            raise ConfigError(
                f"{where} holds files the toolkit did not write (e.g. '{foreign[0]}'); "
                "name a new or empty folder"
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
    """Create ``path`` if needed and mark it as this study's (call after :func:`check_folder`)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    if owner(p) != study:
        (p / MARKER).write_text(json.dumps({"study": study}) + "\n", encoding="utf-8")
    return p


def clear(path: Path, study: str, role: str) -> list[str]:
    """Delete what the toolkit wrote in ``path`` (marker kept); returns the names deleted.

    Only names matching the role's patterns go; the folder itself and anything else stay. Refuses
    (ConfigError) a folder whose marker names another study or that has no marker.
    """
    p = Path(path)
    if not p.exists():
        return []
    if owner(p) != study:
        raise ConfigError(f"{path}: not marked as study '{study}''s folder; nothing deleted")
    gone = []
    for entry in sorted(p.iterdir()):
        if not _ours(entry.name, role, deletable=True):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            os.unlink(entry)
        gone.append(entry.name)
    return gone
