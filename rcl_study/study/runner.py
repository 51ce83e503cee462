"""Orchestrate a study: plan, skip what is recorded, run the rest through the Tune adapter."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .. import folders
from ..config import ConfigError, StudyFile, set_path, to_dict
from ..records import TrialPlan, TrialRecord, changed_keys, config_hash
from ..space import baseline_variant, describe, expand, search_distributions, trial_config
from ..study_folder import StudyFolder
from .lock import StudyLock
from .packing import pack_size, plan_units


class StudyExists(RuntimeError):
    """The study folder already holds records and neither --resume nor --overwrite was given."""


class StudyChanged(ConfigError):
    """``--resume`` of a study whose file changed what its recorded trials compute."""


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
    for key, value in updates.items():
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    from ..config import parse_study

    return parse_study(raw, cfg.name)


def absolute_paths(cfg: StudyFile) -> StudyFile:
    """Data paths made absolute, so that trials find them whatever their working directory."""
    updates = {
        f"data.{k}": str(Path(v).expanduser().resolve())
        for k in ("root", "path")
        if (v := getattr(cfg.data, k)) is not None
    }
    return set_path(cfg, updates) if updates else cfg


def dry_run_text(cfg: StudyFile) -> str:
    """The trial list and resources a study would use."""
    res = cfg.resources
    lines = [f"study {cfg.name}: {json.dumps(describe(cfg))}"]
    if cfg.study.kind == "search":
        search_distributions(cfg)
        n = cfg.study.n_trials + len(cfg.study.seeds) - 1
        lines.append(
            f"{cfg.study.n_trials} search trials (sampler {cfg.study.sampler}, ASHA "
            f"{'on' if cfg.study.asha else 'off'}) at seed {cfg.study.seeds[0]}, then the "
            f"best configuration x the {len(cfg.study.seeds) - 1} other seeds "
            f"{cfg.study.seeds[1:]} (selection and report never share a seed) = {n} trials"
        )
    else:
        plans = expand(cfg)
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
    conc = res.max_concurrent or "as many as fit"
    where = (
        "in this process, one unit at a time (executor local)"
        if res.executor == "local"
        else f"{conc} at once, Ray at {res.address or 'a new local instance'}"
    )
    lines.append(
        f"resources: {res.cpus_per_trial:g} CPU + {res.gpus_per_trial:g} GPU per trial or pack, "
        f"{where}; records in {cfg.output_dir}, report in {cfg.report_dir}"
    )
    return "\n".join(lines)


def _pack_note(cfg: StudyFile, units) -> str:
    packs = [u for u in units if u.pack_id]
    if not packs:
        return f"no packs (resources.pack: {cfg.resources.pack})"
    sizes = sorted({len(u.members) for u in packs})
    return (
        f"{len(packs)} packs of {'/'.join(map(str, sizes))} members "
        f"(resources.pack: {cfg.resources.pack}), {len(units) - len(packs)} trials alone"
    )


def executor(cfg: StudyFile):
    """The module that runs trials: ``tune`` (Ray) or ``local`` (this process, no Ray)."""
    if cfg.resources.executor == "local":
        from . import local

        return local
    from . import tune

    return tune


def check_folders(cfg: StudyFile, source: str | None = None) -> None:
    """Refuse records or report folders that are not this study's own (see ``folders``)."""
    src = source or cfg.name
    key = "study.output_dir" if cfg.study.output_dir else "name"
    folders.check_folder(cfg.output_dir, cfg.name, "records", key, src)
    key = "report.dir" if cfg.report.dir else "name"
    folders.check_folder(cfg.report_dir, cfg.name, "report", key, src)
    folders.check_pair(cfg.output_dir, cfg.report_dir, src)


def check_folder(cfg: StudyFile, resume: bool, overwrite: bool) -> None:
    """Refuse a folder that is not this study's, or holds records, unless told how."""
    check_folders(cfg)
    out = cfg.output_dir
    folder = StudyFolder(out)
    if folder.holds_study() and not (resume or overwrite):
        raise StudyExists(
            f"{out} already holds this study ({len(folder.records())} trials recorded); "
            "run again with --resume to finish it, or --overwrite to delete it and start over"
        )


def prepare_folder(cfg: StudyFile, overwrite: bool) -> Path:
    """Create the output folder (emptied first, with the old report, under ``--overwrite``)."""
    check_folders(cfg)
    out = folders.claim(cfg.output_dir, cfg.name)
    if overwrite:  # only the names the toolkit writes; the folders and anything else stay
        folders.clear(out, cfg.name, "records")
        if cfg.report_dir.exists():
            folders.clear(folders.claim(cfg.report_dir, cfg.name), cfg.name, "report")
    return out


