"""Where a report's numbers came from: the machines, devices, versions and commits of its trials.

One sentence when every trial agrees, a table with a row per distinct setting when they differ
(e.g. a study run partly on a laptop, partly on a cluster). Read from each record: the worker's
host, ``hardware`` (device name, CUDA and cuDNN versions) and ``versions``, and ``git_rev``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rcl_study.report.markup import lit
from rcl_study.trials.records import TrialRecord

COLUMNS = ("host", "device", "torch", "CUDA", "cuDNN", "commit")


def setting(record: TrialRecord) -> tuple[str, ...]:
    """One trial's (host, device, torch, CUDA, cuDNN, commit), ``-`` where unknown."""
    hw: dict[str, Any] = record.hardware or {}
    values = (
        record.host,
        hw.get("device_name") or record.device,
        (record.versions or {}).get("torch"),
        hw.get("cuda"),
        hw.get("cudnn"),
        (record.git_rev or "")[:12] or None,
    )
    return tuple(str(v) if v not in (None, "") else "-" for v in values)


def provenance_block(records: list[TrialRecord]) -> tuple:
    """A report block: a paragraph when all trials share one setting, else a table."""
    counts = Counter(setting(r) for r in records)
    if not counts:
        return ("p", "**Where the numbers came from.** No trial recorded.")
    if len(counts) == 1:
        ((values, n),) = counts.items()
        said = "; ".join(f"{k} {lit(v)}" for k, v in zip(COLUMNS, values))
        return ("p", f"**Where the numbers came from.** All {n} trials: {said}.")
    rows = [[*values, str(n)] for values, n in sorted(counts.items())]
    return ("table", [*COLUMNS, "trials"], rows)
