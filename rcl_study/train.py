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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import ConfigError, StudyFile, load_study, to_dict
from .data import load_data
from .data.augment import make_views
from .data.datasets import ListImages, LTData
from .losses import LossSpec, check_loss_inputs, resolve_loss, total_loss
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
    return "autoaugment" if size == 32 else "bcl"  # BCL: AutoAugment on CIFAR, RandAugment beyond


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
    """Decode the batches of an epoch from image files one batch ahead, in a thread.

    With ``pin``, batches land in pinned memory, so that their copy to the GPU is asynchronous
    (a copy from pageable memory waits for the GPU's stream).
    """

    def __init__(
        self, images, perm, global_batch: int, offset: int, size: int, steps: int, pin: bool
    ):
        self.images, self.perm, self.steps, self.pin = images, perm, steps, pin
        self.global_batch, self.offset, self.size = global_batch, offset, size
        self.pool = ThreadPoolExecutor(1)
        self.next = self.pool.submit(self._load, 0)

    def _load(self, step: int) -> torch.Tensor:
        lo = step * self.global_batch + self.offset
        batch = torch.from_numpy(
            np.ascontiguousarray(self.images[self.perm[lo : lo + self.size].numpy()])
        )
        return batch.pin_memory() if self.pin else batch

    def take(self, step: int) -> torch.Tensor:
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


# ---------------------------------------------------------------------------------------------
# setup: what a trial holds while it trains


@dataclass
class TrialData:
    """A trial's data where it trains: images, labels, class counts, normalisation, views.

    ``train_x`` / ``test_x`` are uint8 ``[N, H, W, C]`` tensors on the device, or
    :class:`ListImages` decoded from files batch by batch; ``mean`` / ``std`` are ``[1, C, 1, 1]``.
    """

    train_x: torch.Tensor | ListImages
    train_y: torch.Tensor
    test_x: torch.Tensor | ListImages
    test_y: np.ndarray
    test_mask: np.ndarray | None
    counts_np: np.ndarray
    counts: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    recipe: str

    @property
    def on_device(self) -> bool:
        """Whether the training images already live on the device (else decoded from files)."""
        return isinstance(self.train_x, torch.Tensor)


@dataclass
class Schedule:
    """Batch sizes, steps and the learning-rate schedule of one trial."""

    n: int
    global_batch: int
    local_batch: int
    steps: int
    total_steps: int
    warmup_steps: int
    base_lr: float

    def lr(self, epoch: int, step: int) -> float:
        """The learning rate of ``step`` of ``epoch`` (a Python float: no device read)."""
        return lr_at(epoch * self.steps + step, self.total_steps, self.warmup_steps, self.base_lr)


@dataclass
class Generators:
    """The trial's random streams: ``perm`` (CPU, epoch order) and ``aug`` (device, views)."""

    perm: torch.Generator
    aug: torch.Generator


@dataclass
class Net:
    """The network as Accelerate prepared it (``model``), its plain module (``core``), optimiser."""

    model: torch.nn.Module
    core: torch.nn.Module
    opt: torch.optim.Optimizer
    acc: Any


@dataclass
class Trial:
    """Everything one trial holds while it trains (built by :func:`setup`)."""

    cfg: StudyFile
    spec: LossSpec
    net: Net
    data: TrialData
    sched: Schedule
    gens: Generators
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0

    @property
    def device(self) -> torch.device:
        """The device the trial trains on."""
        return self.net.acc.device


def prepare_data(cfg: StudyFile, data: LTData, device: torch.device) -> TrialData:
    """Move arrays to ``device`` and fix the normalisation and the augmentation recipe."""
    counts_np = data.train_counts
    # the loss's value checks (counts > 0, labels in range) run here, once per trial, on host
    # copies: the step itself reads no device value
    check_loss_inputs(torch.as_tensor(counts_np), torch.as_tensor(data.train_y))
    if not isinstance(data.train_x, ListImages):  # arrays live on the device, augmentation too
        train_x = torch.from_numpy(data.train_x).to(device)
        test_x = torch.from_numpy(data.test_x).to(device)
        mean = train_x.float().mean(dim=(0, 1, 2)).div(255).view(1, -1, 1, 1)
        std = train_x.float().std(dim=(0, 1, 2)).div(255).clamp_min(1e-3).view(1, -1, 1, 1)
    else:
        train_x, test_x = data.train_x, data.test_x
        mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, -1, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, -1, 1, 1)
    return TrialData(
        train_x=train_x,
        train_y=torch.as_tensor(data.train_y, device=device),
        test_x=test_x,
        test_y=data.test_y,
        test_mask=data.test_mask,
        counts_np=counts_np,
        counts=torch.as_tensor(counts_np, device=device),
        mean=mean,
        std=std,
        recipe=_augment_recipe(cfg, data.channels, data.image_size),
    )


