"""Train one unit (a trial or a pack of trials) into its folders; each member's result.

Shared by both executors (:mod:`.local` and :mod:`.ray_tune`); nothing here imports Ray. Each
member trial keeps its own folder ``<output_dir>/trials/<trial_id>/`` with ``config.json`` and
``result.json`` (its :class:`~rcl_study.trainer.result.TrialResult`); a pack's checkpoint lives
in ``<output_dir>/trials/<pack_id>/``. A trial's configuration is resolved (validated) once per
process: :class:`Resolver` memoises it by trial. The records are made in :mod:`.recording`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rcl_study.config import StudyFile, to_dict
from rcl_study.store import (
    append_bytes,
    atomic_write_text,
    make_folder,
    read_bytes,
    remove_file,
    rename_file,
)
from rcl_study.study.executor import OnEval
from rcl_study.trainer import Report
from rcl_study.trainer.budget import PackBudget, TrialsStopped
from rcl_study.trainer.result import Evaluation, TrialResult, TrialStatus
from rcl_study.trials.design import trial_config
from rcl_study.trials.folder import MAX_PLAN_BYTES, StudyFolder, load_json
from rcl_study.trials.records import TrialPlan, config_hash, environment
from rcl_study.trials.unit import Unit

#: where the trainer's progress lines go
Log = Callable[[str], None]


def _with_suffix(emit: Log, suffix: str) -> Log:
    return lambda line: emit(line + suffix)


def _print(line: str) -> None:
    print(line, flush=True)


def log_path(folder: StudyFolder, unit: Unit) -> Path:
    """``<output_dir>/logs/<unit>.log``: a trial's (or a pack's) own output, on the driver."""
    return folder.root / "logs" / f"{unit.name}.log"


def append_log(folder: StudyFolder, unit: Unit, lines: list[str]) -> None:
    """Append a unit's output lines to its log file (the driver's copy)."""
    if not lines:
        return
    text = "".join(line.rstrip("\n") + "\n" for line in lines)
    append_bytes(log_path(folder, unit), text.encode("utf-8"))  # through no link


class Resolver:
    """Each trial's resolved configuration, validated once and then reused (one per process)."""

    def __init__(self, study: StudyFile) -> None:
        self.study = study
        self._done: dict[tuple[str, int], tuple[StudyFile, dict[str, Any]]] = {}

    def __call__(self, plan: TrialPlan) -> tuple[StudyFile, dict[str, Any]]:
        """(the trial's :class:`StudyFile`, its ``to_dict`` form) for ``plan``."""
        key = (json.dumps(plan.overrides, sort_keys=True, default=str), plan.seed)
        if key not in self._done:
            cfg = trial_config(self.study, plan.overrides, plan.seed)
            self._done[key] = (cfg, to_dict(cfg))
        return self._done[key]


def cpu_name() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``), else the machine type."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def worker_environment(device: str | None) -> dict[str, Any]:
    """Where a trial ran, measured in the process that trained it (sent with its result).

    :func:`rcl_study.trials.records.environment` (package versions, Python, host, git revision)
    plus ``hardware``: the device's name, and the CUDA and cuDNN versions when CUDA is used.
    """
    import torch

    hardware: dict[str, Any] = {"device_name": "cpu", "cuda": None, "cudnn": None}
    if device and device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        hardware.update(
            device_name=torch.cuda.get_device_name(index),
            cuda=torch.version.cuda,
            cudnn=str(torch.backends.cudnn.version()),
        )
    else:
        hardware["device_name"] = cpu_name()
    return {**environment(), "hardware": hardware}


def _set_threads(cfg: StudyFile, threads: int) -> None:
    if cfg.train.threads is None:
        import torch

        torch.set_num_threads(max(1, threads))


def _write_config(folder: StudyFolder, plan: TrialPlan, config: dict, pack: str | None) -> None:
    row: dict[str, Any] = {"plan": plan.to_json(), "config": config}
    if pack is not None:
        row["pack"] = pack
    atomic_write_text(folder.trial_dir(plan.trial_id) / "config.json", json.dumps(row))


