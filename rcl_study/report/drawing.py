"""Every figure of a report, drawn from the intervals of its tables (deterministic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rcl_study.config import StudyFile
from rcl_study.config.metrics import val_key
from rcl_study.report import figures, robust
from rcl_study.report.drawn import curve_panels, sensitivity_data
from rcl_study.report.labels import Labels
from rcl_study.report.report_stats import Profile, ReportStats, VariantSummary
from rcl_study.report.table import bounds, direction, interval_rows
from rcl_study.trials.records import TrialRecord


def profile(runs: dict[str, list[float]], mode: str, n_boot: int) -> Profile | None:
    """Performance profiles of every variant over 101 thresholds spanning the runs."""
    vals = [v for x in runs.values() for v in x]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    pad = 0.02 * (hi - lo or 1.0)
    taus = np.linspace(lo - pad, hi + pad, 101).tolist()
    return Profile(taus, robust.performance_profile(runs, taus, mode, n_boot=n_boot))


#: a drawn figure: its title and its file name (None: nothing to draw)
Figure = tuple[str, str | None]


def draw_all(
    cfg: StudyFile, records: list[TrialRecord], ok: pd.DataFrame, st: ReportStats, fig_dir: Path
) -> list[tuple[str, str]]:
    """Every figure, drawn from the intervals of the tables (``stats.t_interval``)."""
    if not len(ok):
        return []
    labels = Labels.of(cfg)
    figs = [
        *_summary_figures(ok, st, fig_dir, labels),
        *_grid_figures(cfg, ok, st, fig_dir, labels),
        *_record_figures(records, ok, st, fig_dir, labels),
        *_search_figures(st, fig_dir, labels),
    ]
    return [(t, f) for t, f in figs if f]


def _summary_figures(
    ok: pd.DataFrame, st: ReportStats, fig_dir: Path, labels: Labels
) -> list[Figure]:
    """The variants' means, their performance profiles, the factorial effects, the differences."""
    metric, mode, alpha = st.metric, st.mode, st.alpha
    rows = [
        {
            "label": labels.name(s.variant),
            "mean": s.mean,
            "ci": s.ci_t,
            "values": ok.loc[ok["variant"] == s.variant, metric].astype(float).tolist(),
        }
        for s in st.variants
        if s.n
    ]
    figs = [("Variants (test)", figures.variant_means(rows, metric, mode, fig_dir))]
    if st.profile:
        p = st.profile
        curves = {labels.name(k): v for k, v in p.curves.items()}
        drawn = figures.performance_profile(curves, p.taus, metric, mode, fig_dir)
        figs.append(("Performance profiles (test)", drawn))
    fx = st.factorial
    if fx and fx.effects:
        rows = [_effect_row(e.term, e.effect, e.ci, e.p_holm, alpha) for e in fx.effects]
        title = f"main effects and interactions on {metric}"
        figs.append(("Factorial effects (test)", figures.effects(rows, fig_dir, "effects", title)))
    if st.comparisons:
        rows = [
            _effect_row(labels.name(c.variant), c.mean_diff, c.ci_diff, c.p_ttest_holm, alpha)
            for c in st.comparisons
        ]
        title = f"{metric}: variant - {labels.name(st.baseline)} (paired)"
        drawn = figures.effects(rows, fig_dir, "vs_baseline", title)
        figs.append(("Differences to the baseline (test)", drawn))
    return figs


def _effect_row(label: str, value, ci, p_holm: float | None, alpha: float) -> dict:
    """One bar of an effects figure: its label, value, interval and whether Holm rejects it."""
    return {
        "label": label,
        "value": value,
        "ci": ci,
        "significant": p_holm is not None and p_holm < alpha,
    }


