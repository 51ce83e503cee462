"""A pack's epoch trained as a loop over its members against one stacked (batched) network.

    python benchmarks/pack_mechanism.py [--k 2 4 8] [--rounds 5] [--steps 4]
    python benchmarks/pack_mechanism.py --tiny   # K 2, one round, 1 step, small sizes (tests)
    python benchmarks/pack_mechanism.py --arch resnet32 --k 8 --batch 256   # on a GPU

For each architecture (``small_cnn`` on the shipped 8x8 digits, batch 64; ``small_cnn_s2`` width
16 and ``resnet32`` on random 32x32 RGB arrays, batch 64 and 32) and each K, it builds one pack
of K BCL+RCL members that differ in ``loss.scale`` (``rcl_study.trainer.pack.setup_pack``, one
thread on the CPU; the GPU when one is visible) and times
:func:`rcl_study.trainer.pack.train_pack_epoch` with ``loop`` and with ``batched`` in
interleaved rounds (ABAB..., the first of each discarded as warm-up). Before timing, one epoch
of each mechanism from the same start is compared: the largest difference of the members' mean
losses and weights (float32: the grouped kernels sum in another order).

Prints one JSON line per (arch, K): ms per member-step of each mechanism (median over rounds),
the ratio batched/loop (median, min, max over rounds), the differences, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rcl_study.config import parse_study
from rcl_study.trainer.pack import setup_pack, train_pack_epoch

ARCHS = (
    ("small_cnn", None, 16, 64),
    ("small_cnn_s2", 32, 16, 64),
    ("resnet32", 32, 16, 32),
)


def _arrays(folder: Path, size: int, n: int) -> Path:
    rng = np.random.default_rng(0)
    path = folder / f"random{size}.npz"
    if not path.exists():
        x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        y = np.arange(n) % 10
        np.savez(path, train_x=x, train_y=y, test_x=x[:50], test_y=y[:50])
    return path


def _pack(arch: str, size: int | None, width: int, batch: int, k: int, steps: int, folder):
    if size is None:
        data = {"dataset": "digits_lt", "test_limit": 50, "val_per_class": 0}
    else:
        path = _arrays(folder, size, 10 * batch * steps)
        data = {"dataset": "arrays", "path": str(path), "imbalance_ratio": 1, "test_limit": 50}
        data.update(val_per_class=0, augment="crop")
    train = {"epochs": 1, "batch_size": batch, "max_steps_per_epoch": steps, "threads": 1}
    if not torch.cuda.is_available():
        train["device"] = "cpu"
    train.update(warmup_epochs=0, progress=False)
    model = {"arch": arch, "width": width, "proj_hidden": 32, "proj_dim": 16}
    cfgs = [
        parse_study(
            {
                "name": f"m{i}",
                "data": data,
                "model": model,
                "train": train,
                "loss": {"preset": "bcl+rcl", "scale": 1.0 + 0.1 * i},
            }
        )
        for i in range(k)
    ]
    return setup_pack(cfgs, [c.name for c in cfgs])


def _epoch_seconds(members, mechanism: str) -> float:
    t0 = time.perf_counter()
    train_pack_epoch(members, 0, mechanism)
    return time.perf_counter() - t0


def _difference(arch, size, width, batch, k, steps, folder) -> dict[str, float]:
    runs = {}
    for mech in ("loop", "batched"):
        members = _pack(arch, size, width, batch, k, steps, folder)
        means = train_pack_epoch(members, 0, mech)
        runs[mech] = (members, means)
    (loop, lmeans), (bat, bmeans) = runs["loop"], runs["batched"]
    loss = max(float((lmeans[m.name] - bmeans[m.name]).abs().max()) for m in loop)
    weight = max(
        float((a - b).detach().abs().max())
        for ml, mb in zip(loop, bat)
        for a, b in zip(ml.trial.net.core.parameters(), mb.trial.net.core.parameters())
    )
    return {"max_loss_diff": loss, "max_weight_diff": weight}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--arch", nargs="+", default=[a[0] for a in ARCHS])
    p.add_argument("--batch", type=int, help="every architecture's batch (default: as above)")
    p.add_argument("--tiny", action="store_true", help="K 2, one round, one step (tests)")
    a = p.parse_args()
    archs = [r for r in ARCHS if r[0] in a.arch]
    if a.tiny:
        a.k, a.rounds, a.steps = [2], 1, 1
        archs = [(arch, size and 16, 4, 8) for arch, size, _, _ in archs]
    if a.batch:
        archs = [(arch, size, width, a.batch) for arch, size, width, _ in archs]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for arch, size, width, batch in archs:
            for k in a.k:
                diff = _difference(arch, size, width, batch, k, a.steps, folder)
                members = _pack(arch, size, width, batch, k, a.steps, folder)
                times: dict[str, list[float]] = {"loop": [], "batched": []}
                for r in range(a.rounds + 1):
                    for mech in ("loop", "batched") if r % 2 == 0 else ("batched", "loop"):
                        s = _epoch_seconds(members, mech)
                        if r:
                            times[mech].append(s)
                ratios = [b / lo for b, lo in zip(times["batched"], times["loop"])]
                per = k * a.steps
                row = {
                    "arch": arch,
                    "k": k,
                    "ms_per_member_step_loop": 1e3 * statistics.median(times["loop"]) / per,
                    "ms_per_member_step_batched": 1e3 * statistics.median(times["batched"]) / per,
                    "batched_over_loop": statistics.median(ratios),
                    "ratio_min": min(ratios),
                    "ratio_max": max(ratios),
                    "rounds": a.rounds,
                    "load": os.getloadavg()[0],
                    **diff,
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
