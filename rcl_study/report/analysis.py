"""The results table -> the typed statistics of a report (no plotting, no file writing)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from rcl_study.config.metrics import val_key
from rcl_study.losses import OFF_VALUES
from rcl_study.report import stats
from rcl_study.report.mdes import sweep_mde
from rcl_study.report.report_stats import (
    IDENTICAL,
    Comparison,
    FactorialEffects,
    FactorialTerm,
    SearchAnalysis,
    SearchPoint,
    SearchTrial,
    SweepBest,
    SweepVersus,
    VariantSummary,
)
from rcl_study.report.table import (
    BEST_COLUMNS,
    CHOSEN_COLUMNS,
    FAILURES,
    bounds,
    current_metrics,
    finite,
    has_validation,
    mean_of,
    ok_rows,
)
from rcl_study.trials.records import TrialRecord, TrialStatus

#: the columns whose mean over seeds each variant's summary carries
SUMMARY_COLUMNS = (
    "many_acc",
    "medium_acc",
    "few_acc",
    "compactness",
    "equiangular_gap_deg",
    "top1",
    "top1_lossless",
)


def variant_summary(
    df: pd.DataFrame, metric: str, n_boot: int, exclude: tuple[str, ...] = ()
) -> list[VariantSummary]:
    """Per variant: trials, failures, mean / sd / CIs / IQM of ``metric`` over seeds, notes."""
    out = []
    for variant, g in df.groupby("variant", sort=False):
        if variant in exclude:
            continue
        ok = ok_rows(g, metric)
        s = stats.summarize(ok[metric].astype(float).tolist(), n_boot=n_boot, bounds=bounds(metric))
        columns = (*SUMMARY_COLUMNS, val_key(metric), *CHOSEN_COLUMNS, *BEST_COLUMNS)
        out.append(
            VariantSummary(
                **s,
                variant=variant,
                trials=len(g),
                failed=int(g["status"].isin(FAILURES).sum()),
                seeds=sorted(int(x) for x in ok["seed"]),
                means={c: mean_of(ok[c]) if c in ok else None for c in columns},
            )
        )
    return out


def _dropped(df: pd.DataFrame, metric: str, variant: str, seeds: set[int]) -> list[str]:
    """Why each of ``seeds`` is missing from ``variant``'s usable results."""
    out = []
    for s in sorted(seeds):
        rows = df[(df["variant"] == variant) & (df["seed"] == s)]
        if not len(rows):
            out.append(f"seed {s}: {variant} not recorded")
        else:
            r = rows.iloc[-1]
            why = r["reason"] if r["status"] != "ok" else f"{metric} missing"
            out.append(
                f"seed {s}: {variant} {r['status']} ({why})"
                if why
                else f"seed {s}: {variant} {r['status']}"
            )
    return out


def paired(
    base: list[float], other: list[float], mode: str, alpha: float, n_boot: int
) -> dict[str, Any]:
    """``stats.paired_comparison``; arms identical at every seed are marked so, not tested.

    Differences exactly zero at every seed: the variant is its baseline by construction
    (``untested`` is :data:`IDENTICAL`, its one note says so).
    """
    res = stats.paired_comparison(base, other, mode, alpha, n_boot)
    if base and list(base) == list(other):
        res.update(untested=IDENTICAL, notes=[f"{IDENTICAL}: not tested"])
    return res


