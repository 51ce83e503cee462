"""The toolkit's training step against a hand-written plain eager PyTorch floor, at 1 thread.

The floor is written here, independently of ``rcl_study``'s loop: its own ResNet-32 (LDAM-DRW's:
3x3 stem to 16 channels, 3 stages x 5 basic blocks at 16/32/64, option-A shortcuts), projection
MLP 64 -> 512 -> 128, BCL's cosine classifier (scale 30) and prototype MLP, a plain BCL-like loss
(logit-adjusted CE on the classifier view + a class-averaged supervised contrastive term over the
two contrastive views and the class prototypes), SGD momentum 0.9, weight decay 5e-4. The toolkit
side is ``rcl_study.trainer.loop.update`` on a real ``Trial`` built by ``setup()`` (preset
``bcl+rcl``, cosine classifier) from a random ``arrays`` file. Both sides get the same random,
already normalised ``[3B, 3, 32, 32]`` inputs: NO augmentation on either side (the step's
network, loss, backward and update only; augmentation was about 3% of a step).

Arms, run in interleaved rounds (the order alternates each round), ``--steps`` steps each:

- ``toolkit``: the toolkit's step as it trains (its memory-format rule applied);
- ``toolkit_contig``: the same with the network and input forced contiguous (NCHW);
- ``floor``: the plain floor, contiguous (NCHW);
- ``floor_cl``: the plain floor with model and input channels-last.

Prints the median and spread (min-max over rounds) of each ratio, the machine's load before and
after, the FLOPs of one step (``torch.utils.flop_counter``), the float32 matmul peak measured
here at 1 thread (a 1024^3 matmul, best of 5) and each arm's fraction of it; then the
toolkit's channels-last / contiguous step ratio per architecture (``small_cnn`` width 16 on 8x8
grey, ``small_cnn_s2`` width 16 on 32x32 colour; ``resnet32``: the arms above), the figures
behind the memory-format rule ``rcl_study.trainer.setup.memory_format``. Run::

    python benchmarks/step_floor.py              # about 2-3 minutes on a quiet 2-core CPU
    python benchmarks/step_floor.py --tiny       # seconds (tests): batch 4, 8 px, 1 round
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
CL = torch.channels_last
NCHW = torch.contiguous_format

# ---------------------------------------------------------------------------------------------
# the plain floor


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, (cout - cin) // 2

    def forward(self, x):
        out = F.relu(self.b1(self.c1(x)))
        out = self.b2(self.c2(out))
        short = x
        if self.stride != 1 or self.pad:
            short = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class FloorNet(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        blocks, cin = [], 16
        for i, w in enumerate((16, 32, 64)):
            for j in range(5):
                blocks.append(Block(cin, w, 2 if i and not j else 1))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        mlp = lambda: nn.Sequential(  # noqa: E731
            nn.Linear(64, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 128)
        )
        self.head, self.head_fc = mlp(), mlp()
        self.fc_w = nn.Parameter(F.normalize(torch.empty(classes, 64).uniform_(-1, 1), dim=1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        f = self.blocks(F.relu(self.stem(x))).mean((2, 3))
        logits = 30 * F.normalize(f, dim=1) @ F.normalize(self.fc_w, dim=1).T
        protos = F.normalize(self.head_fc(self.fc_w), dim=1)
        return logits, F.normalize(self.head(f), dim=1), protos


def floor_loss(logits, proj, protos, y, counts, t=0.1):
    """LA-CE on the classifier view + class-averaged SupCon over 2 views and the prototypes."""
    classes = len(counts)
    ce = F.cross_entropy(logits + counts.float().div(counts.sum()).log(), y)
    z = torch.cat([proj, protos])
    labels = torch.cat([y, y, torch.arange(classes, device=y.device)])
    sim = proj @ z.T / t
    n = len(proj)
    not_self = torch.ones_like(sim, dtype=torch.bool)
    not_self[torch.arange(n), torch.arange(n)] = False
    same = (labels[:n, None] == labels[None, :]) & not_self
    in_batch = torch.bincount(labels, minlength=classes).float()
    per_key = in_batch[labels][None, :] - (labels[:n, None] == labels[None, :]).float()
    sim = sim - sim.detach().max(1, keepdim=True).values
    denom = (sim.exp() * not_self / per_key.clamp_min(1)).sum(1, keepdim=True)
    log_prob = sim - denom.log()
    con = -((log_prob * same).sum(1) / same.sum(1)).mean()
    return 2.0 * ce + 0.6 * con


class Floor:
    """The plain eager step: forward, loss, backward, SGD (momentum 0.9, wd 5e-4)."""

    def __init__(self, classes: int, fmt: torch.memory_format):
        self.net = FloorNet(classes).to(memory_format=fmt)
        self.opt = torch.optim.SGD(self.net.parameters(), 0.1, momentum=0.9, weight_decay=5e-4)
        self.fmt = fmt

    def step(self, inp, y, counts):
        inp = inp.contiguous(memory_format=self.fmt)
        logits, proj, protos = self.net(inp)
        b = len(y)
        loss = floor_loss(logits[:b], proj[b:], protos, y, counts)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


# ---------------------------------------------------------------------------------------------
# the toolkit


def toolkit_trial(arch: str, size: int, channels: int, batch: int, classes: int, width: int, tmp):
    """A real ``Trial`` from ``setup()`` on a random ``arrays`` file of the given image shape."""
    from rcl_study.config import parse_study
    from rcl_study.trainer.setup import setup

    rng = np.random.default_rng(0)
    n = max(4 * batch, 4 * classes)
    path = Path(tmp) / f"r{size}x{channels}.npz"
    img = lambda k: rng.integers(0, 256, (k, size, size, channels), dtype=np.uint8)  # noqa: E731
    lab = lambda k: np.arange(k) % classes  # noqa: E731
    np.savez(path, train_x=img(n), train_y=lab(n), test_x=img(classes), test_y=lab(classes))
    data = {"dataset": "arrays", "path": str(path), "imbalance_ratio": 1, "val_per_class": 0}
    model = {"arch": arch, "width": width, "classifier": "cosine"}
    train = {"batch_size": batch, "threads": 1, "progress": False, "warmup_epochs": 0}
    raw = {"name": "f", "data": data, "model": model, "loss": {"preset": "bcl+rcl"}}
    return setup(parse_study({**raw, "train": train}))


def forced(trial, fmt):
    """The trial's network with model and input forced to memory format ``fmt``."""
    net = trial.net
    net.model.to(memory_format=fmt)
    return dataclasses.replace(net, memory_format=fmt)


