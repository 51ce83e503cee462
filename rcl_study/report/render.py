"""Write ``reports/<study>/``: index.md, a self-contained index.html, results.csv, stats.json.

The report is built from the stored records alone, so ``--report-only`` regenerates it without
training. Content is assembled as a list of blocks, each rendered both to Markdown and to HTML.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import StudyFile
from ..study.records import atomic_write_text, load_plan, load_records
from ..study.space import baseline_variant
from . import analysis, figures, power, robust
from .markup import Block, to_html, to_markdown


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and pd.isna(x)):
        return "n/a"
    if isinstance(x, (tuple, list)) and len(x) == 2:
        return f"[{_fmt(x[0], digits)}, {_fmt(x[1], digits)}]"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def format_p(x: float | None, alpha: float = 0.05) -> str:
    """A p-value with 3 significant digits, more where rounding would cross ``alpha``.

    So 0.0496 never reads 0.05 beside "significant"; below 1e-4 as "<1e-4".
    """
    if x is None:
        return "n/a"
    if x < 1e-4:
        return "<1e-4"
    for digits in range(3, 12):
        text = f"{x:.{digits}g}"
        if (float(text) < alpha) == (x < alpha):
            return text
    return repr(x)


def _with_ci(x: Any, ci: Any, digits: int = 2) -> str:
    return "n/a" if x is None else f"{_fmt(x, digits)} {_fmt(ci, digits)}"


def reproduce_command(study_path: str, overrides: dict[str, Any], seed: int) -> str:
    """The single-trial command that reproduces one row."""
    sets = [f"--set {shlex.quote(f'{k}={v}')}" for k, v in overrides.items()]
    return " ".join(
        ["python -m rcl_study.train", shlex.quote(study_path), *sets, f"--set train.seed={seed}"]
    )


def _direction_word(metric: str) -> str:
    return "higher better" if analysis.direction(metric) == "max" else "lower better"


def _better(diff: float, mode: str) -> str:
    return "better" if (diff > 0) == (mode == "max") else "worse"


def _summary_sentences(st: dict[str, Any]) -> list[str]:
    """What the tests support, in words: significant after Holm, not significant, not tested."""
    comps, fx, metric = st["comparisons"], st["factorial"], st["metric"]
    mode, alpha = st["mode"], st["alpha"]
    out = []
    tested = [c for c in comps if c["p_ttest"] is not None]
    sig = [c for c in tested if c.get("p_ttest_holm") is not None and c["p_ttest_holm"] < alpha]
    for c in sig:
        out.append(
            f"**{c['variant']}** is significantly {_better(c['mean_diff'], mode)} than "
            f"**{c['baseline']}** on {metric} ({c['mean_diff']:+.4f}, paired t-test, Holm over "
            f"{len(tested)} comparisons with the baseline: p = "
            f"{format_p(c['p_ttest_holm'], alpha)}, {c['n']} seeds)."
        )
    nonsig = [c for c in tested if c not in sig]
    if nonsig:
        mde = (st.get("plan") or {}).get("mde_now")
        tail = f"; this study detects differences of about {mde:.3g} or more" if mde else ""
        out.append(
            "No significant difference from the baseline after Holm correction "
            f"(alpha {alpha:g}) for: {', '.join(c['variant'] for c in nonsig)}{tail}."
        )
    for c in comps:
        if c["p_ttest"] is None:
            why = c.get("untested") or "no test"
            out.append(f"**{c['variant']}** vs **{c['baseline']}**: not tested ({why}).")
    if fx and fx.get("effects"):
        if fx["effects"][0]["p"] is None:
            out.append(f"Factorial effects: not tested ({fx.get('note') or 'no residual df'}).")
        else:
            clear = [e for e in fx["effects"] if e["p_holm"] is not None and e["p_holm"] < alpha]
            family = f"Holm over the {len(fx['effects'])} terms of {fx['model']}"
            if clear:
                out.append(
                    f"Factorial terms significant ({family}): "
                    + ", ".join(
                        f"{e['term']} ({e['effect']:+.4f}, p = {format_p(e['p_holm'], alpha)})"
                        for e in clear
                    )
                    + "."
                )
            else:
                out.append(f"No factorial main effect or interaction is significant ({family}).")
    for key, best in (st["sweeps"] or {}).items():
        if best and best.get("value") is not None:
            out.append(_best_sentence(key, best, mode, alpha))
    return out


def _best_sentence(key: str, best: dict, mode: str, alpha: float) -> str:
    if best["held_out"]:
        head = (
            f"**Best {key}:** {best['value']} (chosen on seeds {best['selected_on']}; on held-out "
            f"seeds {best['reported_on']}: mean {best['mean']:.4f}, 95% CI {_fmt(best['ci_t'])})"
        )
    else:
        head = f"**Best {key} by mean:** {best['value']} ({best['note']})"
    vs = [
        f"{v['other']} {v['mean_diff']:+.4f} "
        + (
            f"p = {format_p(v['p_holm'], alpha)}"
            if v["p_holm"] is not None
            else f"not tested ({v['untested']})"
        )
        for v in best["versus"]
    ]
    return (
        head
        + f"; best minus each other value on those seeds (paired t-test, Holm over {len(vs)}): "
        + ("; ".join(vs) or "none")
        + "."
    )


def _normalise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with renamed metric keys mapped to today's names (metrics and history)."""
    return [
        {
            **r,
            "metrics": analysis.current_metrics(r.get("metrics") or {}),
            "history": [analysis.current_metrics(h) for h in r.get("history") or []],
        }
        for r in records
    ]


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


