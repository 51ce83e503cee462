"""Checkpoints of a trial: written atomically, read back with ``weights_only=True``.

Each checkpoint carries the ``config_hash`` of the trial that wrote it (the caller passes it:
the trainer knows nothing of studies), so that it is never resumed under another configuration
(:func:`load_checkpoint` with ``expected``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rcl_study.store import DiskError, atomic_write, open_read, rename_file
from rcl_study.trainer.setup import Generators


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely (names the file)."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint written for another configuration than the trial's (names both hashes)."""


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (temporary file, fsync, rename).

    Raises:
        DiskError: the disk could not take it (``checkpoint not written: ...``, one line).

    """
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except DiskError as err:
        raise err.about("checkpoint not written") from None


def save_checkpoint(
    path: Path,
    core,
    opt,
    gens: Generators,
    history: list[dict[str, Any]],
    epoch: int,
    config_hash: str | None = None,
) -> None:
    """Write model, optimiser, random streams and history atomically to ``path``.

    Everything stored is a tensor or a plain list/dict of numbers and strings, so that
    :func:`read_checkpoint` can load it with ``weights_only=True``. ``config_hash``: the
    configuration the trial trains (stored, checked when it is loaded).
    """
    atomic_save(
        {
            "model": core.state_dict(),
            "optimizer": opt.state_dict(),
            "perm_gen": gens.perm.get_state(),
            "aug_gen": gens.aug.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": [plain(h) for h in history],
            "epoch": int(epoch),
            "config_hash": config_hash,
        },
        path,
    )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded with ``weights_only=True`` (no code runs).

    Raises:
        CheckpointError: the file holds anything but tensors and plain containers, or is damaged.

    """
    try:
        with open_read(path) as f:  # reached through no link inside a study folder
            return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint gets one clear line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a safe checkpoint (refused by weights_only loading: {first[:200]}); "
            "delete it to start the trial afresh"
        ) from None


def check_hash(path: Path, state: dict[str, Any], expected: str | None) -> None:
    """Raise :class:`CheckpointMismatch` unless ``state`` carries ``expected`` (None: no check).

    A checkpoint without a ``config_hash`` (written before they carried one) is a mismatch too:
    nothing proves which configuration it trained.
    """
    if expected is None:
        return
    got = state.get("config_hash") if isinstance(state, dict) else None
    if got != expected:
        raise CheckpointMismatch(
            f"{path}: a checkpoint of configuration {got or 'unknown (it carries no hash)'}, "
            f"not of this trial's {expected}; run with --accept-changes to set it aside and "
            "train afresh, or delete it"
        )


def stored_hash(path: Path) -> str | None:
    """The ``config_hash`` the checkpoint at ``path`` carries (None: none stored).

    Raises:
        CheckpointError: see :func:`read_checkpoint`.

    """
    got = read_checkpoint(path).get("config_hash")
    return got if isinstance(got, str) else None


def rename_stale(path: Path, old: str | None) -> bool:
    """Rename the checkpoint ``path`` to ``<stem>.stale-<old hash><suffix>`` (never resumed)."""
    return rename_file(path, f"{path.stem}.stale-{old or 'unknown'}{path.suffix}")


def load_checkpoint(
    path: Path, core, opt, gens: Generators, expected: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Restore ``core``, ``opt`` and the random streams from ``path``; (history, epoch).

    Raises:
        CheckpointMismatch: ``expected`` is given and the checkpoint does not carry it.
        CheckpointError: see :func:`read_checkpoint`.

    """
    state = read_checkpoint(path)
    check_hash(path, state, expected)
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
