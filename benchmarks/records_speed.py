"""Records: the cost of one append as a study grows, and the report of a 2,000-trial search.

    python benchmarks/records_speed.py                     # 5,000 appends, old rewrite 1,000
    python benchmarks/records_speed.py --appends 5000 --baseline 0 --trials 2000 --profile
    python benchmarks/records_speed.py --tiny    # 50 appends, old rewrite 20, 30 trials (tests)

(a) ``--appends`` synthetic records of a search (the resolved config of ``studies/search.yaml``,
sampled overrides, the metric keys a real record has and a history of ``--evals`` evaluations,
about 7 KB a line) are appended through the driver's :class:`RecordBook` to an empty study
folder; the table gives the mean milliseconds of the first and the last 500 appends and the
total. ``--baseline N`` does the same for N records with the rewrite-on-every-append
implementation an earlier version of this toolkit used (copied below as :class:`RewriteFolder`, the
baseline only), whose appends grow with the number of records.

(b) a search study of ``--trials`` search trials (seed 0; a tenth pruned, a few failed) plus
the best configuration re-run at the other seeds, with its ``plan.json`` and study file, is
written to a temporary folder, and its report is rebuilt as ``--report-only`` does
(:func:`rcl_study.report.render.write_report`); ``--profile`` prints where the time goes.

Appends are fsynced, so (a) depends on the disk; all of it on the load of the machine.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import math
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rcl_study.config import load_study  # noqa: E402
from rcl_study.config.keys import set_in  # noqa: E402
from rcl_study.store import atomic_write_text  # noqa: E402
from rcl_study.study.execute import Resolver  # noqa: E402
from rcl_study.study.recording import make_record  # noqa: E402
from rcl_study.study.runner import RecordBook  # noqa: E402
from rcl_study.trainer.result import TrialResult  # noqa: E402
from rcl_study.trials.design import params_id  # noqa: E402
from rcl_study.trials.folder import StudyFolder  # noqa: E402
from rcl_study.trials.records import TrialPlan, TrialRecord, dumps  # noqa: E402

SPACE = {  # studies/search.yaml
    "loss.scale": (1.0, 2.0, False),
    "loss.margin": (0.0, 2.0, False),
    "loss.temperature": (0.05, 0.3, True),
    "train.beta": (0.2, 1.5, False),
}
COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # CIFAR-10-LT, IR 100


# ------------------------------------------------------------------------------ synthetic records


def sample(rng: random.Random) -> dict[str, float]:
    """One point of the search space (log-uniform where the study says ``log``)."""
    out = {}
    for key, (lo, hi, log) in SPACE.items():
        u = rng.random()
        out[key] = (
            math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
            if log
            else lo + u * (hi - lo)
        )
    return out


def quality(params: dict[str, float]) -> float:
    """A smooth synthetic balanced accuracy: best near scale 1.5, margin 0.5, temperature 0.1."""
    s, m = params["loss.scale"], params["loss.margin"]
    t, b = params["loss.temperature"], params["train.beta"]
    return (
        0.80
        - 0.08 * (s - 1.5) ** 2
        - 0.03 * (m - 0.5) ** 2
        - 0.05 * math.log(t / 0.1) ** 2
        - 0.01 * (b - 0.8) ** 2
    )


def result(rng: random.Random, acc: float, evals: int, epochs: int) -> dict[str, Any]:
    """What ``finish_result`` gives a record: last metrics, history, best, train counts."""
    history = []
    for i in range(1, evals + 1):
        frac = i / evals
        a = acc * (1 - 0.5 * (1 - frac) ** 2) + rng.gauss(0, 0.005)
        loss = 2.0 * (1 - frac) + 0.3 + rng.gauss(0, 0.01)
        history.append(
            {
                "top1": a + 0.08,
                "balanced_acc": a,
                "many_acc": a + 0.15,
                "medium_acc": a,
                "few_acc": a - 0.2,
                "compactness": 0.5 + 0.4 * frac,
                "equiangular_gap_deg": 30 * (1 - frac) + 5,
                "loss": loss,
                "loss_cls": 0.4 * loss,
                "loss_con": 0.6 * loss,
                "epoch": round(epochs * frac),
                "seconds_per_epoch": 41.3 + rng.random(),
                "epoch_seconds": 40.9 + rng.random(),
            }
        )
    last = dict(history[-1])
    last["per_class_acc"] = [
        min(1.0, max(0.0, acc + 0.25 - 0.05 * c + rng.gauss(0, 0.01))) for c in range(10)
    ]
    best = max(history, key=lambda h: h["balanced_acc"])
    best1 = max(history, key=lambda h: h["top1"])
    return {
        "device": "cuda:0",
        "processes": 1,
        **last,
        "train_counts": COUNTS,
        "history": history,
        "loss_spec": {"balance": 1.0, "scale": 1.5, "margin": 0.5, "temperature": 0.1},
        "best_top1": best1["top1"],
        "best_epoch_top1": best1["epoch"],
        "best_balanced_acc": best["balanced_acc"],
        "best_epoch_balanced_acc": best["epoch"],
        "wall_time": 8260.0 + rng.random() * 100,
    }


class Records:
    """Realistic records of a search: the study's resolved config with each trial's overrides."""

    def __init__(self, study_path: Path, evals: int, seed: int = 0):
        self.cfg = load_study(study_path)
        self.base = Resolver(self.cfg)(TrialPlan("base", "search", 0, {}))[1]
        self.evals, self.rng = evals, random.Random(seed)
        self.n = 0

    def make(self, variant: str, seed: int, params: dict[str, float], status: str = "ok"):
        """One record; ``finished`` is a distinct, increasing time stamp (search order)."""
        config = copy.deepcopy(self.base)
        set_in(config, params)
        config["train"]["seed"] = seed
        acc = quality(params) + self.rng.gauss(0, 0.01)
        tid = f"search-{params_id(params)}" if variant == "search" else f"best__s{seed}"
        plan = TrialPlan(tid, variant, seed, params)
        evals = (
            self.evals if status == "ok" else (max(1, self.evals // 4) if status == "pruned" else 0)
        )
        res = result(self.rng, acc, evals, self.cfg.train.epochs) if evals else {}
        reason = {
            "ok": "",
            "pruned": "stopped by ASHA",
            "failed": "RuntimeError: CUDA out of memory",
        }
        res = TrialResult.from_json({"status": status, "reason": reason[status], **res})
        rec = make_record(plan, config, res, 8300.0)
        self.n += 1
        t = time.gmtime(1_790_000_000 + 60 * self.n)
        return rec.replace(finished=time.strftime("%Y-%m-%dT%H:%M:%S", t))

    def search(self, n: int) -> list[TrialRecord]:
        """``n`` search trials at seed 0: every tenth pruned, every hundred-and-first failed."""
        out = []
        for i in range(n):
            status = "failed" if i % 101 == 100 else ("pruned" if i % 10 == 9 else "ok")
            out.append(self.make("search", self.cfg.study.seeds[0], sample(self.rng), status))
        return out


# ------------------------------------------------------------------------------ (a) appends


@dataclass(frozen=True)
class RewriteFolder(StudyFolder):
    """BASELINE ONLY: ``StudyFolder.append`` in an earlier version (rewrites every record)."""

    def append(self, record: TrialRecord | dict[str, Any]) -> None:  # noqa: D102
        row = record.to_json() if isinstance(record, TrialRecord) else record
        rows, damaged = self.read_rows()
        rows = [r for r in rows if r["trial_id"] != row["trial_id"]]
        rows.append(row)
        atomic_write_text(self.records_path, "".join(dumps(r) + "\n" for r in rows))


def time_appends(folder: StudyFolder, records: list[TrialRecord], window: int) -> dict[str, Any]:
    """Append ``records`` through a :class:`RecordBook`; seconds of each append."""
    book = RecordBook(folder, lambda r: None)
    times = []
    t_all = time.perf_counter()
    for rec in records:
        t0 = time.perf_counter()
        book.record(rec)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    w = min(window, len(times))
    return {
        "n": len(times),
        "first_ms": 1000 * sum(times[:w]) / w,
        "last_ms": 1000 * sum(times[-w:]) / w,
        "total_s": total,
        "bytes": folder.records_path.stat().st_size,
    }


# ------------------------------------------------------------------------------ (b) the report


def search_folder(root: Path, n_trials: int, evals: int) -> tuple[Path, Any]:
    """A finished ``n_trials`` search (records, plan, study file) under ``root``; (study, cfg)."""
    raw = yaml.safe_load((ROOT / "studies/search.yaml").read_text())
    raw["name"] = f"search{n_trials}"
    raw["study"]["n_trials"] = n_trials
    raw["study"]["output_dir"] = str(root / "runs")
    raw["report"]["dir"] = str(root / "report")
    root.mkdir(parents=True, exist_ok=True)
    study = root / f"search{n_trials}.yaml"
    study.write_text(yaml.safe_dump(raw, sort_keys=False))
    gen = Records(study, evals, seed=1)
    cfg = gen.cfg
    recs = gen.search(n_trials)
    scored = [r for r in recs if r.ok]
    best = max(scored, key=lambda r: r.metrics["balanced_acc"])
    recs += [gen.make("best", s, best.overrides) for s in cfg.study.seeds[1:]]
    folder = StudyFolder(cfg.output_dir)
    book = RecordBook(folder, lambda r: None)
    for r in recs:
        book.record(r)
    planned = [{"trial_id": f"search #{i}", "variant": "search"} for i in range(n_trials)]
    planned += [{"trial_id": f"best__s{s}", "variant": "best"} for s in cfg.study.seeds[1:]]
    folder.write_plan(planned, {"study": cfg.name})
    return study, cfg


def time_report(study: Path, cfg: Any, profile: bool) -> dict[str, Any]:
    """Seconds to read the records and to rebuild the report (``--report-only``'s work)."""
    from rcl_study.report.render import write_report

    folder = StudyFolder(cfg.output_dir)
    t0 = time.perf_counter()
    n = len(folder.records())
    read_s = time.perf_counter() - t0
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    write_report(cfg, str(study))
    if prof:
        prof.disable()
    report_s = time.perf_counter() - t0
    if prof:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    return {"records": n, "read_s": read_s, "report_s": report_s}


def main() -> None:
    """Run (a) and (b) and print their tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--appends", type=int, default=5000)
    ap.add_argument("--baseline", type=int, default=1000, help="0: skip the old rewrite-append")
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--evals", type=int, default=10)
    ap.add_argument("--trials", type=int, default=2000, help="0: skip the report")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it")
    ap.add_argument("--tiny", action="store_true", help="50 appends, 20 old, 30 trials (tests)")
    args = ap.parse_args()
    if args.tiny:
        args.appends, args.baseline, args.window, args.trials = 50, 20, 10, 30
    root = args.keep or Path(tempfile.mkdtemp(prefix="records_speed_"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, folder {root}", file=sys.stderr)
    try:
        t0 = time.perf_counter()
        gen = Records(ROOT / "studies/search.yaml", args.evals)
        recs = gen.search(max(args.appends, args.baseline))
        print(f"{len(recs)} records built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows = []
        if args.appends:
            r = time_appends(StudyFolder(root / "append"), recs[: args.appends], args.window)
            rows.append(("append-only (now)", r))
        if args.baseline:
            r = time_appends(RewriteFolder(root / "rewrite"), recs[: args.baseline], args.window)
            rows.append(("rewrite (before, baseline)", r))
        if rows:
            print(
                f"\n| implementation | records | first {args.window} ms/append | "
                f"last {args.window} ms/append | total s | file MB |"
            )
            print("|---|---:|---:|---:|---:|---:|")
        for name, r in rows:
            print(
                f"| {name} | {r['n']} | {r['first_ms']:.2f} | {r['last_ms']:.2f} | "
                f"{r['total_s']:.1f} | {r['bytes'] / 1e6:.1f} |"
            )
            print(json.dumps({"part": "append", "implementation": name, **r}), file=sys.stderr)
        if args.trials:
            t0 = time.perf_counter()
            study, cfg = search_folder(root / "search", args.trials, args.evals)
            build_s = time.perf_counter() - t0
            r = time_report(study, cfg, args.profile)
            print("\n| search trials | records | build folder s | read records s | report s |")
            print("|---:|---:|---:|---:|---:|")
            print(
                f"| {args.trials} | {r['records']} | {build_s:.1f} | {r['read_s']:.2f} | "
                f"{r['report_s']:.1f} |"
            )
            print(json.dumps({"part": "report", "trials": args.trials, **r}), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