def comparisons(
    df: pd.DataFrame,
    metric: str,
    baseline: str | None,
    mode: str = "max",
    alpha: float = 0.05,
    n_boot: int = 2000,
    exclude: tuple[str, ...] = (),
) -> list[Comparison]:
    """Paired comparison of each variant with the baseline on matched seeds.

    Holm-corrected over the family of these comparisons; seeds dropped from a pairing are
    named in the row's notes.
    """
    if baseline is None or baseline not in set(df["variant"]):
        return []
    ok = ok_rows(df, metric)
    base = ok[ok["variant"] == baseline].set_index("seed")[metric].astype(float)
    all_seeds = set(int(s) for s in df["seed"])
    rows = []
    for variant in [v for v in dict.fromkeys(df["variant"]) if v not in (baseline, *exclude)]:
        other = ok[ok["variant"] == variant].set_index("seed")[metric].astype(float)
        seeds = sorted(set(base.index) & set(other.index))
        res = paired(base.loc[seeds].tolist(), other.loc[seeds].tolist(), mode, alpha, n_boot)
        res.update(variant=variant, baseline=baseline, seeds=[int(s) for s in seeds])
        lost = _dropped(df, metric, baseline, all_seeds - set(base.index))
        lost += _dropped(df, metric, variant, all_seeds - set(other.index))
        if lost:
            res["notes"].append("dropped from the pairing: " + "; ".join(lost))
        rows.append(res)
    adj = {k: stats.holm([r[k] for r in rows]) for k in ("p_ttest", "p_wilcoxon")}
    return [
        Comparison(**r, p_ttest_holm=t, p_wilcoxon_holm=w)
        for r, t, w in zip(rows, adj["p_ttest"], adj["p_wilcoxon"])
    ]


def factorial(df: pd.DataFrame, metric: str, components: list[str]) -> FactorialEffects | None:
    """Main effects and interactions of a factorial ablation from the records' overrides.

    Seeds enter as blocks when every cell has every seed.
    """
    ok = ok_rows(df, metric)
    keys = [f"loss.{c}" for c in components]
    if len(ok) == 0 or any(k not in ok for k in keys):
        return None
    design = np.column_stack(
        [(ok[k] != OFF_VALUES[c]).astype(float).to_numpy() for k, c in zip(keys, components)]
    )
    cells = [tuple(r) for r in design]
    if len(set(cells)) < 2 ** len(components):
        return FactorialEffects(
            0, [], "some cells of the 2^k design have no successful trial", None
        )
    seeds = ok["seed"].astype(int).to_numpy()
    per_cell = {c: set() for c in cells}
    for c, s in zip(cells, seeds):
        per_cell[c].add(s)
    complete = len({frozenset(v) for v in per_cell.values()}) == 1 and len(cells) == len(
        set(zip(cells, seeds))
    )
    out = stats.factorial_effects(
        design, ok[metric].astype(float).to_numpy(), components, seeds if complete else None
    )
    note = out["note"]
    if not complete:
        note = "; ".join(
            x for x in (note, "not every cell has every seed: seeds not used as blocks") if x
        )
    terms = [FactorialTerm(**e) for e in out["effects"]]
    return FactorialEffects(out["df_resid"], terms, note, out["model"])


def _per_seed(ok: pd.DataFrame, key: str, col: str) -> dict[str, dict[int, float]]:
    """``{value of key: {seed: mean of col over the other keys' values}}`` (finite ``col``)."""
    y = pd.to_numeric(ok[col], errors="coerce")
    use = ok.assign(_y=y)[np.isfinite(y)]
    groups: dict[str, dict[int, float]] = {}
    for (value, seed), m in use.groupby([key, "seed"])["_y"].mean().items():
        groups.setdefault(str(value), {})[int(seed)] = float(m)
    return groups


def _sweep_best(best: dict[str, Any] | None) -> SweepBest | None:
    """``stats.best_of_sweep``'s result as a :class:`SweepBest` (its tests typed)."""
    if best is None:
        return None
    versus = [SweepVersus(**v) for v in best.get("versus", [])]
    return SweepBest(**{**best, "versus": versus})


