"""A time budget for a pack, and what a trainer hands back when it is stopped.

Two ways a run ends before its last epoch, and in both every member keeps what it did:

- **stopped from outside** (SIGTERM, Ctrl-C: a ``KeyboardInterrupt`` in the training loop): the
  trainer raises :class:`TrialsStopped`, a ``KeyboardInterrupt`` that carries each member's result
  (status ``stopped``, its last evaluation and ``epochs_trained``); the executor records them
  and the study stops as after Ctrl-C (``rcl_study.study.local``);
- **the budget** (:class:`PackBudget`, a pack only): after the second epoch this run trains (the
  first pays cuDNN's autotuning) the pack keeps as many members, in the order given (their
  priority), as :func:`members_that_fit` says fit the seconds left; the others stop there. Later,
  before an epoch that would not end in time, every member still training stops, evaluated at the
  epoch it reached. Both end with ``status: stopped``, and a ``--resume`` trains them again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rcl_study.trainer.result import TrialResult


class TrialsStopped(KeyboardInterrupt):
    """SIGTERM or Ctrl-C stopped training; ``results`` holds each member's result by name.

    A ``KeyboardInterrupt``: whatever does not look at ``results`` stops as after Ctrl-C.
    ``results`` maps each member's name (the trial id, in a study) to its result: ``stopped``
    for those that were training, their own status for the others.
    """

    def __init__(self, results: dict[str, TrialResult], why: str):
        super().__init__(why)
        self.results = results
        self.why = why


def members_that_fit(
    members: int,
    epoch_s: float,
    eval_s: float,
    epochs_left: int,
    evals_left: int,
    seconds_left: float,
    shared: float,
    safety: float,
) -> int:
    """How many of ``members`` (kept in priority order) can finish in ``seconds_left``; >= 1.

    ``epoch_s`` is one timed epoch of all ``members``, ``eval_s`` one evaluation of one member.
    A pack's epoch is modelled as a ``shared`` share that does not shrink with fewer members (the
    batches and the augmented views, made once per step) and a per-member rest; ``k`` members need
    ``epochs_left * epoch_s * (shared + (1 - shared) * k / members) + evals_left * k * eval_s``
    seconds, which must be at most ``safety * seconds_left``. The first member always stays (it
    is resumable from its checkpoint).
    """
    fit = 1
    for k in range(1, members + 1):
        per_epoch = epoch_s * (shared + (1.0 - shared) * k / members)
        if epochs_left * per_epoch + evals_left * k * eval_s <= safety * seconds_left:
            fit = k
    return fit


@dataclass
class PackBudget:
    """Wall-clock budget of a pack: it must have ended by ``deadline`` (``clock`` seconds).

    ``decide_after``: the epoch of this run (1-based) whose time decides how many members fit;
    ``shared`` and ``safety``: see :func:`members_that_fit`. ``clock`` is ``time.monotonic`` (a
    test passes its own). ``decisions`` logs each decision (what the CPU rehearsal shows).
    """

    deadline: float
    decide_after: int = 2
    shared: float = 0.2
    safety: float = 0.9
    clock: Callable[[], float] = time.monotonic
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def seconds(cls, seconds: float, **kwargs: Any) -> PackBudget:
        """A budget ending ``seconds`` from now on ``time.monotonic``."""
        return cls(deadline=time.monotonic() + seconds, **kwargs)

    def left(self) -> float:
        """Seconds left."""
        return self.deadline - self.clock()

    def keep(
        self,
        members: int,
        epoch_s: float,
        eval_s: float,
        epochs_left: int,
        evals_left: int,
    ) -> int:
        """How many members to keep after the deciding epoch (logged in ``decisions``)."""
        left = self.left()
        k = members_that_fit(
            members, epoch_s, eval_s, epochs_left, evals_left, left, self.shared, self.safety
        )
        self.decisions.append(
            {
                "members": members,
                "keep": k,
                "epoch_s": epoch_s,
                "eval_s": eval_s,
                "epochs_left": epochs_left,
                "seconds_left": left,
            }
        )
        return k

    def next_epoch_fits(self, epoch_s: float, eval_s: float) -> bool:
        """Whether one more epoch (``epoch_s``) and a final evaluation (``eval_s``) end in time."""
        return epoch_s + eval_s <= self.left()
