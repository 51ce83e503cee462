"""Forward+backward time of contrastive_loss (as BCL) vs a naive BalSCL, side by side, same run.

    python benchmarks/loss_speed.py [--device cpu|cuda] [--rounds 15] [--threads 1]
    python benchmarks/loss_speed.py --classes 10 100 1000 8142 --rounds 5
    python benchmarks/loss_speed.py --tiny      # one small size, two rounds (the test suite)

The yardstick is ``benchmarks/naive_balscl.py``: BCL's balanced supervised contrastive loss
(Zhu et al. 2022, BalSCL) written from its definition with a Python loop over anchors, independent
of both the toolkit's code and BCL's. The toolkit's :func:`rcl_study.losses.contrastive_loss` runs
as BCL (``class_averaging=True``, prototypes, the RCL knobs off). Before any timing both are
checked to agree in float64 on a small batch, value and gradients (to 1e-12), and at each timed
size in float32 (value, relative 1e-4). Each round times one forward+backward of each, the order
alternating from round to round; printed per size: the median wall milliseconds of each (min-max)
and the medians (min-max) of the per-round ratios naive / toolkit of wall and of CPU seconds (the
process's CPU time: steadier than wall time on a shared machine), with the load average.
"""

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from naive_balscl import naive_balscl  # benchmarks/, beside this script

from rcl_study.losses import contrastive_loss

CLASSES = [10, 100, 1000]  # N = 512 views, D = 128; 8142 (iNaturalist) takes ~20 s a naive call
TEMPERATURE = 0.1


def inputs(n, c, d, device, dtype=torch.float32, seed=0):
    """Unit views ``[n, d]`` (every class present when ``n >= c``), labels, counts, prototypes."""
    g = torch.Generator().manual_seed(seed)
    u = F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    y = torch.randint(0, c, (n,), generator=g)
    y[: min(n, c)] = torch.arange(min(n, c))
    counts = torch.randint(1, 500, (c,), generator=g)
    protos = F.normalize(torch.randn(c, d, generator=g, dtype=dtype), dim=1)
    u, protos = (t.to(device).requires_grad_(True) for t in (u, protos))
    return u, y.to(device), counts.to(device), protos


def toolkit(u, y, counts, protos):
    """The toolkit's loss configured as BCL (class-averaged, prototypes, no RCL component)."""
    return contrastive_loss(u, y, counts, protos, temperature=TEMPERATURE, class_averaging=True)


def naive(u, y, counts, protos):
    """The naive per-anchor BalSCL (BCL's class counts come from the batch, not ``counts``)."""
    return naive_balscl(u, y, protos, temperature=TEMPERATURE)


def value_and_grads(fn, args):
    """The loss and the gradients of the views and the prototypes."""
    u, y, counts, protos = args
    u.grad = protos.grad = None
    loss = fn(*args)
    loss.backward()
    return loss.item(), u.grad.clone(), protos.grad.clone()


def check_float64(device):
    """Both agree in float64 on a small batch (value and gradients) to 1e-12; the largest gap."""
    gaps = []
    for n, c, seed in ((24, 5, 1), (40, 7, 2)):
        args = inputs(n, c, 16, device, torch.float64, seed)
        a, b = value_and_grads(toolkit, args), value_and_grads(naive, args)
        gaps += [abs(a[0] - b[0]), (a[1] - b[1]).abs().max().item()]
        gaps.append((a[2] - b[2]).abs().max().item())
    assert max(gaps) < 1e-12, f"the implementations disagree in float64 by {max(gaps):.1e}"
    return max(gaps)


def once(fn, args, device):
    """Wall and CPU seconds (this process's, all threads) of one forward+backward."""
    args[0].grad = args[3].grad = None
    if device == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    fn(*args).backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def measure(args, device, rounds):
    """Per-round (wall, CPU) seconds of the toolkit and of the naive loss, interleaved."""
    once(toolkit, args, device)  # warm-up
    once(naive, args, device)
    ours, theirs = [], []
    for r in range(rounds):
        if r % 2:
            theirs.append(once(naive, args, device))
            ours.append(once(toolkit, args, device))
        else:
            ours.append(once(toolkit, args, device))
            theirs.append(once(naive, args, device))
    return ours, theirs


def spread(xs, scale=1.0, fmt=".2f"):
    """'median (min-max)' of ``xs`` times ``scale``."""
    m, lo, hi = (v * scale for v in (statistics.median(xs), min(xs), max(xs)))
    return f"{m:{fmt}} ({lo:{fmt}}-{hi:{fmt}})"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--classes", type=int, nargs="+", default=CLASSES, help="C, N 512, D 128")
    p.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    p.add_argument("--tiny", action="store_true", help="one small size, two rounds (tests)")
    a = p.parse_args()
    sizes = [(64, 10, 16)] if a.tiny else [(512, c, 128) for c in a.classes]
    rounds = 2 if a.tiny else a.rounds
    torch.set_num_threads(a.threads)
    gap = check_float64(a.device)
    print(
        f"device {a.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; float64 check: largest "
        f"difference {gap:.1e} (value and gradients)"
    )
    print(
        f"{rounds} interleaved rounds; wall ms median (min-max); ratios naive / toolkit per round "
        "(wall; CPU seconds of this process, steadier on a shared machine)"
    )
    print(
        "| N | C | D | toolkit ms | naive BalSCL ms | wall ratio | CPU ratio | float32 rel. diff "
        "| load |"
    )
    print("| --- " * 9 + "|")
    for n, c, d in sizes:
        args = inputs(n, c, d, a.device)
        with torch.no_grad():
            v, w = toolkit(*args).item(), naive(*args).item()
        rel = abs(v - w) / abs(w)
        assert rel < 1e-4, f"implementations disagree in float32 by {rel:.1e} (relative)"
        ours, theirs = measure(args, a.device, rounds)
        walls = [t[0] / o[0] for o, t in zip(ours, theirs)]
        cpus = [t[1] / o[1] for o, t in zip(ours, theirs)]
        print(
            f"| {n} | {c} | {d} | {spread([o[0] for o in ours], 1e3)} | "
            f"{spread([t[0] for t in theirs], 1e3)} | {spread(walls, fmt='.1f')}x | "
            f"{spread(cpus, fmt='.1f')}x | {rel:.1e} | {os.getloadavg()[0]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
