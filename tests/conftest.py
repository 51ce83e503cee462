"""What the tests share: the one tiny study and the harness that runs (and stops) the study CLI.

``tiny_study`` (a fixture; ``TINY_STUDY`` where a module needs it at import time) builds every
study the tests train: ``tiny_study(*layers, **sections)`` is :attr:`TinyStudy.BASE` with each
layer, then ``sections``, deep-merged in. A file whose study differs from the base keeps those
differences in one layer (``TINY_HERE``) and passes it first::

    TINY_HERE = {"name": "p", "loss": DROP, "train": {"epochs": 2}}
    cfg = tiny_study.parse(TINY_HERE, train={"lr": 0.5})
    path = tiny_study.write(tmp_path, TINY_HERE, filename="s.yaml")

Merging: mappings merge key by key, :data:`DROP` removes a key, :class:`Only` replaces a
mapping whole (``study=Only(kind="grid", ...)`` keeps none of the base's study keys), anything
else replaces.

``run_cli`` runs ``python -m rcl_study.run`` (or another module) to its end; ``stop_midway``
starts it in its own session, waits for records, kills or interrupts the driver and every
process it started, and returns what the stopped run left (the ``cli`` fixture binds both to
``tmp_path``).
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


#: a value that removes its key from the tiny study
DROP: Any = _Drop()


class Only(dict):
    """A mapping that replaces the tiny study's mapping at its key instead of merging into it."""


def merge(base: dict, changes: Mapping) -> dict:
    """Deep-merge ``changes`` into ``base`` (in place) and return ``base``."""
    for key, value in changes.items():
        if value is DROP:
            base.pop(key, None)
        elif isinstance(value, Mapping):
            into = base.get(key)
            if isinstance(value, Only) or not isinstance(into, dict):
                into = base[key] = {}
            merge(into, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


class TinyStudy:
    """The tiny study of the tests: a few steps of a small CNN on long-tailed digits, on a CPU."""

    BASE: dict[str, Any] = {
        "name": "tiny",
        "data": {"dataset": "digits_lt", "imbalance_ratio": 10, "test_limit": 100},
        "model": {"arch": "small_cnn", "width": 8, "proj_hidden": 16, "proj_dim": 8},
        "train": {
            "epochs": 1,
            "batch_size": 32,
            "max_steps_per_epoch": 2,
            "warmup_epochs": 0,
            "threads": 1,
        },
        "loss": {"preset": "bcl+rcl", "balance": 1.0, "scale": 1.5, "margin": 0.5},
        "study": {"kind": "ablation", "seeds": [0, 1]},
        "resources": {"cpus_per_trial": 1},
    }
    DROP = DROP
    Only = Only

    def __call__(self, *layers: Mapping[str, Any], **sections: Any) -> dict[str, Any]:
        """The study as a fresh mapping: BASE, then each layer, then ``sections``."""
        raw = copy.deepcopy(self.BASE)
        for layer in (*layers, sections):
            merge(raw, layer)
        return raw

    def parse(self, *layers: Mapping[str, Any], **sections: Any):
        """The validated :class:`~rcl_study.config.StudyFile`."""
        from rcl_study.config import parse_study

        return parse_study(self(*layers, **sections))

    def yaml(self, *layers: Mapping[str, Any], **sections: Any) -> str:
        """The study file's text (keys in the order of BASE, then of the changes)."""
        return yaml.safe_dump(self(*layers, **sections), sort_keys=False)

    def write(
        self,
        folder: str | Path,
        *layers: Mapping[str, Any],
        filename: str | None = None,
        **sections: Any,
    ) -> Path:
        """Write the study to ``folder/filename`` (default ``<name>.yaml``) and return the path."""
        raw = self(*layers, **sections)
        path = Path(folder) / (filename or f"{raw['name']}.yaml")
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path


TINY_STUDY = TinyStudy()


@pytest.fixture
def tiny_study() -> TinyStudy:
    """The tiny study factory: ``tiny_study(...)``, ``.parse``, ``.yaml``, ``.write``."""
    return TINY_STUDY


# ------------------------------------------------------------------- the study command line


def run_cli(
    *args: Any,
    cwd: str | Path,
    module: str = "rcl_study.run",
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """``python -m module *args`` in ``cwd``, to its end; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Stopped:
    """What a study run stopped midway left: its exit status, its stderr, the records by then."""

    returncode: int
    stderr: str
    rows: list[dict[str, Any]]

    @property
    def finished(self) -> dict[str, str]:
        """``trial_id -> finished`` of the records at the stop (a resume must not change them)."""
        return {r["trial_id"]: r["finished"] for r in self.rows}


def stop_midway(
    study: str | Path,
    *,
    cwd: str | Path,
    records: str | Path,
    at_least: int = 1,
    sig: int = signal.SIGKILL,
    wait: float = 300,
    poll: float = 0.5,
    grace: float = 120,
) -> Stopped:
    """Run ``python -m rcl_study.run STUDY --no-progress`` and stop it midway.

    The command starts in its own session, so the driver and the processes it starts (Ray's
    included) form one process group. Once the study folder ``records`` holds ``at_least`` valid
    records (or after ``wait`` seconds, or when the command ends by itself), ``sig`` goes to the
    whole group: SIGKILL as a crash, SIGINT as Ctrl-C at a terminal. If the command is still
    running ``grace`` seconds later, the group is killed and the test fails.
    """
    from rcl_study.trials.folder import StudyFolder

    folder = StudyFolder(Path(records))
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: no child can block a read
        proc = subprocess.Popen(
            [sys.executable, "-m", "rcl_study.run", str(study), "--no-progress"],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        deadline = time.time() + wait
        while (
            time.time() < deadline and proc.poll() is None and len(folder.read_rows()[0]) < at_least
        ):
            time.sleep(poll)
        _signal_group(proc, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            raise
        err.seek(0)
        stderr = err.read()
    return Stopped(proc.returncode, stderr, folder.read_rows()[0])


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # the command and everything it started have already ended
        pass


@dataclass
class Cli:
    """:func:`run_cli` and :func:`stop_midway` with ``cwd`` bound to one folder."""

    cwd: Path

    def run(self, *args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        return run_cli(*args, **{"cwd": self.cwd, **kwargs})

    def stop_midway(self, study: str | Path, **kwargs: Any) -> Stopped:
        return stop_midway(study, **{"cwd": self.cwd, **kwargs})


@pytest.fixture
def cli(tmp_path) -> Cli:
    """The study command line, run in ``tmp_path``."""
    return Cli(tmp_path)


@pytest.fixture
def no_ray(monkeypatch):
    """Stand-ins for the Ray adapter: a study-file or folder test must never start trials."""
    from rcl_study.study import ray_tune as tune

    monkeypatch.setattr(tune.RayExecutor, "start", lambda self, cfg: None)
    monkeypatch.setattr(tune.RayExecutor, "run", lambda *a, **k: None)
    monkeypatch.setattr(tune.RayExecutor, "search", lambda *a, **k: None)
    monkeypatch.setattr(tune.RayExecutor, "stop", lambda self: None)
