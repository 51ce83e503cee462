"""Planning: the ``--dry-run`` of a grid study as the grid grows.

    python benchmarks/planning_speed.py                       # 100 and 10,000 points, 3 rounds
    python benchmarks/planning_speed.py --points 100 3000 10000 --repeats 3
    python benchmarks/planning_speed.py --tiny                # 4 and 16 points, in this process

A grid over ``loss.scale`` x ``loss.margin`` (square, one seed) on the tiny digits study is
written to a temporary folder and planned with ``python -m rcl_study.run STUDY --dry-run``, each
size once per round, the sizes interleaved within a round. Each run is a fresh process (the
imports included, as a user sees it) unless ``--in-process``; ``--tiny`` plans in this process.
Printed: each size's median and range of seconds, and each size's ratio to the smallest size
within each round (median, min-max over the rounds).
The load of the machine changes the figures: note it (``uptime``) beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def grid_study(points: int) -> dict:
    """A grid study of about ``points`` points (a square of scale x margin values), one seed."""
    side = max(1, math.isqrt(points))
    return {
        "name": f"plan{side * side}",
        "data": {"dataset": "digits_lt", "imbalance_ratio": 10},
        "model": {"arch": "small_cnn", "width": 8, "proj_hidden": 16, "proj_dim": 8},
        "train": {"epochs": 1, "batch_size": 32, "max_steps_per_epoch": 1, "threads": 1},
        "loss": {"preset": "bcl+rcl"},
        "study": {
            "kind": "grid",
            "seeds": [0],
            "grid": {
                "loss.scale": [round(1.0 + 0.01 * i, 4) for i in range(side)],
                "loss.margin": [round(0.01 * i, 4) for i in range(side)],
            },
        },
        "resources": {"cpus_per_trial": 1, "executor": "local", "pack": 1},
    }


def plan_once(path: Path, in_process: bool) -> float:
    """Seconds to plan the study at ``path`` (``--dry-run``); raises when it does not exit 0."""
    t0 = time.perf_counter()
    if in_process:
        from rcl_study.run import main

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main([str(path), "--dry-run"])
    else:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        code = subprocess.run(
            [sys.executable, "-m", "rcl_study.run", str(path), "--dry-run"],
            env=env,
            capture_output=True,
            check=False,
        ).returncode
    seconds = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"error: the dry run of {path.name} exited {code}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Plan each grid size ``--repeats`` times, interleaved, and print the medians and ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, nargs="+", default=[100, 10_000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--in-process", action="store_true", help="plan in this process")
    p.add_argument("--tiny", action="store_true", help="4 and 16 points, once, in this process")
    a = p.parse_args(argv)
    if a.tiny:
        a.points, a.repeats, a.in_process = [4, 16], 1, True
    seconds: dict[int, list[float]] = {n: [] for n in a.points}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for n in a.points:
            raw = grid_study(n)
            paths[n] = Path(tmp) / f"{raw['name']}.yaml"
            paths[n].write_text(yaml.safe_dump(raw, sort_keys=False))
        cwd = os.getcwd()
        os.chdir(tmp)  # the dry run checks runs/<name>/ and reports/<name>/ here
        try:
            if a.in_process:  # the imports once, before any timing
                plan_once(paths[a.points[0]], True)
            for _ in range(a.repeats):
                for n in a.points:
                    seconds[n].append(plan_once(paths[n], a.in_process))
        finally:
            os.chdir(cwd)
    base = seconds[a.points[0]]
    print(f"--dry-run of a grid ({'in process' if a.in_process else 'fresh process'} each run)")
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, {a.repeats} round(s)")
    print(f"{'points':>8} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio (min-max)':>20}")
    for n in a.points:
        s = seconds[n]
        ratios = [t / b for t, b in zip(s, base)]
        spread = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        side = max(1, math.isqrt(n))
        med = statistics.median(s)
        print(f"{side * side:>8} {med:>9.2f} {min(s):>7.2f} {max(s):>7.2f} {spread:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
