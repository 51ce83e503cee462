"""Every script in ``benchmarks/`` runs at a tiny size, so no benchmark rots unseen.

The convention: a benchmark script (a file of ``benchmarks/`` with an ``if __name__ ==
"__main__":`` guard) takes ``--tiny``, which runs the whole of it at the smallest size that still
prints its figures (a few records, one repeat, random or embedded data, no download, no GPU).
Each is found by glob, so a new script is run here without being listed, and run in a fresh
process from the repository root as a user runs it; the test asserts only that it exits 0 and
prints something (no timing is asserted). A file without the guard is a helper the scripts
import (``class_loop_loss.py``), run through them. Scripts whose tiny run takes more than about
20 seconds are listed in SLOW and marked slow.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    p for p in (ROOT / "benchmarks").glob("*.py") if 'if __name__ == "__main__":' in p.read_text()
)
#: tiny runs over about 20 s on a 2-core CPU (they train, or start fresh processes)
SLOW = {
    "epoch_speed.py",
    "executor_speed.py",
    "pack_mechanism.py",
    "pack_speed.py",
    "records_speed.py",
    "report_speed.py",
    "step_speed.py",
}


def test_benchmarks_are_found():
    assert {"records_speed.py", "report_speed.py", "loss_speed.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize(
    "script",
    [pytest.param(p, marks=[pytest.mark.slow] if p.name in SLOW else []) for p in SCRIPTS],
    ids=[p.name for p in SCRIPTS],
)
def test_a_benchmark_runs_at_its_tiny_size(script, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(script), "--tiny"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), f"{script.name} printed no figures"


@pytest.mark.parametrize("runner", sorted((ROOT / "benchmarks").glob("*.sh")), ids=lambda p: p.name)
def test_a_shell_runner_names_scripts_and_flags_that_exist(runner):
    """A runner of several benchmarks (too long for the suite) names only scripts and flags that
    exist: each ``python benchmarks/X.py --flag`` it runs is a script here whose help has the flag.
    """
    calls = re.findall(
        r"python (benchmarks/\S+\.py)((?: --?[\w-]+(?: [^-\s|]\S*)*)*)", runner.read_text()
    )
    assert calls, f"{runner.name} runs no benchmark script"
    for script, args in calls:
        assert (ROOT / script).is_file(), f"{runner.name} runs {script}, which is not there"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
        done = subprocess.run(
            [sys.executable, script, "--help"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        for flag in re.findall(r"--[\w-]+", args):
            assert flag in done.stdout, f"{runner.name} passes {flag} to {script}, unknown there"
