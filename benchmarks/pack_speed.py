"""Trial-epochs per second: K trials packed in one process vs K separate processes, same run.

    python benchmarks/pack_speed.py      # CPU: the quickstart's model and a reduced ResNet-32
    python benchmarks/pack_speed.py --only quickstart --k 1 2 4 8 --epochs 3
    python benchmarks/pack_speed.py --device cuda --data split.npz   # GPU, full CIFAR-10-LT size
    python benchmarks/pack_speed.py --tiny        # the quickstart's model, K 1, one epoch (tests)

The K members are the first K variants of RCL's 2^3 ablation on BCL (balance, scale, margin each
off/on), same seed. "separate": K fresh processes, one after another, each running
``train_trial`` on one variant (what an unpacked study runs per trial slot, start-up included);
"packed": one fresh process running ``train_pack`` on the K variants. Both sides use the same
threads. Output: one JSON line per (model, K) with the wall seconds of both sides, trial-epochs
per second and the speed-up, then a Markdown table. The CPU seconds of the child processes
(user + system) are given too: on a CPU shared with other work they measure the work done far
more steadily than wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [
    {"balance": b, "scale": s, "margin": m}
    for b in (0.0, 1.0)
    for s in (1.0, 1.2)
    for m in (0.0, 0.5)
]


def synthetic_split(images: int) -> Path:
    """A random-pixel CIFAR-sized split (10 classes) as an ``arrays`` file."""
    rng = np.random.default_rng(0)
    y = np.sort(rng.integers(0, 10, images))
    out = Path(tempfile.mkdtemp()) / "synthetic.npz"
    np.savez(
        out,
        train_x=rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8),
        train_y=y,
        test_x=rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8),
        test_y=np.repeat(np.arange(10), 10),
    )
    return out


def base_config(which: str, a) -> dict:
    """The study mapping of one benchmark model (members get their loss knobs on top)."""
    train = {
        "epochs": a.epochs,
        "warmup_epochs": 0,
        "progress": False,
        "seed": 0,
        "checkpoint_every": 1000,
        "eval_every": a.epochs,
        "device": a.device,
    }
    if a.device == "cpu":
        train["threads"] = a.threads
    if which == "quickstart":
        return {
            "name": "qs",
            "data": {"dataset": "digits_lt", "imbalance_ratio": 10},
            "model": {"arch": "small_cnn", "width": 16, "proj_hidden": 64, "proj_dim": 32},
            "train": {**train, "batch_size": 64, "lr": 0.05},
            "loss": {"preset": "bcl+rcl"},
        }
    path = a.data or str(synthetic_split(a.images))
    ratio = 100 if a.data else 1  # random pixels are used as they are (already long-tailed)
    full = a.device == "cuda"
    return {
        "name": "r32",
        "data": {
            "dataset": "arrays",
            "path": path,
            "augment": "bcl",
            "imbalance_ratio": ratio,
            **({} if full else {"test_limit": 100}),
        },
        "model": {"arch": "resnet32"},
        "train": {**train, "batch_size": 256 if full else a.batch},
        "loss": {"preset": "bcl+rcl"},
    }


CHILD = """
import json, sys, time
from rcl_study.config import parse_study
raws = json.loads(sys.argv[1])
cfgs = [parse_study(r) for r in raws]
if len(cfgs) == 1:
    from rcl_study.trainer.loop import train_trial
    res = [train_trial(cfgs[0], log=lambda s: None)]
else:
    from rcl_study.trainer.pack import train_pack
    res = train_pack(cfgs, [str(i) for i in range(len(cfgs))], log=lambda s: None)
print(json.dumps([r.metrics["loss"] for r in res]))
"""


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _spawn(raws: list[dict]) -> tuple[float, float, list[float]]:
    """(wall seconds, CPU seconds, final losses) of one fresh process training ``raws``."""
    t0, c0 = time.perf_counter(), _cpu()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(raws)], capture_output=True, text=True, cwd=ROOT
    )
    if out.returncode:
        raise SystemExit(f"a benchmark process failed:\n{out.stderr[-2000:]}")
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return wall, cpu, json.loads(out.stdout.strip().splitlines()[-1])


def measure(which: str, k: int, a) -> dict:
    """Wall seconds of K separate processes and of one pack of K, and their final losses."""
    base = base_config(which, a)
    raws = [{**base, "loss": {**base["loss"], **v}} for v in VARIANTS[:k]]
    separate = sep_cpu = 0.0
    sep_losses: list[float] = []
    for raw in raws:
        s, c, losses = _spawn([raw])
        separate, sep_cpu = separate + s, sep_cpu + c
        sep_losses += losses
    packed, pack_cpu, pack_losses = _spawn(raws)
    te = k * a.epochs
    return {
        "model": which,
        "k": k,
        "epochs": a.epochs,
        "separate_s": round(separate, 2),
        "packed_s": round(packed, 2),
        "separate_cpu_s": round(sep_cpu, 2),
        "packed_cpu_s": round(pack_cpu, 2),
        "separate_trial_epochs_per_s": round(te / separate, 3),
        "packed_trial_epochs_per_s": round(te / packed, 3),
        "speedup": round(separate / packed, 2),
        "cpu_speedup": round(sep_cpu / pack_cpu, 2),
        "max_loss_diff": max(abs(x - y) for x, y in zip(sep_losses, pack_losses)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--only", choices=["quickstart", "resnet32"], default=None)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=None, help="an exported CIFAR-10-LT split (arrays .npz)")
    p.add_argument("--images", type=int, default=256, help="synthetic ResNet-32 images (CPU)")
    p.add_argument("--batch", type=int, default=64, help="ResNet-32 batch on the CPU")
    p.add_argument("--tiny", action="store_true", help="quickstart, K 1, one epoch (tests)")
    a = p.parse_args()
    if a.tiny:
        a.only, a.k, a.epochs = "quickstart", [1], 1
    rows = []
    for which in [a.only] if a.only else ["quickstart", "resnet32"]:
        for k in a.k:
            rows.append(measure(which, k, a))
            print(json.dumps(rows[-1]), flush=True)
    print(
        "\n| model | K | separate wall s | packed wall s | separate trial-epochs/s | "
        "packed trial-epochs/s | wall speed-up | separate CPU s | packed CPU s | "
        "CPU speed-up | max final-loss diff |"
    )
    print("| --- " * 11 + "|")
    for r in rows:
        print(
            f"| {r['model']} | {r['k']} | {r['separate_s']} | {r['packed_s']} | "
            f"{r['separate_trial_epochs_per_s']} | {r['packed_trial_epochs_per_s']} | "
            f"{r['speedup']}x | {r['separate_cpu_s']} | {r['packed_cpu_s']} | "
            f"{r['cpu_speedup']}x | {r['max_loss_diff']:.1e} |"
        )


if __name__ == "__main__":
    main()
