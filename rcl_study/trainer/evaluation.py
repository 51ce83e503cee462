"""Evaluation of a trial: test and validation metrics in float32, and what the trial reports.

:func:`evaluation` adds one entry per evaluation to the trial's history (test metrics under their
names, validation metrics under ``val_`` + name), :func:`chosen_of` picks the evaluation with the
best VALIDATION score (never the test score), and :func:`finish_result` assembles the
:class:`~rcl_study.trainer.result.TrialResult` that ``train_trial`` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from rcl_study.config.metrics import VALIDATED, val_key
from rcl_study.trainer.metrics import (
    classification_metrics,
    feature_measures,
    projection_measures,
    train_class_means,
)
from rcl_study.trainer.result import TrialResult, TrialStatus
from rcl_study.trainer.setup import Trial

T = TypeVar("T")

LOSS_KEYS = ("loss", "loss_cls", "loss_con")


def _batch(images, idx: np.ndarray, device) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        return images[torch.as_tensor(idx, device=images.device)]
    return torch.from_numpy(np.ascontiguousarray(images[idx])).to(device, non_blocking=True)


#: at most this many training images per class give the nearest-class-mean classifier its means
NCM_IMAGES_PER_CLASS = 100


@torch.no_grad()
def _outputs(model, images, rows: np.ndarray, mean, std, device, batch_size: int, keep: bool):
    """Predictions ``[N]`` and (``keep``) backbone features and projections of ``images[rows]``."""
    preds, feats, projs = [], [], []
    with torch.autocast(device_type=device.type, enabled=False):
        for start in range(0, len(rows), batch_size):
            idx = rows[start : start + batch_size]
            x = _batch(images, idx, device).permute(0, 3, 1, 2).float().div_(255)
            f, logits, z = model((x - mean) / std)
            preds.append(logits.argmax(1).cpu())
            if keep:
                feats.append(f.float().cpu())
                projs.append(z.float().cpu())
    cat = torch.cat
    return cat(preds).numpy(), (cat(feats) if keep else None), (cat(projs) if keep else None)


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
    features: bool = True,
    train_means: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Accuracy metrics (raw logits) and feature-space measures on a test set, in float32.

    ``model`` should be the plain module (``Net.core``): autocast is switched off here, but a
    forward still wrapped by Accelerate's mixed precision would switch it back on. ``features``:
    also the backbone's feature measures (compactness, equiangular gap) and the projections'
    (``proj_*``, :func:`~rcl_study.trainer.metrics.projection_measures`; ``train_means``: the
    training projections' class means, for the nearest-class-mean accuracy).
    """
    device = torch.device(device)
    model.eval()
    rows = np.arange(len(labels))
    y_pred, feats, projs = _outputs(model, images, rows, mean, std, device, batch_size, features)
    model.train()
    out = classification_metrics(labels, y_pred, train_counts, mask)
    if features:
        y = torch.as_tensor(labels)
        out.update(feature_measures(feats, y, len(train_counts)))
        out.update(projection_measures(projs, y, train_counts, train_means))
    return out


def ncm_rows(labels: np.ndarray, per_class: int = NCM_IMAGES_PER_CLASS) -> np.ndarray:
    """The rows of the training images whose projections give the class means, ascending.

    Every image of a class with at most ``per_class`` images, otherwise ``per_class`` of them drawn
    without replacement by a generator seeded with 0: the same rows at every evaluation of a
    trial, and after a resume, so an evaluation costs a bounded forward pass however large the
    head classes are.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(0)
    picked = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        picked.append(rows if len(rows) <= per_class else rng.choice(rows, per_class, False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


@torch.no_grad()
def training_means(trial: Trial, batch_size: int = 512) -> torch.Tensor:
    """The class means of the normalised projections of training images (no augmentation).

    From the images :func:`ncm_rows` picks: at most :data:`NCM_IMAGES_PER_CLASS` a class.
    """
    d, core, dev = trial.data, trial.net.core, torch.device(trial.device)
    labels = d.train_y.cpu().numpy()
    rows = ncm_rows(labels, NCM_IMAGES_PER_CLASS)
    core.eval()
    _, _, z = _outputs(core, d.train_x, rows, d.mean, d.std, dev, batch_size, keep=True)
    core.train()
    return train_class_means(z, torch.as_tensor(labels[rows]), len(d.counts_np))


def evaluate_trial(trial: Trial) -> dict[str, Any]:
    """:func:`evaluate` of the trial's network on its test set, plus ``val_*`` on validation.

    The validation metrics (``rcl_study.config.metrics.VALIDATED``) are absent when the trial has
    no validation set (``data.val_per_class: 0``).
    """
    d = trial.data
    core, dev = trial.net.core, trial.device
    means = training_means(trial)
    out = evaluate(
        core, d.test_x, d.test_y, d.counts_np, d.mean, d.std, dev, d.test_mask, train_means=means
    )
    if d.val_x is not None and d.val_y is not None:
        val = evaluate(core, d.val_x, d.val_y, d.counts_np, d.mean, d.std, dev, features=False)
        out.update({val_key(k): val[k] for k in VALIDATED if k in val})
    return out


CHOSEN_KEYS = ("top1", "balanced_acc")


def chosen_of(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation chosen on VALIDATION, per metric, and its test score.

    For each ``m`` of :data:`CHOSEN_KEYS`: ``chosen_epoch_<m>`` is the first epoch with the
    highest ``val_<m>``, ``chosen_val_<m>`` that validation score and ``chosen_<m>`` the TEST
    ``<m>`` at that epoch (what a paper reports for the best epoch without looking at the test
    set). None when no evaluation has a validation score (no validation split): nothing is then
    chosen, in particular not on the test set.
    """
    out: dict[str, Any] = {}
    for key in CHOSEN_KEYS:
        vk = val_key(key)
        scored = [h for h in history if isinstance(h.get(vk), (int, float))]
        best = max(scored, key=lambda h: h[vk], default=None)  # first of equal maxima
        out[f"chosen_{key}"] = best.get(key) if best else None
        out[f"chosen_val_{key}"] = best[vk] if best else None
        out[f"chosen_epoch_{key}"] = best["epoch"] if best else None
    return out