def seed_plan(st: dict[str, Any], cfg: StudyFile, effects=None) -> dict | None:
    """The seed plan from this study's own records (sd of paired differences, pooled)."""
    comps = [c for c in st["comparisons"] if c.get("sd_diff") is not None]
    pooled = power.pooled_sd([(c["sd_diff"], c["n"]) for c in comps])
    if not pooled:
        return None
    sd, df = pooled
    if effects is None:
        b = analysis.bounds(st["metric"])
        effects = [0.01, 0.02, 0.05] if b == (0.0, 1.0) else [0.5 * sd, sd, 2 * sd]
    return power.plan(
        sd,
        len(cfg.study.seeds),
        cfg.report.alpha,
        max(1, len(st["comparisons"])),
        effects,
        f"pooled over {len(comps)} comparisons with the baseline in these records, {df} df",
    )


def build(cfg: StudyFile, study_path: str, out_dir: Path, report_dir: Path) -> dict[str, Any]:
    """Compute tables and statistics and draw figures; returns ``(blocks, stats)`` as a dict."""
    records = _normalise(load_records(out_dir))
    plan = load_plan(out_dir)
    metric, mode, alpha = cfg.study.metric, cfg.study.mode, cfg.report.alpha
    df = analysis.results_table(records, metric)
    planned = len(plan["trials"]) or len(records)
    status_counts = df["status"].value_counts().to_dict() if len(df) else {}
    variants = list(dict.fromkeys(df["variant"])) if len(df) else []
    baseline = baseline_variant(cfg, variants) if variants else None
    exclude = ("search",) if cfg.study.kind == "search" else ()
    dfa, best_note = _search_best_rows(df) if exclude and len(df) else (df, None)
    n_boot = cfg.report.bootstrap
    summary = analysis.variant_summary(dfa, metric, n_boot, exclude) if len(df) else []
    if best_note:
        for s in summary:
            if s["variant"] == "best":
                s["notes"].append(best_note)
    comps = (
        analysis.comparisons(dfa, metric, baseline, mode, alpha, n_boot, exclude) if len(df) else []
    )
    effects = None
    if cfg.study.kind == "ablation" and cfg.study.design == "factorial" and len(df):
        effects = analysis.factorial(df, metric, list(cfg.study.components))
    sweep = (
        analysis.sweeps(df, metric, list(cfg.study.grid), mode, alpha)
        if cfg.study.kind == "grid" and len(df)
        else {}
    )
    search = None
    if cfg.study.kind == "search":
        from ..study.space import search_distributions

        search = analysis.search_analysis(records, search_distributions(cfg), metric, mode)
    stats_out = {
        "study": cfg.name,
        "metric": metric,
        "mode": mode,
        "alpha": alpha,
        "planned": planned,
        "recorded": len(records),
        "status_counts": status_counts,
        "baseline": baseline,
        "variants": summary,
        "comparisons": comps,
        "factorial": effects,
        "sweeps": sweep,
        "search": search,
    }
    stats_out["plan"] = seed_plan(stats_out, cfg)
    ok = analysis.ok_rows(dfa, metric) if len(df) else df
    runs = {
        s["variant"]: ok.loc[ok["variant"] == s["variant"], metric].astype(float).tolist()
        for s in summary
        if s["n"]
    }
    stats_out["profile"] = _profile(runs, mode, n_boot)
    figs = _figures(cfg, records, ok, stats_out, report_dir / "figures")
    blocks = _blocks(cfg, study_path, df, records, stats_out, figs)
    return {"blocks": blocks, "stats": stats_out, "table": df}


