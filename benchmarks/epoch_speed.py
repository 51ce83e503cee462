"""Seconds per epoch of BCL+RCL: our trainer vs a peer-style pipeline, in the same run.

    python benchmarks/epoch_speed.py --data split.npz            # an exported CIFAR-10-LT split
    python benchmarks/epoch_speed.py --synthetic --images 1024   # random pixels, reduced size
    python benchmarks/epoch_speed.py --data split.npz --concurrent 4   # + 1 vs 4 trials sharing
    python benchmarks/epoch_speed.py --tiny      # 64 random images, batch 16, no workers (tests)

Ours: ``train_trial`` (uint8 data on the device, batched augmentation there, bf16 and
channels-last on a GPU). Peer-style, as BCL's official code: per-image PIL transforms with
torchvision in DataLoader workers (``--workers``, 4 by default), an fp32 model. Both train
ResNet-32 + BCL heads with the same loss at batch 256 over the same images (three views).
The timed epoch is the second one (the first pays start-up costs).
"""

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rcl_study.config import parse_study
from rcl_study.data.arrays import read_arrays
from rcl_study.data.longtail import class_counts


def make_split(args) -> Path:
    if args.data:
        return Path(args.data)
    counts = class_counts(5000, 10, 100)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), counts)
    first = np.searchsorted(y, np.arange(10))  # one image of every class, then random ones
    rest = rng.choice(np.setdiff1d(np.arange(len(y)), first), max(0, args.images - 10), False)
    keep = np.sort(np.concatenate([first, rest]))[: max(args.images, 10)]
    out = Path(tempfile.mkdtemp()) / "synthetic.npz"
    np.savez(
        out,
        train_x=rng.integers(0, 256, (len(keep), 32, 32, 3), dtype=np.uint8),
        train_y=y[keep],
        test_x=rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8),
        test_y=np.repeat(np.arange(10), 10),
    )
    return out


def study(path: Path, args, epochs: int = 2) -> dict:
    # --tiny: too few images to hold out a validation split
    tiny = {"val_per_class": 0} if getattr(args, "tiny", False) else {}
    return {
        "name": "speed",
        "data": {
            "dataset": "arrays",
            "path": str(path),
            "augment": "bcl",
            "imbalance_ratio": args.imbalance_ratio,
            "test_limit": 100,
            **tiny,
        },
        "model": {"arch": "resnet32"},
        "train": {
            "epochs": epochs,
            "batch_size": args.batch,
            "warmup_epochs": 0,
            "eval_every": epochs,
            "progress": False,
        },
        "loss": {"preset": "bcl+rcl"},
    }


def ours(path: Path, args) -> float:
    from rcl_study.trainer.loop import train_trial

    res = train_trial(parse_study(study(path, args)), log=lambda s: None)
    return res.metrics["epoch_seconds"]


def _ours_worker(path, args, queue):
    torch.set_num_threads(max(1, torch.get_num_threads() // args.concurrent))
    queue.put(ours(path, args))


def shared(path: Path, args, n: int) -> float:
    """Aggregate images/s of ``n`` trials running at once on the same device."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ours_worker, args=(path, args, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    times = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    images = len(read_arrays(path).train_y) // args.batch * args.batch
    return n * images / max(times)


class PeerDataset(torch.utils.data.Dataset):
    """Per-image PIL transforms, BCL's CIFAR recipe (one classifier view, two SimCLR views)."""

    def __init__(self, x, y):
        import torchvision.transforms as T

        self.x, self.y = x, y
        norm = T.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
        self.cls = T.Compose(
            [
                T.RandomCrop(32, padding=4),
                T.RandomHorizontalFlip(),
                T.RandAugment(),
                T.ToTensor(),
                norm,
            ]
        )
        self.con = T.Compose(
            [
                T.RandomResizedCrop(32, scale=(0.08, 1.0)),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
                T.ToTensor(),
                norm,
            ]
        )

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.x[i])
        return self.cls(img), self.con(img), self.con(img), int(self.y[i])


def peer(path: Path, args) -> float:
    from rcl_study.config import LossConfig
    from rcl_study.losses import resolve_loss, total_loss
    from rcl_study.trainer.models import build_model

    z = read_arrays(path)
    x, y = z.train_x, z.train_y
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    counts = torch.as_tensor(np.bincount(y, minlength=10), device=device)
    model = build_model("resnet32", 3, 10, 32).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    spec = resolve_loss(LossConfig(preset="bcl+rcl"), 2.0, 0.6)
    loader = torch.utils.data.DataLoader(
        PeerDataset(x, y),
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    seconds = []
    for _ in range(2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for a, b, c, yb in loader:
            a, b, c = (v.to(device, non_blocking=True) for v in (a, b, c))
            yb = yb.to(device)
            _, logits, proj = model(torch.cat([a, b, c]))
            n = len(yb)
            loss = total_loss(
                spec, logits[:n], yb, proj[n:], torch.cat([yb, yb]), counts, model.prototypes()
            )["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
    return seconds[-1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="an exported CIFAR-10-LT split (.npz)")
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--images", type=int, default=12406)
    p.add_argument(
        "--imbalance-ratio",
        type=float,
        default=None,
        help="the exported split's ratio (default 100; synthetic data: used as is)",
    )
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--concurrent", type=int, default=0, help="also run N trials at once")
    p.add_argument("--json", help="write the figures here too")
    p.add_argument("--tiny", action="store_true", help="64 random images, batch 16 (tests)")
    args = p.parse_args()
    if args.tiny:
        args.synthetic, args.images, args.batch, args.workers = True, 64, 16, 0
    if not args.data and not args.synthetic:
        p.error("give --data SPLIT.npz or --synthetic")
    if args.imbalance_ratio is None:
        args.imbalance_ratio = 1.0 if args.synthetic else 100.0
    path = make_split(args)
    n_images = len(read_arrays(path).train_y)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        f"device {device}; torch {torch.__version__}; {n_images} images, batch {args.batch}, "
        f"CPU threads {torch.get_num_threads()}"
    )
    out = {"device": device, "images": n_images, "batch": args.batch, "workers": args.workers}
    out["ours_s"] = ours(path, args)
    print(f"ours:       {out['ours_s']:.2f} s/epoch")
    out["peer_s"] = peer(path, args)
    print(f"peer-style: {out['peer_s']:.2f} s/epoch ({args.workers} DataLoader workers, fp32)")
    out["ratio"] = out["peer_s"] / out["ours_s"]
    print(f"ratio:      {out['ratio']:.1f}x faster")
    if args.concurrent:
        one, many = shared(path, args, 1), shared(path, args, args.concurrent)
        out.update(throughput_1=one, throughput_n=many, n=args.concurrent)
        print(
            f"aggregate throughput: 1 trial {one:.0f} img/s, {args.concurrent} trials "
            f"{many:.0f} img/s ({many / one:.2f}x)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