def _grid_figures(
    cfg: StudyFile, ok: pd.DataFrame, st: ReportStats, fig_dir: Path, labels: Labels
) -> list[Figure]:
    """A grid's sensitivity to each key, and its heatmap when it has two keys."""
    metric, mode = st.metric, st.mode
    grid = list(cfg.study.grid) if cfg.study.kind == "grid" else []
    figs = []
    for key in grid:
        per_seed = ok.assign(_y=ok[metric].astype(float)).groupby([key, "seed"])["_y"].mean()
        rows = interval_rows(per_seed.reset_index(), [key], "_y", bounds(metric))
        data = sensitivity_data(rows, key, list(cfg.study.grid[key]), labels)
        drawn = figures.sensitivity(data, metric, mode, fig_dir)
        figs.append((f"Sensitivity to {key} (test)", drawn))
    if len(grid) == 2:
        figs.append(("Heatmap (test)", figures.heatmap(ok, grid, metric, fig_dir)))
    return figs


def _record_figures(
    records: list[TrialRecord], ok: pd.DataFrame, st: ReportStats, fig_dir: Path, labels: Labels
) -> list[Figure]:
    """Per-class accuracy, shot groups, learning curves and the feature-space measures."""
    metric, mode = st.metric, st.mode
    order = [labels.name(s.variant) for s in st.variants if s.n]
    shown = ok.assign(variant=ok["variant"].map(labels.name))
    per_class = _per_class_fig(records, st.variants, st.baseline, metric, mode, fig_dir, labels)
    shot = [c for c in ("many_acc", "medium_acc", "few_acc") if c in ok]
    long = shown.melt(
        id_vars=["variant", "seed"], value_vars=shot, var_name="group", value_name="a"
    )
    long["group"] = long["group"].str.replace("_acc", "")
    shot_rows = interval_rows(long, ["variant", "group"], "a", (0.0, 1.0))
    hist = _history(records)
    curve = (
        interval_rows(hist, ["variant", "epoch"], metric, bounds(metric))
        if len(hist) and metric in hist
        else []
    )
    panels = curve_panels(curve, labels) if curve else []
    feats = {
        c: interval_rows(shown, ["variant"], c, bounds(c))
        for c in ("compactness", "equiangular_gap_deg")
    }
    modes = {c: direction(c) for c in feats}  # METRIC_INFO: the one declaration
    return [
        ("Per-class accuracy (test)", per_class),
        ("Shot groups (test)", figures.shot_groups(shot_rows, order, fig_dir)),
        ("Learning curves (test)", figures.learning_curves(panels, metric, mode, fig_dir)),
        ("Feature-space measures (test)", figures.feature_measures(feats, fig_dir, modes)),
    ]


def _search_figures(st: ReportStats, fig_dir: Path, labels: Labels) -> list[Figure]:
    """A search's optimisation history and parameter importances."""
    s = st.search
    if not s:
        return []
    history = figures.search_history(s.history, s.objective, fig_dir, st.mode)
    return [
        (f"Optimisation history ({s.objective_split})", history),
        ("Parameter importances", figures.importances(s.importances, fig_dir)),
    ]


def _history(records: list[TrialRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        if not r.ok:
            continue
        for h in r.history:
            rows.append({"variant": r.variant, "seed": r.seed, **h})
    return pd.DataFrame(rows)


def _per_class_fig(
    records, summary: list[VariantSummary], baseline, metric, mode, fig_dir, labels: Labels
) -> str | None:
    """Test accuracy per class of the baseline and of the best variant.

    The best by mean validation metric where the records have one; by test mean (old records,
    said in the label) otherwise.
    """
    ok = [r for r in records if r.ok and r.metrics.get("per_class_acc")]
    if not ok:
        return None
    on_val = any(s.mean_of(val_key(metric)) is not None for s in summary)
    means = {s.variant: s.mean_of(val_key(metric)) if on_val else s.mean for s in summary}
    means = {k: v for k, v in means.items() if v is not None}
    best = (max if mode == "max" else min)(means, key=means.get) if means else None
    curves = {}
    for name in dict.fromkeys([baseline, best]):
        rs = [r for r in ok if r.variant == name]
        if rs:
            arr = pd.DataFrame([r.metrics["per_class_acc"] for r in rs]).mean(axis=0)
            chosen = "best on validation" if on_val else "best on test mean, old records"
            shown = labels.name(name)
            label = f"{shown} (baseline)" if name == baseline else f"{shown} ({chosen})"
            curves[label] = arr.tolist()
    counts = ok[0].metrics.get("train_counts")
    return figures.per_class(counts, curves, fig_dir) if counts and curves else None