def _profile(runs: dict[str, list[float]], mode: str, n_boot: int) -> dict | None:
    vals = [v for x in runs.values() for v in x]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    pad = 0.02 * (hi - lo or 1.0)
    taus = np.linspace(lo - pad, hi + pad, 101).tolist()
    return {"taus": taus, "curves": robust.performance_profile(runs, taus, mode, n_boot=n_boot)}


def _figures(cfg, records, ok, st, fig_dir) -> list[tuple[str, str]]:
    """Every figure, drawn from the intervals of the tables (``stats.t_interval``)."""
    metric, mode, alpha = st["metric"], st["mode"], st["alpha"]
    if not len(ok):
        return []
    summary, comps, fx = st["variants"], st["comparisons"], st["factorial"]
    order = [s["variant"] for s in summary if s["n"]]
    figs: list[tuple[str, str | None]] = []
    rows = [
        {
            "label": s["variant"],
            "mean": s["mean"],
            "ci": s["ci_t"],
            "values": ok.loc[ok["variant"] == s["variant"], metric].astype(float).tolist(),
        }
        for s in summary
        if s["n"]
    ]
    figs.append(("Variants", figures.variant_means(rows, metric, mode, fig_dir)))
    if st["profile"]:
        p = st["profile"]
        figs.append(
            (
                "Performance profiles",
                figures.performance_profile(p["curves"], p["taus"], metric, mode, fig_dir),
            )
        )
    if fx and fx.get("effects"):
        rows = [
            {
                "label": e["term"],
                "value": e["effect"],
                "ci": e["ci"],
                "significant": e["p_holm"] is not None and e["p_holm"] < alpha,
            }
            for e in fx["effects"]
        ]
        title = f"main effects and interactions on {metric}"
        figs.append(("Factorial effects", figures.effects(rows, fig_dir, "effects", title)))
    if comps:
        rows = [
            {
                "label": c["variant"],
                "value": c["mean_diff"],
                "ci": c["ci_diff"],
                "significant": c.get("p_ttest_holm") is not None and c["p_ttest_holm"] < alpha,
            }
            for c in comps
        ]
        title = f"{metric}: variant - {st['baseline']} (paired)"
        figs.append(
            ("Differences to the baseline", figures.effects(rows, fig_dir, "vs_baseline", title))
        )
    grid = list(cfg.study.grid) if cfg.study.kind == "grid" else []
    for key in grid:
        per_seed = ok.assign(_y=ok[metric].astype(float)).groupby([key, "seed"])["_y"].mean()
        rows = analysis.interval_rows(per_seed.reset_index(), [key], "_y", analysis.bounds(metric))
        figs.append(
            (f"Sensitivity to {key}", figures.sensitivity(rows, key, metric, mode, fig_dir))
        )
    if len(grid) == 2:
        figs.append(("Heatmap", figures.heatmap(ok, grid, metric, fig_dir)))
    figs.append(
        ("Per-class accuracy", _per_class_fig(records, summary, st["baseline"], mode, fig_dir))
    )
    shot = [c for c in ("many_acc", "medium_acc", "few_acc") if c in ok]
    long = ok.melt(id_vars=["variant", "seed"], value_vars=shot, var_name="group", value_name="a")
    long["group"] = long["group"].str.replace("_acc", "")
    shot_rows = analysis.interval_rows(long, ["variant", "group"], "a", (0.0, 1.0))
    figs.append(("Shot groups", figures.shot_groups(shot_rows, order, fig_dir)))
    hist = _history(records)
    curve = (
        analysis.interval_rows(hist, ["variant", "epoch"], metric, analysis.bounds(metric))
        if len(hist) and metric in hist
        else []
    )
    figs.append(("Learning curves", figures.learning_curves(curve, metric, mode, fig_dir)))
    feats = {
        c: analysis.interval_rows(ok, ["variant"], c, analysis.bounds(c))
        for c in ("compactness", "equiangular_gap_deg")
    }
    modes = {c: analysis.direction(c) for c in feats}  # METRIC_INFO: the one declaration
    figs.append(("Feature-space measures", figures.feature_measures(feats, fig_dir, modes)))
    if st["search"]:
        s = st["search"]
        figs.append(
            ("Optimisation history", figures.search_history(s["history"], metric, fig_dir, mode))
        )
        figs.append(("Parameter importances", figures.importances(s["importances"], fig_dir)))
    return [(t, f) for t, f in figs if f]


