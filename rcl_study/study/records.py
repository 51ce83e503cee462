"""The study's results table on disk: one JSON record per finished trial, written atomically.

``<output_dir>/records.jsonl`` holds one line per trial; every append rewrites the file through a
temporary file and a rename, so a crash leaves either the old or the new table, never half a line.
``<output_dir>/plan.json`` lists the planned trials, so a report can say how many are done.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"
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


def load_records(out_dir: Path) -> list[dict[str, Any]]:
    """All records of a study folder (empty when there are none)."""
    path = Path(out_dir) / RECORDS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_record(out_dir: Path, record: dict[str, Any]) -> None:
    """Add one trial's record; a record with the same ``trial_id`` is replaced, never doubled."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    rows = [r for r in load_records(out_dir) if r["trial_id"] != record["trial_id"]]
    rows.append(record)
    text = "".join(json.dumps(r, default=_json_default) + "\n" for r in rows)
    atomic_write_text(Path(out_dir) / RECORDS, text)


def _json_default(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def done_ids(out_dir: Path) -> set[str]:
    """Ids of trials already recorded (never run again on resume)."""
    return {r["trial_id"] for r in load_records(out_dir)}


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
