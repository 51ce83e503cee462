"""What the stride-2 stem saves: one training step of ``small_cnn`` against ``small_cnn_s2``.

    python benchmarks/small_cnn_stem.py [--image-size 28] [--batch 64] [--threads 1] [--repeats 20]
    python benchmarks/small_cnn_stem.py --tiny   # batch 8, two repeats (the test suite)

For BCL's network (backbone + classifier + projection and prototype heads, width 8 as the
Fashion-MNIST sweeps) it times forward, a BCL+RCL loss, backward and an SGD step on the three views
of a batch (3 x ``--batch`` images of ``--image-size`` px, one channel) at ``--threads`` threads.
Output: one JSON line per backbone with the median ms per step, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from rcl_study.config import parse_study
from rcl_study.losses import resolve_loss, total_loss
from rcl_study.trainer.models import build_model


def step_ms(arch: str, size: int, batch: int, repeats: int) -> float:
    """Median wall ms of one training step of ``arch`` on 3 x ``batch`` random images."""
    torch.manual_seed(0)
    net = build_model(arch, 1, 10, size, 32, 16, 8)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    cfg = parse_study({"name": "b", "loss": {"preset": "bcl+rcl", "scale": 1.25}})
    spec = resolve_loss(cfg.loss, cfg.train.alpha, cfg.train.beta)
    counts = torch.tensor([300, 179, 107, 64, 38, 23, 13, 8, 5, 3])
    x = torch.rand(3 * batch, 1, size, size)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(repeats + 3):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, logits, proj = net(x)
        out = total_loss(
            spec, logits[:batch], y, proj[batch:], y.repeat(2), counts, net.prototypes()
        )
        out["loss"].backward()
        opt.step()
        if i >= 3:
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--tiny", action="store_true", help="batch 8, two repeats (tests)")
    args = ap.parse_args()
    if args.tiny:
        args.batch, args.repeats = 8, 2
    torch.set_num_threads(args.threads)
    archs = ("small_cnn", "small_cnn_s2")
    ms = {a: step_ms(a, args.image_size, args.batch, args.repeats) for a in archs}
    for arch, v in ms.items():
        row = {"arch": arch, "image_size": args.image_size, "batch": args.batch}
        print(json.dumps({**row, "threads": args.threads, "ms_per_step": round(v, 2)}))
    print(json.dumps({"ratio_small_cnn_over_s2": round(ms["small_cnn"] / ms["small_cnn_s2"], 2)}))


if __name__ == "__main__":
    main()