def _history(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        if r["status"] != "ok":
            continue
        for h in r.get("history", []):
            rows.append({"variant": r["variant"], "seed": r["seed"], **h})
    return pd.DataFrame(rows)


def _per_class_fig(records, summary, baseline, mode, fig_dir) -> str | None:
    ok = [r for r in records if r["status"] == "ok" and r["metrics"].get("per_class_acc")]
    if not ok:
        return None
    means = {s["variant"]: s["mean"] for s in summary if s["mean"] is not None}
    best = (max if mode == "max" else min)(means, key=means.get) if means else None
    curves = {}
    for name in dict.fromkeys([baseline, best]):
        rs = [r for r in ok if r["variant"] == name]
        if rs:
            arr = pd.DataFrame([r["metrics"]["per_class_acc"] for r in rs]).mean(axis=0)
            label = f"{name} (baseline)" if name == baseline else f"{name} (best)"
            curves[label] = arr.tolist()
    counts = ok[0]["metrics"].get("train_counts")
    return figures.per_class(counts, curves, fig_dir) if counts and curves else None


def definitions(st: dict[str, Any]) -> list[str]:
    """One line per statistic of the report and the test behind each column."""
    better = "higher" if st["mode"] == "max" else "lower"
    return [
        f"Metric: {st['metric']} ({better} is better: study.mode {st['mode']}); significance "
        f"level alpha = {st['alpha']:g}.",
        "mean, sd: mean and sample standard deviation (ddof 1) over seeds; n/trials: seeds with "
        "a finite metric / trials recorded (a NaN metric counts as a failed trial).",
        "95% CI (t): Student-t interval of the mean over seeds, clipped to the metric's range "
        "(e.g. [0, 1] for accuracies) where it crosses it.",
        "95% CI (bootstrap): percentile bootstrap over seeds (seeded), shown only from "
        "10 seeds up: below that a nominal 95% interval covers about 50-84% of the time.",
        "IQM: interquartile mean (mean of the middle 50% of seeds, scipy trim_mean 0.25), with a "
        "95% percentile stratified-bootstrap interval (rliable; resampling seeds within the "
        "variant; seeded).",
        "last epoch vs best epoch: the primary numbers are the last epoch's; a best-epoch column "
        "(maximum over evaluations) is optimistic: the epoch is chosen on the test set.",
        "diff, 95% CI: mean of paired differences variant - baseline over common seeds, "
        "Student-t interval; p (t): two-sided paired t-test; p (Wilcoxon): two-sided Wilcoxon "
        "signed-rank test (zero differences dropped).",
        "Holm: Holm-Bonferroni adjustment within one family: the comparisons with the baseline "
        "are one family; the terms of a factorial model are another; a grid's best-vs-others "
        "tests are a third (one per swept key).",
        "d_z: mean / sd of the paired differences, with an exact 95% interval from the "
        "noncentral t; g_z: d_z times Hedges' small-sample correction 1 - 3/(4(n-1)-1), same "
        "interval scaled (from 3 seeds up).",
        "P(improve): rliable's probability of improvement, P(variant better than baseline) over "
        "all pairs of runs (Mann-Whitney U / (n m), ties count 1/2; unpaired), with a 95% "
        "stratified-bootstrap interval; share improved: share of common seeds on which the "
        "variant is better (paired, ties 1/2).",
        "effect (factorial): change in the mean when a component goes off -> on, averaged over "
        "the other components (twice the -1/+1 coded OLS coefficient), t-test of the "
        "coefficient in the model named beside the table.",
        "MDE: minimum detectable effect: the smallest true mean paired difference the paired "
        "t-test finds with 80% power at level alpha/m (m: the Holm family size; the "
        "conservative bound for Holm), from the pooled sd of paired differences (scipy's "
        "noncentral t, checked against statsmodels' TTestPower).",
        "best value (grid): with 4 or more common seeds, chosen on the first half and reported "
        "on the held-out second half; with fewer, chosen and tested on the same seeds "
        "(optimistic, no interval of the best); tested against each other value, Holm.",
        "not tested (reason): no test was run (one seed, no common seed, or no variance); this "
        "is not evidence of no difference.",
    ]


def _variant_table(st: dict[str, Any]) -> tuple[Block, list[str]]:
    """The variant table, and the notes every variant shares (said once, under the table)."""
    metric, vs = st["metric"], st["variants"]
    boot = any(s["ci_boot"] for s in vs)
    best_key = f"best_{metric}_mean"
    best = any(s.get(best_key) is not None for s in vs)
    head = ["variant", "ok/trials", "mean (last epoch)", "sd", "95% CI (t)"]
    head += ["95% CI (bootstrap)"] if boot else []
    head += ["IQM [95% CI]"]
    head += ["best epoch (optimistic: chosen on the test set)"] if best else []
    head += ["many", "medium", "few"]
    head += [f"{k} ({_direction_word(k)})" for k in ("compactness", "equiangular_gap_deg")]
    head += ["notes"]
    common = set.intersection(*(set(s["notes"]) for s in vs)) if len(vs) > 1 else set()
    rows = []
    for s in vs:
        row = [
            s["variant"],
            f"{s['n']}/{s['trials']}",
            _fmt(s["mean"]),
            _fmt(s["std"]),
            _fmt(s["ci_t"]),
        ]
        row += [_fmt(s["ci_boot"])] if boot else []
        row += [_with_ci(s["iqm"], s["iqm_ci"], 4)]
        row += [_fmt(s.get(best_key))] if best else []
        row += [
            _fmt(s[f"{k}_mean"], 3) for k in ("many_acc", "medium_acc", "few_acc", "compactness")
        ]
        row += [_fmt(s["equiangular_gap_deg_mean"], 2)]
        row += ["; ".join(n for n in s["notes"] if n not in common)]
        rows.append(row)
    return ("table", head, rows), sorted(common)


def _comparison_table(st: dict[str, Any]) -> Block:
    alpha = st["alpha"]
    rows = [
        [
            c["variant"],
            str(c["n"]),
            _fmt(c["mean_diff"]),
            _fmt(c["ci_diff"]),
            format_p(c["p_ttest"], alpha),
            format_p(c.get("p_ttest_holm"), alpha),
            format_p(c["p_wilcoxon"], alpha),
            format_p(c.get("p_wilcoxon_holm"), alpha),
            _with_ci(c["d_z"], c["d_z_ci"]),
            _with_ci(c["g_z"], c["g_z_ci"]),
            _with_ci(c["prob_improvement"], c["prob_improvement_ci"]),
            _fmt(c["share_improved"], 2),
            "; ".join(c["notes"]),
        ]
        for c in st["comparisons"]
    ]
    head = [
        "variant",
        "seeds",
        "diff",
        "95% CI",
        "p (t)",
        "p (t, Holm)",
        "p (Wilcoxon)",
        "p (W, Holm)",
        "d_z [95% CI]",
        "g_z [95% CI]",
        "P(improve) [95% CI]",
        "share improved",
        "notes",
    ]
    return ("table", head, rows)


def _blocks(cfg, study_path, df, records, st, figs) -> list[Block]:
    metric = st["metric"]
    b: list[Block] = [("h", 1, f"Study report: {cfg.name}")]
    if cfg.report.question:
        b.append(("p", f"**Question.** {cfg.report.question}"))
    done = st["recorded"]
    counts = ", ".join(f"{k} {v}" for k, v in st["status_counts"].items()) or "none"
    state = "complete" if done >= st["planned"] and st["planned"] else "partial"
    b.append(
        (
            "p",
            f"**Progress.** {done} of {st['planned']} planned trials recorded ({state}; {counts}).",
        )
    )
    if done and not st["status_counts"].get("ok"):
        b.append(
            (
                "p",
                "**Every recorded trial failed**, so there is nothing to compare. The "
                "reasons are listed below.",
            )
        )
    design = (
        f"{cfg.study.kind} ({cfg.study.design})" if cfg.study.kind == "ablation" else cfg.study.kind
    )
    better = "higher" if st["mode"] == "max" else "lower"
    b.append(("h", 2, "Design"))
    b.append(
        (
            "ul",
            [
                f"kind: {design}",
                f"seeds: {list(cfg.study.seeds)}",
                f"data: {cfg.data.dataset}, imbalance ratio {cfg.data.imbalance_ratio:g}",
                f"loss preset: {cfg.loss.preset}; temperature {cfg.loss.temperature}",
                f"training: {cfg.train.epochs} epochs, batch {cfg.train.batch_size}",
                f"metric: {metric} ({better} is better); baseline: {st['baseline']}; "
                f"alpha {st['alpha']:g}",
            ]
            + (
                [f"components: {', '.join(cfg.study.components)}"]
                if cfg.study.kind == "ablation"
                else []
            )
            + ([f"grid: {json.dumps(cfg.study.grid)}"] if cfg.study.kind == "grid" else []),
        )
    )
    plan = st.get("plan")
    if st["variants"]:
        b.append(("h", 2, f"Results ({metric}, over seeds)"))
        if plan and plan["mde_now"] is not None:
            b.append(
                (
                    "p",
                    f"**Minimum detectable effect of this study:** {plan['mde_now']:.4g} "
                    f"on {metric} ({plan['n_now']} seeds, 80% power, paired t-test at "
                    f"alpha/m = {plan['alpha']:g}/{plan['family']}; sd of paired "
                    f"differences {plan['sd']:.3g} from these records). Smaller true "
                    "differences are likely to be missed.",
                )
            )
        table, common = _variant_table(st)
        b.append(table)
        if common:
            b.append(("p", "Every variant: " + "; ".join(common) + "."))
    if st["comparisons"]:
        b.append(("h", 2, f"Paired comparisons with the baseline ({st['baseline']})"))
        b.append(
            (
                "p",
                f"One Holm family: the {len(st['comparisons'])} comparisons with the "
                "baseline (separately for the t-test and the Wilcoxon columns).",
            )
        )
        b.append(_comparison_table(st))
    fx = st["factorial"]
    if fx:
        b.append(("h", 2, "Factorial effects"))
        if fx.get("model"):
            b.append(
                (
                    "p",
                    f"Model: {fx['model']} (ordinary least squares, statsmodels; "
                    "factors coded -1/+1; seeds as blocks where every cell has every "
                    f"seed). Holm family: the {len(fx['effects'])} terms.",
                )
            )
        if fx.get("note"):
            b.append(("p", f"Note: {fx['note']}."))
        rows = [
            [
                e["term"],
                _fmt(e["effect"]),
                _fmt(e["se"]),
                _fmt(e["ci"]),
                format_p(e["p"], st["alpha"]),
                format_p(e.get("p_holm"), st["alpha"]),
            ]
            for e in fx["effects"]
        ]
        if rows:
            b.append(("table", ["term", "effect", "se", "95% CI", "p", "p (Holm)"], rows))
    if st["search"]:
        s = st["search"]
        b.append(("h", 2, "Search"))
        b.append(
            (
                "p",
                "Search trials differ in their parameters: they are not pooled into one "
                "row; the best configuration is summarised from its re-runs ('best').",
            )
        )
        if s["importances"]:
            b.append(
                (
                    "table",
                    ["parameter", "importance"],
                    [[k, f"{v:.3f}"] for k, v in s["importances"].items()],
                )
            )
        if s.get("note"):
            b.append(("p", f"Note: {s['note']}."))
    b.append(("h", 2, "Summary"))
    sentences = _summary_sentences(st)
    b.append(("ul", sentences or ["Not enough successful trials for a test."]))
    if plan:
        b.append(("h", 2, "Seed planning"))
        b.append(("ul", power.plan_lines(plan)))
    b.append(("h", 2, "Definitions"))
    b.append(("ul", definitions(st)))
    for title, fname in figs:
        b.append(("h", 3, title))
        b.append(("img", f"figures/{fname}", title))
    bad = df[df["status"] != "ok"] if len(df) else df
    if len(bad):
        b.append(("h", 2, "Trials that did not finish"))
        b.append(
            (
                "table",
                ["trial", "status", "reason"],
                [[r.trial_id, r.status, str(r.reason)] for r in bad.itertuples()],
            )
        )
    b.append(("h", 2, "Reproduce"))
    b.append(
        (
            "p",
            "Each row below is one trial; its full resolved configuration is stored in "
            f"`{cfg.output_dir}/records.jsonl` (key `config`) and "
            f"`{cfg.output_dir}/trials/<trial>/config.json`.",
        )
    )
    b.append(
        (
            "code",
            "\n".join(
                f"# {r['trial_id']}\n"
                + reproduce_command(study_path, r.get("overrides", {}), r["seed"])
                for r in records
            ),
        )
    )
    b.append(
        (
            "p",
            f"Regenerate this report without training: "
            f"`python -m rcl_study.run {study_path} --report-only`.",
        )
    )
    return b


def write_report(
    cfg: StudyFile, study_path: str, out_dir: Path | None = None, report_dir: Path | None = None
) -> Path:
    """Build and write the report of a study from its stored records; returns ``index.md``."""
    out_dir = Path(out_dir or cfg.output_dir)
    report_dir = Path(report_dir or cfg.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    built = build(cfg, study_path, out_dir, report_dir)
    atomic_write_text(report_dir / "results.csv", built["table"].to_csv(index=False))
    atomic_write_text(report_dir / "stats.json", json.dumps(built["stats"], indent=1, default=str))
    atomic_write_text(report_dir / "index.md", to_markdown(built["blocks"]))
    atomic_write_text(
        report_dir / "index.html", to_html(built["blocks"], report_dir, f"Study report: {cfg.name}")
    )
    return report_dir / "index.md"
