"""Around Tune: no census of the callbacks, and a stop that the command line need not wait for."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rcl_study.study.packing import plan_units
from rcl_study.trials.design import expand
from rcl_study.trials.folder import StudyFolder
from tests.conftest import TINY_STUDY

pytest.importorskip("ray")

from ray.air._internal import usage  # noqa: E402

from rcl_study.study import cluster, ray_tune  # noqa: E402

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())

TINY_HERE = {
    "name": "startup",
    "data": {"test_limit": 60},
    "train": {"progress": False},
    "study": {"seeds": [0], "components": ["balance"]},
    "resources": {"executor": "ray", "pack": 1},
}


def _study(tmp_path):
    return TINY_STUDY.parse(
        TINY_HERE,
        study={"output_dir": str(tmp_path / "runs")},
        report={"dir": str(tmp_path / "report")},
    )


def test_the_census_of_callbacks_imports_no_logger_integration():
    pytest.importorskip("mlflow")
    script = textwrap.dedent(
        """
        import sys
        from ray import tune
        from ray.air._internal import usage
        from rcl_study.study.ray_tune import _without_callback_census

        census = usage.tag_callbacks
        with _without_callback_census():
            usage.tag_callbacks([tune.Callback()])
            print("inside", "ray.air.integrations.mlflow" in sys.modules)
        print("restored", usage.tag_callbacks is census)
        usage.tag_callbacks([tune.Callback()])  # Ray's own census: it does import them
        print("after", "ray.air.integrations.mlflow" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:3] == ["inside False", "restored True", "after True"]


def test_tune_runs_without_the_census(tmp_path, monkeypatch):
    cfg = _study(tmp_path)
    plans = expand(cfg)
    census = usage.tag_callbacks
    seen = []

    class FakeTuner:
        def __init__(self, *args, **kwargs):
            pass

        def fit(self):
            seen.append(usage.tag_callbacks is census)

    monkeypatch.setattr(ray_tune.tune, "Tuner", FakeTuner)
    folder = StudyFolder(tmp_path / "runs")
    ray_tune.RayExecutor().run(cfg, plan_units(cfg, plans, plans), folder, lambda *a: None)
    assert seen == [False]  # the census is off while Tune runs
    assert usage.tag_callbacks is census  # and back afterwards


def test_only_the_command_line_leaves_ray_to_stop_in_the_background(tmp_path, monkeypatch):
    import rcl_study.run as cli
    import rcl_study.study.runner as runner

    waits = []
    monkeypatch.setattr(cluster, "disconnect", lambda wait=True: waits.append(wait))
    ray_tune.RayExecutor().stop()  # the Python API's default: the stop is over when it returns
    runner.make_executor(_study(tmp_path)).stop()
    ray_tune.RayExecutor(stop_in_background=True).stop()
    assert waits == [True, True, False]

    given = []

    def fake_run_study(cfg, **kwargs):
        given.append(kwargs["executor"])
        return []

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    path = TINY_STUDY.write(
        tmp_path,
        TINY_HERE,
        study={"output_dir": str(tmp_path / "runs")},
        report={"dir": str(tmp_path / "report")},
    )
    cli.main([str(path), "--no-progress"])
    assert len(given) == 1 and isinstance(given[0], ray_tune.RayExecutor)
    given[0].stop()  # the command line builds the report while Ray stops
    assert waits[-1] is False


@pytest.mark.slow
def test_a_stop_without_waiting_ends_before_the_next_start(tmp_path):
    cfg = _study(tmp_path)
    cluster.connect(cfg)
    try:
        first = cluster.ray.get_runtime_context().get_node_id()
        cluster.disconnect(wait=False)
        assert len(cluster._stopping) == 1  # still stopping in its thread
        cluster.connect(cfg)  # waits for that stop, then starts a fresh instance
        assert not cluster._stopping
        assert cluster.ray.is_initialized()
        assert cluster.ray.get_runtime_context().get_node_id() != first
    finally:
        cluster.disconnect()
    assert not cluster.ray.is_initialized() and not cluster._stopping


def _script(code: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (its study folder under ``tmp_path``)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )


SIGTERM_AFTER_STOP = """
import os, signal, sys
from rcl_study.study import cluster
from tests.conftest import TINY_STUDY
from tests.study.test_ray_startup import TINY_HERE

cfg = TINY_STUDY.parse(TINY_HERE, study={{"output_dir": sys.argv[1]}})
seen = []
signal.signal(signal.SIGTERM, {handler})
cluster.connect(cfg)
cluster.disconnect(wait={wait})
{after}
cluster._finish_stopping()
os.kill(os.getpid(), signal.SIGTERM)  # a batch system's second SIGTERM, after Ray has stopped
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a handler runs at the next bytecode
print("alive", seen)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "handler, wait, after, seen",
    [
        # the command line: its handler while it runs, SIGTERM ignored once one was handled
        (
            "lambda s, f: seen.append(s)",
            False,
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)",
            "[]",
        ),
        # the Python API: a user's own handler, or SIGTERM ignored
        ("lambda s, f: seen.append(s)", True, "", "[15]"),
        ("signal.SIG_IGN", True, "", "[]"),
    ],
)
def test_a_sigterm_after_ray_stops_reaches_the_handling_set_from_python(
    tmp_path, handler, wait, after, seen
):
    out = _script(SIGTERM_AFTER_STOP.format(handler=handler, wait=wait, after=after), tmp_path)
    # -15: SIGTERM was at the system's default (Ray's core worker sets it so when it stops)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.strip().splitlines()[-1] == f"alive {seen}"


GARBAGE_WHILE_STOPPING = """
import gc, sys, threading
from rcl_study.study import cluster
from tests.conftest import TINY_STUDY
from tests.study.test_ray_startup import TINY_HERE

cluster.connect(TINY_STUDY.parse(TINY_HERE, study={"output_dir": sys.argv[1]}))
worker = cluster.ray._private.worker.global_worker
shut, resume = threading.Event(), threading.Event()


class Pausing:
    # Ray's core worker, pausing just after it shut down, inside ray.shutdown
    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def shutdown_driver(self):
        self.real.shutdown_driver()
        shut.set()
        resume.wait(30)


worker.core_worker = Pausing(worker.core_worker)


class Cycle:
    pass


garbage = Cycle()
garbage.me, garbage.ref = garbage, cluster.ray.put(1)  # as Tune's trials and actors leave
del garbage
gc.disable()
cluster.disconnect(wait=False)
assert shut.wait(60)
gc.collect()  # a collection in this thread while the other stops Ray (a report being built)
resume.set()
cluster.disconnect()
print("alive")
"""


@pytest.mark.slow
def test_garbage_holding_ray_references_is_freed_before_ray_stops_in_the_background(tmp_path):
    out = _script(GARBAGE_WHILE_STOPPING, tmp_path)
    # 1 and no output: the reference, freed while Ray stopped, called into its shut core worker
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.strip().splitlines()[-1] == "alive"
