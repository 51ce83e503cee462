"""The in-process executor (``resources.executor: local``): no Ray, one unit after another.

For machines where Ray cannot be installed (the GPU machine) or is not wanted. Trials and packs
run in this process, in plan order, through the same ``execute.py`` functions as under Ray, and
become the same records. A unit that raises is recorded ``failed`` (with the exception's last
line) and the study goes on; ``--resume`` retries it (up to ``study.retries``), as under Ray.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ConfigError, StudyFile, to_dict
from ..records import TrialRecord, TrialStatus
from ..study_folder import StudyFolder
from .execute import train_unit, unit_records


def init_ray(cfg: StudyFile) -> None:
    """Nothing to start; a search needs Ray's search loop and is refused here."""
    if cfg.study.kind == "search":
        raise ConfigError(
            f"{cfg.name}: resources.executor: 'local' runs ablations and grids; "
            "a search needs 'ray'"
        )


def shutdown() -> None:
    """Nothing to stop."""


def _error_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in traceback.format_exception_only(err) if ln.strip()]
    return (lines[-1] if lines else type(err).__name__)[:500]


def run_trials(
    cfg: StudyFile,
    plans: list[dict[str, Any]] | None,
    out_dir: Path,
    on_record: Callable[[TrialRecord], None],
    search: dict[str, Any] | None = None,
) -> None:
    """Run each unit (a plan dict or a pack ``{"pack", "members"}``) here, recording its members.

    Same signature as ``tune.run_trials``; ``search`` is not supported (see :func:`init_ray`).
    """
    if search is not None or plans is None:
        init_ray(cfg.model_copy(update={"study": cfg.study.model_copy(update={"kind": "search"})}))
    out_dir = Path(out_dir).resolve()
    base = to_dict(cfg)
    folder = StudyFolder(out_dir)
    threads = max(1, int(cfg.resources.cpus_per_trial))
    for unit in plans or []:
        started = time.time()
        status, reason = TrialStatus.OK, ""
        try:
            train_unit(unit, base, out_dir, None, threads)
        except Exception as err:  # noqa: BLE001 - a failing trial is recorded, not fatal
            status, reason = TrialStatus.FAILED, _error_line(err)
        wall = time.time() - started
        for record in unit_records(unit, base, out_dir, status, reason, wall):
            if record.status is TrialStatus.PRUNED:  # no result and no error: not possible here
                record = record.replace(
                    status=TrialStatus.FAILED, reason="the trial stored no result"
                )
            folder.append(record)
            on_record(record)
