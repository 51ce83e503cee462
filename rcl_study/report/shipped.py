"""The records a report ships: ``reports/<study>/records.jsonl`` (and its ``plan.json``).

A report is rebuilt (``--report-only``) and a study planned (``--plan-seeds``) from a fresh clone,
where ``runs/`` is not shipped, from this copy of the study's valid records. The run writes the
copy when its trials end (:func:`rcl_study.trials.shipping.ship_study`); a report build only
reads records, never writes them.
"""

from __future__ import annotations

from pathlib import Path

from rcl_study.config import StudyFile
from rcl_study.trials.folder import PLAN, RECORDS

__all__ = ["PLAN", "RECORDS", "records_folder"]


def records_folder(cfg: StudyFile, also: tuple[Path, ...] = ()) -> tuple[Path, str | None]:
    """The folder to read the study's records from, and a one-line note when it is a report's.

    ``study.output_dir`` when it holds records; else the report folder (then each of ``also``,
    e.g. the primary report of a secondary analysis) where a report shipped its records; else
    ``study.output_dir`` (whose absence the caller reports).
    """
    runs = Path(cfg.output_dir)
    if (runs / RECORDS).exists():
        return runs, None
    for report in (Path(cfg.report_dir), *map(Path, also)):
        if (report / RECORDS).exists():
            return report, (
                f"note: {runs} holds no records: using the records shipped with the report, "
                f"{report / RECORDS}"
            )
    return runs, None
