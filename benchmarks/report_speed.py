"""Wall time of ``--report-only`` for a synthetic search, and how it grows with the records.

    python benchmarks/report_speed.py                          # 2,000 and 20,000 records
    python benchmarks/report_speed.py --sizes 2000 20000 --rounds 3 --repo /tmp/before --repo .
    python benchmarks/report_speed.py --tiny                   # 50 records, one round (tests)

For each size N a tiny search study (the embedded digits, two searched keys, seeds 0-2) is
written to a temporary folder with a records file of N search trials at seed 0 (a tenth pruned,
one in a hundred and one failed) and the best point re-run at seeds 1 and 2. The records are
fabricated, not trained: each holds the trial's resolved configuration, the metric keys a real
record has and a history of ``--evals`` evaluations. Then ``python -m rcl_study.run <study>
--report-only`` runs in a fresh process, once per checkout named by ``--repo`` (default: this
one) and round, the checkouts interleaved within each round, so a before/after pair shares the
machine's load. Output: one JSON line per run (stderr), then a Markdown table of the median
wall seconds (min-max) and CPU seconds per checkout and size, and the growth exponents between
the smallest and the largest size (log of the time ratio over log of the size ratio; 1 is
linear).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STUDY = """\
name: {name}
data: {{dataset: digits_lt, imbalance_ratio: 10}}
model: {{arch: small_cnn, width: 8, proj_hidden: 32, proj_dim: 16}}
train: {{epochs: {epochs}, batch_size: 64, lr: 0.05, eval_every: 1, threads: 1}}
loss: {{preset: bcl+rcl, temperature: 0.1, balance: 1.0}}
study:
  kind: search
  n_trials: {n}
  max_trials: {max_trials}
  space:
    loss.scale: {{type: float, low: 1.0, high: 2.0}}
    loss.margin: {{type: float, low: 0.0, high: 2.0}}
  seeds: [0, 1, 2]
  output_dir: runs
report: {{dir: report}}
"""
COUNTS = [178, 101, 58, 33, 19, 11, 6, 4, 2, 2]


def _quality(scale: float, margin: float) -> float:
    """A smooth synthetic balanced accuracy, best near scale 1.5 and margin 0.5."""
    return 0.85 - 0.08 * (scale - 1.5) ** 2 - 0.03 * (margin - 0.5) ** 2


def _metrics(rng: random.Random, acc: float, evals: int) -> tuple[dict, list]:
    """The last evaluation's metrics and the history of ``evals`` evaluations."""
    history = []
    for e in range(1, evals + 1):
        a = min(1.0, max(0.0, acc * (1 - 0.5 * (1 - e / evals) ** 2) + rng.gauss(0, 0.005)))
        history.append(
            {
                "top1": a,
                "balanced_acc": a,
                "many_acc": min(1.0, a + 0.1),
                "medium_acc": a,
                "few_acc": max(0.0, a - 0.2),
                "compactness": 0.9,
                "equiangular_gap_deg": 12.0,
                "val_top1": a,
                "val_balanced_acc": a,
                "loss": 1.0 / e,
                "epoch": e,
                "lr": 0.05 / e,
                "seconds_per_epoch": 1.0,
            }
        )
    last = dict(history[-1]) if history else {}
    if history:
        last["per_class_acc"] = [min(1.0, max(0.0, acc + rng.gauss(0, 0.02))) for _ in COUNTS]
        last.update(train_counts=COUNTS, n_train=414, n_val=200, n_test=540)
    return {"device": "cpu", "processes": 1, **last}, history


