"""The command line of one trial, without Ray: ``python -m rcl_study.train STUDY.yaml``.

Loads the study file (with ``--set`` overrides), trains the one trial it describes through
:func:`rcl_study.trainer.loop.train_trial` and prints its final metrics as one JSON line. The loop
itself lives in :mod:`rcl_study.trainer`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from rcl_study.config import ConfigError, load_study, to_dict
from rcl_study.config.keys import add_set_option
from rcl_study.data import DataError
from rcl_study.registry import RegistryError
from rcl_study.signals import sigterm_as_ctrl_c
from rcl_study.store import DiskError, atomic_write_text
from rcl_study.study.runner import absolute_paths
from rcl_study.trainer.checkpoint import CheckpointError, rename_stale, stored_hash
from rcl_study.trainer.loop import train_trial
from rcl_study.trials.records import config_hash


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rcl_study.train",
        description="Train the one trial a study file describes (its data, model, train and loss "
        "sections, at train.seed; the study section is not expanded), without Ray, and print "
        "its final metrics as one JSON line.",
        epilog="Exit status: 0 trained; 1 the trial failed (diverged); 2 bad input (a "
        "checkpoint of another configuration included); 130 stopped by Ctrl-C or SIGTERM.",
    )
    p.add_argument("study", help="the study file (YAML) whose trial settings to train")
    add_set_option(
        p,
        "override one key, the value read as YAML, e.g. --set loss.scale=2.0 or --set "
        "train.seed=3 (repeatable)",
    )
    p.add_argument(
        "--workdir",
        default=None,
        help="checkpoint folder: checkpoints are written there, and training resumes from the "
        "latest one when it exists (default: no checkpoints)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="also write the full result (metrics, history, resolved config) as JSON to this file",
    )
    p.add_argument(
        "--accept-changes",
        action="store_true",
        help="a checkpoint in --workdir written for another configuration (or carrying none) is "
        "renamed (checkpoint.stale-<hash>.pt) and the trial trains afresh; without it, such a "
        "checkpoint is refused (exit 2)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m rcl_study.train STUDY.yaml [--set k=v ...] [--workdir DIR] [--out F.json]``.

    SIGTERM is handled as Ctrl-C: one line (the last checkpoint kept in ``--workdir``), 130.
    """
    with sigterm_as_ctrl_c():
        return _main(argv)


def _absolute(path: str | None) -> str | None:
    """``path`` with ``~`` expanded and made absolute (``..`` folded) once, as it is used."""
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def _main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    a.workdir, a.out = _absolute(a.workdir), _absolute(a.out)
    try:
        cfg = absolute_paths(load_study(a.study, a.overrides))  # data paths resolved once
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    chash = config_hash(to_dict(cfg))
    try:
        if a.accept_changes and a.workdir:
            _rename_other(Path(a.workdir) / "checkpoint.pt", chash)
        result = train_trial(cfg, workdir=a.workdir, config_hash=chash)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the last checkpoint (atomic) is kept
        kept = f"the last checkpoint is kept in {a.workdir}; " if a.workdir else ""
        print(
            f"interrupted: {a.study}: training stopped; {kept}run the same command to "
            f"{'resume' if a.workdir else 'start again'}",
            file=sys.stderr,
        )
        return 130
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RegistryError as err:  # a plugin that does not load: one line naming it
        print(f"error: {a.study}: {err}", file=sys.stderr)
        return 2
    except DataError as err:  # missing or bad data: one line naming the study and the file
        print(f"error: {a.study}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only or full work folder
        why = err if isinstance(err, DiskError) else f"{err.filename or a.workdir}: {err.strerror}"
        print(f"error: {a.study}: {why}", file=sys.stderr)
        return 2
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # leave together: a rank exiting mid-teardown aborts gloo
        torch.distributed.destroy_process_group()
        if int(os.environ.get("RANK", "0")) != 0:
            return 0 if result.ok else 1
    row = {**result.to_json(), "config": to_dict(cfg)}
    text = json.dumps(row, indent=2, default=float)
    if a.out:
        try:  # atomic: a full disk leaves no temporary file and no half-written result
            atomic_write_text(a.out, text)
        except DiskError as err:
            print(f"error: {a.study}: result {err}", file=sys.stderr)
            return 2
        except OSError as err:
            print(f"error: {a.out}: cannot be written ({err.strerror or err})", file=sys.stderr)
            return 2
    summary = {
        k: row.get(k)
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
    return 0 if result.ok else 1


def _rename_other(path: Path, expected: str) -> None:
    """``--accept-changes``: rename a checkpoint not carrying ``expected`` (one line says so)."""
    if not path.exists():
        return
    stored = stored_hash(path)
    if stored != expected:
        rename_stale(path, stored)
        print(
            f"note: {path}: written for configuration {stored or 'unknown'}, not this one "
            f"({expected}); renamed to checkpoint.stale-{stored or 'unknown'}.pt, training "
            "afresh",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
