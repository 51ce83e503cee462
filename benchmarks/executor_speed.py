"""Wall time of a whole unpacked study through Ray vs the local executor, pair by pair.

    python benchmarks/executor_speed.py                # the tiny quickstart, 16 trials, 5 pairs
    python benchmarks/executor_speed.py --pairs 3 --study studies/quickstart.yaml
    python benchmarks/executor_speed.py --tiny         # 2 trials, one pair (the test suite)

The study (default ``studies/quickstart.yaml``: 2^3 variants x 2 seeds) runs at ``--smoke``'s
size, given as ``--set`` overrides (at most 2 epochs of 2 steps, batches of 32, 40 images a class,
200 test images), unpacked (``resources.pack=1``), as ``python -m rcl_study.run STUDY
--no-progress`` in a fresh process, once with ``resources.executor=ray`` and once with
``resources.executor=local``: a pair, the order alternating from pair to pair. Every run writes
its records and report to fresh folders under a temporary directory (also its working
directory), removed at the end. Printed: each run's wall seconds (stderr, one JSON line with the
load average), then the median (min-max) wall seconds of each executor and the median (min-max)
of the per-pair ratios Ray / local. Whole commands: Python's start-up, the imports, Ray's start
and stop and the report are included, as a user sees them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE_SIZE = [
    "train.epochs=2",
    "train.max_steps_per_epoch=2",
    "train.batch_size=32",
    "train.warmup_epochs=1",
    "train.checkpoint_every=1",
    "data.max_per_class=40",
    "data.test_limit=200",
]
TINY = ["study.components=[balance]", "study.seeds=[0]"]  # 2 trials


def run_study(study: Path, executor: str, out: Path, extra: list[str]) -> float:
    """Wall seconds of one run of ``study`` with ``executor`` into ``out``; exits on failure."""
    sets = [
        *SMOKE_SIZE,
        *extra,
        "resources.pack=1",
        f"resources.executor={executor}",
        f"study.output_dir={out / 'runs'}",
        f"report.dir={out / 'report'}",
    ]
    cmd = [sys.executable, "-m", "rcl_study.run", str(study), "--no-progress"]
    cmd += [arg for s in sets for arg in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    # Ray's sockets live under its temporary folder, in paths of at most 107 bytes: a deep TMPDIR
    # (a test's) would not fit, so Ray keeps its own default unless RAY_TMPDIR says otherwise.
    env.setdefault("RAY_TMPDIR", "/tmp")
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"the {executor} run exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall


def spread(xs: list[float], fmt: str = ".2f") -> str:
    """'median (min-max)' of ``xs``."""
    return f"{statistics.median(xs):{fmt}} ({min(xs):{fmt}}-{max(xs):{fmt}})"


def main() -> int:
    """Run the pairs and print the walls and the Ray / local ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", type=Path, default=ROOT / "studies" / "quickstart.yaml")
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="2 trials, one pair (the test suite)")
    a = p.parse_args()
    extra, pairs = (TINY, 1) if a.tiny else ([], a.pairs)
    study = a.study.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="executor_speed_"))
    walls: dict[str, list[float]] = {"ray": [], "local": []}
    loads = []
    try:
        for i in range(pairs):
            order = ("ray", "local") if i % 2 == 0 else ("local", "ray")
            for executor in order:
                loads.append(os.getloadavg()[0])
                wall = run_study(study, executor, tmp / f"{i}-{executor}", extra)
                walls[executor].append(wall)
                row = {"pair": i, "executor": executor, "wall_s": round(wall, 2)}
                print(json.dumps({**row, "load1": loads[-1]}), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratios = [r / loc for r, loc in zip(walls["ray"], walls["local"])]
    print(f"{study.name} unpacked at --smoke's size{' (tiny: 2 trials)' if a.tiny else ''}")
    print(f"cpus {os.cpu_count()}, load average at the runs' starts {spread(loads)}")
    print(f"{pairs} pair(s), order alternating; wall s median (min-max)")
    print(f"  Ray executor:   {spread(walls['ray'])}")
    print(f"  local executor: {spread(walls['local'])}")
    print(f"  Ray / local, per pair: {spread(ratios)}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