def toolkit_stepper(trial, net):
    from rcl_study.trainer.loop import update

    def step(inp, y, counts):
        return update(net, trial.spec, inp, y, counts, 0.1)["loss"]

    return step


# ---------------------------------------------------------------------------------------------
# measuring


def matmul_peak(n: int, reps: int) -> float:
    """Float32 matmul GFLOP/s at the current thread count: best of ``reps`` ``n^3`` products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def step_flops(step, inp, y, counts) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step(inp, y, counts)
    return fc.get_total_flops()


def rounds(arms: dict, inp, y, counts, n_rounds: int, steps: int) -> dict[str, list[float]]:
    """Seconds per step of each arm in each round; the arms' order alternates round by round."""
    names = list(arms)
    for name in names:  # warm-up: first-call allocations, kernel choice
        arms[name](inp, y, counts)
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(n_rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            for _ in range(steps):
                arms[name](inp, y, counts)
            out[name].append((time.perf_counter() - t) / steps)
    return out


def ratio_line(label: str, num: list[float], den: list[float]) -> str:
    r = [a / b for a, b in zip(num, den, strict=True)]
    return f"{label}: median {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f})"


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64, help="images per batch (3 views each)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=2, help="steps per arm per round")
    ap.add_argument("--arch-rounds", type=int, default=5, help="rounds of the per-arch table")
    ap.add_argument("--tiny", action="store_true", help="batch 4, 8 px, 1 round (tests)")
    a = ap.parse_args()
    if a.tiny:
        a.batch, a.size, a.rounds, a.steps, a.arch_rounds = 4, 8, 1, 1, 1
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"load before: {load()} (1-, 5-, 15-minute; {os.cpu_count()} CPUs)")
    peak = matmul_peak(256 if a.tiny else 1024, 1 if a.tiny else 5)
    print(f"float32 matmul peak at 1 thread: {peak:.1f} GFLOP/s")
    b, c = a.batch, a.classes
    inp = torch.randn(3 * b, 3, a.size, a.size)
    y = torch.arange(b) % c
    counts = torch.full((c,), 4 * b // c + 1)
    with tempfile.TemporaryDirectory() as tmp:
        tk = toolkit_trial("resnet32", a.size, 3, b, c, 16, tmp)
        tk0 = toolkit_trial("resnet32", a.size, 3, b, c, 16, tmp)
        counts = tk.data.counts
        arms = {
            "toolkit": toolkit_stepper(tk, tk.net),
            "toolkit_contig": toolkit_stepper(tk0, forced(tk0, NCHW)),
            "floor": Floor(c, NCHW).step,
            "floor_cl": Floor(c, CL).step,
        }
        flops = step_flops(arms["floor"], inp, y, counts)
        tk_flops = step_flops(arms["toolkit"], inp, y, counts)
        print(
            f"ResNet-32 BCL+RCL step, {3 * b} views of {a.size} px: floor {flops / 1e9:.2f} "
            f"GFLOP, toolkit {tk_flops / 1e9:.2f} GFLOP; toolkit memory format: "
            f"{'channels-last' if tk.net.memory_format == CL else 'contiguous'}"
        )
        t = rounds(arms, inp, y, counts, a.rounds, a.steps)
        print(f"{a.rounds} interleaved rounds x {a.steps} steps per arm, 1 thread:")
        for name, s in t.items():
            med = statistics.median(s)
            print(
                f"  {name:15s} {1e3 * med:8.1f} ms/step (min {1e3 * min(s):.1f}, max "
                f"{1e3 * max(s):.1f}); {flops / med / 1e9:.1f} GFLOP/s = "
                f"{flops / med / 1e9 / peak:.2f} of matmul peak"
            )
        print(ratio_line("toolkit / floor (contiguous)", t["toolkit"], t["floor"]))
        print(ratio_line("toolkit / floor channels-last", t["toolkit"], t["floor_cl"]))
        print(ratio_line("floor channels-last / floor", t["floor_cl"], t["floor"]))
        print(ratio_line("toolkit / toolkit contiguous", t["toolkit"], t["toolkit_contig"]))
        print("toolkit step, channels-last / contiguous, per architecture:")
        for arch, size, ch in (("small_cnn", 8, 1), ("small_cnn_s2", 32, 3)):
            size = min(size, a.size)
            x = torch.randn(3 * b, ch, size, size)
            pair = {}
            for fmt in (CL, NCHW):
                tr = toolkit_trial(arch, size, ch, b, c, 16, tmp)
                pair[fmt] = toolkit_stepper(tr, forced(tr, fmt))
            ta = rounds(pair, x, y, tr.data.counts, a.arch_rounds, a.steps)
            print("  " + ratio_line(f"{arch} {size}x{size}x{ch}", ta[CL], ta[NCHW]))
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
