"""One trial: the BCL recipe as a single flat Accelerate training loop.

``train_trial(config, report)`` knows nothing about Ray or Optuna. Run one trial without Ray::

    python -m rcl_study.train studies/quickstart.yaml --set loss.scale=2 --set train.seed=1

Recipe defaults (``config.TrainConfig``) follow BCL's CIFAR setting (Zhu et al. 2022, CVPR; its
official code has no CIFAR script): ResNet-32, 200 epochs, batch 256, SGD momentum 0.9, lr 0.15
(BCL-derived CIFAR code, ConCutMix's ``run_files/cifar10_imb100.sh``; BCL's README gives only its
ImageNet-LT and iNaturalist commands), 5 linear warm-up epochs then cosine decay (the CIFAR studies
set ``train.schedule: step``, x0.1 at epochs 160 and 180, and the cosine classifier), weight decay
5e-4, temperature 0.1, alpha 2.0 (CE weight), beta 0.6 (contrastive weight), projection MLP
512 -> 128. Every value and its source: ``docs/recipe.md``.
Three views per image: one classifier view (crop + flip + RandAugment)
and two SimCLR-style contrastive views, passed through the network in one forward pass.

Stages, each in its own module of ``rcl_study.trainer``: :mod:`.setup` (data, network, schedule,
random streams), :mod:`.batches` (the epoch's order and its batches), :mod:`.checkpoint` (atomic
save, safe load), :mod:`.evaluation` (test metrics, best evaluation, the result). This module holds
the step, the epoch and :func:`train_trial`; the command line is ``rcl_study/train.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from rcl_study.config import StudyFile
from rcl_study.data.augment import make_views
from rcl_study.losses import LossSpec, total_loss
from rcl_study.trainer import Report
from rcl_study.trainer.batches import EpochOrder, epoch_order, gather_batch
from rcl_study.trainer.budget import TrialsStopped
from rcl_study.trainer.checkpoint import load_checkpoint, save_checkpoint
from rcl_study.trainer.evaluation import (
    LOSS_KEYS,
    evaluates_after,
    evaluation,
    finish_result,
    progress_line,
    timed,
)
from rcl_study.trainer.result import Evaluation, TrialResult, TrialStatus
from rcl_study.trainer.setup import Net, Trial, TrialData, setup


class Diverged(RuntimeError):
    """A non-finite loss; carries the epoch and step."""


def _max_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` maximised over data-parallel processes (itself with one process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        t = t.clone()
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return t


# ---------------------------------------------------------------------------------------------
# one step, one epoch


def batch_inputs(xb: torch.Tensor, aug_gen: torch.Generator, data: TrialData) -> torch.Tensor:
    """The three normalised views of ``xb`` stacked: ``[3B, C, H, W]`` (classifier view first)."""
    views = [(v - data.mean) / data.std for v in make_views(xb, aug_gen, data.recipe)]
    return torch.cat(views)


def forward_loss(
    net: Net, spec: LossSpec, inp: torch.Tensor, yb: torch.Tensor, counts: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Forward the stacked views under autocast and compute the trial's loss (float32 outputs).

    A network trained channels-last (``Net.memory_format``) gets ``inp`` laid out so; any other
    takes it as it comes.
    """
    if net.memory_format == torch.channels_last:
        inp = inp.contiguous(memory_format=torch.channels_last)
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
# the trial


