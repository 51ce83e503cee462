"""``--status``: where a study stands, read from its folder without writing anything.

It reads what the driver writes: ``plan.json`` (what is planned), ``records.jsonl`` (what ended,
damaged lines left out and counted), ``driver.lock`` (whether a driver holds the study, and
whether that process is alive when it runs on this host) and ``status.json`` (the running
trials, their epochs and the ETA, rewritten at each status tick). It takes no lock and moves
no line, so it is safe from another terminal while the study runs.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rcl_study.config import StudyFile
from rcl_study.store import read_bytes
from rcl_study.study.lock import pid_alive, read_holder
from rcl_study.study.progress import StatusSnapshot, duration
from rcl_study.trials.folder import STATUS, StudyFolder
from rcl_study.trials.records import TrialRecord, TrialStatus

_MAX_STATUS_BYTES = 1 << 20


@dataclass(frozen=True)
class Best:
    """The best finished trial so far: by the study's selection metric, with its test value."""

    trial_id: str
    #: the selection metric (``val_<metric>`` with a validation split) and its value
    key: str
    value: float
    #: the study's metric on test, and its value (None: not recorded)
    test_key: str
    test_value: float | None


@dataclass(frozen=True)
class StudyStatus:
    """What ``--status`` prints."""

    name: str
    #: the records folder (``study.output_dir``)
    folder: Path
    #: trials in ``plan.json`` (0: no plan stored yet)
    planned: int
    #: records by status (``ok``, ``failed``, ...)
    recorded: dict[str, int] = field(default_factory=dict)
    #: record lines set aside as damaged
    damaged: int = 0
    #: whether a driver holds the study, in words
    driver: str = "no driver holds the study"
    #: the driver's last ``status.json`` (None: none, or damaged)
    snapshot: StatusSnapshot | None = None
    best: Best | None = None


def _snapshot(path: Path) -> StatusSnapshot | None:
    """``status.json`` as a snapshot (None: missing, damaged or of another shape)."""
    try:
        raw = json.loads(read_bytes(path, _MAX_STATUS_BYTES).decode("utf-8"))
        snap = StatusSnapshot(**raw)
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        return None
    ok = isinstance(snap.running, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in snap.running.values()
    )
    return snap if ok else None


def _driver(folder: StudyFolder) -> str:
    holder = read_holder(folder.lock_path)
    if holder is None:
        return "no driver holds the study"
    pid, host = holder.get("pid"), holder.get("host")
    where = f"pid {pid} on {host}, since {holder.get('started', '?')}"
    if host == platform.node() and isinstance(pid, int) and not pid_alive(pid):
        return f"no driver running (its lock names {where}, a process that is gone)"
    return f"a driver is running ({where})"


def _best(cfg: StudyFile, records: list[TrialRecord]) -> Best | None:
    key, test_key = cfg.selection_metric, cfg.study.metric
    sign = 1.0 if cfg.study.mode == "max" else -1.0
    best = None
    for rec in records:
        value = rec.metrics.get(key)
        if rec.status is not TrialStatus.OK or not isinstance(value, float):
            continue
        if best is None or sign * value > sign * best.value:
            test = rec.metrics.get(test_key)
            best = Best(
                rec.trial_id, key, value, test_key, test if isinstance(test, float) else None
            )
    return best


def read_status(cfg: StudyFile) -> StudyStatus:
    """Where the study ``cfg`` stands, from its records folder; writes nothing."""
    folder = StudyFolder(cfg.output_dir)
    if not folder.root.is_dir():
        return StudyStatus(cfg.name, folder.root, planned=0)
    got = folder.read()  # once
    plan = folder.plan()
    return StudyStatus(
        name=cfg.name,
        folder=folder.root,
        planned=len(plan.get("trials", [])),
        recorded=dict(Counter(r.status.value for r in got.records)),
        damaged=len(got.damaged),
        driver=_driver(folder),
        snapshot=_snapshot(folder.root / STATUS),
        best=_best(cfg, got.records),
    )


def status_text(st: StudyStatus) -> str:
    """The lines ``--status`` prints."""
    if not st.folder.is_dir():
        return f"{st.name}: nothing recorded yet ({st.folder} does not exist)"
    n_rec = sum(st.recorded.values())
    kinds = ", ".join(f"{n} {s}" for s, n in sorted(st.recorded.items())) or "none"
    lines = [f"{st.name}: {st.folder}", f"  driver: {st.driver}"]
    planned = f"{st.planned} planned" if st.planned else "no plan stored yet"
    lines.append(f"  trials: {planned}; {n_rec} recorded ({kinds})")
    if st.damaged:
        lines.append(f"  damaged record lines: {st.damaged} (left out)")
    snap = st.snapshot
    running = st.driver.startswith("a driver is running")
    if snap is not None and running and not snap.finished:
        eta = f"ETA {duration(snap.eta_seconds)}" if snap.eta_seconds is not None else "no ETA yet"
        busy = ", ".join(
            f"{t} {e}/{snap.epochs_per_trial}" for t, e in sorted(snap.running.items())
        )
        lines.append(
            f"  running: {len(snap.running)} ({busy or 'none reporting yet'}); "
            f"{snap.left} left; {eta} (as of {snap.updated})"
        )
    if st.planned:
        left = max(0, st.planned - n_rec)
        lines.append(f"  not recorded yet: {left}")
    if st.best is not None:
        b = st.best
        test = f", {b.test_key} {b.test_value:.4f}" if b.test_value is not None else ""
        lines.append(f"  best so far: {b.trial_id} ({b.key} {b.value:.4f}{test})")
    return "\n".join(lines)
