"""What a person watching a study sees: a line per finished trial and a status line.

The status line (at most every :data:`STATUS_EVERY` seconds, on the driver's stderr) says how many
trials are done, running and left, how many epochs the running trials have done, the time spent,
and an estimate of the time left from the epochs measured so far::

    [status 12:04] trials 5 done, 4 running, 7 left; running: 38/120 epochs; 6m12s elapsed, ETA 9m

The ETA is (epochs left) / (epochs done per second since the study started), over all trials;
it assumes the trials left train as fast as the ones measured.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rcl_study.trials.records import TrialRecord

#: the least number of seconds between two status lines
STATUS_EVERY = 30.0


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Counts trials and epochs of one study run; prints record lines and status lines."""

    def __init__(
        self,
        enabled: bool = True,
        epochs_per_trial: int = 1,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] | None = None,
    ):
        self.enabled, self.epochs_per_trial, self.clock = enabled, max(1, epochs_per_trial), clock
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.total = self.done = 0
        self.running: dict[str, int] = {}  # trial id -> epochs done, while it has no record
        self.epochs_done = 0  # this run's epochs, finished trials included
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
        self._maybe_status()

    def record(self, record: TrialRecord) -> None:
        """A trial ended with ``record``: one line (or a bar step)."""
        self.done += 1
        self.running.pop(record.trial_id, None)
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

    def status_line(self) -> str:
        """The status line now (see the module docstring)."""
        elapsed = self.clock() - self.t0
        left = max(0, self.total - self.done - len(self.running))
        run_done = sum(self.running.values())
        run_total = len(self.running) * self.epochs_per_trial
        epochs_left = (run_total - run_done) + left * self.epochs_per_trial
        if self.epochs_done and elapsed > 0:
            eta = f"ETA {_duration(epochs_left * elapsed / self.epochs_done)}"
        else:
            eta = "ETA unknown (no epoch measured yet)"
        return (
            f"[status {time.strftime('%H:%M')}] trials {self.done} done, {len(self.running)} "
            f"running, {left} left; running: {run_done}/{run_total} epochs; "
            f"{_duration(elapsed)} elapsed, {eta}"
        )

    def _maybe_status(self) -> None:
        now = self.clock()
        if self.enabled and now - self.last_status >= STATUS_EVERY:
            self.last_status = now
            if self.bar is not None:
                self.bar.write(self.status_line(), file=sys.stderr)
            else:
                self.write(self.status_line())

    def close(self) -> None:
        """Close the bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
