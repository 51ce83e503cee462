"""Turn the results of a unit's members into their records (:class:`TrialRecord`).

Shared by both executors (:mod:`.local` and :mod:`.ray_tune`): what the trainer returned for each
member (a :class:`~rcl_study.trainer.result.TrialResult`, through Ray's reporting channel or in
this process) becomes one record per member; nothing is read from a worker's disk.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rcl_study.study.execute import Resolver
from rcl_study.trainer.result import TrialResult, TrialStatus
from rcl_study.trials.records import TrialPlan, TrialRecord, config_hash, environment
from rcl_study.trials.unit import Unit


def make_record(
    plan: TrialPlan,
    config: dict[str, Any],
    result: TrialResult,
    wall_time: float,
    pack: str | None = None,
    attempts: int = 1,
) -> TrialRecord:
    """One trial's record from its plan, its resolved ``config`` (``to_dict`` form), its result.

    The status, reason, metrics (:meth:`~rcl_study.trainer.result.TrialResult.record_metrics`),
    history and environment come from ``result``; ``wall_time`` stands in when the result has
    none. ``config_hash`` identifies what the trial computed (``--resume`` compares it with the
    study file); ``attempts`` counts this trial's records so far, this one included.
    """
    where = result.environment or environment()
    return TrialRecord(
        **plan.to_json(),  # trial_id, variant, seed, overrides
        status=result.status,
        reason=result.reason,
        metrics=result.record_metrics(),
        history=list(result.history),
        loss_spec=result.loss_spec,
        wall_time=wall_time if result.wall_time is None else result.wall_time,
        device=result.device or "unknown",
        pack=pack,
        config=config,
        config_hash=config_hash(config),
        attempts=attempts,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
        train_split=result.train_split,
        **where,
    )


def unit_records(
    unit: Unit,
    resolve: Resolver,
    results: Mapping[str, TrialResult],
    status: TrialStatus,
    reason: str,
    wall_time: float,
    partial: dict[str, Any] | None = None,
    finished_only: bool = False,
    device: str | None = None,
) -> list[TrialRecord]:
    """The records of a unit's members after it ended with ``status`` (ok, failed or stopped).

    ``results`` maps trial id to the result the executor received from the trainer (through Ray's
    reporting channel, or in this process): nothing is read from disk, so the driver needs no
    access to the worker's folders. A member with a result takes its status from there; one
    without gets ``status`` (``ok`` without a result means stopped early: ``pruned``, with
    ``partial`` as its metrics and ``device`` as where it ran), unless ``finished_only`` (an
    interrupted run), when it gets no record at all. Each record says ``attempts=1``; the driver
    counts the trial's earlier records when it appends it
    (:class:`rcl_study.study.runner.RecordBook`).
    """
    out = []
    for plan in unit.members:
        result = results.get(plan.trial_id)
        if result is None:
            if finished_only:
                continue
            result = TrialResult(status=status, reason=reason)
            if result.ok:  # stopped by the scheduler (ASHA) before it finished
                why, metrics = "stopped early by the ASHA scheduler", dict(partial or {})
                result = TrialResult(
                    status=TrialStatus.PRUNED, reason=why, metrics=metrics, device=device
                )
        config = resolve(plan)[1]
        out.append(make_record(plan, config, result, wall_time, unit.pack_id))
    return out
