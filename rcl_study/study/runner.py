"""Run a study: plan it, skip what is recorded, hand the rest to an executor, keep the records.

The flow reads top to bottom in :func:`run_study`: the checks (:mod:`.checks`), the driver lock,
the folder, the plan, the units (:mod:`.packing`), the executor (:mod:`.executor`), and the
:class:`RecordBook` that appends every record the executor hands back.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rcl_study.config import ConfigError, StudyFile, parse_study, set_in, set_path, to_dict
from rcl_study.store import atomic_write_text
from rcl_study.store.folders import claim, move_to_replaced
from rcl_study.study import disk
from rcl_study.study.checks import (
    StudyChanged,
    StudyExists,
    check_changes,
    check_machine,
    check_run_folders,
    check_study,
    report_dirs,
)
from rcl_study.study.executor import Executor, OnEval
from rcl_study.study.lock import StudyLock
from rcl_study.study.packing import plan_units, slots
from rcl_study.study.progress import Progress, StatusSnapshot
from rcl_study.study.rounds import declared_plan, rounds_text, run_planned
from rcl_study.study.search import run_search
from rcl_study.study.tracking import (
    Tracker,
    Trackers,
    check_tracking,
    make_trackers,
    tracking_text,
)
from rcl_study.trials.design import describe, expand, search_distributions, search_trials
from rcl_study.trials.folder import LOCK, STATUS, StudyFolder
from rcl_study.trials.records import TrialPlan, TrialRecord
from rcl_study.trials.shipping import ship_study

__all__ = [
    "RecordBook",
    "StudyChanged",
    "StudyExists",
    "absolute_paths",
    "apply_smoke",
    "check_changes",
    "check_run_folders",
    "check_machine",
    "check_study",
    "dry_run_text",
    "make_executor",
    "prepare_folder",
    "run_study",
    "select",
]


def apply_smoke(cfg: StudyFile) -> StudyFile:
    """Shrink any study so that it runs end to end on a laptop CPU in a few minutes.

    Few steps of small batches, a small stratified subset of the data, at most 4 search trials,
    CPU only; the output and report folders get a ``-smoke`` suffix so real results are untouched.
    """
    import torch

    cuda = torch.cuda.is_available()
    updates: dict[str, Any] = {
        "name": f"{cfg.name}-smoke",
        "train.epochs": min(cfg.train.epochs, 2),
        "train.max_steps_per_epoch": 2,
        "train.batch_size": min(cfg.train.batch_size, 32),
        "train.warmup_epochs": min(cfg.train.warmup_epochs, 1),
        "train.checkpoint_every": 1,
        "data.max_per_class": min(cfg.data.max_per_class or 40, 40),
        "data.test_limit": min(cfg.data.test_limit or 200, 200),
        "study.n_trials": min(cfg.study.n_trials, 4),
        "resources.cpus_per_trial": 1,
        "study.output_dir": f"runs/{cfg.name}-smoke",
        "report.dir": f"reports/{cfg.name}-smoke",
    }
    if not cuda:
        updates.update({"resources.gpus_per_trial": 0, "train.device": "cpu"})
    if cfg.data.image_size > 64:
        updates["data.image_size"] = 64
    raw = to_dict(cfg)
    set_in(raw, updates, cfg.name)
    return parse_study(raw, cfg.name)


def absolute_paths(cfg: StudyFile) -> StudyFile:
    """Every user path of ``cfg`` resolved once; the result is what is checked and used.

    Data paths (``data.root``, ``data.path``): ``~`` expanded, made absolute and resolved, so
    trials find them whatever their working directory. The records and report folders: ``~``
    expanded, made absolute and ``..`` folded (links above them are the user's own). Applying it
    again changes nothing.
    """
    updates: dict[str, str] = {
        f"data.{k}": str(Path(v).expanduser().resolve())
        for k in ("root", "path")
        if (v := getattr(cfg.data, k)) is not None
    }
    for key, given, path in (
        ("study.output_dir", cfg.study.output_dir, cfg.output_dir),
        ("report.dir", cfg.report.dir, cfg.report_dir),
    ):
        if given != (absolute := os.path.abspath(path)):
            updates[key] = absolute
    updates = {k: v for k, v in updates.items() if v != _get(cfg, k)}
    return set_path(cfg, updates) if updates else cfg


def _get(cfg: StudyFile, dotted: str) -> object:
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def dry_run_text(cfg: StudyFile, plans: list[TrialPlan] | None = None) -> str:
    """The trial list and resources a study would use (``plans``: its expanded design, if known)."""
    res = cfg.resources
    lines = [f"study {cfg.name}: {json.dumps(describe(cfg))}"]
    if cfg.study.kind == "search":
        search_distributions(cfg)
        n_search = search_trials(cfg)
        n = n_search + len(cfg.study.seeds) - 1
        capped = f" (the grid's points; study.n_trials is {cfg.study.n_trials})"
        lines.append(
            f"{n_search} search trials{capped if n_search < cfg.study.n_trials else ''} "
            f"(sampler {cfg.study.sampler}, ASHA "
            f"{'on' if cfg.study.asha else 'off'}) at seed {cfg.study.seeds[0]}, then the "
            f"best configuration x the {len(cfg.study.seeds) - 1} other seeds "
            f"{cfg.study.seeds[1:]} (selection and report never share a seed) = {n} trials"
        )
    else:
        plans = expand(cfg) if plans is None else plans
        n = len(plans)
        units = plan_units(cfg, plans, plans)
        for u in units:
            if u.pack_id:
                lines.append(f"  {u.pack_id} ({len(u.members)} members, one process):")
            for p in u.members:
                ov = " ".join(f"{k}={v}" for k, v in p.overrides.items())
                lines.append(f"  {'  ' if u.pack_id else ''}{p.trial_id:40s} seed={p.seed} {ov}")
        lines.append(
            f"{n} trials ({n // len(cfg.study.seeds)} variants x {len(cfg.study.seeds)} seeds)"
            f" in {len(units)} units: " + _pack_note(cfg, units)
        )
        n_units = len(units)
        lines.extend(rounds_text(cfg, plans))
    conc = res.max_concurrent or "as many as fit"
    where = (
        "in this process, one unit at a time (executor local)"
        if res.executor == "local"
        else f"{conc} at once, Ray at {res.address or 'a new local instance'}"
    )
    lines.append(
        f"resources: {res.cpus_per_trial:g} CPU + {_gpu_text(cfg)} per trial or pack, "
        f"{where}; records in {cfg.output_dir}, report in {cfg.report_dir}"
    )
    if cfg.study.kind == "search":
        n_units = n
    lines.append(tracking_text(cfg))
    lines.append(disk.estimate_text(cfg, n, n_units, slots(cfg)))
    return "\n".join(lines)


def _gpu_text(cfg: StudyFile) -> str:
    """The GPUs a trial will really take: Ray's share, or (local executor) ``train.device``."""
    if cfg.resources.executor != "local":
        return f"{cfg.resources.gpus_per_trial:g} GPU"
    device = cfg.train.device
    if device == "auto":
        import torch

        here = "present" if torch.cuda.is_available() else "absent here"
        return f"1 GPU when CUDA is present, else 0 (train.device auto; CUDA {here})"
    return "1 GPU" if device == "cuda" else "0 GPU"


def _pack_note(cfg: StudyFile, units) -> str:
    packs = [u for u in units if u.pack_id]
    if not packs:
        return f"no packs (resources.pack: {cfg.resources.pack})"
    sizes = sorted({len(u.members) for u in packs})
    return (
        f"{len(packs)} packs of {'/'.join(map(str, sizes))} members "
        f"(resources.pack: {cfg.resources.pack}), {len(units) - len(packs)} trials alone"
    )


def prepare_folder(cfg: StudyFile, overwrite: bool) -> Path:
    """Claim the records folder (checked by :func:`~.checks.check_folders`); returns it.

    ``--overwrite`` first moves the old records (but the driver lock) and reports to siblings
    ``<folder>.replaced-<UTC time>`` (never deleted), one stderr line each with its size.
    """
    for path, keep in [(cfg.output_dir, (LOCK,)), *((d, ()) for d in report_dirs(cfg))]:
        if overwrite and (moved := move_to_replaced(path, keep)) is not None:
            size = f"{disk.human(disk.used_bytes(moved))} on disk"
            note = f"note: --overwrite: moved the old contents of {path} to {moved} ({size})"
            print(note, file=sys.stderr)
    return claim(cfg.output_dir, cfg.name)


class RecordBook:
    """The driver's side of ``records.jsonl``: each new record appended, its attempts counted.

    The executors' :class:`~rcl_study.study.executor.Sink`: every member's record comes to
    :meth:`record`, which numbers the trial's attempts from the records it holds in memory (read
    once), appends the line and tells the progress display and trackers (``progress``); every
    evaluation to :meth:`evaluation` (passed on to ``on_eval``). Appending costs the same
    whatever the number of records.
    """

    def __init__(
        self,
        folder: StudyFolder,
        progress: Callable[[TrialRecord], None],
        on_eval: OnEval | None = None,
    ):
        self.folder, self.progress, self.on_eval = folder, progress, on_eval
        self.attempts = folder.attempts()

    def evaluation(self, trial_id: str, metrics: dict[str, float]) -> None:
        """A member's evaluation (live): passed on to the progress display and trackers."""
        if self.on_eval is not None:
            self.on_eval(trial_id, metrics)

    def record(self, record: TrialRecord) -> None:
        """Append ``record`` with its attempt number (``attempts`` = earlier records + 1)."""
        n = self.attempts.get(record.trial_id, 0) + 1
        record = record.replace(attempts=n)
        self.folder.append(record)
        self.attempts[record.trial_id] = n
        self.progress(record)


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    return [p for p in [path, *path.parents] if not p.exists()]


def make_executor(study: StudyFile, *, stop_in_background: bool = False) -> Executor:
    """The executor ``resources.executor`` names (``local`` never imports Ray).

    ``stop_in_background``: Ray's private instance is left to stop in a thread while the caller
    goes on (the command line builds the report meanwhile); by default ``stop()`` waits for it.
    """
    if study.resources.executor == "local":
        from rcl_study.study.local import LocalExecutor

        return LocalExecutor()
    from rcl_study.study.ray_tune import RayExecutor

    return RayExecutor(stop_in_background=stop_in_background)


def select(plans: list[TrialPlan], only: Collection[str] | None, source: str) -> list[TrialPlan]:
    """The planned trials that ``only`` names (variant names or trial ids); all when None.

    Raises:
        ConfigError: a name in ``only`` is neither a variant nor a trial of the plan.

    """
    if only is None:
        return plans
    names = set(only)
    known = {p.variant for p in plans} | {p.trial_id for p in plans}
    unknown = sorted(names - known)
    if unknown:
        raise ConfigError(
            f"{source}: only: {', '.join(unknown)} is not a variant or trial of this study "
            f"(variants: {', '.join(dict.fromkeys(p.variant for p in plans))})"
        )
    return [p for p in plans if p.variant in names or p.trial_id in names]


def _finished(cfg: StudyFile, chosen: list[TrialPlan]) -> bool:
    """Whether every trial a resume would run already has its final record (nothing to start).

    An ablation or grid: each of ``chosen``. A search: its sampled trials, and the best
    configuration's re-run at each reporting seed.
    """
    folder = StudyFolder(cfg.output_dir)
    done = folder.done_ids(cfg.study.retries) if folder.root.is_dir() else set()
    if cfg.study.kind != "search":
        return all(p.trial_id in done for p in chosen)
    searched = sum(1 for r in folder.records() if r.variant == "search" and r.trial_id in done)
    best = {f"best__s{s}" for s in cfg.study.seeds[1:]}
    return searched >= search_trials(cfg) and best <= done


def _named(records: list[TrialRecord], only: Collection[str] | None) -> list[TrialRecord]:
    """The records of the variants or trials ``only`` names (all when None)."""
    if only is None:
        return records
    names = set(only)
    return [r for r in records if r.variant in names or r.trial_id in names]


def run_study(
    cfg: StudyFile,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    accept_changes: bool = False,
    only: Collection[str] | None = None,
    executor: Executor | None = None,
    trackers: Sequence[Tracker] | None = None,
) -> list[TrialRecord]:
    """Run (or finish) the planned trials of a study; returns its records (``only``'s).

    Args:
        cfg: the validated study (:func:`rcl_study.config.load_study`).
        resume: run only what is missing from an existing study folder.
        overwrite: move an earlier run's records and reports aside first (never deleted).
        progress: a progress bar on a terminal (log lines otherwise).
        accept_changes: on ``--resume``, keep records whose configuration the file changed.
        only: variant names or trial ids: run just these planned trials (ablation or grid); the
            others stay planned (``plan.json``) and unrun; only their records are returned.
        executor: what runs the units (default: the one ``resources.executor`` names).
        trackers: where each trial's evaluations and record go live (default: those
            ``resources.tracking`` names, :func:`rcl_study.study.tracking.make_trackers`).

    The folders are checked once, before anything runs (:func:`~.checks.check_run_folders`).
    One driver per study folder (``driver.lock``); a second one is refused before anything else.
    Damaged record lines are moved to ``records.damaged.jsonl`` first (their trials run again);
    failed trials are run again while their attempts are at most ``study.retries``. When the
    trials end, the records are shipped into the report folders
    (:func:`~rcl_study.trials.shipping.ship_study`). Resuming a study whose every trial is
    recorded starts nothing (no executor, no Ray) and returns its records at once.

    """
    executor = executor or make_executor(cfg)
    cfg = absolute_paths(cfg)
    plans = check_study(cfg)
    if only is not None and cfg.study.kind == "search":
        raise ConfigError(f"{cfg.name}: only: a search's trials are sampled; run it whole")
    chosen = select(plans, only, cfg.name)
    if trackers is None:
        check_tracking(cfg)  # a tracker's missing package: refused before anything runs
    check_run_folders(cfg, resume, overwrite)  # the one check, before the lock writes there
    created = _missing_dirs(cfg.output_dir)
    lock = StudyLock(cfg.output_dir)
    note = lock.acquire()  # a second driver is refused at once
    if note:
        print(f"note: {note}", file=sys.stderr)
    started = completed = False
    bar = Progress(progress, cfg.train.epochs, on_status=_status_writer(cfg.output_dir))
    tracking = Trackers(trackers or ())
    try:
        if resume and not overwrite:
            check_changes(cfg, accept_changes, plans)
            if _finished(cfg, chosen):
                return _named(StudyFolder(cfg.output_dir).records(), only)
        executor.start(cfg)  # a cluster that is missing or too small fails before any write
        started = True
        folder = StudyFolder(prepare_folder(cfg, overwrite))
        lock.ensure()
        _move_damaged(folder, "--resume")
        meta = {
            "study": cfg.name,
            "config": to_dict(cfg),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if trackers is None:
            tracking = Trackers(make_trackers(cfg, plans))
        book = RecordBook(
            folder, _fan(bar.record, tracking.finished), _fan(bar.evaluation, tracking.evaluation)
        )
        if cfg.study.kind == "search":
            run_search(cfg, folder, meta, book, bar, executor)
        else:
            meta["declared"] = declared_plan(cfg, plans)
            folder.write_plan([p.to_json() for p in plans], meta)
            run_planned(cfg, plans, chosen, folder, book, bar, executor)
        ship_study(cfg)  # the report's copy of the records: written by the run, not the report
        completed = True
    finally:
        tracking.close()  # never raises
        bar.close(finished=completed if started else None)
        executor.stop()
        lock.release()
        if not started:  # refused before any work: leave no folder behind
            for d in created:
                try:
                    d.rmdir()
                except OSError:
                    break
    return _named(StudyFolder(cfg.output_dir).records(), only)


def _status_writer(out_dir: Path) -> Callable[[StatusSnapshot], None]:
    """Write each snapshot to ``status.json`` atomically; a disk error never stops the study."""

    def write(snap: StatusSnapshot) -> None:
        if not out_dir.is_dir():
            return
        try:
            atomic_write_text(out_dir / STATUS, json.dumps(asdict(snap)))
        except OSError as err:
            print(f"note: {out_dir / STATUS} not updated ({err})", file=sys.stderr)

    return write


def _fan(*calls: Callable[..., None]) -> Callable[..., None]:
    """One callback that calls each of ``calls`` in turn with the same arguments."""

    def call(*args: Any) -> None:
        for c in calls:
            c(*args)

    return call


def _move_damaged(folder: StudyFolder, rerun: str) -> int:
    """Move damaged record lines to ``records.damaged.jsonl``, said in one line; how many."""
    n = folder.move_damaged_lines()
    if n:
        print(
            f"note: {folder.records_path}: {n} damaged line(s) moved to {folder.damaged_path}; "
            f"their trials run again ({rerun})",
            file=sys.stderr,
        )
    return n
