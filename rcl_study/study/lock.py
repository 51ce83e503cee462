"""One study, one driver: a lock file in the study folder, created atomically.

``<output_dir>/driver.lock`` holds the driver's pid, host and start time as JSON. It is created
with ``O_CREAT | O_EXCL``, so of two drivers started together exactly one gets it. A lock whose
holder is a dead process on this host is stale: it is taken over, with a note. A lock held from
another host is never taken over (its process cannot be checked from here).
"""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from rcl_study.store import FolderError, as_disk_error, read_bytes
from rcl_study.trials.folder import LOCK

_UNREADABLE_GRACE_S = 10.0  # a lock file still empty after this long was left by a crash
_MAX_LOCK_BYTES = 65536


class StudyLocked(RuntimeError):
    """Another driver is running this study."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder(path: Path) -> dict[str, Any] | None:
    """The lock's JSON (None: missing or unreadable); a link, FIFO or folder there is refused."""
    try:
        info = json.loads(read_bytes(path, _MAX_LOCK_BYTES).decode("utf-8"))
    except FolderError:
        raise
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return info if isinstance(info, dict) else None


class StudyLock:
    """The driver lock of one study folder (acquire, keep, release)."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / LOCK
        self.info = {
            "pid": os.getpid(),
            "host": platform.node(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self.held = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        text = json.dumps(self.info)
        try:
            with as_disk_error(self.path, size=len(text)), os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:  # no lock left behind that no one holds
            with suppress(OSError):
                os.unlink(self.path)
            raise
        self.held = True
        return True

    def _stale_reason(self, holder: dict[str, Any] | None) -> str | None:
        """Why the current lock is stale, or None when its holder may be alive."""
        if holder is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return "it vanished"
            return f"it is unreadable and {age:.0f}s old" if age > _UNREADABLE_GRACE_S else None
        pid, host = holder.get("pid"), holder.get("host")
        if host == self.info["host"] and isinstance(pid, int) and not pid_alive(pid):
            return f"its driver (pid {pid} on {host}) is gone"
        return None

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lock was taken over.

        Raises:
            StudyLocked: another live driver (or one on another host) holds it.

        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        note = None
        for _ in range(5):
            if self._create():
                return note
            holder = read_holder(self.path)
            why = self._stale_reason(holder)
            if why is None:
                h = holder or {}
                raise StudyLocked(
                    f"{self.path.parent} is in use by another driver (pid {h.get('pid', '?')} on "
                    f"host {h.get('host', '?')}, since {h.get('started', '?')}); wait for it to "
                    f"finish or stop it; if it is gone, delete {self.path}"
                )
            # take over: move the stale file aside, and check that it is the one we judged
            aside = self.path.with_name(f".{LOCK}.{os.getpid()}.stale")
            try:
                os.replace(self.path, aside)
            except FileNotFoundError:
                continue
            if read_holder(aside) != holder:  # a live driver took it meanwhile: give it back
                try:
                    os.link(aside, self.path)
                except FileExistsError:
                    pass
                aside.unlink(missing_ok=True)
                continue
            aside.unlink(missing_ok=True)
            note = f"took over the stale lock {self.path} ({why})"
        raise StudyLocked(f"{self.path}: could not take the lock (it keeps changing hands)")

    def ensure(self) -> None:
        """Put the lock file back if it was removed while held (e.g. by ``--overwrite``)."""
        if self.held and read_holder(self.path) != self.info and not self._create():
            raise StudyLocked(f"{self.path}: another driver took the lock while this one held it")

    def release(self) -> None:
        """Remove the lock file if this driver holds it."""
        if self.held and read_holder(self.path) == self.info:
            self.path.unlink(missing_ok=True)
        self.held = False
