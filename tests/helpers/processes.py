"""Processes the slow tests start and must stop: exactly theirs, found by a marker."""

import os
import signal
import socket
from pathlib import Path


def kill_marked(marker: str) -> None:
    """SIGKILL every process whose command line names ``marker`` (a test's own temp folder)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