def write_study(root: Path, n: int, evals: int) -> Path:
    """A tiny search study with ``n`` fabricated search records under ``root``; its study file."""
    sys.path.insert(0, str(ROOT))
    from rcl_study.config import load_study
    from rcl_study.study.execute import Resolver
    from rcl_study.trials.records import TrialPlan, config_hash

    root.mkdir(parents=True, exist_ok=True)
    study = root / "study.yaml"
    text = STUDY.format(name=f"search{n}", n=n, max_trials=max(n, 10) + 10, epochs=evals)
    study.write_text(text)
    cfg = load_study(study)
    base = Resolver(cfg)(TrialPlan("base", "search", 0, {}))[1]
    rng = random.Random(n)
    lines, plans, best = [], [], (None, -1.0)

    def record(tid: str, variant: str, seed: int, params: dict, status: str, k: int) -> str:
        config = copy.deepcopy(base)
        config["loss"].update(scale=params["loss.scale"], margin=params["loss.margin"])
        config["train"]["seed"] = seed
        acc = _quality(params["loss.scale"], params["loss.margin"]) + rng.gauss(0, 0.01)
        evals_done = {"ok": evals, "pruned": max(1, evals // 4), "failed": 0}[status]
        metrics, history = _metrics(rng, acc, evals_done)
        finished = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_790_000_000 + 60 * k))
        row = {
            "trial_id": tid,
            "variant": variant,
            "seed": seed,
            "overrides": params,
            "status": status,
            "reason": {"ok": "", "pruned": "stopped early", "failed": "RuntimeError: boom"}[status],
            "metrics": metrics,
            "history": history,
            "loss_spec": None,
            "wall_time": 10.0 + rng.random(),
            "device": "cpu",
            "pack": None,
            "config": config,
            "config_hash": config_hash(config),
            "attempts": 1,
            "finished": finished,
            "versions": {"rcl_study": "0"},
            "python": "3.11",
            "host": "bench",
            "git_rev": "unknown",
        }
        return json.dumps(row)

    for i in range(n):
        params = {"loss.scale": 1 + rng.random(), "loss.margin": 2 * rng.random()}
        status = "failed" if i % 101 == 100 else ("pruned" if i % 10 == 9 else "ok")
        lines.append(record(f"search-{i:06d}", "search", 0, params, status, i))
        q = _quality(params["loss.scale"], params["loss.margin"])
        if status == "ok" and q > best[1]:
            best = (params, q)
        plans.append({"trial_id": f"search #{i}", "variant": "search"})
    for s in (1, 2):
        lines.append(record(f"best__s{s}", "best", s, best[0], "ok", n + s))
        plans.append({"trial_id": f"best__s{s}", "variant": "best"})
    runs = root / "runs"
    runs.mkdir()
    (runs / "records.jsonl").write_text("".join(line + "\n" for line in lines))
    (runs / "plan.json").write_text(json.dumps({"meta": {}, "trials": plans}))
    return study


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run_report(repo: Path, study: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of ``--report-only`` with ``repo``'s rcl_study (a fresh process).

    The CPU seconds (user + system of the process) measure the work far more steadily than
    the wall time on a machine shared with other work. Returns them and the exit code.
    """
    shutil.rmtree(study.parent / "report", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(repo), "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "rcl_study.run", str(study), "--report-only"]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, cwd=study.parent, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
    return wall, cpu, done.returncode


def main() -> int:
    """Build the studies, time the reports, print the table; 1 when a report failed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--evals", type=int, default=5, help="evaluations in each record's history")
    ap.add_argument("--repo", action="append", type=Path, help="checkout to time (repeatable)")
    ap.add_argument("--tiny", action="store_true", help="50 records, one round (the test suite)")
    args = ap.parse_args()
    if args.tiny:
        args.sizes, args.rounds = [50], 1
    repos = [p.resolve() for p in args.repo or [ROOT]]
    tmp = Path(tempfile.mkdtemp(prefix="report_speed_"))
    times: dict[tuple[str, int], list[float]] = {}
    cpus: dict[tuple[str, int], list[float]] = {}
    failed = 0
    try:
        studies = {n: write_study(tmp / f"n{n}", n, args.evals) for n in args.sizes}
        for r in range(args.rounds):
            for n, study in studies.items():
                for repo in repos:
                    load = os.getloadavg()[0]
                    wall, cpu, rc = run_report(repo, study)
                    failed += rc != 0
                    times.setdefault((str(repo), n), []).append(wall)
                    cpus.setdefault((str(repo), n), []).append(cpu)
                    row = {"repo": str(repo), "records": n + 2, "round": r, "wall_s": wall}
                    row["cpu_s"] = cpu
                    print(json.dumps({**row, "rc": rc, "load1": load}), file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ncpus {os.cpu_count()}, load {os.getloadavg()}, {args.rounds} round(s)\n")
    print("| checkout | records | median wall s | min-max wall s | median CPU s |")
    print("|---|---:|---:|---:|---:|")
    for (repo, n), ts in times.items():
        cpu = statistics.median(cpus[(repo, n)])
        row = f"| {repo} | {n + 2} | {statistics.median(ts):.2f} | {min(ts):.2f}-{max(ts):.2f} |"
        print(f"{row} {cpu:.2f} |")
    lo, hi = min(args.sizes), max(args.sizes)
    for repo in repos if hi > lo else ():
        for what, got in (("wall", times), ("CPU", cpus)):
            a, b = (statistics.median(got[(str(repo), n)]) for n in (lo, hi))
            slope = math.log(b / a) / math.log((hi + 2) / (lo + 2))
            print(f"\n{repo}: exponent of the {what} time {slope:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
