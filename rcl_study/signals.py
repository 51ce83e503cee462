"""Signals: SIGTERM handled as Ctrl-C by the command lines, and signals held during a write."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _SigtermAsCtrlC:
    """SIGTERM (``kill``, a batch system's preemption or time limit) does what Ctrl-C does.

    The first one calls the SIGINT handler in force (during Ray Tune: stop the running trials
    gracefully), or raises ``KeyboardInterrupt`` where SIGINT is ignored, as it is for a
    background job of a shell script. Later ones are ignored, so a SIGTERM that reaches the
    driver twice (from Slurm and from the batch script) never cuts the graceful stop short;
    SIGKILL (or Ctrl-C twice) stops at once.
    """

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum, frame) -> None:
        if self.seen:
            return
        self.seen = True
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While inside, SIGTERM is handled as Ctrl-C (:class:`_SigtermAsCtrlC`); restored after.

    Outside the main thread (where no handler can be set) nothing changes. Every command line
    of the toolkit runs inside one (``rcl_study.run``, ``rcl_study.train``). Once a SIGTERM has
    been handled, later ones stay ignored after the block too, so that one arriving while the
    command prints its last line and exits cannot kill it midway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = _SigtermAsCtrlC()
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if handler.seen:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver them to their handlers.

    A Ctrl-C or SIGTERM inside a write (``torch.save``'s zip writer turns ``KeyboardInterrupt``
    into a ``RuntimeError`` traceback) waits for the write, then is raised again, so the
    installed handlers (``rcl_study.run``'s SIGTERM-as-Ctrl-C) see it as they would have.
    Outside the main thread, where handlers cannot be set, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    names = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.getsignal(s) for s in names}
    for s in names:
        if callable(before[s]) or before[s] is signal.default_int_handler:
            signal.signal(s, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)
