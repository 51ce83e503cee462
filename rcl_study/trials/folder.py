"""A study's folder on disk: its paths, and the reads and atomic writes of its records and plan.

``<root>/records.jsonl`` holds one line per record (a
:class:`~rcl_study.trials.records.TrialRecord`) and only ever grows during a run: every append
adds one fsynced line (:func:`~rcl_study.store.append_line`), whatever the number of records
already there. A trial recorded again (a retry) gets a new line; readers keep the last valid line
of each ``trial_id``, at that line's position, so a record is replaced, never doubled. The driver
compacts the file once per start (:meth:`StudyFolder.move_damaged_lines`: a rewrite through a
temporary file and a rename); nothing else rewrites it (a report build only reads it).
``<root>/plan.json`` lists the planned trials, so a report can say how many are done;
``<root>/trials/<trial_id>/`` holds a trial's config, result and checkpoint; ``<root>/driver.lock``
the driver lock (``study/lock.py``). Every file here is read and written through
:mod:`rcl_study.store` (no link followed, plain files only, reads bounded).

Each line is parsed once and checked as a typed record (:mod:`rcl_study.trials.reading`). A
line that is no valid record (a line cut short by a crash mid-append, a hand edit, an unknown
status, a metric that is no number or out of its range, a second record of a variant and seed)
never stops a reader: it is set aside with its line number and why, and the driver moves it to
``<root>/records.damaged.jsonl`` (:meth:`StudyFolder.move_damaged_lines`), so its trial runs
again. An append after such a cut line starts on a line of its own. Valid lines are written back
exactly as they were read (an old record keeps its keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcl_study.store import (
    FolderError,
    append_bytes,
    append_line,
    atomic_write_bytes,
    atomic_write_text,
    read_bytes,
    read_lines,
)
from rcl_study.trials.bounded_json import MAX_JSON_DEPTH, MAX_LINE_BYTES, load_json
from rcl_study.trials.reading import DamagedLine, RecordsRead, parse_line, read_records
from rcl_study.trials.records import TrialRecord, TrialStatus, dumps

__all__ = [
    "DAMAGED",
    "LOCK",
    "MAX_JSON_DEPTH",
    "MAX_LINE_BYTES",
    "MAX_PLAN_BYTES",
    "MAX_RECORDS_BYTES",
    "OWN_FILES",
    "PLAN",
    "RECORDS",
    "TRIALS",
    "DamagedLine",
    "RecordsRead",
    "StudyFolder",
    "load_json",
]

#: the names in a records folder (this module owns them; a report folder ships RECORDS and PLAN)
RECORDS = "records.jsonl"
DAMAGED = "records.damaged.jsonl"
PLAN = "plan.json"
LOCK = "driver.lock"
#: where the driver last stood (running trials, ETA), for ``--status``
STATUS = "status.json"
TRIALS = "trials"
#: the toolkit's own files of a records folder: plain files when present (checked at the start)
OWN_FILES = (RECORDS, DAMAGED, PLAN, LOCK, STATUS)


#: the largest ``plan.json`` read
MAX_PLAN_BYTES = 256 * 1024 * 1024
#: the largest ``records.jsonl`` read (refused before a byte is read; 10,000 trials with long
#: histories are well under it)
MAX_RECORDS_BYTES = 4 * 1024**3


def _check_planned(t: Any) -> None:
    """One entry of ``plan.json``'s trials: a string id; the other keys typed when given."""
    if not isinstance(t, dict) or not isinstance(t.get("trial_id"), str):
        raise ValueError("a trial without a string 'trial_id'")
    seed = t.get("seed", 0)
    if not isinstance(t.get("variant", ""), str) or not isinstance(seed, int) or seed is True:
        raise ValueError(f"trial {t['trial_id']!r}: 'variant' or 'seed' of the wrong type")
    if isinstance(seed, bool) or not isinstance(t.get("overrides", {}), dict):
        raise ValueError(f"trial {t['trial_id']!r}: 'seed' or 'overrides' of the wrong type")


