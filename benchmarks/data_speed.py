"""Time of the data path alone for one epoch of CIFAR-10-LT (three views per image).

    python benchmarks/data_speed.py --data split.npz [--batch 256] [--device cpu|cuda]
        [--recipe autoaugment|bcl|...]
    python benchmarks/data_speed.py --tiny      # 64 random images, batch 16, no workers (tests)

Ours: indexing the uint8 tensor and ``make_views(..., recipe)`` (batched). For comparison, the
peer-style DataLoader of ``epoch_speed.py`` (per-image PIL transforms in ``--workers`` workers).
"""

import argparse
import time
from pathlib import Path

import torch

from rcl_study.data.arrays import read_arrays
from rcl_study.data.augment import make_views


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="an exported CIFAR-10-LT split (.npz); --tiny: random images")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--recipe", default="autoaugment", help="data.augment recipe (not auto)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="64 random images, batch 16 (tests)")
    a = p.parse_args()
    if a.tiny:
        from epoch_speed import make_split

        a.batch, a.workers = 16, 0
        a.data = make_split(argparse.Namespace(data=None, images=64))
    elif not a.data:
        p.error("give --data SPLIT.npz (or --tiny)")
    z = read_arrays(Path(a.data))
    x = torch.from_numpy(z.train_x).to(a.device)
    n = len(x)
    gen = torch.Generator(device=a.device).manual_seed(0)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    steps = n // a.batch

    def epoch():
        for s in range(steps):
            idx = perm[s * a.batch : (s + 1) * a.batch].to(a.device)
            make_views(x[idx], gen, a.recipe)
        if a.device == "cuda":
            torch.cuda.synchronize()

    epoch()  # warm-up
    t0 = time.perf_counter()
    epoch()
    ours = time.perf_counter() - t0
    print(
        f"device {a.device}, threads {torch.get_num_threads()}: {steps} batches of {a.batch} "
        f"({steps * a.batch} images, three views, recipe {a.recipe})"
    )
    print(f"ours (batched on {a.device}): {ours:.2f} s per epoch")
    from epoch_speed import PeerDataset

    loader = torch.utils.data.DataLoader(
        PeerDataset(z.train_x, z.train_y),
        batch_size=a.batch,
        shuffle=True,
        drop_last=True,
        num_workers=a.workers,
    )
    t0 = time.perf_counter()
    for _ in loader:
        pass
    peer = time.perf_counter() - t0
    print(f"peer-style (PIL, {a.workers} workers): {peer:.2f} s per epoch ({peer / ours:.1f}x)")


if __name__ == "__main__":
    main()
