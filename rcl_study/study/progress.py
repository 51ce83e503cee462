"""What a person watching a study sees: a line per finished trial and a status line.

The status line (at most every :data:`STATUS_EVERY` seconds, on the driver's stderr) says how many
trials are done, running and left, how many epochs the running trials have done, the time spent,
and an estimate of the time left from the epochs measured so far::

    [status 12:04] trials 5 done, 4 running, 7 left; running: 38/120 epochs; 6m12s elapsed, ETA 9m

The ETA divides the epochs left by the study's measured throughput: each running trial's own
rate (epochs between its first and its latest evaluation over the time between them, so start-up
is left out), summed over the trials running at once (so concurrency counts); before any running
trial has two evaluations, finished trials' rates times the number running. It assumes the
trials left train as fast as the ones measured. Every status tick (and the end of the run) also
hands a :class:`StatusSnapshot` to ``on_status``: the runner writes it to the study folder's
``status.json``, which ``--status`` reads from another terminal.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rcl_study.trials.records import TrialRecord

#: the least number of seconds between two status lines
STATUS_EVERY = 30.0


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


@dataclass(frozen=True)
class StatusSnapshot:
    """Where a running study stands, as its driver last saw it (``status.json``)."""

    updated: str  # UTC, ISO 8601
    pid: int
    host: str
    total: int
    done: int
    left: int
    epochs_per_trial: int
    #: trial id -> epochs done, for trials that have reported an evaluation and have no record
    running: dict[str, int] = field(default_factory=dict)
    eta_seconds: float | None = None
    finished: bool = False


@dataclass
class _Pace:
    """One trial's evaluations: the first and the latest (time, epoch)."""

    t0: float
    e0: int
    t1: float
    e1: int

    def rate(self) -> float | None:
        """Epochs per second between the first and the latest evaluation (None: one only)."""
        return (
            (self.e1 - self.e0) / (self.t1 - self.t0)
            if self.t1 > self.t0 and self.e1 > self.e0
            else None
        )


class Progress:
    """Counts trials and epochs of one study run; prints record lines and status lines."""

    def __init__(
        self,
        enabled: bool = True,
        epochs_per_trial: int = 1,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] | None = None,
        on_status: Callable[[StatusSnapshot], None] | None = None,
    ):
        self.enabled, self.epochs_per_trial, self.clock = enabled, max(1, epochs_per_trial), clock
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.total = self.done = 0
        self.running: dict[str, int] = {}  # trial id -> epochs done, while it has no record
        self.epochs_done = 0  # this run's epochs, finished trials included
        self.paces: dict[str, _Pace] = {}
        self.finished_rates: list[float] = []
        self.on_status = on_status
        self.bar = None
        self.t0 = self.last_status = clock()

    def start(self, total: int, done: int) -> None:
        """Count ``total`` planned trials, ``done`` of them recorded already."""
        self.total, self.done = total, done
        if self.enabled and sys.stderr.isatty() and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc="trials", unit="trial")

    def evaluation(self, trial_id: str, metrics: dict[str, float]) -> None:
        """A trial reported an evaluation (``metrics["epoch"]``: epochs it has done)."""
        epoch = int(metrics.get("epoch", 0))
        before = self.running.get(trial_id, 0)
        if epoch > before:
            self.epochs_done += epoch - before
            self.running[trial_id] = epoch
            now = self.clock()
            pace = self.paces.get(trial_id)
            if pace is None:
                self.paces[trial_id] = _Pace(now, epoch, now, epoch)
            else:
                pace.t1, pace.e1 = now, epoch
        self._maybe_status()

    def record(self, record: TrialRecord) -> None:
        """A trial ended with ``record``: one line (or a bar step)."""
        self.done += 1
        self.running.pop(record.trial_id, None)
        pace = self.paces.pop(record.trial_id, None)
        rate = pace.rate() if pace is not None else None
        if rate:
            self.finished_rates.append(rate)
        bal = record.metrics.get("balanced_acc")
        msg = (
            f"{record.trial_id}: {record.status.value}"
            + (f" balanced_acc={bal:.4f}" if isinstance(bal, float) else "")
            + (f" ({record.reason})" if record.reason else "")
        )
        if self.bar is not None:
            self.bar.set_postfix_str(msg[:60])
            self.bar.update(1)
        else:
            elapsed = self.clock() - self.t0
            self.write(f"[{self.done}/{self.total} trials, {elapsed:.0f}s] {msg}")
        self._maybe_status()

    __call__ = record

    def _left(self) -> int:
        return max(0, self.total - self.done - len(self.running))

    def eta_seconds(self) -> float | None:
        """Seconds left at the measured throughput (None: nothing measured yet)."""
        rates = [r for t in self.running if (r := self.paces[t].rate()) is not None]
        per_trial = rates or self.finished_rates
        if not per_trial:
            return None
        throughput = sum(per_trial) / len(per_trial) * max(1, len(self.running))
        run_left = len(self.running) * self.epochs_per_trial - sum(self.running.values())
        return (run_left + self._left() * self.epochs_per_trial) / throughput

    def snapshot(self, finished: bool = False) -> StatusSnapshot:
        """Where the study stands now, for ``status.json``."""
        return StatusSnapshot(
            updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            pid=os.getpid(),
            host=socket.gethostname(),
            total=self.total,
            done=self.done,
            left=self._left(),
            epochs_per_trial=self.epochs_per_trial,
            running=dict(self.running),
            eta_seconds=None if finished else self.eta_seconds(),
            finished=finished,
        )

    def status_line(self) -> str:
        """The status line now (see the module docstring)."""
        elapsed = self.clock() - self.t0
        run_done = sum(self.running.values())
        run_total = len(self.running) * self.epochs_per_trial
        eta_s = self.eta_seconds()
        eta = f"ETA {duration(eta_s)}" if eta_s is not None else "ETA after two evaluations"
        return (
            f"[status {time.strftime('%H:%M')}] trials {self.done} done, {len(self.running)} "
            f"running, {self._left()} left; running: {run_done}/{run_total} epochs; "
            f"{duration(elapsed)} elapsed, {eta}"
        )

    def _maybe_status(self) -> None:
        now = self.clock()
        if now - self.last_status >= STATUS_EVERY:
            self.last_status = now
            if self.on_status is not None:
                self.on_status(self.snapshot())
            if not self.enabled:
                return
            if self.bar is not None:
                self.bar.write(self.status_line(), file=sys.stderr)
            else:
                self.write(self.status_line())

    def close(self, finished: bool | None = False) -> None:
        """Close the bar, if any; hand the last snapshot to ``on_status`` (None: no snapshot)."""
        if self.on_status is not None and finished is not None:
            self.on_status(self.snapshot(finished))
        if self.bar is not None:
            self.bar.close()
            self.bar = None
