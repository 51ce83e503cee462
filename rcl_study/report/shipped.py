"""The records a report ships: ``reports/<study>/records.jsonl`` (and its ``plan.json``).

A report is rebuilt (``--report-only``) and a study planned (``--plan-seeds``) from a fresh clone,
where ``runs/`` is not shipped, from this copy of the study's valid records (issue 20, item 4).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


#: where a study's folders were on the machine that ran it: absolute paths there, meaningless in a
#: clone and a leak of that machine's layout (a home folder) into a committed report; they decide
#: nothing a trial computes (not in its config hash), so the shipped copy leaves them out (None)
MACHINE_PATHS = (("study", "output_dir"), ("report", "dir"))


def portable(config: Any) -> Any:
    """A copy of a resolved config (``to_dict`` form) without the machine's absolute folders."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    for section, key in MACHINE_PATHS:
        node = out.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str):
            if os.path.isabs(node[key]):
                out[section] = {**node, key: None}
    return out


def ship(source: StudyFolder, report_dir: Path, order: list[str] | None = None) -> None:
    """Copy ``source``'s valid records (one line per trial) and its plan into ``report_dir``.

    ``order`` (trial ids) sorts the records as the report lists them; written atomically. The
    copies leave out the absolute folders of the machine that ran the study (:func:`portable`).
    """
    rows, _ = source.read_rows()
    if order is not None:
        rank = {t: i for i, t in enumerate(order)}
        rows = sorted(rows, key=lambda r: rank.get(r.get("trial_id"), len(rank)))
    rows = [{**r, "config": portable(r["config"])} if "config" in r else r for r in rows]
    target = StudyFolder(report_dir)
    plan = source.plan()
    meta = dict(plan["meta"])
    if "config" in meta:
        meta["config"] = portable(meta["config"])
    atomic_write_text(target.records_path, "".join(dumps(r) + "\n" for r in rows))
    target.write_plan(plan["trials"], meta)
