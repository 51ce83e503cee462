"""SIGTERM handled as Ctrl-C by the command lines (``rcl_study.run``, ``rcl_study.train``)."""

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
