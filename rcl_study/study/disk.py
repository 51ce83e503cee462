"""Disk a study needs: estimated before it runs (``--dry-run``), measured when it ends.

The estimate counts the checkpoints: one per trial or pack, each the network's weights and
buffers plus SGD's momentum (one more copy of the weights), members of a pack side by side in
one file. With ``train.keep_checkpoints: none`` a successful trial's checkpoint is deleted, so
only the units that run at the same time hold one. Records, plans and reports are small (a few
kB per trial) and counted at 20 kB a trial.
"""

from __future__ import annotations

import os
from pathlib import Path

from rcl_study.config import StudyFile

#: (channels, classes, image side) of the built-in datasets, without loading them
SHAPES = {
    "digits_lt": (1, 10, 8),
    "fashion_mnist_lt": (1, 10, 28),
    "cifar10_lt": (3, 10, 32),
    "cifar100_lt": (3, 100, 32),
}
PER_TRIAL_BYTES = 20_000


def checkpoint_bytes(cfg: StudyFile) -> int | None:
    """Bytes of one trial's checkpoint (weights, buffers and momentum); None when unknown.

    Unknown for list and array datasets whose class count is not in the study file.
    """
    from rcl_study.trainer.models import build_model

    data = cfg.data
    if data.dataset in SHAPES:
        channels, classes, side = SHAPES[data.dataset]
    elif data.num_classes:
        channels, classes, side = 3, data.num_classes, data.image_size
    else:
        return None
    m = cfg.model
    model = build_model(
        m.arch, channels, classes, side, m.proj_hidden, m.proj_dim, m.width, m.norm, m.classifier
    )
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return state + weights


def estimate_text(cfg: StudyFile, trials: int, units: int, concurrent: int) -> str:
    """One line for ``--dry-run``: the disk the study's checkpoints and records will take."""
    one = checkpoint_bytes(cfg)
    if one is None:
        return "disk: unknown (the data's class count is known only once it is read)"
    held = units if cfg.train.keep_checkpoints == "last" else min(units, concurrent)
    members = max(1, round(trials / max(units, 1)))
    total = held * members * one + trials * PER_TRIAL_BYTES
    keep = (
        "every checkpoint kept (train.keep_checkpoints: last)"
        if cfg.train.keep_checkpoints == "last"
        else "checkpoints deleted once their trial succeeds (train.keep_checkpoints: none)"
    )
    return f"disk: about {human(total)} ({human(one)} per trial checkpoint; {keep})"


def used_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links not followed)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


def human(n: float) -> str:
    """``1.5 MB`` style (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
