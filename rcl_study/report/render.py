"""Write ``reports/<study>/``: index.md, a self-contained index.html, results.csv, stats.json.

The report is built from the stored records alone, so ``--report-only`` regenerates it without
training. Content is assembled as a list of blocks, each rendered both to Markdown and to HTML.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pandas as pd

from .. import folders
from ..config import StudyFile
from ..study.records import atomic_write_text, load_plan, load_records
from ..study.space import baseline_variant
from . import analysis, figures
from .markup import Block, to_html, to_markdown


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and pd.isna(x)):
        return "n/a"
    if isinstance(x, (tuple, list)) and len(x) == 2:
        return f"[{_fmt(x[0], digits)}, {_fmt(x[1], digits)}]"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _p(x: Any) -> str:
    return "n/a" if x is None else (f"{x:.2g}" if x >= 1e-4 else "<1e-4")


def reproduce_command(study_path: str, overrides: dict[str, Any], seed: int) -> str:
    """The single-trial command that reproduces one row."""
    sets = [f"--set {shlex.quote(f'{k}={v}')}" for k, v in overrides.items()]
    return " ".join(
        ["python -m rcl_study.train", shlex.quote(study_path), *sets, f"--set train.seed={seed}"]
    )


def _summary_sentences(comps: list[dict], effects: dict | None, metric: str) -> list[str]:
    out = []
    sig = [c for c in comps if c.get("p_ttest_holm") is not None and c["p_ttest_holm"] < 0.05]
    nonsig = [c for c in comps if c not in sig]
    for c in sig:
        direction = "better" if c["mean_diff"] > 0 else "worse"
        out.append(
            f"**{c['variant']}** is significantly {direction} than **{c['baseline']}** on "
            f"{metric} ({c['mean_diff']:+.4f}, Holm-adjusted paired t-test "
            f"p = {_p(c['p_ttest_holm'])}, {c['n']} seeds)."
        )
    if nonsig:
        names = ", ".join(c["variant"] for c in nonsig)
        out.append(
            f"No significant difference from the baseline after Holm correction for: {names}."
        )
    if effects and effects.get("effects"):
        clear = [
            e for e in effects["effects"] if e.get("ci") and (e["ci"][0] > 0 or e["ci"][1] < 0)
        ]
        if clear:
            out.append(
                "Factorial effects whose 95% interval excludes zero: "
                + ", ".join(f"{e['term']} ({e['effect']:+.4f})" for e in clear)
                + "."
            )
        else:
            out.append(
                "No factorial main effect or interaction has a 95% interval that excludes zero."
            )
    return out


def build(cfg: StudyFile, study_path: str, out_dir: Path, report_dir: Path) -> dict[str, Any]:
    """Compute tables and statistics and draw figures; returns ``(blocks, stats)`` as a dict."""
    records = load_records(out_dir)
    plan = load_plan(out_dir)
    metric = cfg.study.metric
    df = analysis.results_table(records)
    planned = len(plan["trials"]) or len(records)
    status_counts = df["status"].value_counts().to_dict() if len(df) else {}
    variants = list(dict.fromkeys(df["variant"])) if len(df) else []
    baseline = baseline_variant(cfg, variants) if variants else None
    summary = analysis.variant_summary(df, metric, cfg.report.bootstrap) if len(df) else []
    comps = analysis.comparisons(df, metric, baseline) if len(df) else []
    effects = None
    if cfg.study.kind == "ablation" and cfg.study.design == "factorial" and len(df):
        effects = analysis.factorial(df, metric, list(cfg.study.components))
    sweep = (
        analysis.sweeps(df, metric, list(cfg.study.grid), cfg.study.mode)
        if cfg.study.kind == "grid" and len(df)
        else {}
    )
    search = None
    if cfg.study.kind == "search":
        from ..study.space import search_distributions

        search = analysis.search_analysis(
            records, search_distributions(cfg), metric, cfg.study.mode
        )
    stats_out = {
        "study": cfg.name,
        "metric": metric,
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

    fig_dir = report_dir / "figures"
    ok = df[df["status"] == "ok"] if len(df) else df
    figs: list[tuple[str, str]] = []
    if len(ok) and ok[metric].notna().any():
        order = [v for v in variants if v in set(ok["variant"])]
        figs.append(("Variants", figures.variant_means(ok, metric, fig_dir, order)))
        if effects and effects.get("effects"):
            rows = [
                {
                    "label": e["term"],
                    "value": e["effect"],
                    "ci": e["ci"],
                    "significant": e["p"] is not None and e["p"] < 0.05,
                }
                for e in effects["effects"]
            ]
            figs.append(
                (
                    "Factorial effects",
                    figures.effects(
                        rows, fig_dir, "effects", f"main effects and interactions on {metric}"
                    ),
                )
            )
        if comps:
            rows = [
                {
                    "label": c["variant"],
                    "value": c["mean_diff"],
                    "ci": c["ci_diff"],
                    "significant": (c.get("p_ttest_holm") or 1) < 0.05,
                }
                for c in comps
            ]
            figs.append(
                (
                    "Differences to the baseline",
                    figures.effects(
                        rows, fig_dir, "vs_baseline", f"{metric}: variant - {baseline} (paired)"
                    ),
                )
            )
        for key in cfg.study.grid if cfg.study.kind == "grid" else []:
            figs.append((f"Sensitivity to {key}", figures.sensitivity(ok, key, metric, fig_dir)))
        if cfg.study.kind == "grid" and len(cfg.study.grid) == 2:
            figs.append(("Heatmap", figures.heatmap(ok, list(cfg.study.grid), metric, fig_dir)))
        figs.append(
            ("Per-class accuracy", _per_class_fig(records, summary, baseline, metric, fig_dir))
        )
        figs.append(("Shot groups", figures.shot_groups(ok, order, fig_dir)))
        figs.append(
            ("Learning curves", figures.learning_curves(_history(records), metric, fig_dir))
        )
        figs.append(("Feature-space measures", figures.feature_measures(ok, order, fig_dir)))
        if search:
            figs.append(
                ("Optimisation history", figures.search_history(search["history"], metric, fig_dir))
            )
            figs.append(
                ("Parameter importances", figures.importances(search["importances"], fig_dir))
            )
    figs = [(t, f) for t, f in figs if f]
    blocks = _blocks(cfg, study_path, df, records, stats_out, figs)
    return {"blocks": blocks, "stats": stats_out, "table": df}


def _history(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        if r["status"] != "ok":
            continue
        for h in r.get("history", []):
            rows.append({"variant": r["variant"], "seed": r["seed"], **h})
    return pd.DataFrame(rows)


def _per_class_fig(records, summary, baseline, metric, fig_dir) -> str | None:
    ok = [r for r in records if r["status"] == "ok" and r["metrics"].get("per_class_acc")]
    if not ok:
        return None
    means = {s["variant"]: s["mean"] for s in summary if s["mean"] is not None}
    best = max(means, key=means.get) if means else None
    curves = {}
    for name in dict.fromkeys([baseline, best]):
        rs = [r for r in ok if r["variant"] == name]
        if rs:
            arr = pd.DataFrame([r["metrics"]["per_class_acc"] for r in rs]).mean(axis=0)
            label = f"{name} (baseline)" if name == baseline else f"{name} (best)"
            curves[label] = arr.tolist()
    counts = ok[0]["metrics"].get("train_counts")
    return figures.per_class(counts, curves, fig_dir) if counts and curves else None


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
                f"metric: {metric}; baseline: {st['baseline']}",
            ]
            + (
                [f"components: {', '.join(cfg.study.components)}"]
                if cfg.study.kind == "ablation"
                else []
            )
            + ([f"grid: {json.dumps(cfg.study.grid)}"] if cfg.study.kind == "grid" else []),
        )
    )
    if st["variants"]:
        b.append(("h", 2, f"Results ({metric}, over seeds)"))
        rows = [
            [
                s["variant"],
                f"{s['n']}/{s['trials']}",
                _fmt(s["mean"]),
                _fmt(s["std"]),
                _fmt(s["ci_t"]),
                _fmt(s["ci_boot"]),
                _fmt(s["many_acc_mean"], 3),
                _fmt(s["medium_acc_mean"], 3),
                _fmt(s["few_acc_mean"], 3),
                _fmt(s["compactness_mean"], 3),
                _fmt(s["balancedness_mean"], 2),
            ]
            for s in st["variants"]
        ]
        b.append(
            (
                "table",
                [
                    "variant",
                    "ok/trials",
                    "mean",
                    "sd",
                    "95% CI (t)",
                    "95% CI (bootstrap)",
                    "many",
                    "medium",
                    "few",
                    "compactness",
                    "balancedness",
                ],
                rows,
            )
        )
    if st["comparisons"]:
        b.append(("h", 2, f"Paired comparisons with the baseline ({st['baseline']})"))
        rows = [
            [
                c["variant"],
                str(c["n"]),
                _fmt(c["mean_diff"]),
                _fmt(c["ci_diff"]),
                _p(c["p_ttest"]),
                _p(c.get("p_ttest_holm")),
                _p(c["p_wilcoxon"]),
                _p(c.get("p_wilcoxon_holm")),
                _fmt(c["d_z"], 2),
                _fmt(c["hedges_g"], 2),
                _fmt(c["prob_improvement"], 2),
                "; ".join(c["notes"]),
            ]
            for c in st["comparisons"]
        ]
        b.append(
            (
                "table",
                [
                    "variant",
                    "seeds",
                    "diff",
                    "95% CI",
                    "p (t)",
                    "p (t, Holm)",
                    "p (Wilcoxon)",
                    "p (W, Holm)",
                    "d_z",
                    "Hedges g",
                    "P(improve)",
                    "notes",
                ],
                rows,
            )
        )
    fx = st["factorial"]
    if fx:
        b.append(("h", 2, "Factorial effects (linear model over the 2^k design)"))
        if fx.get("note"):
            b.append(("p", f"Note: {fx['note']}."))
        rows = [
            [e["term"], _fmt(e["effect"]), _fmt(e["se"]), _fmt(e["ci"]), _p(e["p"])]
            for e in fx["effects"]
        ]
        if rows:
            b.append(("table", ["term", "effect", "se", "95% CI", "p"], rows))
    for key, best in (st["sweeps"] or {}).items():
        if best:
            b.append(
                (
                    "p",
                    f"**Best {key}:** {best['value']} (mean {best['mean']:.4f}, 95% CI "
                    f"{_fmt(best['ci_t'])}; values whose mean lies inside that interval: "
                    f"{', '.join(best['within_ci']) or 'none'}).",
                )
            )
    if st["search"]:
        s = st["search"]
        b.append(("h", 2, "Search"))
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
    sentences = _summary_sentences(st["comparisons"], fx, metric)
    b.append(("ul", sentences or ["Not enough successful trials for a test."]))
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
    folders.check_folder(report_dir, cfg.name, "report", "report.dir", study_path)
    folders.claim(report_dir, cfg.name)
    built = build(cfg, study_path, out_dir, report_dir)
    atomic_write_text(report_dir / "results.csv", built["table"].to_csv(index=False))
    atomic_write_text(report_dir / "stats.json", json.dumps(built["stats"], indent=1, default=str))
    atomic_write_text(report_dir / "index.md", to_markdown(built["blocks"]))
    atomic_write_text(
        report_dir / "index.html", to_html(built["blocks"], report_dir, f"Study report: {cfg.name}")
    )
    return report_dir / "index.md"