class _Progress:
    def __init__(self, total: int, done: int, enabled: bool):
        self.total, self.done = total, done
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc="trials", unit="trial")
        self.t0 = time.time()

    def __call__(self, record: TrialRecord) -> None:
        self.done += 1
        bal = record.metrics.get("balanced_acc")
        msg = (
            f"{record.trial_id}: {record.status.value}"
            + (f" balanced_acc={bal:.4f}" if isinstance(bal, float) else "")
            + (f" ({record.reason})" if record.reason else "")
        )
        if self.bar is not None:
            self.bar.set_postfix_str(msg[:60])
            self.bar.update(1)
        else:
            print(
                f"[{self.done}/{self.total} trials, {time.time() - self.t0:.0f}s] {msg}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_changes(cfg: StudyFile, accept: bool = False) -> None:
    """Refuse to resume when the study file changed what recorded trials compute.

    Each record's ``config_hash`` is compared with the hash of the configuration the current
    study file gives the same trial (its current overrides for a planned trial, the recorded
    ones otherwise, e.g. for search trials); differing keys are named.

    Raises:
        StudyChanged: some recorded trial would now run differently, and ``accept`` is False.

    """
    records = StudyFolder(cfg.output_dir).records()
    if not records or accept:
        return
    plans = {} if cfg.study.kind == "search" else {p.trial_id: p.overrides for p in expand(cfg)}
    keys: dict[str, None] = {}
    n = 0
    for r in records:
        overrides = plans.get(r.trial_id, r.overrides)
        seed = cfg.train.seed if r.seed is None else r.seed
        try:
            new = to_dict(trial_config(cfg, overrides, seed))
        except ConfigError:
            new = {}
        if r.config_hash == config_hash(new):
            continue
        diff = changed_keys(r.config, new) if new else list(overrides)
        if diff:
            n += 1
            keys.update(dict.fromkeys(diff))
    if keys:
        shown = ", ".join(list(keys)[:8]) + (", ..." if len(keys) > 8 else "")
        raise StudyChanged(
            f"{cfg.name}: the study changed since {n} of its {len(records)} recorded trials ran "
            f"({shown}); resume with --resume --accept-changes to keep those records as they "
            "are, or start over with --overwrite"
        )


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    return [p for p in [path, *path.parents] if not p.exists()]


def run_study(
    cfg: StudyFile,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    accept_changes: bool = False,
) -> list[TrialRecord]:
    """Run (or finish) every planned trial of a study; returns all records.

    One driver per study folder (``driver.lock``); a second one is refused before anything else.
    Damaged record lines are set aside first (their trials run again); failed trials are run
    again while their attempts are at most ``study.retries``.
    """
    adapter = executor(cfg)
    cfg = absolute_paths(cfg)
    check_folders(cfg)  # whose folders these are, before the lock writes anything there
    created = _missing_dirs(cfg.output_dir)
    lock = StudyLock(cfg.output_dir)
    note = lock.acquire()  # a second driver is refused at once
    if note:
        print(f"note: {note}", file=sys.stderr)
    started = False
    try:
        check_folder(cfg, resume, overwrite)  # before Ray starts
        if resume and not overwrite:
            check_changes(cfg, accept_changes)
        adapter.init_ray(cfg)  # a cluster that is missing or too small fails before any write
        started = True
        out = prepare_folder(cfg, overwrite)
        folder = StudyFolder(out)
        lock.ensure()
        _set_aside(out, "--resume")
        meta = {
            "study": cfg.name,
            "config": to_dict(cfg),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if cfg.study.kind == "search":
            _run_search(cfg, out, meta, progress, adapter)
        else:
            plans = expand(cfg)
            folder.write_plan([p.to_json() for p in plans], meta)
            done = folder.done_ids(cfg.study.retries)
            todo = [p for p in plans if p.trial_id not in done]
            units = [
                u.as_dict() if u.pack_id else u.members[0].to_json()
                for u in plan_units(cfg, plans, todo)
            ]
            bar = _Progress(len(plans), len(plans) - len(todo), progress)
            if units:
                adapter.run_trials(cfg, units, out, bar)
            bar.close()
    finally:
        adapter.shutdown()
        lock.release()
        if not started:  # refused before any work: leave no folder behind
            for d in created:
                try:
                    d.rmdir()
                except OSError:
                    break
    return StudyFolder(cfg.output_dir).records()


def _set_aside(out: Path, rerun: str) -> int:
    """Move damaged record lines aside, saying so in one stderr line; returns how many."""
    folder = StudyFolder(out)
    n = folder.set_aside_damaged()
    if n:
        print(
            f"note: {folder.records_path}: {n} damaged line(s) moved to {folder.damaged_path}; "
            f"their trials run again ({rerun})",
            file=sys.stderr,
        )
    return n


def _run_search(cfg: StudyFile, out: Path, meta: dict, progress: bool, adapter) -> None:
    dists = search_distributions(cfg)
    folder = StudyFolder(out)
    records = folder.records()
    done = folder.done_ids(cfg.study.retries)
    n_search = sum(1 for r in records if r.variant == "search" and r.trial_id in done)
    # trials that were running when the study stopped: re-run first, from their checkpoints
    enqueue = []
    for cfg_file in sorted(folder.trials_dir.glob("search-*/config.json")):
        if cfg_file.parent.name not in done:
            enqueue.append(json.loads(cfg_file.read_text())["plan"]["overrides"])
    planned = [{"trial_id": f"search #{i}", "variant": "search"} for i in range(cfg.study.n_trials)]
    # selection (the search, at seeds[0]) and reporting (the best re-run) never share a seed
    report_seeds = cfg.study.seeds[1:]
    best_plans = [{"trial_id": f"best__s{s}", "variant": "best"} for s in report_seeds]
    folder.write_plan(planned + best_plans, meta)
    bar = _Progress(len(planned) + len(best_plans), len(records), progress)
    remaining = cfg.study.n_trials - n_search
    if remaining > 0:
        adapter.run_trials(
            cfg,
            None,
            out,
            bar,
            search={
                "distributions": dists,
                "n_trials": remaining,
                "enqueue": enqueue[:remaining],
                "resumed": n_search + len(enqueue),
            },
        )
    records = folder.records()
    scored = [
        r
        for r in records
        if r.variant == "search" and r.ok and r.metrics.get(cfg.study.metric) is not None
    ]
    if not scored:
        bar.close()
        return
    pick = max if cfg.study.mode == "max" else min
    best = pick(scored, key=lambda r: r.metrics[cfg.study.metric])
    plans = [TrialPlan(f"best__s{s}", "best", s, best.overrides) for s in report_seeds]
    done = folder.done_ids(cfg.study.retries)
    todo = [p.to_json() for p in plans if p.trial_id not in done]
    if todo:
        adapter.run_trials(cfg, todo, out, bar)
    bar.close()


def check_study(cfg: StudyFile) -> None:
    """Validate what the schema alone cannot (design, grid keys, ranges, baseline); no writes."""
    if cfg.study.kind == "search":
        search_distributions(cfg)
        if len(cfg.study.seeds) < 2:
            raise ConfigError(
                f"{cfg.name}: study.seeds: a search selects at the first seed and re-runs its best "
                f"configuration at the others, so it needs at least 2 seeds (got {cfg.study.seeds})"
            )
        if cfg.report.baseline:
            raise ConfigError(
                f"{cfg.name}: report.baseline: a search has no baseline variant (its trials "
                "differ in several keys at once); remove it"
            )
        pack_size(cfg, [])
    else:
        plans = expand(cfg)
        baseline_variant(cfg, list(dict.fromkeys(p.variant for p in plans)))
        pack_size(cfg, plans)


def check_machine(cfg: StudyFile) -> None:
    """Refuse trials that need more CPUs or GPUs than this machine has (local Ray only)."""
    import torch

    if cfg.train.device == "cuda" and cfg.resources.gpus_per_trial == 0:
        raise ConfigError(
            f"{cfg.name}: train.device: cuda, but resources.gpus_per_trial is 0 (Ray would hide "
            "the GPUs from the trial); give each trial a GPU share or set train.device: auto"
        )
    if cfg.resources.address:
        return  # the cluster is checked when Ray joins it
    gpus = torch.cuda.device_count()
    if cfg.train.device == "cuda" and gpus == 0:
        raise ConfigError(
            f"{cfg.name}: train.device: cuda, but this machine has no GPU; "
            "set train.device: auto (or cpu), or run with --smoke"
        )
    why = cfg.resources.shortfall(os.cpu_count() or 1, gpus, "this machine")
    if why:
        key = why.split(":", 1)[0]
        raise ConfigError(
            f"{cfg.name}: {why}; lower it (--set {key}=...) or try the study with --smoke"
        )