def evaluation(
    trial: Trial, mean_losses: torch.Tensor, done: int, elapsed: float, epoch_seconds: float
) -> dict[str, Any]:
    """Evaluate after epoch ``done``: test metrics, the epoch's mean losses and timings.

    The entry (without per-class accuracy) is appended to ``trial.history``; ``elapsed`` is the
    training time since this run started at ``trial.start_epoch``. Besides the test metrics and
    losses it holds ``epoch``, ``lr`` (the learning rate of the epoch's last step),
    ``seconds_per_epoch`` (mean since this run started) and ``epoch_seconds`` (this epoch).
    """
    metrics = evaluate_trial(trial)
    metrics.update(zip(LOSS_KEYS, mean_losses.tolist()))
    metrics.update(
        epoch=done,
        lr=trial.sched.lr(done - 1, trial.sched.steps - 1),
        seconds_per_epoch=elapsed / (done - trial.start_epoch),
        epoch_seconds=epoch_seconds,
    )
    trial.history.append({k: v for k, v in metrics.items() if k != "per_class_acc"})
    return metrics


def progress_line(name: str, epochs: int, metrics: dict[str, Any]) -> str:
    """The one-line progress report after an evaluation (single trials and pack members)."""
    return (
        f"[{name}] epoch {metrics['epoch']}/{epochs} loss {metrics['loss']:.4f} "
        f"top1 {metrics['top1']:.4f} bal {metrics['balanced_acc']:.4f}"
    )


def finish_result(
    trial: Trial,
    metrics: dict[str, Any],
    status: TrialStatus,
    reason: str = "",
    *,
    processes: int = 1,
    epochs_trained: int | None = None,
) -> TrialResult:
    """The trial's result: ``status`` and ``reason``, its last ``metrics`` and history.

    The metrics gain ``epoch`` (the last evaluation's), ``train_counts``, the split sizes
    (``n_train``, ``n_val``, ``n_test``) and the validation-chosen evaluation (:func:`chosen_of`).
    ``processes``: the data-parallel processes; ``epochs_trained``: a stopped trial's.
    """
    history, d = trial.history, trial.data
    out = dict(metrics)
    out.update(
        epoch=history[-1]["epoch"] if history else 0,
        train_counts=d.counts_np.tolist(),
        n_train=int(d.counts_np.sum()),
        n_val=0 if d.val_y is None else len(d.val_y),
        n_test=len(d.test_y),
    )
    out.update(chosen_of(history))
    return TrialResult(
        status=status,
        reason=reason,
        device=str(trial.device),
        processes=processes,
        epochs_trained=epochs_trained,
        metrics=out,
        history=list(history),
        loss_spec=trial.spec.as_dict(),
        train_split=None if d.split is None else d.split.to_json(),
    )


def evaluates_after(done: int, epochs: int, eval_every: int) -> bool:
    """True when the trainer evaluates after epoch ``done`` (1-based).

    Every ``eval_every`` epochs, and after the last one.
    """
    return done % eval_every == 0 or done == epochs


def timed(run: Callable[[], T]) -> tuple[T, float]:
    """``(run(), seconds it took)`` on the wall clock (``time.perf_counter``)."""
    t0 = time.perf_counter()
    out = run()
    return out, time.perf_counter() - t0