def train_trial(
    cfg: StudyFile,
    report: Report | None = None,
    *,
    workdir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    config_hash: str | None = None,
    name: str | None = None,
) -> TrialResult:
    """Train and evaluate one trial; never raises for a diverged run.

    Args:
        cfg: the resolved trial configuration (``cfg.train.seed`` is the trial's seed).
        report: called with an :class:`~.result.Evaluation` after every evaluation, its metrics
            under ``name`` (on other processes of a data-parallel run, with none).
        workdir: folder for ``checkpoint.pt``; an existing checkpoint is resumed from.
        log: where plain progress lines go (default: stderr when it is not a terminal).
        config_hash: the trial's configuration hash: stored in its checkpoints, and a
            checkpoint that does not carry it is refused (``CheckpointMismatch``).
        name: the trial's name in its evaluations and in ``TrialsStopped`` (default
            ``cfg.name``).

    Returns:
        Its :class:`~.result.TrialResult`: ``status`` ``ok`` or ``diverged``, the last
        evaluation's metrics with ``epoch``, ``seconds_per_epoch`` and the evaluation chosen on
        validation (:func:`.evaluation.chosen_of`), ``history`` (one entry per evaluation),
        ``device``.

    Raises:
        CheckpointError: the checkpoint in ``workdir`` cannot be loaded safely.
        TrialsStopped: SIGTERM or Ctrl-C (a ``KeyboardInterrupt``) during training; it carries
            the result by ``name`` with status ``stopped``, the last evaluation and
            ``epochs_trained``.

    """
    tc = cfg.train
    name = name or cfg.name
    trial = setup(cfg)
    acc, core, opt = trial.net.acc, trial.net.core, trial.net.opt
    ckpt_path = Path(workdir) / "checkpoint.pt" if workdir else None
    if ckpt_path and ckpt_path.exists():
        trial.history, trial.start_epoch = load_checkpoint(
            ckpt_path, core, opt, trial.gens, config_hash
        )
    show_bar = tc.progress and sys.stderr.isatty() and acc.is_main_process and log is None
    emit = None if show_bar else (log or _to_stderr)
    status, reason = TrialStatus.OK, ""
    metrics: dict[str, Any] = trial.history[-1] if trial.history else {}
    elapsed = 0.0
    trained = trial.start_epoch
    trial.net.model.train()
    try:
        for epoch in _epochs(cfg, trial.start_epoch, show_bar):
            losses, epoch_seconds = timed(lambda e=epoch: train_epoch(trial, e))
            elapsed += epoch_seconds
            done = trained = epoch + 1
            if evaluates_after(done, tc.epochs, tc.eval_every):
                timing = (elapsed, epoch_seconds)
                metrics = _evaluate_and_report(
                    trial, name, losses, done, timing, metrics, report, emit
                )
            if (
                ckpt_path
                and (done % tc.checkpoint_every == 0 or done == tc.epochs)
                and acc.is_main_process
            ):
                save_checkpoint(ckpt_path, core, opt, trial.gens, trial.history, done, config_hash)
    except Diverged as err:
        status, reason = TrialStatus.DIVERGED, str(err)
    except KeyboardInterrupt as err:  # SIGTERM or Ctrl-C: hand back what was done
        why = f"stopped by {err or 'Ctrl-C or SIGTERM'}"
        stopped = finish_result(
            trial,
            metrics,
            TrialStatus.STOPPED,
            f"{why} after epoch {trained} of {tc.epochs}",
            processes=acc.num_processes,
            epochs_trained=trained,
        )
        raise TrialsStopped({name: stopped}, why) from None
    return finish_result(trial, metrics, status, reason, processes=acc.num_processes)


def _to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _epochs(cfg: StudyFile, start_epoch: int, show_bar: bool) -> Iterable[int]:
    """The epochs left to train, behind a tqdm progress bar when ``show_bar``."""
    epochs = range(start_epoch, cfg.train.epochs)
    if not show_bar:
        return epochs
    from tqdm import tqdm

    return tqdm(epochs, total=cfg.train.epochs, initial=start_epoch, desc=cfg.name, leave=False)


def _evaluate_and_report(
    trial: Trial,
    name: str,
    losses: torch.Tensor,
    done: int,
    timing: tuple[float, float],
    metrics: dict[str, Any],
    report: Report | None,
    emit: Callable[[str], None] | None,
) -> dict[str, Any]:
    """Evaluate after epoch ``done`` (main process), report, log a line; the current metrics.

    ``name``: the trial's name in the :class:`~.result.Evaluation` reported.

    ``timing`` is (training seconds since this run started, seconds of this epoch). On the other
    processes of a data-parallel run ``metrics`` is returned unchanged.
    """
    acc = trial.net.acc
    mean_losses = acc.reduce(losses, reduction="mean")
    if not acc.is_main_process:
        if report:  # every process reports (Ray Train's report is collective)
            report(Evaluation(done))
        return metrics
    metrics = evaluation(trial, mean_losses, done, *timing)  # one process, the full test set
    if report:
        report(Evaluation(done, {name: dict(metrics)}, device=str(trial.device)))
    if emit:
        emit(progress_line(name, trial.cfg.train.epochs, metrics))
    return metrics