def _parse(line: bytes) -> tuple[dict[str, Any], TrialRecord] | None:
    """(raw row, record) of one line, or None when it is not a whole, valid record.

    Invalid: not JSON, too long or too deep (:func:`load_json`), or against the record schema
    (:func:`~rcl_study.trials.records.check_row`); such a line is handled as damaged.
    """
    try:
        return parse_line(line, MAX_LINE_BYTES)
    except ValueError:
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
        """``records.damaged.jsonl``: damaged lines the run moved out of the records."""
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

    def read(self) -> RecordsRead:
        """The records file read once (:func:`~rcl_study.trials.reading.read_records`).

        One record per trial (its last valid line, at that line's position) and each line set
        aside as damaged with its number and why. The file is read line by line, within
        :data:`MAX_RECORDS_BYTES` (a line over :data:`MAX_LINE_BYTES` is damaged).
        """
        return self._read()

    def _read(self) -> RecordsRead:
        """The one place the records file is read (every reader of this class goes through it)."""
        return read_records(read_lines(self.records_path, MAX_RECORDS_BYTES), MAX_LINE_BYTES)

    def read_rows(self) -> tuple[list[dict[str, Any]], list[bytes]]:
        """The records as stored (JSON dicts) and the damaged lines (raw bytes), in file order.

        One row per trial: its last valid line, at that line's position.
        """
        got = self._read()
        return got.rows, [d.raw for d in got.damaged]

    def damaged_lines(self) -> list[bytes]:
        """The lines of ``records.jsonl`` set aside as damaged (see :meth:`read`)."""
        return [d.raw for d in self._read().damaged]

    def records(self) -> list[TrialRecord]:
        """The records, one per trial (its last valid line), in file order; damaged lines skipped.

        Empty when there are none.
        """
        return self._read().records

    def dataframe(self) -> Any:
        """The records as a pandas DataFrame, one row per trial, for a notebook.

        Columns: ``trial_id``, ``variant``, ``seed``, ``status`` (its string), ``reason``,
        ``attempts``, ``pack``, ``wall_time``, ``device``, ``finished``; then one column per
        override key (dotted, e.g. ``loss.scale``; empty where a trial does not set it); then one
        per scalar metric of the last evaluation (``balanced_acc``, ``top1``, ...; lists such as
        ``per_class_acc`` are left out; a name taken by a column above gets ``metrics.``).
        """
        import pandas as pd

        base = ["trial_id", "variant", "seed", "status", "reason", "attempts", "pack"]
        base += ["wall_time", "device", "finished"]
        rows = []
        for rec in self.records():
            row: dict[str, Any] = {k: getattr(rec, k) for k in base}
            row["status"] = rec.status.value
            for key, value in rec.overrides.items():
                row[key if key not in base else f"overrides.{key}"] = value
            for key, value in rec.metrics.items():
                if isinstance(value, (int, float)) or value is None:
                    row[key if key not in row else f"metrics.{key}"] = value
            rows.append(row)
        columns = list(dict.fromkeys([*base, *(k for row in rows for k in row)]))
        return pd.DataFrame(rows, columns=columns)

    def move_damaged_lines(self) -> int:
        """Move damaged lines to ``records.damaged.jsonl`` and compact; returns how many moved.

        When there are damaged lines or superseded records, ``records.jsonl`` is rewritten
        atomically with the last valid line of each trial only (bytes as read, in order); the
        damaged lines are appended (fsynced) to ``records.damaged.jsonl`` first.
        """
        got = self._read()
        if got.damaged:  # kept before the table is rewritten without them
            append_bytes(self.damaged_path, b"".join(d.raw + b"\n" for d in got.damaged))
        if got.damaged or got.superseded:
            atomic_write_bytes(self.records_path, b"".join(line + b"\n" for line in got.lines))
        return len(got.damaged)

    def append(self, record: TrialRecord | dict[str, Any]) -> None:
        """Add one trial's record as one fsynced line; the file is not read.

        A record with the same ``trial_id`` is replaced, never doubled: readers keep the last
        line of a trial (:meth:`records`), and :meth:`move_damaged_lines` drops the older ones.

        Raises:
            ValueError: a dict that is not a valid record (see :meth:`TrialRecord.from_json`).

        """
        if isinstance(record, TrialRecord):
            row = record.to_json()
        else:
            row = record
            TrialRecord.from_json(row)
        append_line(self.records_path, dumps(row))

    def done_ids(self, retries: int | None = None) -> set[str]:
        """Ids of trials that resume does not run again.

        Every recorded trial, except a ``stopped`` one (it did not end: it resumes) and (when
        ``retries`` is given) a failed one attempted at most ``retries`` times so far
        (``attempts`` counts the runs of a trial; 1 when absent).
        """
        return {
            r.trial_id
            for r in self.records()
            if r.status is not TrialStatus.STOPPED
            and (retries is None or r.status is not TrialStatus.FAILED or r.attempts > retries)
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
        return self.checked_plan()[0]

    def checked_plan(self) -> tuple[dict[str, Any], str | None]:
        """The stored plan and, when it is damaged, why (then the plan returned is empty).

        A damaged ``plan.json`` (not JSON, too large or deep, trials that are not plans) is
        never trusted: the runner writes it again when it starts, a report counts the records.
        """
        empty: dict[str, Any] = {"meta": {}, "trials": []}
        path = self.plan_path
        try:
            raw = load_json(read_bytes(path, MAX_PLAN_BYTES), MAX_PLAN_BYTES)
            if not isinstance(raw, dict) or not isinstance(raw.get("meta", {}), dict):
                raise ValueError("not a mapping with 'meta' and 'trials'")
            trials = raw.get("trials", [])
            if not isinstance(trials, list):
                raise ValueError("'trials' is not a list")
            for t in trials:
                _check_planned(t)
        except FileNotFoundError:
            return empty, None
        except FolderError:
            raise  # a link, FIFO or folder where plan.json belongs: refused, never skipped
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            return empty, f"{path}: damaged ({e}); it is written again when the study runs"
        return {"meta": raw.get("meta", {}), "trials": trials}, None
