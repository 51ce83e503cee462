"""Checkpoints of a trial: written atomically, read back with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rcl_study.files import atomic_write
from rcl_study.trainer.setup import Generators


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely (names the file)."""


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (temporary file, fsync, rename)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(
    path: Path, core, opt, gens: Generators, history: list[dict[str, Any]], epoch: int
) -> None:
    """Write model, optimiser, random streams and history atomically to ``path``.

    Everything stored is a tensor or a plain list/dict of numbers and strings, so that
    :func:`read_checkpoint` can load it with ``weights_only=True``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(
        {
            "model": core.state_dict(),
            "optimizer": opt.state_dict(),
            "perm_gen": gens.perm.get_state(),
            "aug_gen": gens.aug.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": [plain(h) for h in history],
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


def plain(value: Any) -> Any:
    """``value`` as plain Python lists, dicts, numbers and strings (numpy scalars converted)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
