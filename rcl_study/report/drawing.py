"""Every figure of a report, drawn from the intervals of its tables (deterministic)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rcl_study.config.metrics import val_key
from rcl_study.report import figures, robust
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


def draw_all(cfg, records, ok, st: ReportStats, fig_dir) -> list[tuple[str, str]]:
    """Every figure, drawn from the intervals of the tables (``stats.t_interval``)."""
    metric, mode, alpha = st.metric, st.mode, st.alpha
    if not len(ok):
        return []
    summary, comps, fx = st.variants, st.comparisons, st.factorial
    order = [s.variant for s in summary if s.n]
    figs: list[tuple[str, str | None]] = []
    rows = [
        {
            "label": s.variant,
            "mean": s.mean,
            "ci": s.ci_t,
            "values": ok.loc[ok["variant"] == s.variant, metric].astype(float).tolist(),
        }
        for s in summary
        if s.n
    ]
    figs.append(("Variants (test)", figures.variant_means(rows, metric, mode, fig_dir)))
    if st.profile:
        p = st.profile
        figs.append(
            (
                "Performance profiles (test)",
                figures.performance_profile(p.curves, p.taus, metric, mode, fig_dir),
            )
        )
    if fx and fx.effects:
        rows = [
            {
                "label": e.term,
                "value": e.effect,
                "ci": e.ci,
                "significant": e.p_holm is not None and e.p_holm < alpha,
            }
            for e in fx.effects
        ]
        title = f"main effects and interactions on {metric}"
        figs.append(("Factorial effects (test)", figures.effects(rows, fig_dir, "effects", title)))
    if comps:
        rows = [
            {
                "label": c.variant,
                "value": c.mean_diff,
                "ci": c.ci_diff,
                "significant": c.p_ttest_holm is not None and c.p_ttest_holm < alpha,
            }
            for c in comps
        ]
        title = f"{metric}: variant - {st.baseline} (paired)"
        figs.append(
            (
                "Differences to the baseline (test)",
                figures.effects(rows, fig_dir, "vs_baseline", title),
            )
        )
    grid = list(cfg.study.grid) if cfg.study.kind == "grid" else []
    for key in grid:
        per_seed = ok.assign(_y=ok[metric].astype(float)).groupby([key, "seed"])["_y"].mean()
        rows = interval_rows(per_seed.reset_index(), [key], "_y", bounds(metric))
        figs.append(
            (f"Sensitivity to {key} (test)", figures.sensitivity(rows, key, metric, mode, fig_dir))
        )
    if len(grid) == 2:
        figs.append(("Heatmap (test)", figures.heatmap(ok, grid, metric, fig_dir)))
    figs.append(
        (
            "Per-class accuracy (test)",
            _per_class_fig(records, summary, st.baseline, metric, mode, fig_dir),
        )
    )
    shot = [c for c in ("many_acc", "medium_acc", "few_acc") if c in ok]
    long = ok.melt(id_vars=["variant", "seed"], value_vars=shot, var_name="group", value_name="a")
    long["group"] = long["group"].str.replace("_acc", "")
    shot_rows = interval_rows(long, ["variant", "group"], "a", (0.0, 1.0))
    figs.append(("Shot groups (test)", figures.shot_groups(shot_rows, order, fig_dir)))
    hist = _history(records)
    curve = (
        interval_rows(hist, ["variant", "epoch"], metric, bounds(metric))
        if len(hist) and metric in hist
        else []
    )
    figs.append(("Learning curves (test)", figures.learning_curves(curve, metric, mode, fig_dir)))
    feats = {
        c: interval_rows(ok, ["variant"], c, bounds(c))
        for c in ("compactness", "equiangular_gap_deg")
    }
    modes = {c: direction(c) for c in feats}  # METRIC_INFO: the one declaration
    figs.append(("Feature-space measures (test)", figures.feature_measures(feats, fig_dir, modes)))
    if st.search:
        s = st.search
        figs.append(
            (
                f"Optimisation history ({s.objective_split})",
                figures.search_history(s.history, s.objective, fig_dir, mode),
            )
        )
        figs.append(("Parameter importances", figures.importances(s.importances, fig_dir)))
    return [(t, f) for t, f in figs if f]


def _history(records: list[TrialRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        if not r.ok:
            continue
        for h in r.history:
            rows.append({"variant": r.variant, "seed": r.seed, **h})
    return pd.DataFrame(rows)


def _per_class_fig(
    records, summary: list[VariantSummary], baseline, metric, mode, fig_dir
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
            label = f"{name} (baseline)" if name == baseline else f"{name} ({chosen})"
            curves[label] = arr.tolist()
    counts = ok[0].metrics.get("train_counts")
    return figures.per_class(counts, curves, fig_dir) if counts and curves else None
