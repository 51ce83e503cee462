"""A search study: Optuna's sampled trials, then the best point again at the reporting seeds.

The runner (:mod:`.runner`) hands a study of ``study.kind: search`` here once its folder is
ready; the executor samples and trains the points (:meth:`~.executor.Executor.search`).
"""

from __future__ import annotations

from rcl_study.config import StudyFile
from rcl_study.store import read_bytes
from rcl_study.study.executor import Executor, SearchRequest, Sink
from rcl_study.study.progress import Progress
from rcl_study.trials.design import search_distributions, search_trials
from rcl_study.trials.folder import MAX_PLAN_BYTES, StudyFolder, load_json
from rcl_study.trials.records import TrialPlan, TrialRecord
from rcl_study.trials.unit import Unit


def run_search(
    cfg: StudyFile,
    folder: StudyFolder,
    meta: dict,
    book: Sink,
    bar: Progress,
    executor: Executor,
) -> None:
    """Run a search (``study.kind: search``), then its best point again at the other seeds.

    The search samples at ``study.seeds[0]`` (trials a stopped run left behind first, from
    their checkpoints); the finished trial best on the validation score
    (:func:`best_search_trial`) is re-run at each of ``study.seeds[1:]`` for the report. Writes
    the plan (``meta`` beside it); records go to ``book``, progress to ``bar``.
    """
    dists = search_distributions(cfg)
    records = folder.records()
    done = folder.done_ids(cfg.study.retries)
    n_search = sum(1 for r in records if r.variant == "search" and r.trial_id in done)
    # trials that were running when the study stopped: re-run first, from their checkpoints
    enqueue = []
    for cfg_file in sorted(folder.trials_dir.glob("search-*/config.json")):
        if cfg_file.parent.name not in done:
            row = load_json(read_bytes(cfg_file, MAX_PLAN_BYTES), MAX_PLAN_BYTES)
            enqueue.append(row["plan"]["overrides"])
    n_trials = search_trials(cfg)
    planned = [{"trial_id": f"search #{i}", "variant": "search"} for i in range(n_trials)]
    # selection (the search, at seeds[0]) and reporting (the best re-run) never share a seed
    report_seeds = cfg.study.seeds[1:]
    best_plans = [{"trial_id": f"best__s{s}", "variant": "best"} for s in report_seeds]
    folder.write_plan(planned + best_plans, meta)
    bar.start(len(planned) + len(best_plans), len(records))
    remaining = n_trials - n_search
    if remaining > 0:
        request = SearchRequest(dists, remaining, enqueue[:remaining], n_search + len(enqueue))
        executor.search(cfg, request, folder, book)
    records = folder.records()
    best = best_search_trial(records, cfg.selection_metric, cfg.study.mode)
    if best is None:
        return
    plans = [TrialPlan(f"best__s{s}", "best", s, best.overrides) for s in report_seeds]
    done = folder.done_ids(cfg.study.retries)
    todo = [Unit.single(p) for p in plans if p.trial_id not in done]
    if todo:
        executor.run(cfg, todo, folder, book)


def best_search_trial(records: list[TrialRecord], key: str, mode: str) -> TrialRecord | None:
    """The finished search trial with the best ``key`` (the validation score: never the test's).

    ``key`` is the study's :attr:`~rcl_study.config.schema.StudyFile.selection_metric`; the first
    of equal bests wins; None when no search trial has finished with a score.
    """
    scored = [
        r
        for r in records
        if r.variant == "search" and r.ok and isinstance(r.metrics.get(key), (int, float))
    ]
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r.metrics[key]) if scored else None
