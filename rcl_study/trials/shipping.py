"""The run's copy of its records into each report folder (``records.jsonl`` and ``plan.json``).

A report is rebuilt (``--report-only``) and a study planned (``--plan-seeds``) from a fresh clone,
where ``runs/`` is not shipped, from this copy (read back by :mod:`rcl_study.report.shipped`).
The run ships when its trials end (:func:`ship_study`, in
:func:`~rcl_study.study.runner.run_study`); a report build never writes records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rcl_study.config import StudyFile
from rcl_study.store import atomic_write_text
from rcl_study.store.folders import claim
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import dumps

__all__ = ["portable", "ship", "ship_study"]


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


def ship(source: StudyFolder, report_dir: Path, kind: str) -> None:
    """Copy ``source``'s valid records (one line per trial) and its plan into ``report_dir``.

    The records go in the order the report lists them: an ablation's or grid's in the order of
    its plan (unplanned ones last), a search's (``kind``) as recorded; written atomically. The
    copies leave out the absolute folders of the machine that ran the study (:func:`portable`).
    """
    rows, _ = source.read_rows()
    plan = source.plan()
    if kind != "search":
        rank = {t.get("trial_id"): i for i, t in enumerate(plan["trials"])}
        rows = sorted(rows, key=lambda r: rank.get(r.get("trial_id"), len(rank)))
    rows = [{**r, "config": portable(r["config"])} if "config" in r else r for r in rows]
    target = StudyFolder(report_dir)
    meta = dict(plan["meta"])
    if "config" in meta:
        meta["config"] = portable(meta["config"])
    atomic_write_text(target.records_path, "".join(dumps(r) + "\n" for r in rows))
    target.write_plan(plan["trials"], meta)


def ship_study(cfg: StudyFile) -> None:
    """Ship the study's records into its report folder and each secondary analysis's (claimed)."""
    source = StudyFolder(cfg.output_dir)
    if not source.records():
        return
    for report_dir in (cfg.report_dir, *(cfg.secondary_dir(s.name) for s in cfg.report.secondary)):
        ship(source, claim(report_dir, cfg.name), cfg.study.kind)
