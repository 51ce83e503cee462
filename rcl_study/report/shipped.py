"""The records a report ships: ``reports/<study>/records.jsonl`` (and its ``plan.json``).

A report is rebuilt (``--report-only``) and a study planned (``--plan-seeds``) from a fresh clone,
where ``runs/`` is not shipped, from this copy of the study's valid records (issue 20, item 4).
"""

from __future__ import annotations

from pathlib import Path

from rcl_study.config import StudyFile
from rcl_study.files import atomic_write_text
from rcl_study.trials.folder import PLAN, RECORDS, StudyFolder
from rcl_study.trials.records import dumps

__all__ = ["PLAN", "RECORDS", "records_folder", "ship"]


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


def ship(source: StudyFolder, report_dir: Path, order: list[str] | None = None) -> None:
    """Copy ``source``'s valid records (one line per trial) and its plan into ``report_dir``.

    ``order`` (trial ids) sorts the records as the report lists them; written atomically.
    """
    rows, _ = source.read_rows()
    if order is not None:
        rank = {t: i for i, t in enumerate(order)}
        rows = sorted(rows, key=lambda r: rank.get(r.get("trial_id"), len(rank)))
    target = StudyFolder(report_dir)
    plan = source.plan()
    atomic_write_text(target.records_path, "".join(dumps(r) + "\n" for r in rows))
    target.write_plan(plan["trials"], plan["meta"])
