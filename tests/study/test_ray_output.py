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