def _stale(folder: StudyFolder, plan: TrialPlan, config: dict) -> str | None:
    """The hash of the configuration the trial's folder was written for, when it is not this one.

    ``trials/<id>/config.json`` says which configuration its checkpoint and result belong to; a
    folder written for another configuration (the study file changed, ``--accept-changes``) or
    whose ``config.json`` cannot be read is stale: its work is never reused under this one.
    None: no folder yet, or the same configuration.
    """
    path = folder.trial_dir(plan.trial_id) / "config.json"
    if not path.exists():
        return None
    try:
        old = config_hash(load_json(read_bytes(path, MAX_PLAN_BYTES), MAX_PLAN_BYTES)["config"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return "unreadable"
    return None if old == config_hash(config) else old


def _rename_stale(paths: list[Path], old: str) -> None:
    """Rename ``paths`` that exist to ``<stem>.stale-<old hash><suffix>`` (never reused)."""
    for path in paths:  # through no link
        rename_file(path, f"{path.stem}.stale-{old}{path.suffix}")


def _names(members: list[TrialPlan]) -> list[str]:
    return [p.trial_id for p in members]


def _rename_foreign(path: Path, expected: str | dict[str, str]) -> None:
    """Rename the checkpoint ``path`` unless it carries ``expected`` (its trial's hash).

    ``expected``: the trial's ``config_hash``, or a pack's member -> hash mapping. A checkpoint
    that carries another hash, or none (written before checkpoints carried one), is renamed to
    ``checkpoint.stale-<its hash>.pt`` and never resumed; one that cannot be read is left for
    the trainer to refuse.
    """
    from rcl_study.trainer.checkpoint import CheckpointError, read_checkpoint, rename_stale

    if not path.exists():
        return
    try:
        stored = read_checkpoint(path).get("config_hash")
    except CheckpointError:
        return
    if stored != expected:
        rename_stale(path, stored if isinstance(stored, str) else None)


def train_and_save(
    plan: TrialPlan,
    resolve: Resolver,
    folder: StudyFolder,
    report: Report | None,
    threads: int,
    rank0: bool = True,
    log: Log | None = None,
) -> TrialResult:
    """Train one trial in its own folder; rank 0 stores its config and result there.

    ``log`` receives the trainer's progress lines (default: this process's stdout).

    Raises:
        TrialsStopped: SIGTERM or Ctrl-C; its ``results`` hold the trial's, by trial id.

    """
    from rcl_study.trainer.loop import train_trial

    cfg, config = resolve(plan)
    _set_threads(cfg, threads)
    workdir = make_folder(folder.trial_dir(plan.trial_id))  # through no link
    chash = config_hash(config)
    if rank0:
        old = _stale(folder, plan, config)
        if old is not None:  # another configuration's checkpoint and result: renamed stale
            _rename_stale([workdir / "checkpoint.pt", workdir / "result.json"], old)
        _rename_foreign(workdir / "checkpoint.pt", chash)
        _write_config(folder, plan, config, None)
    t0 = time.time()
    name = plan.trial_id
    emit = log or _print
    if plan.variant == "search":  # a search trial's lines say which point it is
        point = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in plan.overrides.items()
        )
        emit = _with_suffix(emit, f" ({point})")
    try:
        result = train_trial(cfg, report, workdir=workdir, log=emit, config_hash=chash, name=name)
    except TrialsStopped as stop:
        result = _placed(stop.results[name], plan, chash, time.time() - t0)
        if rank0:
            _write_result(folder, plan, result)
        raise TrialsStopped({name: result}, stop.why) from None
    result = _placed(result, plan, chash, time.time() - t0)
    if rank0:
        _write_result(folder, plan, result)
        if result.ok:
            drop_checkpoint(cfg, workdir)
    return result


def _placed(result: TrialResult, plan: TrialPlan, chash: str, wall: float) -> TrialResult:
    """A trial's result with its plan, configuration hash, wall time and environment."""
    return result.placed(
        plan=plan.to_json(),
        config_hash=chash,  # the configuration this result belongs to
        wall_time=wall,
        environment=worker_environment(result.device),
    )


def _write_result(folder: StudyFolder, plan: TrialPlan, result: TrialResult) -> None:
    """``trials/<trial_id>/result.json``: the result as one JSON object (atomic)."""
    atomic_write_text(_result_path(folder, plan), json.dumps(result.to_json(), default=float))


def drop_checkpoint(cfg: StudyFile, workdir: Path) -> bool:
    """Delete ``workdir/checkpoint.pt`` when ``train.keep_checkpoints`` is ``none``.

    Called only after the trial (or every member of the pack) succeeded; returns whether a file
    was deleted. Only the checkpoint the trainer wrote is touched.
    """
    path = workdir / "checkpoint.pt"
    if cfg.train.keep_checkpoints != "none":
        return False
    return remove_file(path)  # a regular file reached through no link (a link: ELOOP)


def train_pack_and_save(
    members: list[TrialPlan],
    pack: str,
    resolve: Resolver,
    folder: StudyFolder,
    report: Report | None,
    threads: int,
    log: Log | None = None,
    budget: PackBudget | None = None,
) -> list[TrialResult]:
    """Train the members of one pack together; each member's config and result in its folder.

    ``report`` is called with the trainer's :class:`~rcl_study.trainer.result.Evaluation` of
    the members after each evaluation. The pack's checkpoint is
    ``trials/<pack>/checkpoint.pt``. ``budget``: the pack's time budget, ``members`` in priority
    order (:mod:`rcl_study.trainer.budget`). Stopped by SIGTERM or Ctrl-C, it writes every
    member's result and raises :class:`~rcl_study.trainer.budget.TrialsStopped` with them by
    trial id.
    """
    from rcl_study.trainer.pack import train_pack

    resolved = [resolve(p) for p in members]
    hashes = [config_hash(config) for _, config in resolved]
    _set_threads(resolved[0][0], threads)
    for plan, (_, config) in zip(members, resolved):
        old = _stale(folder, plan, config)
        if old is not None:  # a member changed: the pack's checkpoint is not its work
            _rename_stale([folder.trial_dir(pack) / "checkpoint.pt"], old)
            _rename_stale([folder.trial_dir(plan.trial_id) / "result.json"], old)
        _write_config(folder, plan, config, pack)
    _rename_foreign(folder.trial_dir(pack) / "checkpoint.pt", dict(zip(_names(members), hashes)))
    t0 = time.time()
    names = _names(members)
    stopped: TrialsStopped | None = None
    try:
        trained = train_pack(
            [cfg for cfg, _ in resolved],
            names,
            report,
            workdir=folder.trial_dir(pack),
            log=log or _print,
            budget=budget,
            config_hashes=hashes,
        )
    except TrialsStopped as stop:
        stopped, trained = stop, [stop.results[n] for n in names]
    wall = time.time() - t0
    results = []
    for plan, chash, result in zip(members, hashes, trained):
        result = _placed(result, plan, chash, wall / len(members))
        result = result.placed(pack=pack, pack_wall_time=wall)
        _write_result(folder, plan, result)
        results.append(result)
    if stopped is not None:
        raise TrialsStopped(dict(zip(names, results)), stopped.why) from None
    if all(r.ok for r in results):
        drop_checkpoint(resolved[0][0], folder.trial_dir(pack))
    return results


def train_unit(
    unit: Unit,
    resolve: Resolver,
    folder: StudyFolder,
    report: Report | None,
    threads: int,
    log: Log | None = None,
    budget: PackBudget | None = None,
) -> dict[str, TrialResult]:
    """Train a unit's members; every member's result by trial id (what the driver records).

    A member whose ``result.json`` is already in this process's study folder (an earlier run on
    this machine) is not trained again: its stored result is returned (not a ``stopped`` one).
    A pack whose members are partly stored trains the rest as a smaller pack in its own folder
    (``<pack>-<k>of<n>``); a single member left trains alone. ``budget``: a pack's time budget.

    Raises:
        TrialsStopped: SIGTERM or Ctrl-C; its ``results`` hold every member's by trial id
            (stored ones as they were, the others ``stopped``).

    """
    stored = {
        p.trial_id: stored_result(folder, p, config_hash(resolve(p)[1])) for p in unit.members
    }
    results = {tid: result for tid, result in stored.items() if result is not None}
    todo = [p for p in unit.members if p.trial_id not in results]
    try:
        if len(todo) == 1:
            results[todo[0].trial_id] = train_and_save(
                todo[0], resolve, folder, report, threads, log=log
            )
        elif todo:
            name = unit.pack_id or "pack"
            if len(todo) < len(unit.members):  # some members stored already: a smaller pack
                name = f"{name}-{len(todo)}of{len(unit.members)}"
            trained = train_pack_and_save(todo, name, resolve, folder, report, threads, log, budget)
            results.update({p.trial_id: r for p, r in zip(todo, trained)})
    except TrialsStopped as stop:
        raise TrialsStopped({**results, **stop.results}, stop.why) from None
    return {p.trial_id: results[p.trial_id] for p in unit.members}


def stored_result(
    folder: StudyFolder, plan: TrialPlan, expected: str | None = None
) -> TrialResult | None:
    """The ``result.json`` this process's folder holds for ``plan``, when it is this config's.

    None: none, damaged (not a valid :class:`~rcl_study.trainer.result.TrialResult`),
    ``stopped`` (partial), or (with ``expected``, the trial's current ``config_hash``) written
    for another configuration or without a ``config_hash``: such a result is never reused.
    """
    path = _result_path(folder, plan)
    try:
        if not path.exists():
            return None
        stored = TrialResult.from_json(load_json(read_bytes(path, MAX_PLAN_BYTES), MAX_PLAN_BYTES))
    except (OSError, ValueError):
        return None
    if stored.status is TrialStatus.STOPPED:
        return None  # a stopped trial's result is partial: it trains on (from its checkpoint)
    if expected is not None and stored.config_hash != expected:
        return None
    return stored


def evaluations(on_eval: OnEval) -> Report:
    """The trainer's ``report`` callback that hands each member's evaluation to ``on_eval``.

    Each :class:`~rcl_study.trainer.result.Evaluation` holds the metrics of the members it
    evaluated by trial id (one for a single trial, none on a data-parallel run's other
    processes). ``on_eval`` is typically a :class:`~rcl_study.study.executor.Sink`'s
    ``evaluation``.
    """

    def report(evaluation: Evaluation) -> None:
        for trial_id, metrics in evaluation.metrics.items():
            on_eval(trial_id, scalars(metrics))

    return report


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric scalars of a metrics dict (what trackers and Ray Tune's results hold)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _result_path(folder: StudyFolder, plan: TrialPlan) -> Path:
    return folder.trial_dir(plan.trial_id) / "result.json"
