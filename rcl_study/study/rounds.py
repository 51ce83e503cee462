"""Run a planned study's trials: all at once, or seeds in planned rounds (``study.rounds``).

With rounds, the seeds of round k (the first ``rounds[k]`` of ``study.seeds``) run, then the
primary contrasts are tested at that look (:func:`rcl_study.trials.sequential.sequential_test`,
from the records alone); the study stops once every contrast is decided. A resumed study walks
the same rounds: rounds already recorded run nothing and give the same decisions.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rcl_study.config import StudyFile
from rcl_study.study.executor import Executor, Sink
from rcl_study.study.packing import plan_units
from rcl_study.study.progress import Progress
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialPlan
from rcl_study.trials.sequential import (
    SequentialResult,
    contrast_differences,
    primary_contrasts,
    sequential_test,
)


def primary_source(cfg: StudyFile) -> str:
    """Where the primary contrasts come from: ``report.primary``, or the default family."""
    return "report.primary" if cfg.report.primary else "default"


def declared_plan(cfg: StudyFile, plans: Sequence[TrialPlan]) -> dict[str, Any]:
    """What the study declares before any data: its primary contrasts, SESOI, rounds and alpha.

    Written into ``plan.json`` when the run starts, so the report can restate it as declared.
    """
    if cfg.study.kind == "search":
        return {}
    return {
        "primary": [c.name for c in primary_contrasts(cfg, plans)],
        "primary_source": primary_source(cfg),
        "sesoi": cfg.report.sesoi,
        "rounds": cfg.study.rounds,
        "alpha": cfg.report.alpha,
        "metric": cfg.study.metric,
    }


def rounds_text(cfg: StudyFile, plans: Sequence[TrialPlan]) -> list[str]:
    """What a dry run says of the declared plan: the primary contrasts and the rounds."""
    if not (cfg.study.rounds or cfg.report.primary):
        return []
    names = [c.name for c in primary_contrasts(cfg, plans)]
    out = [f"primary contrasts ({primary_source(cfg)}): " + "; ".join(names)]
    if cfg.study.rounds:
        sesoi = f", futility at SESOI {cfg.report.sesoi:g}" if cfg.report.sesoi else ""
        out.append(
            f"rounds {cfg.study.rounds} (cumulative seeds): after each, the primary contrasts are "
            f"tested group-sequentially (alpha {cfg.report.alpha:g}{sesoi}); the study stops "
            "once every one is decided"
        )
    return out


def look(cfg: StudyFile, plans: Sequence[TrialPlan], records: Sequence) -> SequentialResult:
    """The group-sequential test of the primary contrasts on ``records`` (every look reached)."""
    contrasts = primary_contrasts(cfg, plans)
    diffs = contrast_differences(records, contrasts, cfg.study.metric, cfg.study.seeds)
    rounds = cfg.study.rounds or [len(cfg.study.seeds)]
    return sequential_test(diffs, rounds, cfg.report.alpha, cfg.report.sesoi)


def run_planned(
    cfg: StudyFile,
    plans: list[TrialPlan],
    chosen: list[TrialPlan],
    folder: StudyFolder,
    sink: Sink,
    bar: Progress,
    executor: Executor,
) -> None:
    """Run the ``chosen`` planned trials that have no final record, round by round if planned."""
    done = folder.done_ids(cfg.study.retries)
    todo = [p for p in chosen if p.trial_id not in done]
    bar.start(len(chosen), len(chosen) - len(todo))
    rounds = cfg.study.rounds
    if not rounds:
        if todo:
            executor.run(cfg, plan_units(cfg, plans, todo), folder, sink)
        return
    for k, n in enumerate(rounds):
        seeds = set(cfg.study.seeds[:n])
        part = [p for p in todo if p.seed in seeds]
        todo = [p for p in todo if p.seed not in seeds]
        if part:
            executor.run(cfg, plan_units(cfg, plans, part), folder, sink)
        result = look(cfg, plans, folder.records())
        if k + 1 < len(rounds) and all_decided(result):
            left = len({p.seed for p in todo})
            print(
                f"note: every primary contrast is decided after round {k + 1} ({n} seeds): "
                f"{decisions_text(result)}; the {left} later seed(s) are not run",
                file=sys.stderr,
            )
            return


def all_decided(result: SequentialResult) -> bool:
    """Whether every primary contrast is decided (rejected, or futile)."""
    return bool(result.looks) and len(result.decided) == len(result.looks[0].contrasts)


def decisions_text(result: SequentialResult) -> str:
    """The decisions in one line: ``name: reject (look 1); other: futile (look 2)``."""
    return "; ".join(f"{name}: {how} (look {k})" for name, (how, k) in result.decided.items())
