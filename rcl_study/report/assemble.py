"""A study's stored records -> its :class:`ReportStats` (the analysis, in the report's order)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from rcl_study.config import StudyFile
from rcl_study.config.metrics import val_key
from rcl_study.report import analysis, drawing, instrument, mdes, plateau, power, shown
from rcl_study.report.report_stats import (
    Comparison,
    Plateau,
    PlateauRow,
    ReportStats,
    SecondaryOf,
    SecondaryRef,
    SeedPlan,
    VariantSummary,
    WithinAnalysis,
)
from rcl_study.report.table import bounds, current_metrics, has_validation, ok_rows, results_table
from rcl_study.report.within import within_of
from rcl_study.trials.design import baseline_variant, search_distributions
from rcl_study.trials.records import TrialRecord


@dataclass(frozen=True)
class Analysed:
    """What a report is built from: its statistics, the results table and its usable rows."""

    stats: ReportStats
    table: pd.DataFrame
    ok: pd.DataFrame
    records: list[TrialRecord]


def normalise(records: list[TrialRecord]) -> list[TrialRecord]:
    """Records with renamed metric keys mapped to today's names (metrics and history)."""
    return [
        r.replace(
            metrics=current_metrics(r.metrics),
            history=[current_metrics(h) for h in r.history],
        )
        for r in records
    ]


def in_plan_order(records: list, plan: dict[str, Any], kind: str) -> list:
    """Records of an ablation or grid in the order of ``plan.json`` (unplanned ones last).

    Trials finish in whatever order the executor runs them; sorting by the plan makes the
    report of the same records the same, however they were run. A search keeps file order (its
    trials are sampled in that order).
    """
    if kind == "search":
        return list(records)
    order = {row.get("trial_id"): i for i, row in enumerate(plan.get("trials") or [])}
    return sorted(records, key=lambda r: order.get(r.trial_id, len(order)))


def _search_best_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """Leave out re-runs of the best configuration on seeds that also ran the search."""
    used = set(df.loc[df["variant"] == "search", "seed"])
    best = df["variant"] == "best"
    overlap = best & df["seed"].isin(used)
    if not overlap.any():
        return df, None
    seeds = sorted(int(s) for s in df.loc[overlap, "seed"])
    if overlap.sum() < best.sum():
        return df[~overlap], (
            f"best re-runs on seeds {seeds} left out: those seeds also ran the search that chose it"
        )
    return df, f"every best re-run (seeds {seeds}) shares a seed with the search: optimistic"


def seed_plan(
    comparisons: list[Comparison],
    within: WithinAnalysis | None,
    metric: str,
    cfg: StudyFile,
    effects: list[float] | None = None,
) -> SeedPlan | None:
    """The seed plan from this study's own records (sd of paired differences, pooled).

    On the comparisons with the baseline; for a ``report.within`` study without them, on its
    tested values (that family's size). Comparisons identical to the baseline by construction
    are left out of the pooled sd and the family.
    """
    real = [c for c in comparisons if not c.identical]
    tests: list[Any] = [c for c in real if c.sd_diff is not None]
    family, what = max(1, len(real)), "comparisons with the baseline"
    if not comparisons and within:
        tests = [r for r in within.rows if r.p_ttest is not None]
        family, what = max(1, len(tests)), f"paired tests of {within.other}"
    pooled = power.pooled_sd([(c.sd_diff, c.n) for c in tests])
    if not pooled:
        return None
    sd, df = pooled
    if effects is None:
        effects = [0.01, 0.02, 0.05] if bounds(metric) == (0.0, 1.0) else [0.5 * sd, sd, 2 * sd]
    return power.plan(
        sd,
        len(cfg.study.seeds),
        cfg.report.alpha,
        family,
        effects,
        f"pooled over {len(tests)} {what} in these records, {df} df",
    )


def plateau_of(
    records: list[TrialRecord], metric: str, cfg: StudyFile, on_val: bool
) -> Plateau | None:
    """The plateau criterion on test ``metric``, and on validation when recorded.

    None for a search (its trials are not repeated variants).
    """
    if cfg.study.kind == "search" or not records:
        return None

    def rows(key: str) -> list[PlateauRow]:
        return [PlateauRow(**row) for row in plateau.plateau_check(records, key)]

    return Plateau(metric, rows(metric), rows(val_key(metric)) if on_val else None)


