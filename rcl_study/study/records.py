"""Compatibility: the records as plain dicts, for callers written before the typed record.

The record type lives in :mod:`rcl_study.records` (:class:`~rcl_study.records.TrialRecord`), the
study folder's paths, reads and atomic writes in :mod:`rcl_study.study_folder`
(:class:`~rcl_study.study_folder.StudyFolder`). These functions keep the old dict interface on
top of them (same files, same damaged-line handling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..records import (
    STATUSES,
    changed_keys,
    config_hash,
    defining_config,
    environment,
    git_revision,
)
from ..study_folder import DAMAGED, PLAN, RECORDS, StudyFolder, atomic_write_text

__all__ = [
    "DAMAGED",
    "PLAN",
    "RECORDS",
    "STATUSES",
    "append_record",
    "atomic_write_text",
    "changed_keys",
    "config_hash",
    "defining_config",
    "done_ids",
    "environment",
    "git_revision",
    "load_plan",
    "load_records",
    "read_records",
    "set_aside_damaged",
    "write_plan",
]


def read_records(out_dir: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The valid records of a study folder (dicts) and its damaged lines (raw bytes), in order."""
    return StudyFolder(out_dir).read_rows()


def load_records(out_dir: Path) -> list[dict[str, Any]]:
    """All valid records of a study folder as stored (dicts; damaged lines skipped)."""
    return StudyFolder(out_dir).read_rows()[0]


def append_record(out_dir: Path, record: dict[str, Any]) -> None:
    """Add one record (a dict); see :meth:`StudyFolder.append`."""
    StudyFolder(out_dir).append(record)


def set_aside_damaged(out_dir: Path) -> int:
    """See :meth:`StudyFolder.set_aside_damaged`."""
    return StudyFolder(out_dir).set_aside_damaged()


def done_ids(out_dir: Path, retries: int | None = None) -> set[str]:
    """See :meth:`StudyFolder.done_ids`."""
    return StudyFolder(out_dir).done_ids(retries)


def write_plan(out_dir: Path, plan: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """See :meth:`StudyFolder.write_plan`."""
    StudyFolder(out_dir).write_plan(plan, meta)


def load_plan(out_dir: Path) -> dict[str, Any]:
    """See :meth:`StudyFolder.plan`."""
    return StudyFolder(out_dir).plan()
