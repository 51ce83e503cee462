"""The in-process executor (``resources.executor: local``): no Ray, one unit after another.

For machines where Ray cannot be installed (the GPU machine) or is not wanted. Trials and packs
run in this process, in plan order, through the same :mod:`.execute` functions as under Ray, and
become the same records. A unit that raises is recorded ``failed`` (with the exception's last
line) and the study goes on; ``--resume`` retries it (up to ``study.retries``), as under Ray.
SIGTERM or Ctrl-C during training records each member of the unit ``stopped`` (its last
evaluation and ``epochs_trained``; members finished before keep their own status), then stops the
study as Ctrl-C does; ``--resume`` trains the stopped ones again from their checkpoint.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence

from rcl_study.config import ConfigError, StudyFile
from rcl_study.store import disk_error
from rcl_study.study.execute import Resolver, append_log, evaluations, train_unit
from rcl_study.study.executor import SearchRequest, Sink
from rcl_study.study.recording import unit_records
from rcl_study.trainer.budget import PackBudget, TrialsStopped
from rcl_study.trainer.result import TrialResult, TrialStatus
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.unit import Unit


def _error_line(err: BaseException) -> str:
    if (disk := disk_error(err)) is not None:  # already a line in words
        return str(disk)
    lines = [ln.strip() for ln in traceback.format_exception_only(err) if ln.strip()]
    return (lines[-1] if lines else type(err).__name__)[:500]


class LocalExecutor:
    """Runs units in this process, in order (implements :class:`~.executor.Executor`).

    ``budget``: a time budget for the packs (:class:`~rcl_study.trainer.budget.PackBudget`),
    their members in priority order; None: no budget.
    """

    name = "local"

    def __init__(self, budget: PackBudget | None = None) -> None:
        self.budget = budget

    def start(self, study: StudyFile) -> None:
        """Nothing to start; a search needs Ray's search loop and is refused here."""
        if study.study.kind == "search":
            raise self._no_search(study)

    def stop(self) -> None:
        """Nothing to stop."""

    @staticmethod
    def _no_search(study: StudyFile) -> ConfigError:
        return ConfigError(
            f"{study.name}: resources.executor: 'local' runs ablations and grids; "
            "a search needs 'ray'"
        )

    def search(
        self, study: StudyFile, request: SearchRequest, folder: StudyFolder, sink: Sink
    ) -> None:
        """Refused: see :meth:`start`."""
        raise self._no_search(study)

    def run(self, study: StudyFile, units: Sequence[Unit], folder: StudyFolder, sink: Sink) -> None:
        """Train each unit here; each member's evaluations and record go to ``sink``."""
        resolve = Resolver(study)
        threads = max(1, int(study.resources.cpus_per_trial))
        for unit in units:
            started = time.time()
            status, reason = TrialStatus.OK, ""
            results: dict[str, TrialResult] = {}
            report = evaluations(sink.evaluation)

            def log(line: str, unit: Unit = unit) -> None:
                print(line, flush=True)
                append_log(folder, unit, [line])

            try:
                results = train_unit(unit, resolve, folder, report, threads, log, self.budget)
            except TrialsStopped as stop:  # every member's result, then stop as Ctrl-C does
                wall = time.time() - started
                for record in unit_records(
                    unit, resolve, stop.results, TrialStatus.STOPPED, stop.why, wall
                ):
                    sink.record(record)
                raise
            except Exception as err:  # noqa: BLE001 - a failing trial is recorded, not fatal
                status, reason = TrialStatus.FAILED, _error_line(err)
                append_log(folder, unit, [traceback.format_exc()])
            wall = time.time() - started
            for record in unit_records(unit, resolve, results, status, reason, wall):
                if record.status is TrialStatus.PRUNED:  # no result and no error: not possible
                    record = record.replace(
                        status=TrialStatus.FAILED, reason="the trial stored no result"
                    )
                sink.record(record)