def secondaries_of(cfg: StudyFile) -> list[SecondaryRef]:
    """The secondary analyses the study declares, each with its baseline and report folder."""
    return [
        SecondaryRef(s.name, s.baseline, str(cfg.secondary_dir(s.name)))
        for s in cfg.report.secondary
    ]


def _summary(cfg: StudyFile, df: pd.DataFrame, dfa: pd.DataFrame, note: str | None):
    """The variant summaries (a search's re-runs of its best say which seeds they left out)."""
    exclude = ("search",) if cfg.study.kind == "search" else ()
    if not len(df):
        return []
    out = analysis.variant_summary(dfa, cfg.study.metric, cfg.report.bootstrap, exclude)
    return [replace(s, notes=[*s.notes, note]) if note and s.variant == "best" else s for s in out]


def _profile(summary: list[VariantSummary], ok: pd.DataFrame, cfg: StudyFile):
    """Performance profiles of the variants with a finished seed (None below their seeds)."""
    metric = cfg.study.metric
    runs = {
        s.variant: ok.loc[ok["variant"] == s.variant, metric].astype(float).tolist()
        for s in summary
        if s.n
    }
    if not shown.profile_shown([len(x) for x in runs.values()]):
        return None
    return drawing.profile(runs, cfg.study.mode, cfg.report.bootstrap)


def analyse(
    cfg: StudyFile,
    records: list[TrialRecord],
    plan: dict[str, Any],
    secondary: SecondaryOf | None = None,
) -> Analysed:
    """Every statistic of the report of ``records`` (normalised, in plan order)."""
    metric, mode, alpha = cfg.study.metric, cfg.study.mode, cfg.report.alpha
    n_boot = cfg.report.bootstrap
    df = results_table(records, metric)
    variants = list(dict.fromkeys(df["variant"])) if len(df) else []
    baseline = baseline_variant(cfg, variants) if variants else None
    exclude = ("search",) if cfg.study.kind == "search" else ()
    dfa, best_note = _search_best_rows(df) if exclude and len(df) else (df, None)
    summary = _summary(cfg, df, dfa, best_note)
    within = within_of(cfg, df, n_boot)
    if within and not cfg.report.baseline:  # the declared analysis replaces the first-variant one
        baseline = None
    comps = (
        analysis.comparisons(dfa, metric, baseline, mode, alpha, n_boot, exclude) if len(df) else []
    )
    effects = None
    if cfg.study.kind == "ablation" and cfg.study.design == "factorial" and len(df):
        effects = analysis.factorial(df, metric, list(cfg.study.components))
        effects = effects and replace(effects, mde=mdes.factorial_mde(effects, alpha))
    keys = [k for k in cfg.study.grid if k != cfg.report.within]
    grid = cfg.study.kind == "grid" and len(df)
    sweep = analysis.sweeps(df, metric, keys, mode, alpha) if grid else {}
    search = None
    if cfg.study.kind == "search":
        search = analysis.search_analysis(records, search_distributions(cfg), metric, mode)
    on_val = has_validation(df, metric)
    plan_ = seed_plan(comps, within, metric, cfg)
    ok = ok_rows(dfa, metric) if len(df) else df
    primary = instrument.primary_of(cfg)
    st = ReportStats(
        study=cfg.name,
        metric=metric,
        mode=mode,
        alpha=alpha,
        planned=len(plan["trials"]) or len(records),
        recorded=len(records),
        status_counts=df["status"].value_counts().to_dict() if len(df) else {},
        baseline=baseline,
        on_validation=on_val,
        secondary=secondary,
        secondaries=[] if secondary else secondaries_of(cfg),
        variants=summary,
        comparisons=comps,
        factorial=effects,
        sweeps=sweep,
        search=search,
        within=within,
        plateau=plateau_of(records, metric, cfg, on_val),
        plan=plan_,
        # the comparisons' MDE (a within study's plan is on its own family, whose MDE it states)
        mde=mdes.comparisons_mde(plan_, alpha) if comps else None,
        profile=_profile(summary, ok, cfg),
        intervals_include=instrument.intervals_include(records),
        sequential=instrument.sequential_summary(cfg, records, plan, primary),
        features=instrument.feature_rows(records, [s.variant for s in summary]),
        per_class=instrument.per_class_rows(cfg, records, primary[1]),
    )
    return Analysed(st, df, ok, records)
