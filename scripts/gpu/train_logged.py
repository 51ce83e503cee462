"""Train one trial of a study with every evaluation appended to a JSON-lines file as it happens.

    python scripts/gpu/train_logged.py STUDY.yaml [--set k=v ...] --workdir DIR
        [--metrics F.jsonl] [--out F.json]

``DIR/checkpoint.pt`` is written by the trainer (``train.checkpoint_every``) and resumed from when
it exists, so a run killed at any moment leaves a resumable checkpoint and, in ``--metrics``, one
line per evaluation done so far (flushed and fsynced line by line). After a resume the epochs since
the last checkpoint are trained again, so an evaluation can appear twice: readers keep the last
line of each epoch. ``--out`` gets the trainer's final result, or on SIGTERM / SIGINT (a
``timeout``) ``status: stopped`` with the evaluations logged so far. Exit 0 when the trial ended
``ok``, 1 otherwise, 2 on a bad study file.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rcl_study.store import append_line, atomic_write_text  # noqa: E402
from rcl_study.trainer.result import Evaluation  # noqa: E402


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The evaluations of a metrics file, last line per epoch, in epoch order; bad lines skipped."""
    rows: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            rows[int(row["epoch"])] = row
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a kill
    return [rows[k] for k in sorted(rows)]


class MetricsLog:
    """Appends each evaluation's metrics (one JSON object per line) and syncs it to disk.

    Through :func:`rcl_study.store.append_line`: a line cut short by a kill stays a line of its
    own (skipped by :func:`read_metrics`), the next evaluation starts a new one.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def evaluation(self, evaluation: Evaluation) -> None:
        """The trainer's ``report`` callback: the trial's metrics as one line."""
        for metrics in evaluation.metrics.values():
            self(metrics)

    def __call__(self, metrics: dict[str, Any]) -> None:
        """Append ``metrics`` as one line (the trainer's ``report`` callback)."""
        if set(metrics) == {"epoch"}:
            return  # a non-main process of a data-parallel run
        append_line(self.path, json.dumps(metrics, default=float))


def _stop(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    from rcl_study.config import ConfigError, load_study, to_dict
    from rcl_study.trainer.loop import train_trial

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workdir", required=True, help="checkpoint folder (resumed from)")
    p.add_argument("--metrics", default=None, help="JSON lines, one per evaluation")
    p.add_argument("--out", default=None, help="final result as JSON")
    a = p.parse_args(argv)
    try:
        cfg = load_study(a.study, a.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    metrics = Path(a.metrics or Path(a.workdir) / "metrics.jsonl")
    signal.signal(signal.SIGTERM, _stop)
    try:
        result = train_trial(
            cfg, report=MetricsLog(metrics).evaluation, workdir=a.workdir
        ).to_json()
    except KeyboardInterrupt as err:
        done = read_metrics(metrics)
        result = {
            "status": "stopped",
            "reason": f"stopped by {err or 'SIGINT'} after {len(done)} evaluations",
            "epoch": done[-1]["epoch"] if done else 0,
            "history": done,
        }
        if done:
            result.update({k: v for k, v in done[-1].items() if k != "epoch"})
    result["config"] = to_dict(cfg)
    if a.out:
        atomic_write_text(a.out, json.dumps(result, indent=2, default=float))
    keys = ("status", "reason", "epoch", "top1", "balanced_acc", "top1_lossless")
    print(json.dumps({k: result.get(k) for k in keys + ("seconds_per_epoch",)}, default=float))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
