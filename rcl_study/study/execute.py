"""Train one unit (a trial or a pack of trials) into its folders, and turn results into records.

Shared by both executors: the Ray Tune adapter (``tune.py``) and the in-process one
(``local.py``). Nothing here imports Ray. Each member trial keeps its own folder
``<output_dir>/trials/<trial_id>/`` with ``config.json`` and ``result.json``; a pack's checkpoint
lives in ``<output_dir>/trials/<pack_id>/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import StudyFile, parse_study, to_dict
from ..records import TrialPlan, TrialRecord, TrialStatus, config_hash, environment
from ..space import trial_config as resolve_trial
from ..study_folder import StudyFolder, atomic_write_text

Report = Callable[[dict[str, Any]], None]


def unit_members(config: dict[str, Any]) -> tuple[list[TrialPlan], str | None]:
    """(member plans, pack id) of a unit dict (``{"pack", "members"}``) or of one plan dict."""
    if "members" in config:
        return [TrialPlan.from_json(p) for p in config["members"]], config.get("pack")
    return [TrialPlan.from_json(config)], None


def trial_config(plan: TrialPlan, base: dict[str, Any]) -> StudyFile:
    """The resolved configuration a trial runs with (and its record stores)."""
    return resolve_trial(parse_study(base, base["name"]), plan.overrides, plan.seed)


def _set_threads(cfg: StudyFile, threads: int) -> None:
    if cfg.train.threads is None:
        import torch

        torch.set_num_threads(max(1, threads))


def train_and_save(
    plan: TrialPlan, base, out_dir, report, threads: int, rank0: bool = True
) -> dict[str, Any]:
    """Train one trial in its own folder; rank 0 stores its config and result there."""
    from ..train import train_trial

    cfg = trial_config(plan, base)
    _set_threads(cfg, threads)
    workdir = StudyFolder(out_dir).trial_dir(plan.trial_id)
    workdir.mkdir(parents=True, exist_ok=True)
    if rank0:
        atomic_write_text(
            workdir / "config.json", json.dumps({"plan": plan.to_json(), "config": to_dict(cfg)})
        )
    t0 = time.time()
    result = train_trial(cfg, report, workdir=workdir, log=lambda s: print(s, flush=True))
    result.update(plan=plan.to_json(), wall_time=time.time() - t0)
    if rank0:
        atomic_write_text(workdir / "result.json", json.dumps(result, default=float))
    return result


def train_pack_and_save(
    members: list[TrialPlan], pack: str, base, out_dir, report: Report | None, threads: int
) -> list[dict[str, Any]]:
    """Train the members of one pack together; each member's config and result in its folder.

    ``report`` is called with ``{"epoch": n, "members": k}`` after each evaluation (progress
    only: members' metrics go to their own folders). The pack's checkpoint is
    ``trials/<pack>/checkpoint.pt``.
    """
    from ..pack import train_pack

    cfgs = [trial_config(p, base) for p in members]
    _set_threads(cfgs[0], threads)
    folder = StudyFolder(out_dir)
    for plan, cfg in zip(members, cfgs):
        atomic_write_text(
            folder.trial_dir(plan.trial_id) / "config.json",
            json.dumps({"plan": plan.to_json(), "config": to_dict(cfg), "pack": pack}),
        )
    t0 = time.time()
    results = train_pack(
        cfgs,
        [p.trial_id for p in members],
        report,
        workdir=folder.trial_dir(pack),
        log=lambda s: print(s, flush=True),
    )
    wall = time.time() - t0
    for plan, result in zip(members, results):
        result.update(
            plan=plan.to_json(), pack=pack, wall_time=wall / len(members), pack_wall_time=wall
        )
        atomic_write_text(
            folder.trial_dir(plan.trial_id) / "result.json", json.dumps(result, default=float)
        )
    return results


def train_unit(unit: dict[str, Any], base, out_dir, report: Report | None, threads: int) -> list:
    """Train a unit (a plan dict, or a pack ``{"pack", "members"}``); the members' results.

    A member whose ``result.json`` already exists is not trained again.
    """
    members, pack = unit_members(unit)
    folder = StudyFolder(out_dir)
    todo = [p for p in members if not (folder.trial_dir(p.trial_id) / "result.json").exists()]
    if not todo:
        return []
    if len(todo) == 1:
        return [train_and_save(todo[0], base, out_dir, report, threads)]
    name = pack or "pack"
    if len(todo) < len(members):  # some members stored already: a smaller pack, its own folder
        name = f"{name}-{len(todo)}of{len(members)}"
    return train_pack_and_save(todo, name, base, out_dir, report, threads)


def make_record(
    plan: TrialPlan,
    base: dict[str, Any],
    status: TrialStatus,
    reason: str,
    result: dict[str, Any],
    wall_time: float,
    pack: str | None = None,
    attempts: int = 1,
) -> TrialRecord:
    """One trial's record from its plan and its stored result.

    ``config_hash`` identifies what the trial computed (``--resume`` compares it with the study
    file); ``attempts`` counts this trial's records so far, this one included.
    """
    result = dict(result)
    history = result.pop("history", [])
    config = to_dict(trial_config(plan, base))
    return TrialRecord(
        trial_id=plan.trial_id,
        variant=plan.variant,
        seed=plan.seed,
        overrides=plan.overrides,
        status=TrialStatus(status),
        reason=reason,
        metrics={
            k: v
            for k, v in result.items()
            if k not in ("plan", "loss_spec", "pack", "pack_wall_time")
        },
        history=history,
        loss_spec=result.get("loss_spec"),
        wall_time=result.get("wall_time", wall_time),
        device=result.get("device", "unknown"),
        pack=pack,
        config=config,
        config_hash=config_hash(config),
        attempts=attempts,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
        **environment(),
    )


def unit_records(
    unit: dict[str, Any],
    base: dict[str, Any],
    out_dir: Path,
    status: TrialStatus,
    reason: str,
    wall_time: float,
    partial: dict[str, Any] | None = None,
    finished_only: bool = False,
) -> list[TrialRecord]:
    """The records of a unit's members after it ended with ``status`` (ok or failed).

    A member with a stored ``result.json`` takes its status from there; one without gets
    ``status`` (``ok`` without a result means stopped early: ``pruned``, with ``partial`` as its
    metrics), unless ``finished_only`` (an interrupted run), when it gets no record at all.
    """
    members, pack = unit_members(unit)
    folder = StudyFolder(out_dir)
    tries = folder.attempts()
    out = []
    for plan in members:
        path = folder.trial_dir(plan.trial_id) / "result.json"
        if finished_only and not path.exists():
            continue
        st, why, result = TrialStatus(status), reason, {}
        if path.exists():
            result = json.loads(path.read_text())
            st, why = TrialStatus(result.pop("status")), result.pop("reason")
        elif st is TrialStatus.OK:  # stopped by the scheduler (ASHA) before it finished
            st, why = TrialStatus.PRUNED, "stopped early by the ASHA scheduler"
            result = dict(partial or {})
        attempts = tries.get(plan.trial_id, 0) + 1
        out.append(make_record(plan, base, st, why, result, wall_time, pack, attempts))
    return out
