"""One trial: the BCL recipe as a single flat Accelerate training loop.

``train_trial(config, report)`` knows nothing about Ray or Optuna. Run one trial without Ray::

    python -m rcl_study.train studies/quickstart.yaml --set loss.scale=2 --set train.seed=1

Recipe defaults (``config.TrainConfig``) follow BCL's CIFAR setting (Zhu et al. 2022, CVPR; its
official code has no CIFAR script): ResNet-32, 200 epochs, batch 256, SGD momentum 0.9, lr 0.15
(BCL-derived CIFAR code, ConCutMix's ``run_files/cifar10_imb100.sh``; BCL's README gives only its
ImageNet-LT and iNaturalist commands), 5 linear warm-up epochs then cosine decay, weight decay 5e-4,
temperature 0.1, alpha 2.0 (CE weight), beta 0.6 (contrastive weight), projection MLP 512 -> 128.
Every value and its source: ``docs/recipe.md``.
Three views per image: one classifier view (crop + flip + RandAugment)
and two SimCLR-style contrastive views, passed through the network in one forward pass.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import ConfigError, StudyFile, load_study, to_dict
from .data import load_data
from .data.augment import make_views
from .data.datasets import ListImages
from .losses import resolve_loss, total_loss
from .metrics import classification_metrics, feature_measures
from .models import build_model

Report = Callable[[dict[str, Any]], None]


LOSS_KEYS = ("loss", "loss_cls", "loss_con")


class Diverged(RuntimeError):
    """A non-finite loss; carries the epoch and step."""


def _max_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` maximised over data-parallel processes (itself with one process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        t = t.clone()
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return t


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then cosine decay to 0."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, progress)))


def _augment_recipe(cfg: StudyFile, channels: int, size: int) -> str:
    if cfg.data.augment != "auto":
        return cfg.data.augment
    if size < 32 or channels == 1:
        return "crop"
    return "bcl"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _make_accelerator(cfg: StudyFile, find_unused: bool):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    AcceleratorState._reset_state(True)  # several trials may run in one process
    cuda = torch.cuda.is_available() and cfg.train.device != "cpu"
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no GPU is visible")
    bf16 = cuda and cfg.train.precision in ("auto", "bf16")
    return Accelerator(
        cpu=not cuda,
        mixed_precision="bf16" if bf16 else "no",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused)],
    )


class _Prefetch:
    """Decode the batches of an epoch from image files one batch ahead, in a thread."""

    def __init__(self, images, perm, global_batch: int, offset: int, size: int, steps: int):
        self.images, self.perm, self.steps = images, perm, steps
        self.global_batch, self.offset, self.size = global_batch, offset, size
        self.pool = ThreadPoolExecutor(1)
        self.next = self.pool.submit(self._load, 0)

    def _load(self, step: int) -> np.ndarray:
        lo = step * self.global_batch + self.offset
        return self.images[self.perm[lo : lo + self.size].numpy()]

    def take(self, step: int) -> np.ndarray:
        """The batch of ``step`` (steps are taken in order); starts decoding the next one."""
        batch = self.next.result()
        if step + 1 < self.steps:
            self.next = self.pool.submit(self._load, step + 1)
        else:
            self.pool.shutdown(wait=False)
        return batch


def _batch(images, idx: np.ndarray, device) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        return images[torch.as_tensor(idx, device=images.device)]
    return torch.from_numpy(np.ascontiguousarray(images[idx])).to(device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model,
    images,
    labels: np.ndarray,
    train_counts: np.ndarray,
    mean,
    std,
    device,
    mask: np.ndarray | None = None,
    batch_size: int = 512,
) -> dict[str, Any]:
    """Accuracy metrics (raw logits) and feature-space measures on a test set."""
    model.eval()
    preds, feats = [], []
    for start in range(0, len(labels), batch_size):
        idx = np.arange(start, min(start + batch_size, len(labels)))
        x = _batch(images, idx, device).permute(0, 3, 1, 2).float().div_(255)
        f, logits, _ = model((x - mean) / std)
        preds.append(logits.argmax(1).cpu())
        feats.append(f.float().cpu())
    model.train()
    y_pred = torch.cat(preds).numpy()
    out = classification_metrics(labels, y_pred, train_counts, mask)
    out.update(feature_measures(torch.cat(feats), torch.as_tensor(labels), len(train_counts)))
    return out


def train_trial(
    cfg: StudyFile,
    report: Report | None = None,
    *,
    workdir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one trial; never raises for a diverged run.

    Args:
        cfg: the resolved trial configuration (``cfg.train.seed`` is the trial's seed).
        report: called with the metrics dict after every evaluation (on other processes of a
            data-parallel run, with ``{"epoch": n}`` only).
        workdir: folder for ``checkpoint.pt``; an existing checkpoint is resumed from.
        log: where plain progress lines go (default: stderr when it is not a terminal).

    Returns:
        The last evaluation's metrics plus ``status`` (``ok`` or ``diverged``), ``reason``,
        ``epoch``, ``history`` (one entry per evaluation), ``seconds_per_epoch`` and ``device``.

    """
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    _seed_everything(tc.seed)
    spec = resolve_loss(cfg.loss, tc.alpha, tc.beta)
    acc = _make_accelerator(cfg, find_unused=not (spec.contrastive and spec.prototypes))
    device = acc.device
    data = load_data(cfg.data)
    counts_np = data.train_counts
    counts = torch.as_tensor(counts_np, device=device)
    recipe = _augment_recipe(cfg, data.channels, data.image_size)

    model = build_model(
        cfg.model.arch,
        data.channels,
        data.num_classes,
        data.image_size,
        cfg.model.proj_hidden,
        cfg.model.proj_dim,
        cfg.model.width,
        cfg.model.norm,
    ).to(device)
    if cfg.model.norm == "sync_batch" and acc.num_processes > 1 and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay
    )
    model, opt = acc.prepare(model, opt)
    core = acc.unwrap_model(model)

    train_x = data.train_x
    if not isinstance(train_x, ListImages):  # arrays live on the device, augmentation too
        train_x = torch.from_numpy(train_x).to(device)
        test_x = torch.from_numpy(data.test_x).to(device)
        mean = train_x.float().mean(dim=(0, 1, 2)).div(255).view(1, -1, 1, 1)
        std = train_x.float().std(dim=(0, 1, 2)).div(255).clamp_min(1e-3).view(1, -1, 1, 1)
    else:
        test_x = data.test_x
        mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, -1, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, -1, 1, 1)
    train_y = torch.as_tensor(data.train_y, device=device)

    n = len(data.train_y)
    global_batch = min(tc.batch_size, n)
    local_batch = max(1, global_batch // acc.num_processes)
    steps = max(1, n // global_batch)
    if tc.max_steps_per_epoch:
        steps = min(steps, tc.max_steps_per_epoch)
    total_steps, warmup_steps = steps * tc.epochs, steps * tc.warmup_epochs
    perm_gen = torch.Generator().manual_seed(tc.seed)
    aug_gen = torch.Generator(device=device).manual_seed(tc.seed + 1)

    history: list[dict[str, Any]] = []
    start_epoch, elapsed = 0, 0.0
    ckpt_path = Path(workdir) / "checkpoint.pt" if workdir else None
    if ckpt_path and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        core.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        perm_gen.set_state(state["perm_gen"])
        aug_gen.set_state(state["aug_gen"].to(aug_gen.get_state().device))
        torch.set_rng_state(state["torch_rng"])
        history, start_epoch = state["history"], state["epoch"]

    emit = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    show_bar = tc.progress and sys.stderr.isatty() and acc.is_main_process and log is None
    epochs = range(start_epoch, tc.epochs)
    if show_bar:
        from tqdm import tqdm

        epochs = tqdm(epochs, total=tc.epochs, initial=start_epoch, desc=cfg.name, leave=False)
    result: dict[str, Any] = {
        "status": "ok",
        "reason": "",
        "device": str(device),
        "processes": acc.num_processes,
    }
    metrics: dict[str, Any] = history[-1] if history else {}
    model.train()
    try:
        for epoch in epochs:
            t0 = time.perf_counter()
            # no host-device sync inside the epoch: losses and the first non-finite step are
            # accumulated on the device and read once at its end
            sums = torch.zeros(len(LOSS_KEYS), device=device)
            first_bad = torch.full((), -1, dtype=torch.long, device=device)
            perm = torch.randperm(n, generator=perm_gen)
            perm_dev = perm.to(device)
            offset = acc.process_index * local_batch
            on_device = isinstance(train_x, torch.Tensor)  # uint8 images already on the device
            decoded = (
                None
                if on_device
                else _Prefetch(train_x, perm, global_batch, offset, local_batch, steps)
            )
            for step in range(steps):
                lo = step * global_batch + offset
                rows = perm_dev[lo : lo + local_batch]
                for group in opt.param_groups:
                    group["lr"] = lr_at(epoch * steps + step, total_steps, warmup_steps, tc.lr)
                if on_device:
                    xb = train_x[rows]
                else:  # decoded from files, one batch ahead in a thread
                    xb = torch.from_numpy(decoded.take(step)).to(device, non_blocking=True)
                yb = train_y[rows]
                views = [(v - mean) / std for v in make_views(xb, aug_gen, recipe)]
                inp = torch.cat(views)
                if device.type == "cuda":
                    inp = inp.contiguous(memory_format=torch.channels_last)
                with acc.autocast():
                    _, logits, proj = model(inp)
                    protos = core.prototypes() if spec.prototypes else None
                b = len(rows)
                losses = total_loss(
                    spec, logits[:b], yb, proj[b:], torch.cat([yb, yb]), counts, protos
                )
                bad_now = (first_bad < 0) & ~torch.isfinite(losses["loss"].detach())
                first_bad = torch.where(bad_now, step, first_bad)
                opt.zero_grad(set_to_none=True)
                acc.backward(losses["loss"])
                opt.step()
                sums += torch.stack([losses[k].detach().float() for k in LOSS_KEYS])
            bad_step = int(_max_over_ranks(first_bad))
            if bad_step >= 0:
                raise Diverged(f"non-finite loss at epoch {epoch + 1}, step {bad_step + 1}")
            epoch_seconds = time.perf_counter() - t0
            elapsed += epoch_seconds
            done = epoch + 1
            if done % tc.eval_every == 0 or done == tc.epochs:
                mean_losses = acc.reduce(sums / steps, reduction="mean")
                if acc.is_main_process:  # evaluation on one process, the full test set
                    metrics = evaluate(
                        core, test_x, data.test_y, counts_np, mean, std, device, data.test_mask
                    )
                    metrics.update(zip(LOSS_KEYS, mean_losses.tolist()))
                    metrics.update(
                        epoch=done,
                        seconds_per_epoch=elapsed / (done - start_epoch)
                        if done > start_epoch
                        else 0.0,
                        epoch_seconds=epoch_seconds,
                    )
                    history.append({k: v for k, v in metrics.items() if k != "per_class_acc"})
                    if report:
                        report(dict(metrics))
                elif report:  # every process reports (Ray Train's report is collective)
                    report({"epoch": done})
                if acc.is_main_process and not show_bar:
                    emit(
                        f"[{cfg.name}] epoch {done}/{tc.epochs} loss {metrics['loss']:.4f} "
                        f"top1 {metrics['top1']:.4f} bal {metrics['balanced_acc']:.4f}"
                    )
            if (
                ckpt_path
                and (done % tc.checkpoint_every == 0 or done == tc.epochs)
                and acc.is_main_process
            ):
                ckpt_path.parent.mkdir(parents=True, exist_ok=True)
                _atomic_save(
                    {
                        "model": core.state_dict(),
                        "optimizer": opt.state_dict(),
                        "perm_gen": perm_gen.get_state(),
                        "aug_gen": aug_gen.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "history": history,
                        "epoch": done,
                    },
                    ckpt_path,
                )
    except Diverged as err:
        result.update(status="diverged", reason=str(err))
    result.update(metrics)
    result.update(
        history=history,
        epoch=history[-1]["epoch"] if history else 0,
        train_counts=counts_np.tolist(),
        loss_spec=spec.as_dict(),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m rcl_study.train STUDY.yaml [--set k=v ...] [--workdir DIR] [--out F.json]``."""
    import json

    p = argparse.ArgumentParser(
        prog="python -m rcl_study.train", description=__doc__.split("\n")[0]
    )
    p.add_argument("study")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workdir", default=None, help="checkpoint folder (resumes if one exists)")
    p.add_argument("--out", default=None, help="write the final metrics as JSON here")
    a = p.parse_args(argv)
    try:
        cfg = load_study(a.study, a.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = train_trial(cfg, workdir=a.workdir)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # leave together: a rank exiting mid-teardown aborts gloo
        torch.distributed.destroy_process_group()
        if int(os.environ.get("RANK", "0")) != 0:
            return 0 if result["status"] == "ok" else 1
    result["config"] = to_dict(cfg)
    text = json.dumps(result, indent=2, default=float)
    if a.out:
        Path(a.out).write_text(text)
    summary = {
        k: result.get(k)
        for k in (
            "status",
            "reason",
            "epoch",
            "top1",
            "balanced_acc",
            "many_acc",
            "medium_acc",
            "few_acc",
            "seconds_per_epoch",
        )
    }
    print(json.dumps(summary, default=float))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