def build_network(cfg: StudyFile, data: LTData, acc) -> Net:
    """Build the model and its SGD optimiser, and let Accelerate prepare both.

    ``core`` is the plain module without Accelerate's mixed-precision forward wrapper: training
    steps enter autocast themselves, evaluation runs ``core`` in float32.
    """
    tc, device = cfg.train, acc.device
    model = build_model(
        cfg.model.arch,
        data.channels,
        data.num_classes,
        data.image_size,
        cfg.model.proj_hidden,
        cfg.model.proj_dim,
        cfg.model.width,
        cfg.model.norm,
        cfg.model.classifier,
    ).to(device)
    if cfg.model.norm == "sync_batch" and acc.num_processes > 1 and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay
    )
    model, opt = acc.prepare(model, opt)
    return Net(model, acc.unwrap_model(model, keep_fp32_wrapper=False), opt, acc)


def make_schedule(cfg: StudyFile, n: int, num_processes: int) -> Schedule:
    """Steps per epoch, per-process batch and warm-up of a training set of ``n`` images."""
    tc = cfg.train
    global_batch = min(tc.batch_size, n)
    steps = max(1, n // global_batch)
    if tc.max_steps_per_epoch:
        steps = min(steps, tc.max_steps_per_epoch)
    return Schedule(
        n=n,
        global_batch=global_batch,
        local_batch=max(1, global_batch // num_processes),
        steps=steps,
        total_steps=steps * tc.epochs,
        warmup_steps=steps * tc.warmup_epochs,
        base_lr=tc.lr,
    )


def make_generators(seed: int, device: torch.device) -> Generators:
    """The epoch-order generator (CPU, ``seed``) and the augmentation one (device, ``seed + 1``)."""
    return Generators(
        torch.Generator().manual_seed(seed),
        torch.Generator(device=device).manual_seed(seed + 1),
    )


def setup_start(cfg: StudyFile) -> tuple[LossSpec, Any, LTData]:
    """Threads, seeds, the loss, the accelerator and the data: what comes before the network."""
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    _seed_everything(tc.seed)
    spec = resolve_loss(cfg.loss, tc.alpha, tc.beta)
    acc = _make_accelerator(cfg, find_unused=not (spec.contrastive and spec.prototypes))
    if acc.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest kernels
    return spec, acc, load_data(cfg.data)


def setup(cfg: StudyFile) -> Trial:
    """Seed, build the accelerator, data, network, schedule and generators of one trial."""
    spec, acc, raw = setup_start(cfg)
    net = build_network(cfg, raw, acc)
    data = prepare_data(cfg, raw, acc.device)
    sched = make_schedule(cfg, len(raw.train_y), acc.num_processes)
    return Trial(cfg, spec, net, data, sched, make_generators(cfg.train.seed, acc.device))


# ---------------------------------------------------------------------------------------------
# checkpoints


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely (names the file)."""


def save_checkpoint(
    path: Path, core, opt, gens: Generators, history: list[dict[str, Any]], epoch: int
) -> None:
    """Write model, optimiser, random streams and history atomically to ``path``.

    Everything stored is a tensor or a plain list/dict of numbers and strings, so that
    :func:`read_checkpoint` can load it with ``weights_only=True``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(
        {
            "model": core.state_dict(),
            "optimizer": opt.state_dict(),
            "perm_gen": gens.perm.get_state(),
            "aug_gen": gens.aug.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": [_plain(h) for h in history],
            "epoch": int(epoch),
        },
        path,
    )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded with ``weights_only=True`` (no code runs).

    Raises:
        CheckpointError: the file holds anything but tensors and plain containers, or is damaged.

    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint gets one clear line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a safe checkpoint (refused by weights_only loading: {first[:200]}); "
            "delete it to start the trial afresh"
        ) from None


def load_checkpoint(path: Path, core, opt, gens: Generators) -> tuple[list[dict[str, Any]], int]:
    """Restore ``core``, ``opt`` and the random streams from ``path``; (history, epoch)."""
    state = read_checkpoint(path)
    core.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    gens.perm.set_state(state["perm_gen"])
    gens.aug.set_state(state["aug_gen"].to(gens.aug.get_state().device))
    torch.set_rng_state(state["torch_rng"])
    return list(state["history"]), int(state["epoch"])


def _plain(value: Any) -> Any:
    """``value`` as plain Python lists, dicts, numbers and strings (numpy scalars converted)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------------------------
# one step, one epoch


@dataclass
class EpochOrder:
    """The order of one epoch: a permutation, this process's offset, and decoded batches."""

    perm: torch.Tensor
    perm_dev: torch.Tensor
    offset: int
    global_batch: int
    local_batch: int
    decoded: _Prefetch | None = None

    def rows(self, step: int) -> torch.Tensor:
        """Indices (on the device) of this process's images in ``step``."""
        lo = step * self.global_batch + self.offset
        return self.perm_dev[lo : lo + self.local_batch]


def epoch_order(
    data: TrialData, sched: Schedule, perm_gen: torch.Generator, process_index: int
) -> EpochOrder:
    """Draw the next epoch's permutation; start decoding its first batch for file images."""
    perm = torch.randperm(sched.n, generator=perm_gen)
    offset = process_index * sched.local_batch
    decoded = None
    if not data.on_device:
        pin = data.train_y.device.type == "cuda"
        decoded = _Prefetch(
            data.train_x, perm, sched.global_batch, offset, sched.local_batch, sched.steps, pin
        )
    return EpochOrder(
        perm, perm.to(data.train_y.device), offset, sched.global_batch, sched.local_batch, decoded
    )


def gather_batch(
    data: TrialData, order: EpochOrder, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The uint8 images ``[B, H, W, C]`` and labels ``[B]`` of ``step``, on the device."""
    rows = order.rows(step)
    if order.decoded is None:
        xb = data.train_x[rows]
    else:  # decoded from files, one batch ahead in a thread
        xb = order.decoded.take(step).to(data.train_y.device, non_blocking=True)
    return xb, data.train_y[rows]


def batch_inputs(xb: torch.Tensor, aug_gen: torch.Generator, data: TrialData) -> torch.Tensor:
    """The three normalised views of ``xb`` stacked: ``[3B, C, H, W]`` (classifier view first)."""
    views = [(v - data.mean) / data.std for v in make_views(xb, aug_gen, data.recipe)]
    inp = torch.cat(views)
    if inp.device.type == "cuda":
        inp = inp.contiguous(memory_format=torch.channels_last)
    return inp


def forward_loss(
    net: Net, spec: LossSpec, inp: torch.Tensor, yb: torch.Tensor, counts: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Forward the stacked views under autocast and compute the trial's loss (float32 outputs)."""
    with net.acc.autocast():
        _, logits, proj = net.model(inp)
        protos = net.core.prototypes() if spec.prototypes else None
    logits, proj = logits.float(), proj.float()
    b = len(yb)
    return total_loss(spec, logits[:b], yb, proj[b:], torch.cat([yb, yb]), counts, protos)


def train_step(
    net: Net,
    spec: LossSpec,
    data: TrialData,
    order: EpochOrder,
    step: int,
    aug_gen: torch.Generator,
    lr: float,
) -> dict[str, torch.Tensor]:
    """One optimisation step: batch, views, forward, loss, backward, SGD update.

    Reads nothing back from the device: returns the detached loss scalars (``LOSS_KEYS``) as
    device tensors.
    """
    xb, yb = gather_batch(data, order, step)
    inp = batch_inputs(xb, aug_gen, data)
    return update(net, spec, inp, yb, data.counts, lr)


def update(
    net: Net,
    spec: LossSpec,
    inp: torch.Tensor,
    yb: torch.Tensor,
    counts: torch.Tensor,
    lr: float,
) -> dict[str, torch.Tensor]:
    """Forward the stacked views ``inp``, loss, backward, SGD update at ``lr``.

    Returns the detached loss scalars (``LOSS_KEYS``) as device tensors (no device read).
    """
    for group in net.opt.param_groups:
        group["lr"] = lr
    losses = forward_loss(net, spec, inp, yb, counts)
    net.opt.zero_grad(set_to_none=True)
    net.acc.backward(losses["loss"])
    net.opt.step()
    return {k: losses[k].detach() for k in LOSS_KEYS}


def train_epoch(trial: Trial, epoch: int) -> torch.Tensor:
    """Train one epoch; the mean of each of ``LOSS_KEYS`` over its steps (a device tensor).

    Losses and the first non-finite step are accumulated on the device and read once, at the end.

    Raises:
        Diverged: a step's loss was not finite (on any process).

    """
    net, sched, device = trial.net, trial.sched, trial.device
    sums = torch.zeros(len(LOSS_KEYS), device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    order = epoch_order(trial.data, sched, trial.gens.perm, net.acc.process_index)
    for step in range(sched.steps):
        losses = train_step(
            net, trial.spec, trial.data, order, step, trial.gens.aug, sched.lr(epoch, step)
        )
        bad_now = (first_bad < 0) & ~torch.isfinite(losses["loss"])
        first_bad = torch.where(bad_now, step, first_bad)
        sums += torch.stack([losses[k].float() for k in LOSS_KEYS])
    bad_step = int(_max_over_ranks(first_bad))
    if bad_step >= 0:
        raise Diverged(f"non-finite loss at epoch {epoch + 1}, step {bad_step + 1}")
    return sums / sched.steps


# ---------------------------------------------------------------------------------------------
# evaluation


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
    """Accuracy metrics (raw logits) and feature-space measures on a test set, in float32.

    ``model`` should be the plain module (``Net.core``): autocast is switched off here, but a
    forward still wrapped by Accelerate's mixed precision would switch it back on.
    """
    device = torch.device(device)
    model.eval()
    preds, feats = [], []
    with torch.autocast(device_type=device.type, enabled=False):
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


def evaluate_trial(trial: Trial) -> dict[str, Any]:
    """:func:`evaluate` of the trial's network on its test set."""
    d = trial.data
    return evaluate(
        trial.net.core, d.test_x, d.test_y, d.counts_np, d.mean, d.std, trial.device, d.test_mask
    )


BEST_KEYS = ("top1", "balanced_acc")


def best_of(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The best evaluation of ``history`` (optimistic: chosen on the test set).

    Returns ``best_top1``, ``best_balanced_acc`` (the maximum over evaluations) and
    ``best_epoch_top1``, ``best_epoch_balanced_acc`` (the first epoch reaching it); None when no
    evaluation has the metric.
    """
    out: dict[str, Any] = {}
    for key in BEST_KEYS:
        scored = [h for h in history if isinstance(h.get(key), (int, float))]
        best = max(scored, key=lambda h: h[key], default=None)  # first of equal maxima
        out[f"best_{key}"] = best[key] if best else None
        out[f"best_epoch_{key}"] = best["epoch"] if best else None
    return out


# ---------------------------------------------------------------------------------------------
# the trial


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
        ``epoch``, ``history`` (one entry per evaluation), the best evaluation (see
        :func:`best_of`), ``seconds_per_epoch`` and ``device``.

    Raises:
        CheckpointError: the checkpoint in ``workdir`` cannot be loaded safely.

    """
    tc = cfg.train
    trial = setup(cfg)
    acc, core, opt = trial.net.acc, trial.net.core, trial.net.opt
    ckpt_path = Path(workdir) / "checkpoint.pt" if workdir else None
    if ckpt_path and ckpt_path.exists():
        trial.history, trial.start_epoch = load_checkpoint(ckpt_path, core, opt, trial.gens)
    history, start_epoch = trial.history, trial.start_epoch

    emit = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    show_bar = tc.progress and sys.stderr.isatty() and acc.is_main_process and log is None
    epochs = range(start_epoch, tc.epochs)
    if show_bar:
        from tqdm import tqdm

        epochs = tqdm(epochs, total=tc.epochs, initial=start_epoch, desc=cfg.name, leave=False)
    result: dict[str, Any] = {
        "status": "ok",
        "reason": "",
        "device": str(trial.device),
        "processes": acc.num_processes,
    }
    metrics: dict[str, Any] = history[-1] if history else {}
    elapsed = 0.0
    trial.net.model.train()
    try:
        for epoch in epochs:
            t0 = time.perf_counter()
            losses = train_epoch(trial, epoch)
            epoch_seconds = time.perf_counter() - t0
            elapsed += epoch_seconds
            done = epoch + 1
            if done % tc.eval_every == 0 or done == tc.epochs:
                mean_losses = acc.reduce(losses, reduction="mean")
                if acc.is_main_process:  # evaluation on one process, the full test set
                    metrics = evaluation(trial, mean_losses, done, elapsed, epoch_seconds)
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
                save_checkpoint(ckpt_path, core, opt, trial.gens, history, done)
    except Diverged as err:
        result.update(status="diverged", reason=str(err))
    return finish_result(trial, result, metrics)


def evaluation(
    trial: Trial, mean_losses: torch.Tensor, done: int, elapsed: float, epoch_seconds: float
) -> dict[str, Any]:
    """Evaluate after epoch ``done``: test metrics, the epoch's mean losses and timings.

    The entry (without per-class accuracy) is appended to ``trial.history``; ``elapsed`` is the
    training time since this run started at ``trial.start_epoch``.
    """
    metrics = evaluate_trial(trial)
    metrics.update(zip(LOSS_KEYS, mean_losses.tolist()))
    metrics.update(
        epoch=done,
        seconds_per_epoch=elapsed / (done - trial.start_epoch),
        epoch_seconds=epoch_seconds,
    )
    trial.history.append({k: v for k, v in metrics.items() if k != "per_class_acc"})
    return metrics


def finish_result(trial: Trial, result: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """``result`` (status, reason, device) completed with the last metrics, history and best."""
    history = trial.history
    result.update(metrics)
    result.update(
        history=history,
        epoch=history[-1]["epoch"] if history else 0,
        train_counts=trial.data.counts_np.tolist(),
        loss_spec=trial.spec.as_dict(),
    )
    result.update(best_of(history))
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
    try:
        result = train_trial(cfg, workdir=a.workdir)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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
