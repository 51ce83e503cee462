"""Ray's own output stays in the study's logs: a failed or killed trial is one line to the user.

A study under Ray whose two trials fail (a loss plugin that raises, one whose worker kills itself
with SIGKILL) prints one line per trial, no traceback; the tracebacks are kept under
``<output_dir>/logs/``.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import TINY_STUDY, run_cli
from tests.helpers.plugins import fake_plugin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LOSSES = """
import os

def boom(logits, labels, counts):
    raise RuntimeError("the loss broke")

def die(logits, labels, counts):
    os.kill(os.getpid(), 9)
"""


@pytest.mark.slow
def test_failed_and_killed_ray_trials_are_one_line_each(tmp_path):
    pytest.importorskip("ray")
    site = tmp_path / "site"
    site.mkdir()
    fake_plugin(site, "dying_losses", LOSSES, {"rcl_study.losses": {"boom": "boom", "die": "die"}})
    study = TINY_STUDY.write(
        tmp_path,
        name="dying",
        study=TINY_STUDY.Only(
            kind="grid", grid={"loss.classification": ["boom", "die"]}, seeds=[0]
        ),
        resources={"executor": "ray", "max_concurrent": 1},
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, str(site)])}
    done = run_cli(study, "--no-progress", cwd=tmp_path, env=env)
    err = done.stderr
    assert "Traceback" not in err and "Traceback" not in done.stdout, err
    failed = [x for x in err.splitlines() if ": failed (" in x]
    assert len(failed) == 2, err
    assert any("the loss broke" in x for x in failed), err
    others = [x for x in err.splitlines() if x not in failed and "trials recorded" not in x]
    assert others == [], err
    logs = tmp_path / "runs" / "dying" / "logs"
    kept = "".join(p.read_text() for p in logs.rglob("*.log"))
    assert "Traceback" in kept and "the loss broke" in kept, sorted(logs.rglob("*"))
    assert done.returncode == 1, err


class _Trial:
    """What the driver's callback reads of a failed Tune trial."""

    def __init__(self, index: int, error_file: str) -> None:
        self.config, self.trial_id = {"unit": index}, f"t{index}"
        self.error_file, self.last_result, self.num_failures = error_file, {}, 0

    def get_error(self):
        return None


TUNE_TRACEBACK = (
    'Traceback (most recent call last):\n  File "loss.py", line 3, in boom\n'
    "RuntimeError: the loss broke\n"
)


@pytest.mark.parametrize("failure", ["raised", "worker killed"])
def test_tunes_failed_trial_reports_stay_in_the_logs(failure, tmp_path, monkeypatch, capfd):
    """Tune logs each failed trial with its traceback: the study's logs get it, not stderr."""
    pytest.importorskip("ray")
    import logging

    from rcl_study.study import ray_tune
    from rcl_study.study.packing import plan_units
    from rcl_study.trials.design import expand
    from rcl_study.trials.folder import StudyFolder

    cfg = TINY_STUDY.parse(
        study={"seeds": [0], "components": ["margin"], "output_dir": str(tmp_path / "runs")},
        resources={"executor": "ray", "pack": 1},
    )
    plans = expand(cfg)
    units = plan_units(cfg, plans, plans)
    error_file = tmp_path / "error.txt"
    text = TUNE_TRACEBACK if failure == "raised" else "ray.exceptions.ActorDiedError: died\n"
    error_file.write_text(text)

    class Tuner:
        def __init__(self, fn, param_space, tune_config, run_config):
            self.callbacks = run_config.callbacks

        def fit(self):
            log = logging.getLogger("ray.tune.execution.tune_controller")
            for i in range(len(units)):
                try:
                    raise RuntimeError("the loss broke")
                except RuntimeError as err:
                    log.error(f"Trial task failed for trial t{i}", exc_info=err)
                for cb in self.callbacks:
                    cb.on_trial_error(0, [], _Trial(i, str(error_file)))

    monkeypatch.setattr(ray_tune.tune, "Tuner", Tuner)
    seen = []

    class Sink:
        def evaluation(self, trial_id, metrics):
            pass

        def record(self, record):
            seen.append(record)

    folder = StudyFolder(tmp_path / "runs")
    capfd.readouterr()
    ray_tune.RayExecutor().run(cfg, units, folder, Sink())
    out, err = capfd.readouterr()
    assert "Traceback" not in err + out and "Trial task failed" not in err, err
    assert len(seen) == len(units) == 2 and all(r.status.value == "failed" for r in seen)
    last = text.strip().splitlines()[-1]
    assert all(r.reason == last for r in seen), [r.reason for r in seen]
    kept = (tmp_path / "runs" / "logs" / "ray.log").read_text()
    assert kept.count("Traceback") == 2 and "Trial task failed for trial t1" in kept, kept
    for unit in units:
        assert text.strip() in (tmp_path / "runs" / "logs" / f"{unit.name}.log").read_text()
