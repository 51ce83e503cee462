"""The one contract of an executor, the part of a study that runs units of work.

The study runner (:mod:`rcl_study.study.runner`) plans the units, then hands them to an
:class:`Executor`; the executor trains them (here, or on a Ray cluster) and hands each member's
:class:`~rcl_study.trials.records.TrialRecord` back to a :class:`Sink`, which appends it to the
study folder. Two executors implement it: :class:`~rcl_study.study.local.LocalExecutor` (this
process, no Ray) and :class:`~rcl_study.study.ray_tune.RayExecutor` (Ray Tune, Optuna searches).
Tests run the same contract over both (``test_executor_contract.py``); the runner picks one with
:func:`rcl_study.study.runner.make_executor`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rcl_study.config import StudyFile
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialRecord
from rcl_study.trials.unit import Unit

#: called in the driver with (trial id, scalar metrics) after each evaluation (live tracking)
OnEval = Callable[[str, dict[str, float]], None]


class Sink(Protocol):
    """Where an executor hands, in the driver, what the trials produce.

    The runner's :class:`~rcl_study.study.runner.RecordBook` is the sink of a study: it appends
    each record to ``records.jsonl`` and tells the progress line and the trackers.
    """

    def record(self, record: TrialRecord) -> None:
        """A member's record, when its unit ended (the sink numbers its attempts)."""
        ...

    def evaluation(self, trial_id: str, metrics: dict[str, float]) -> None:
        """A member's evaluation, as it happens (scalar metrics, ``epoch`` among them)."""
        ...


@dataclass(frozen=True)
class SearchRequest:
    """What a search asks of an executor: ``n_trials`` new points of ``distributions``.

    ``enqueue`` lists parameter dicts to run first (trials a stopped study left running);
    ``resumed`` counts the points the stored search already holds (it re-seeds the sampler).
    """

    distributions: dict[str, Any]
    n_trials: int
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    resumed: int = 0


@runtime_checkable
class Executor(Protocol):
    """Runs units of a study and reports one record per member trial.

    Lifecycle: :meth:`start` once (join or start what the executor needs; a missing or too small
    cluster fails here, before anything is written), then :meth:`run` and :meth:`search` any
    number of times, then :meth:`stop` (always, also after an error).
    """

    #: ``local`` or ``ray`` (the value of ``resources.executor`` that selects it)
    name: str

    def start(self, study: StudyFile) -> None:
        """Get ready to run ``study``'s trials; raise a one-line error when it cannot."""
        ...

    def run(self, study: StudyFile, units: Sequence[Unit], folder: StudyFolder, sink: Sink) -> None:
        """Train every unit in the study folder ``folder``; each member's record to ``sink``.

        Each member's evaluations go to the sink as they happen. Results reach the driver
        through the executor's own channel (Ray's reporting, or this process): the driver never
        reads a worker's disk.

        A unit that raises is recorded ``failed`` (the exception's last line) and the others go
        on. Ctrl-C raises ``KeyboardInterrupt`` after the finished members are recorded.
        """
        ...

    def search(
        self, study: StudyFile, request: SearchRequest, folder: StudyFolder, sink: Sink
    ) -> None:
        """Sample and train ``request.n_trials`` search points at ``study.study.seeds[0]``.

        Raises:
            ConfigError: this executor cannot run searches.

        """
        ...

    def stop(self) -> None:
        """Release what :meth:`start` took; safe to call more than once."""
        ...
