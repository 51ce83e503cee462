"""One pass over the lines of ``records.jsonl``: typed records, and each damaged line with why.

Each line is parsed once (:func:`~rcl_study.trials.bounded_json.load_json`: bounded in length
and nesting) and checked as a :class:`~rcl_study.trials.records.TrialRecord` (its schema and its
metrics, :func:`~rcl_study.trials.records.check_row`). The last valid line of each trial is kept,
at that line's position. A study holds one trial per variant and seed (the report pairs
variants by seed), except a search's sampled trials, which share their seed by design: a
second trial of a variant and seed (a record copied under another id) is set aside too, the
trial that appeared first kept. What is set aside is a :class:`DamagedLine`: its line number,
why, and its bytes as read (the driver moves them to ``records.damaged.jsonl``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rcl_study.trials.bounded_json import MAX_LINE_BYTES, load_json
from rcl_study.trials.records import TrialRecord

#: the variant of a search's sampled trials: many at one seed by design
SAMPLED_VARIANT = "search"
#: the longest reason kept for a damaged line
_MAX_WHY = 200


@dataclass(frozen=True)
class DamagedLine:
    """A line of ``records.jsonl`` set aside: its 1-based number, why, and its bytes."""

    line: int
    why: str
    raw: bytes

    def note(self) -> str:
        """``line <n>: <why>``, one line."""
        return f"line {self.line}: {self.why}"


@dataclass(frozen=True)
class RecordsRead:
    """A records file read once: one record per trial, and the lines set aside.

    ``records``, ``rows`` (as parsed) and ``lines`` (bytes as read) are parallel, one per
    trial in the order of their last valid lines; ``damaged`` is in file order;
    ``superseded`` counts the earlier lines of trials recorded again.
    """

    records: list[TrialRecord] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    damaged: list[DamagedLine] = field(default_factory=list)
    superseded: int = 0


def parse_line(line: bytes, limit: int = MAX_LINE_BYTES) -> tuple[dict[str, Any], TrialRecord]:
    """(the parsed row, its record) of one line of ``records.jsonl``.

    Raises:
        ValueError: why the line is no valid record (not JSON, too long or deep, or against
            the record schema).

    """
    row = load_json(line, limit)
    try:
        return row, TrialRecord.from_json(row)
    except TypeError as err:  # a key of the wrong kind the schema did not name
        raise ValueError(str(err)) from None


def _why(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= _MAX_WHY else text[: _MAX_WHY - 3] + "..."


def read_records(lines: Iterable[bytes], limit: int = MAX_LINE_BYTES) -> RecordsRead:
    """Read the lines of a records file (no newlines) once; see the module docstring."""
    last: dict[str, tuple[int, bytes, dict[str, Any], TrialRecord]] = {}
    first: dict[str, int] = {}
    damaged: list[DamagedLine] = []
    superseded = 0
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row, rec = parse_line(line, limit)
        except ValueError as err:
            damaged.append(DamagedLine(n, _why(err), line))
            continue
        first.setdefault(rec.trial_id, n)
        if last.pop(rec.trial_id, None) is not None:  # re-inserted: moves to the end
            superseded += 1
        last[rec.trial_id] = (n, line, row, rec)
    for trial_id, why in _second_of_a_seed(last, first).items():
        n, line, _, _ = last.pop(trial_id)
        damaged.append(DamagedLine(n, why, line))
    kept = list(last.values())
    return RecordsRead(
        records=[rec for *_, rec in kept],
        rows=[row for _, _, row, _ in kept],
        lines=[line for _, line, _, _ in kept],
        damaged=sorted(damaged, key=lambda d: d.line),
        superseded=superseded,
    )


def _second_of_a_seed(
    last: dict[str, tuple[int, bytes, dict[str, Any], TrialRecord]], first: dict[str, int]
) -> dict[str, str]:
    """Trials that repeat an earlier trial's variant and seed, and why each is set aside."""
    owner: dict[tuple[str, int], str] = {}
    out: dict[str, str] = {}
    for trial_id in sorted(last, key=first.__getitem__):
        rec = last[trial_id][3]
        if rec.seed is None or not rec.variant or rec.variant == SAMPLED_VARIANT:
            continue
        key = (rec.variant, rec.seed)
        if key in owner:
            out[trial_id] = (
                f"trial {trial_id!r} repeats variant {rec.variant!r} at seed {rec.seed}, "
                f"already recorded as trial {owner[key]!r} (one record per variant and seed)"
            )
        else:
            owner[key] = trial_id
    return out
