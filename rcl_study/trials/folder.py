"""A study's folder on disk: its paths, and the reads and atomic writes of its records and plan.

``<root>/records.jsonl`` holds one line per trial (a
:class:`~rcl_study.trials.records.TrialRecord`);
every append rewrites the file through a temporary file and a rename, so a crash leaves either
the old or the new table, never half a line. ``<root>/plan.json`` lists the planned trials, so a
report can say how many are done; ``<root>/trials/<trial_id>/`` holds a trial's config, result
and checkpoint; ``<root>/driver.lock`` the driver lock (``study/lock.py``).

A line that does not parse as a record (a truncated write on a file system without atomic rename,
a hand edit, an unknown status) never stops a reader: it is skipped, and the driver moves it to
``<root>/records.damaged.jsonl`` (:meth:`StudyFolder.set_aside_damaged`), so its trial runs
again. Valid lines are written back exactly as they were read (an old record keeps its keys).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcl_study.files import atomic_write_text
from rcl_study.trials.records import TrialRecord, TrialStatus, dumps

RECORDS = "records.jsonl"
DAMAGED = "records.damaged.jsonl"
PLAN = "plan.json"
LOCK = "driver.lock"
TRIALS = "trials"


def _parse(line: bytes) -> tuple[dict[str, Any], TrialRecord] | None:
    """(raw row, record) of one line, or None when it is not a whole, valid record."""
    try:
        row = json.loads(line.decode("utf-8"))
        return row, TrialRecord.from_json(row)
    except (UnicodeDecodeError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class StudyFolder:
    """The records folder of one study (``study.output_dir``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def records_path(self) -> Path:
        """``records.jsonl``: one record per line."""
        return self.root / RECORDS

    @property
    def damaged_path(self) -> Path:
        """``records.damaged.jsonl``: damaged lines set aside."""
        return self.root / DAMAGED

    @property
    def plan_path(self) -> Path:
        """``plan.json``: the planned trials and the study's metadata."""
        return self.root / PLAN

    @property
    def lock_path(self) -> Path:
        """``driver.lock``: held by the one driver of this study."""
        return self.root / LOCK

    @property
    def trials_dir(self) -> Path:
        """``trials/``: one folder per trial (and per pack)."""
        return self.root / TRIALS

    def trial_dir(self, trial_id: str) -> Path:
        """``trials/<trial_id>/``: a trial's (or a pack's) config, result and checkpoint."""
        return self.trials_dir / trial_id

    # ------------------------------------------------------------------ records

    def _read(self) -> tuple[list[tuple[dict[str, Any], TrialRecord]], list[bytes]]:
        if not self.records_path.exists():
            return [], []
        good: list[tuple[dict[str, Any], TrialRecord]] = []
        bad: list[bytes] = []
        for line in self.records_path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            parsed = _parse(line)
            if parsed is None:
                bad.append(line)
            else:
                good.append(parsed)
        return good, bad

    def read_rows(self) -> tuple[list[dict[str, Any]], list[bytes]]:
        """The valid records as stored (JSON dicts) and the damaged lines (raw bytes), in order."""
        good, bad = self._read()
        return [row for row, _ in good], bad

    def damaged_lines(self) -> list[bytes]:
        """The lines of ``records.jsonl`` that are not valid records."""
        return self._read()[1]

    def records(self) -> list[TrialRecord]:
        """All valid records, in file order (empty when there are none; damaged lines skipped)."""
        return [rec for _, rec in self._read()[0]]

    def _write(self, rows: list[dict[str, Any]], damaged: list[bytes]) -> None:
        if damaged:  # kept before the table is rewritten without them
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.damaged_path, "ab") as f:
                f.write(b"".join(line + b"\n" for line in damaged))
                f.flush()
                os.fsync(f.fileno())
        atomic_write_text(self.records_path, "".join(dumps(r) + "\n" for r in rows))

    def set_aside_damaged(self) -> int:
        """Move damaged lines to ``records.damaged.jsonl``; returns how many."""
        rows, damaged = self.read_rows()
        if damaged:
            self._write(rows, damaged)
        return len(damaged)

    def append(self, record: TrialRecord | dict[str, Any]) -> None:
        """Add one trial's record; a record with the same ``trial_id`` is replaced, never doubled.

        Raises:
            ValueError: a dict that is not a valid record (see :meth:`TrialRecord.from_json`).

        """
        if isinstance(record, TrialRecord):
            row = record.to_json()
        else:
            row = record
            TrialRecord.from_json(row)
        rows, damaged = self.read_rows()
        rows = [r for r in rows if r["trial_id"] != row["trial_id"]]
        rows.append(row)
        self._write(rows, damaged)

    def done_ids(self, retries: int | None = None) -> set[str]:
        """Ids of trials that resume does not run again.

        Every recorded trial, except (when ``retries`` is given) a failed one attempted at most
        ``retries`` times so far (``attempts`` counts the runs of a trial; 1 when absent).
        """
        return {
            r.trial_id
            for r in self.records()
            if retries is None or r.status is not TrialStatus.FAILED or r.attempts > retries
        }

    def attempts(self) -> dict[str, int]:
        """How many times each recorded trial ran so far."""
        return {r.trial_id: r.attempts for r in self.records()}

    def holds_study(self) -> bool:
        """True when records or trial folders exist here."""
        trials = self.trials_dir
        return bool(self.records()) or (trials.exists() and any(trials.iterdir()))

    # ------------------------------------------------------------------ plan

    def write_plan(self, plan: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        """Store the planned trials and the study's metadata."""
        atomic_write_text(self.plan_path, dumps({"meta": meta, "trials": plan}, indent=1))

    def plan(self) -> dict[str, Any]:
        """The stored plan (``{"meta": ..., "trials": [...]}``), empty when there is none."""
        path = self.plan_path
        return json.loads(path.read_text()) if path.exists() else {"meta": {}, "trials": []}