def sweeps(
    df: pd.DataFrame, metric: str, keys: list[str], mode: str, alpha: float = 0.05
) -> dict[str, SweepBest | None]:
    """Best value of each swept key (averaged per seed over the other keys' values).

    Chosen on validation (``val_<metric>``) of selection seeds and reported on test of held-out
    seeds (see ``stats.best_of_sweep``); on test, said to be optimistic, for old records without
    a validation split.
    """
    ok = ok_rows(df, metric)
    on_val = has_validation(ok, metric)
    out = {}
    for key in keys:
        if key not in ok:
            continue
        select = _per_seed(ok, key, val_key(metric)) if on_val else None
        best = _sweep_best(stats.best_of_sweep(_per_seed(ok, key, metric), mode, alpha, select))
        if best and best.value is not None:
            best = replace(best, mde=sweep_mde(key, best, alpha))
        out[key] = best
    return out


def _history(trials: list[TrialRecord], objective: str, mode: str) -> list[SearchPoint]:
    """The search trials in the order they finished, each with the best finished value so far.

    A pruned trial is a point at its last evaluation; the best so far is over finished trials
    (the ones the search chooses from).
    """
    out, best = [], None
    for i, r in enumerate(sorted(trials, key=lambda r: r.finished)):
        v = float(current_metrics(r.metrics)[objective])
        if r.ok:
            best = v if best is None else (max(best, v) if mode == "max" else min(best, v))
        pruned = r.status is TrialStatus.PRUNED
        out.append(SearchPoint(i, v, r.overrides, best, r.trial_id, pruned))
    return out


def _importances(
    trials: list[TrialRecord], distributions: dict[str, Any], objective: str, mode: str
) -> tuple[dict[str, float] | None, str | None]:
    """Optuna's parameter importances of the search trials, or a note why there are none."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for r in trials:
        params = {k: v for k, v in r.overrides.items() if k in distributions}
        if len(params) != len(distributions):
            continue
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=float(current_metrics(r.metrics)[objective]),
            )
        )
    try:
        imp = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as err:
        return None, f"importances not computable: {err}"
    return {k: float(v) for k, v in imp.items()}, None


def _listed(r: TrialRecord, keys: list[str], objective: str) -> SearchTrial:
    """One search trial's row: its sampled parameters, objective, status and last epoch."""
    metrics = current_metrics(r.metrics)
    value = metrics.get(objective)
    epoch = metrics.get("epoch") if r.status is TrialStatus.PRUNED else None
    params = {k: r.overrides[k] for k in keys if k in r.overrides} if keys else dict(r.overrides)
    return SearchTrial(
        r.trial_id,
        params,
        float(value) if finite(value) else None,
        r.status.value,
        float(epoch) if finite(epoch) else None,
    )


def search_analysis(
    records: list[TrialRecord], distributions: dict[str, Any], metric: str, mode: str
) -> SearchAnalysis:
    """Optuna's parameter importances, the optimisation history and the trials of a search.

    On the search's objective: ``val_<metric>`` where the records have it, else (old records)
    ``metric`` on test; ``objective`` names it. The history and importances take every trial
    that reported the objective, a pruned one at its last evaluation; the best is the finished
    trial best on the objective (the first of equal bests, as the search chooses it).
    """
    searched = [r for r in records if r.variant == "search"]
    scored = [r for r in searched if r.ok or r.status is TrialStatus.PRUNED]
    has_val = any(finite(current_metrics(r.metrics).get(val_key(metric))) for r in scored)
    objective = val_key(metric) if has_val else metric
    trials = [r for r in scored if finite(current_metrics(r.metrics).get(objective))]
    if len(trials) < 2 or not distributions:
        imp, note = None, "fewer than 2 search trials with a score: no importances"
    else:
        imp, note = _importances(trials, distributions, objective, mode)
    split = "validation" if has_val else "test"
    keys = list(distributions)
    listed = [_listed(r, keys, objective) for r in searched]
    done = [t for t, r in zip(listed, searched) if r.ok and t.value is not None]
    pick = max if mode == "max" else min
    best = pick(done, key=lambda t: t.value) if done else None
    history = _history(trials, objective, mode)
    return SearchAnalysis(history, imp, note, objective, split, listed, best)
