"""The study's results table on disk: one JSON record per finished trial, written atomically.

``<output_dir>/records.jsonl`` holds one line per trial; every append rewrites the file through a
temporary file and a rename, so a crash leaves either the old or the new table, never half a line.
``<output_dir>/plan.json`` lists the planned trials, so a report can say how many are done.

A line that does not parse as a record (a truncated write on a file system without atomic rename,
a hand edit) never stops a reader: it is skipped, and the driver moves it to
``<output_dir>/records.damaged.jsonl`` (:func:`set_aside_damaged`), so its trial runs again.

Each record carries ``config_hash``, the SHA-256 (first 16 hex digits) of the trial's defining
configuration (:func:`defining_config`): the resolved trial config without the keys that do not
change what the trial computes (``name``, ``train.progress``, ``train.threads``,
``train.checkpoint_every``, ``data.download``, the ``study``, ``resources`` and ``report``
sections), plus the number of data-parallel workers, which does change it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"
DAMAGED = "records.damaged.jsonl"
PLAN = "plan.json"
STATUSES = ("ok", "failed", "diverged", "pruned")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _parse(line: bytes) -> dict[str, Any] | None:
    """One record, or None when the line is not a whole, valid record."""
    try:
        row = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if (
        not isinstance(row, dict)
        or not isinstance(row.get("trial_id"), str)
        or row.get("status") not in STATUSES
    ):
        return None
    return row


def read_records(out_dir: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The valid records of a study folder and its damaged lines (raw bytes), in file order."""
    path = Path(out_dir) / RECORDS
    if not path.exists():
        return [], []
    good: list[dict[str, Any]] = []
    bad: list[bytes] = []
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        row = _parse(line)
        if row is None:
            bad.append(line)
        else:
            good.append(row)
    return good, bad


def load_records(out_dir: Path) -> list[dict[str, Any]]:
    """All valid records of a study folder (empty when there are none; damaged lines skipped)."""
    return read_records(out_dir)[0]


def _write_records(out_dir: Path, rows: list[dict[str, Any]], damaged: list[bytes]) -> None:
    if damaged:  # kept before the table is rewritten without them
        with open(Path(out_dir) / DAMAGED, "ab") as f:
            f.write(b"".join(line + b"\n" for line in damaged))
            f.flush()
            os.fsync(f.fileno())
    text = "".join(json.dumps(r, default=_json_default) + "\n" for r in rows)
    atomic_write_text(Path(out_dir) / RECORDS, text)


def set_aside_damaged(out_dir: Path) -> int:
    """Move damaged lines of ``records.jsonl`` to ``records.damaged.jsonl``; returns how many."""
    rows, damaged = read_records(out_dir)
    if damaged:
        _write_records(out_dir, rows, damaged)
    return len(damaged)


def append_record(out_dir: Path, record: dict[str, Any]) -> None:
    """Add one trial's record; a record with the same ``trial_id`` is replaced, never doubled."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    rows, damaged = read_records(out_dir)
    rows = [r for r in rows if r["trial_id"] != record["trial_id"]]
    rows.append(record)
    _write_records(out_dir, rows, damaged)


def _json_default(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def done_ids(out_dir: Path, retries: int | None = None) -> set[str]:
    """Ids of trials that resume does not run again.

    Every recorded trial, except (when ``retries`` is given) a failed one attempted at most
    ``retries`` times so far (``attempts`` counts the runs of a trial; 1 when absent).
    """
    return {
        r["trial_id"]
        for r in load_records(out_dir)
        if retries is None or r["status"] != "failed" or r.get("attempts", 1) > retries
    }


_NOT_DEFINING = (
    ("name",),
    ("train", "progress"),
    ("train", "threads"),
    ("train", "checkpoint_every"),
    ("data", "download"),
    ("study",),
    ("resources",),
    ("report",),
)


def defining_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved trial config (``to_dict`` form) that decides what the trial computes.

    Drops the keys listed in the module docstring and adds ``data_parallel_workers``.
    """
    out = copy.deepcopy(config)
    res = config.get("resources") or {}
    gpus = res.get("gpus_per_trial") or 0
    out["data_parallel_workers"] = int(gpus) if gpus > 1 else (res.get("workers_per_trial") or 1)
    for path in _NOT_DEFINING:
        node = out
        for key in path[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 (16 hex digits) of :func:`defining_config` as canonical JSON."""
    blob = json.dumps(defining_config(config), sort_keys=True, default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two trial configs' defining parts."""

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(d, dict):
            return {prefix: d}
        items: dict[str, Any] = {}
        for k, v in d.items():
            items.update(flat(v, f"{prefix}{k}."))
        return items if d else {prefix: d}

    a = {k.rstrip("."): v for k, v in flat(defining_config(old)).items()}
    b = {k.rstrip("."): v for k, v in flat(defining_config(new)).items()}
    return sorted(k for k in a.keys() | b.keys() if a.get(k, None) != b.get(k, None))


def write_plan(out_dir: Path, plan: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Store the planned trials and the study's metadata."""
    atomic_write_text(
        Path(out_dir) / PLAN,
        json.dumps({"meta": meta, "trials": plan}, indent=1, default=_json_default),
    )


def load_plan(out_dir: Path) -> dict[str, Any]:
    """The stored plan (``{"meta": ..., "trials": [...]}``), empty when there is none."""
    path = Path(out_dir) / PLAN
    return json.loads(path.read_text()) if path.exists() else {"meta": {}, "trials": []}


_VERSIONS: dict[str, str] | None = None


def environment() -> dict[str, Any]:
    """Package versions, Python, host and the project's git revision, for every record."""
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = {}
        for pkg in ("rcl_study", "torch", "torchvision", "ray", "optuna", "accelerate", "numpy"):
            try:
                _VERSIONS[pkg] = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                _VERSIONS[pkg] = "missing"
    return {
        "versions": dict(_VERSIONS),
        "python": platform.python_version(),
        "host": platform.node(),
        "git_rev": git_revision(),
    }


def git_revision() -> str:
    """``git rev-parse HEAD`` of the project (``unknown`` outside a checkout), ``+dirty`` if so."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("+dirty" if dirty else "")) if rev else "unknown"
