"""Forward+backward time and peak memory of contrastive_loss vs a class-loop implementation.

    python benchmarks/loss_speed.py [--device cpu|cuda] [--repeats 5]
    python benchmarks/loss_speed.py --tiny      # one small size, one repeat (the test suite)

The loop form builds BCL's class-averaged denominator with a Python loop over classes: a naive
baseline, not BCL's official code, which weighs each candidate by its class's count in one matrix
(against that form the vectorised loss is at parity). Both compute the same value (checked before
timing).
"""

import argparse
import time

import torch
import torch.nn.functional as F
from class_loop_loss import naive_class_loop_loss  # benchmarks/, beside this script

from rcl_study.losses import contrastive_loss

SIZES = [(512, 10, 128), (512, 100, 128), (512, 1000, 128), (512, 8142, 128)]
KW = dict(temperature=0.1, scale=1.2, balance=1.0, margin=0.5)


def inputs(n, c, d, device):
    g = torch.Generator().manual_seed(0)
    u = F.normalize(torch.randn(n, d, generator=g), dim=1).to(device).requires_grad_(True)
    y = torch.randint(0, c, (n,), generator=g).to(device)
    counts = torch.randint(1, 500, (c,), generator=g).to(device)
    protos = F.normalize(torch.randn(c, d, generator=g), dim=1).to(device).requires_grad_(True)
    return u, y, counts, protos


def vectorised(u, y, counts, protos):
    return contrastive_loss(u, y, counts, protos, class_averaging=True, **KW)


def loop(u, y, counts, protos):
    return naive_class_loop_loss(u, y, counts, protos, **KW)


def _cpu_peak(reset=False):
    """Peak resident memory (bytes) of this process; reset=True restarts it from the current RSS."""
    if reset:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def measure(fn, args, device, repeats):
    def once():
        for a in (args[0], args[3]):
            a.grad = None
        fn(*args).backward()
        if device == "cuda":
            torch.cuda.synchronize()

    once()  # warm-up
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _cpu_peak(reset=True)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    if device == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = (_cpu_peak() - base) / 2**20
    return sorted(times)[len(times) // 2], peak


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="one small size, one repeat (tests)")
    a = p.parse_args()
    sizes = [(64, 10, 16)] if a.tiny else SIZES
    a.repeats = 1 if a.tiny else a.repeats
    print(f"device {a.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(
        f"{'N':>5} {'C':>6} {'D':>4} | {'vectorised ms':>13} {'+peak MiB':>9} | "
        f"{'class loop ms':>13} {'+peak MiB':>9} | {'speed-up':>8}"
    )
    for n, c, d in sizes:
        args = inputs(n, c, d, a.device)
        diff = abs(vectorised(*args).item() - loop(*args).item())
        assert diff < 1e-3, f"implementations disagree by {diff}"
        tv, mv = measure(vectorised, args, a.device, a.repeats)
        tl, ml = measure(loop, args, a.device, max(1, a.repeats // 2) if c > 1000 else a.repeats)
        print(
            f"{n:>5} {c:>6} {d:>4} | {tv * 1e3:>13.2f} {mv:>9.1f} | {tl * 1e3:>13.2f} "
            f"{ml:>9.1f} | {tl / tv:>7.1f}x"
        )


if __name__ == "__main__":
    main()
