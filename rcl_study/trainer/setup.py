"""What one trial holds while it trains, and how it is built.

:func:`setup` seeds the process, resolves the loss, makes the Accelerate accelerator, loads the
data and builds the network, the batch schedule and the random streams of one trial (a
:class:`Trial`). ``rcl_study.trainer.pack`` builds a pack from the same pieces (:func:`setup_start`,
:func:`build_network`, :func:`prepare_data`, :func:`make_schedule`, :func:`make_generators`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rcl_study.config import StudyFile
from rcl_study.data import load_data
from rcl_study.data.types import ListImages, LTData, TrainSplit
from rcl_study.losses import LossSpec, check_loss_inputs, resolve_loss
from rcl_study.trainer.models import build_model, pick_arch

#: the step schedule's factor at each milestone (BCL's and its CIFAR descendants' ``adjust_lr``:
#: ``lr *= 0.1 if epoch >= milestone``; sources in ``docs/recipe.md``, row 19)
STEP_FACTOR = 0.1


def lr_at(
    step: int,
    total_steps: int,
    warmup_steps: int,
    base_lr: float,
    milestone_steps: Sequence[int] | None = None,
) -> float:
    """The learning rate of optimisation step ``step`` (0-based).

    A linear warm-up to ``base_lr`` over ``warmup_steps`` (step s at ``base_lr * (s + 1) /
    warmup_steps``), then, with ``milestone_steps`` None, cosine decay to 0 at ``total_steps``;
    else the step schedule: ``base_lr`` times :data:`STEP_FACTOR` once for every milestone step
    reached (``step >= m``).
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if milestone_steps is not None:
        return base_lr * STEP_FACTOR ** sum(step >= m for m in milestone_steps)
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


# ---------------------------------------------------------------------------------------------
# setup: what a trial holds while it trains


@dataclass
class TrialData:
    """A trial's data where it trains: images, labels, class counts, normalisation, views.

    ``train_x`` / ``val_x`` / ``test_x`` are uint8 ``[N, H, W, C]`` tensors on the device, or
    :class:`ListImages` decoded from files batch by batch; ``mean`` / ``std`` are ``[1, C, 1, 1]``.
    """

    train_x: torch.Tensor | ListImages
    train_y: torch.Tensor
    test_x: torch.Tensor | ListImages
    test_y: np.ndarray
    test_mask: np.ndarray | None
    val_x: torch.Tensor | ListImages | None
    val_y: np.ndarray | None
    counts_np: np.ndarray
    counts: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    recipe: str
    #: what names the training split (digest, class counts and order, seed), for the record
    split: TrainSplit | None = None

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
    #: the first step of each milestone epoch (``train.schedule: step``); None: cosine
    milestone_steps: tuple[int, ...] | None = None

    def lr(self, epoch: int, step: int) -> float:
        """The learning rate of ``step`` of ``epoch`` (a Python float: no device read)."""
        return lr_at(
            epoch * self.steps + step,
            self.total_steps,
            self.warmup_steps,
            self.base_lr,
            self.milestone_steps,
        )


@dataclass
class Generators:
    """The trial's random streams: ``perm`` (CPU, epoch order) and ``aug`` (device, views)."""

    perm: torch.Generator
    aug: torch.Generator


@dataclass
class Net:
    """The network as Accelerate prepared it (``model``), its plain module (``core``), optimiser.

    ``memory_format``: the layout of the model's weights, which its training inputs are given
    too (:func:`memory_format`).
    """

    model: torch.nn.Module
    core: torch.nn.Module
    opt: torch.optim.Optimizer
    acc: Any
    memory_format: torch.memory_format = torch.contiguous_format


#: backbones whose training step is faster channels-last on a CPU (``benchmarks/step_floor.py``)
CPU_CHANNELS_LAST = frozenset({"resnet32", "small_cnn", "small_cnn_s2"})


def memory_format(arch: str, image_size: int, device: torch.device) -> torch.memory_format:
    """The memory format a network of ``arch`` trains in on ``device``, weights and inputs alike.

    Channels-last on CUDA for every backbone; on a CPU only for :data:`CPU_CHANNELS_LAST`.
    Measured with ``benchmarks/step_floor.py`` on a quiet 2-core CPU (1 thread, load 1.1; time of
    the channels-last step over the contiguous one, median (min-max) of 7 interleaved rounds,
    BCL+RCL, 3 x 64 views): ResNet-32 on 32 px 0.77 (0.72-0.81), the plain floor's 0.77
    (0.74-0.81); ``small_cnn`` width 16 on 8x8 grey 0.82 (0.80-0.82); ``small_cnn_s2`` width 16
    on 32x32 colour 0.76 (0.75-0.77). The torchvision ResNets were not measured on a CPU and stay
    contiguous there. Channels-last sums the same products in another order: results agree with
    a contiguous run to float rounding, not bit for bit.
    """
    if device.type == "cuda" or pick_arch(arch, image_size) in CPU_CHANNELS_LAST:
        return torch.channels_last
    return torch.contiguous_format


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
        val_x = None if data.val_x is None else torch.from_numpy(data.val_x).to(device)
        mean = train_x.float().mean(dim=(0, 1, 2)).div(255).view(1, -1, 1, 1)
        std = train_x.float().std(dim=(0, 1, 2)).div(255).clamp_min(1e-3).view(1, -1, 1, 1)
    else:
        train_x, test_x, val_x = data.train_x, data.test_x, data.val_x
        mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, -1, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, -1, 1, 1)
    return TrialData(
        train_x=train_x,
        train_y=torch.as_tensor(data.train_y, device=device),
        test_x=test_x,
        test_y=data.test_y,
        test_mask=data.test_mask,
        val_x=val_x,
        val_y=data.val_y,
        counts_np=counts_np,
        counts=torch.as_tensor(counts_np, device=device),
        mean=mean,
        std=std,
        recipe=_augment_recipe(cfg, data.channels, data.image_size),
        split=data.train_split(),
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
    fmt = memory_format(cfg.model.arch, data.image_size, device)
    if fmt is not torch.contiguous_format:  # a contiguous model is left as built (lazy modules)
        model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(
        model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay
    )
    model, opt = acc.prepare(model, opt)
    return Net(model, acc.unwrap_model(model, keep_fp32_wrapper=False), opt, acc, fmt)


def make_schedule(cfg: StudyFile, n: int, num_processes: int) -> Schedule:
    """Steps per epoch, per-process batch, warm-up and decay of a training set of ``n`` images.

    ``train.schedule: step`` drops the rate at the start of each ``train.milestones`` epoch
    (0-based epoch index ``>= milestone``, as BCL's ``adjust_lr``); ``cosine`` decays it per step.
    """
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
        milestone_steps=(
            tuple(steps * m for m in tc.milestones or ()) if tc.schedule == "step" else None
        ),
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
    return spec, acc, load_data(cfg.data, cfg.train.seed)


def setup(cfg: StudyFile) -> Trial:
    """Seed, build the accelerator, data, network, schedule and generators of one trial."""
    spec, acc, raw = setup_start(cfg)
    net = build_network(cfg, raw, acc)
    data = prepare_data(cfg, raw, acc.device)
    sched = make_schedule(cfg, len(raw.train_y), acc.num_processes)
    return Trial(cfg, spec, net, data, sched, make_generators(cfg.train.seed, acc.device))
