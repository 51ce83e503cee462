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

from rcl_study.config import StudyFile
from rcl_study.config.metrics import val_key
from rcl_study.report import analysis, drawing, plateau, power, stats, wording
from rcl_study.report.markup import Block, code, lit, to_html, to_markdown
from rcl_study.report.provenance import provenance_block
from rcl_study.report.wording import format_p  # noqa: F401 - re-exported for callers
from rcl_study.store import atomic_write_text
from rcl_study.store.folders import claim
from rcl_study.trials.design import baseline_variant, search_distributions
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialRecord


def reproduce_command(study_path: str, overrides: dict[str, Any], seed: int) -> str:
    """The single-trial command that reproduces one row."""
    sets = [f"--set {shlex.quote(f'{k}={v}')}" for k, v in overrides.items()]
    return " ".join(
        ["python -m rcl_study.train", shlex.quote(study_path), *sets, f"--set train.seed={seed}"]
    )


def _normalise(records: list[TrialRecord]) -> list[TrialRecord]:
    """Records with renamed metric keys mapped to today's names (metrics and history)."""
    return [
        r.replace(
            metrics=analysis.current_metrics(r.metrics),
            history=[analysis.current_metrics(h) for h in r.history],
        )
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
    """The seed plan from this study's own records (sd of paired differences, pooled).

    On the comparisons with the baseline; for a ``report.within`` study without them, on its
    tested values (that family's size).
    """
    comps = [c for c in st["comparisons"] if c.get("sd_diff") is not None]
    family, what = max(1, len(st["comparisons"])), "comparisons with the baseline"
    if not st["comparisons"] and st.get("within"):
        comps = [r for r in st["within"]["rows"] if r["p_ttest"] is not None]
        family, what = max(1, len(comps)), f"paired tests of {st['within']['other']}"
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
        family,
        effects,
        f"pooled over {len(comps)} {what} in these records, {df} df",
    )


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


#: how a secondary analysis is labelled wherever its tests appear
SECONDARY = "secondary (not part of the primary Holm family)"


def secondary_config(cfg: StudyFile, name: str) -> StudyFile:
    """The study as its secondary analysis ``name`` reads it: that baseline, question and folder.

    Raises :class:`~rcl_study.config.ConfigError` when ``name`` is not declared in
    ``report.secondary``.
    """
    sec = cfg.secondary(name)
    report = cfg.report.model_copy(
        update={
            "baseline": sec.baseline,
            "question": sec.question or cfg.report.question,
            "dir": str(cfg.secondary_dir(name)),
            "secondary": [],
            "within": None,  # the declared analysis belongs to the primary report
        }
    )
    return cfg.model_copy(update={"report": report})


def _secondary_info(cfg: StudyFile, secondary: str | None, primary: StudyFile) -> dict:
    """What the report says about secondary analyses: which one it is, or which it has."""
    if secondary:
        return {"secondary": {"name": secondary, "primary_report": str(primary.report_dir)}}
    return {
        "secondary": None,
        "secondaries": [
            {"name": s.name, "baseline": s.baseline, "dir": str(cfg.secondary_dir(s.name))}
            for s in cfg.report.secondary
        ],
    }


def shown_path(path: str | Path) -> str:
    """``path`` as a report shows it: relative to the working folder when inside it.

    Folders are resolved to absolute paths once per command; a committed report must not carry
    the machine's checkout path, so a path under the working folder is shown relative to it.
    """
    p = Path(path)
    try:
        return str(p.relative_to(Path.cwd())) if p.is_absolute() else str(p)
    except ValueError:
        return str(p)


def regenerate_command(study_path: str, secondary: str | None = None) -> str:
    """The command that rebuilds this report (a secondary analysis's names it)."""
    cmd = ["python", "-m", "rcl_study.run", study_path, "--report-only"]
    return shlex.join(cmd + (["--secondary", secondary] if secondary else []))


def build(
    cfg: StudyFile,
    study_path: str,
    out_dir: Path,
    report_dir: Path,
    about: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Compute tables and statistics and draw figures; returns ``(blocks, stats)`` as a dict.

    ``about`` (:func:`_secondary_info`) says whether this is a secondary analysis.
    """
    folder = StudyFolder(out_dir)
    plan = folder.plan()
    records = _normalise(in_plan_order(folder.records(), plan, cfg.study.kind))
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
    within = analysis.within_of(cfg, df, n_boot)
    if within and not cfg.report.baseline:  # the declared analysis replaces the first-variant one
        baseline = None
    comps = (
        analysis.comparisons(dfa, metric, baseline, mode, alpha, n_boot, exclude) if len(df) else []
    )
    effects = None
    if cfg.study.kind == "ablation" and cfg.study.design == "factorial" and len(df):
        effects = analysis.factorial(df, metric, list(cfg.study.components))
    sweep = (
        analysis.sweeps(
            df, metric, [k for k in cfg.study.grid if k != cfg.report.within], mode, alpha
        )
        if cfg.study.kind == "grid" and len(df)
        else {}
    )
    search = None
    if cfg.study.kind == "search":
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
        "on_validation": analysis.has_validation(df, metric),
        **(about or {"secondary": None, "secondaries": []}),
        "variants": summary,
        "comparisons": comps,
        "factorial": effects,
        "sweeps": sweep,
        "search": search,
        "within": within,
    }
    stats_out["plateau"] = _plateau(records, metric, cfg, stats_out["on_validation"])
    stats_out["plan"] = seed_plan(stats_out, cfg)
    # the comparisons' MDE (a within study's plan is on its own family, whose MDE it states)
    stats_out["mde"] = analysis.comparisons_mde(stats_out["plan"], alpha) if comps else None
    if effects:
        effects["mde"] = analysis.factorial_mde(effects, alpha)
    ok = analysis.ok_rows(dfa, metric) if len(df) else df
    runs = {
        s["variant"]: ok.loc[ok["variant"] == s["variant"], metric].astype(float).tolist()
        for s in summary
        if s["n"]
    }
    stats_out["profile"] = drawing.profile(runs, mode, n_boot)
    figs = drawing.draw_all(cfg, records, ok, stats_out, report_dir / "figures")
    blocks = _blocks(cfg, study_path, df, records, stats_out, figs)
    return {"blocks": blocks, "stats": stats_out, "table": df}


def _within_blocks(w: dict[str, Any], metric: str, alpha: float) -> list[Block]:
    """The section of a ``report.within`` analysis: one row per value, the ANOVA, the MDE.

    Heading and table text go raw (the renderer escapes them); paragraph text through ``lit``.
    """
    other, key = w["other"], w["within"]
    head = [key, "seeds", w["control"], w["treatment"], "difference [95% CI]"]
    head += ["p (t-test)", "p (Holm)", "p (Wilcoxon, Holm)", "note"]
    rows = [
        [
            r["level"],
            str(r["n"]),
            wording.fmt(r["control_mean"]),
            wording.fmt(r["treatment_mean"]),
            f"{wording.fmt(r['mean_diff'])} {wording.fmt(r['ci_diff'])}",
            wording.format_p(r["p_ttest"], alpha),
            wording.format_p(r["p_ttest_holm"], alpha),
            wording.format_p(r["p_wilcoxon_holm"], alpha),
            "; ".join(r["notes"]),
        ]
        for r in w["rows"]
    ]
    untested = [r["level"] for r in w["rows"] if r["p_ttest"] is None]
    family = f"one Holm family: the {w['tested']} values tested"
    if untested:
        family += f" (not tested: {', '.join(map(lit, untested))}; see the note column)"
    diff = f"{w['treatment']} - {w['control']}"
    out: list[Block] = [
        ("h", 2, f"Effect of {other} ({diff}) at each {key} (test {metric})"),
        (
            "p",
            f"Declared in the study file (report.within). Paired by seed at each value of "
            f"{lit(key)}; {family} (separately for the t-test and the Wilcoxon columns).",
        ),
        ("table", head, rows),
    ]
    a, k = w["anova"], lit(key)
    if a and a["p"] is not None:
        verdict = (
            ": the effect differs between values."
            if a["p"] < alpha
            else ": no significant change (this does not show that the effect is the same at "
            "every value)."
        )
        out.append(
            (
                "p",
                f"**Does the effect change with {k}?** One-way ANOVA of the per-seed differences "
                f"across the {a['df'][0] + 1} values, assuming the values independent (they "
                f"train on different data, but share seed numbers and the test set): "
                f"F({a['df'][0]}, {a['df'][1]}) = {a['F']:.3g}, p = "
                f"{lit(wording.format_p(a['p'], alpha))}{verdict} It asks whether the effect "
                "differs anywhere, not whether it grows.",
            )
        )
    elif a:
        why = lit(a["untested"])
        out.append(("p", f"Whether the effect changes with {k}: not tested ({why})."))
    if w.get("mde"):
        out.append(("p", f"**Power.** {wording.mde_text(w['mde'], metric)}."))
    return out


def _plateau(
    records: list[TrialRecord], metric: str, cfg: StudyFile, on_val: bool
) -> dict[str, Any] | None:
    """The plateau criterion on test ``metric``, and on validation when recorded.

    None for a search (its trials are not repeated variants).
    """
    if cfg.study.kind == "search" or not records:
        return None
    out = {"metric": metric, "test": plateau.plateau_check(records, metric)}
    out["validation"] = plateau.plateau_check(records, val_key(metric)) if on_val else None
    return out


def _verdict(row: dict[str, Any]) -> str:
    if row["plateau"] is None:
        return f"not checked ({row['why']})"
    return "yes" if row["plateau"] else "no"


def _plateau_blocks(pl: dict[str, Any]) -> list[Block]:
    """The section "Training to a plateau": the criterion, a count, one row per variant."""
    test, val = pl["test"], pl.get("validation")
    if not any(r["plateau"] is not None for r in test):
        why = "; ".join(sorted({r["why"] for r in test})) or "no finished trial"
        return [("h", 2, "Training to a plateau"), ("p", f"Not checked ({lit(why)}).")]
    metric = lit(pl["metric"])

    def count(rows: list[dict[str, Any]]) -> str:
        checked = [r for r in rows if r["plateau"] is not None]
        return f"{sum(r['plateau'] for r in checked)} of {len(checked)} variants"

    said = f"On test {metric}, {count(test)} meet the plateau criterion"
    if val:
        said += f" (on validation {metric}: {count(val)})"
    head = ["variant", "last fifth (epochs)", "movement", "seed sd", "meets the criterion"]
    rows = []
    vrows = {r["variant"]: r for r in val or []}
    for r in test:
        tail = r["tail_epochs"]
        row = [
            r["variant"],
            f"{tail[0]}-{tail[-1]} ({len(tail)} evaluations)" if tail else "n/a",
            wording.fmt(r["movement"]),
            wording.fmt(r["sd"]),
            _verdict(r),
        ]
        if val:
            v = vrows.get(r["variant"], {"plateau": None, "why": "no validation"})
            row.append(
                _verdict(v)
                + (
                    f" ({wording.fmt(v['movement'])} vs {wording.fmt(v['sd'])})"
                    if v.get("movement") is not None
                    else ""
                )
            )
        rows.append(row)
    if val:
        head.append("on validation (movement vs sd)")
    return [
        ("h", 2, f"Training to a plateau (test {pl['metric']})"),
        (
            "p",
            f"{said}. Criterion: over the last fifth of the epochs, the variant's mean learning "
            "curve (mean over seeds at each evaluation) moves by less than the sample sd over "
            "seeds of its final value (movement: the curve's max - min there; a curve that does "
            "not move meets it). A descriptive criterion, not a statistical test, and a lenient "
            "one where the seeds disagree widely (a large sd); where a variant does not meet it, "
            "its numbers answer the question for this training budget only.",
        ),
        ("table", head, rows),
    ]


def _blocks(cfg, study_path, df, records, st, figs) -> list[Block]:
    metric = st["metric"]
    sec = st.get("secondary")
    b: list[Block] = [("h", 1, report_title(cfg, sec))]
    if sec:
        b.append(
            (
                "p",
                f"**Secondary analysis {lit(sec['name'])}** of study {lit(cfg.name)}, declared "
                "in the study file (report.secondary): the same records compared with another "
                f"baseline; its tests are {SECONDARY}: they form their own Holm family. The "
                f"primary report: {lit(sec['primary_report'])}.",
            )
        )
    if cfg.report.question:
        b.append(("p", f"**Question.** {lit(cfg.report.question)}"))
    done = st["recorded"]
    counts = ", ".join(f"{lit(k)} {v}" for k, v in st["status_counts"].items()) or "none"
    stopped = st["status_counts"].get("stopped", 0)  # ended before their last epoch
    if stopped:
        counts += f": {stopped} partial, at their last evaluation"
    state = "complete" if done >= st["planned"] and st["planned"] and not stopped else "partial"
    b.append(
        (
            "p",
            f"**Progress.** {done} of {st['planned']} planned trials recorded ({state}; {counts}).",
        )
    )
    if done and not st["status_counts"].get("ok"):
        failed = sum(st["status_counts"].get(s, 0) for s in analysis.FAILURES)
        b.append(
            (
                "p",
                "**Every recorded trial failed**, so there is nothing to compare. The "
                "reasons are listed below."
                if failed == done
                else f"**No recorded trial finished** ({counts}), so there is nothing to "
                "compare; the reasons are listed below"
                + (" (`--resume` trains the stopped trials again)." if stopped else "."),
            )
        )
    b.append(("h", 2, "Design"))
    b.append(("ul", wording.design_lines(cfg, st)))
    where = provenance_block(records)
    if where[0] == "table":
        b.append(("p", "**Where the numbers came from** (the trials ran on different settings):"))
    b.append(where)
    plan = st.get("plan")
    if st["variants"]:
        b.append(("h", 2, f"Results (test {metric}, over seeds)"))
        if st.get("mde"):
            b.append(("p", f"**Power.** {wording.mde_text(st['mde'], metric)}."))
        table, common = wording.variant_table(st)
        b.append(table)
        if common:
            b.append(("p", "Every variant: " + "; ".join(map(lit, common)) + "."))
    if st.get("plateau"):
        b.extend(_plateau_blocks(st["plateau"]))
    if st.get("within"):
        b.extend(_within_blocks(st["within"], metric, st["alpha"]))
    if st["comparisons"]:
        b.append(
            (
                "h",
                2,
                f"Paired comparisons with the baseline ({wording.baseline_label(cfg, st, False)})"
                + (f", {SECONDARY}" if sec else ""),
            )
        )
        b.append(
            (
                "p",
                ("Its own Holm family, " + SECONDARY if sec else "One Holm family")
                + f": the {len(st['comparisons'])} comparisons with the "
                "baseline (separately for the t-test and the Wilcoxon columns).",
            )
        )
        b.append(wording.comparison_table(st))
    fx = st["factorial"]
    if fx:
        b.append(("h", 2, f"Factorial effects (test {metric})"))
        if fx.get("model"):
            b.append(
                (
                    "p",
                    f"Model: {lit(fx['model'])} (ordinary least squares, statsmodels; "
                    "factors coded -1/+1; seeds as blocks where every cell has every "
                    f"seed). Holm family: the {len(fx['effects'])} terms.",
                )
            )
        if fx.get("note"):
            b.append(("p", f"Note: {lit(fx['note'])}."))
        rows = [
            [
                e["term"],
                wording.fmt(e["effect"]),
                wording.fmt(e["se"]),
                wording.fmt(e["ci"]),
                wording.format_p(e["p"], st["alpha"]),
                wording.format_p(e.get("p_holm"), st["alpha"]),
            ]
            for e in fx["effects"]
        ]
        if rows:
            b.append(("table", ["term", "effect", "se", "95% CI", "p", "p (Holm)"], rows))
    if st["search"]:
        s = st["search"]
        b.append(("h", 2, "Search"))
        split = s.get("objective_split", "test")
        said = f"{split} {lit(s.get('objective', metric))}"
        if split == "test":
            said += f" ({stats.ON_TEST})"
        b.append(("p", f"Search objective: {said}; importances and history on it."))
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
            b.append(("p", f"Note: {lit(s['note'])}."))
    b.append(("h", 2, "Summary" + (f" ({SECONDARY})" if sec else "")))
    sentences = wording.summary_sentences(st)
    b.append(("ul", sentences or ["Not enough successful trials for a test."]))
    if plan:
        b.append(("h", 2, "Seed planning"))
        b.append(("ul", [lit(line) for line in power.plan_lines(plan)]))
    b.append(("h", 2, "Definitions"))
    b.append(("ul", [lit(line) for line in wording.definitions(st)]))
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
                [
                    [r.trial_id, r.status + " (partial)" * (r.status == "stopped"), str(r.reason)]
                    for r in bad.itertuples()
                ],
            )
        )
    b.append(("h", 2, "Reproduce"))
    runs = shown_path(cfg.output_dir)
    b.append(
        (
            "p",
            "Each row below is one trial; its full resolved configuration is stored in "
            f"{code(f'{runs}/records.jsonl')} (key `config`), in the copy of those "
            "records shipped with this report (`records.jsonl` beside it), and in "
            f"{code(f'{runs}/trials/<trial>/config.json')}.",
        )
    )
    b.append(
        (
            "code",
            "\n".join(
                f"# {r.trial_id}\n" + reproduce_command(study_path, r.overrides, r.seed)
                for r in records
            ),
        )
    )
    for other in st.get("secondaries") or []:
        b.append(
            (
                "p",
                f"Secondary analysis {lit(other['name'])} ({SECONDARY}): baseline "
                f"{lit(other['baseline'])}, report in {lit(other['dir'])}, rebuilt by "
                f"{code(regenerate_command(study_path, other['name']))}.",
            )
        )
    b.append(
        (
            "p",
            "Regenerate this report without training: "
            f"{code(regenerate_command(study_path, sec['name'] if sec else None))}.",
        )
    )
    return b


def report_title(cfg: StudyFile, sec: dict[str, Any] | None) -> str:
    """The report's title (a secondary analysis names itself)."""
    return f"Study report: {cfg.name}" + (f", secondary analysis {sec['name']}" if sec else "")


def write_report(
    cfg: StudyFile,
    study_path: str,
    out_dir: Path | None = None,
    report_dir: Path | None = None,
    secondary: str | None = None,
) -> Path:
    """Build and write the report of a study from its stored records; returns ``index.md``.

    The records are only read (the run ships them into the report folder:
    :mod:`rcl_study.trials.shipping`); the folders were checked when the command started.
    ``secondary`` names a secondary analysis (``report.secondary``) to write instead, into its
    own folder.
    """
    primary = cfg
    if secondary:
        cfg = secondary_config(cfg, secondary)
    about = _secondary_info(cfg, secondary, primary)
    out_dir = Path(out_dir or cfg.output_dir)
    report_dir = Path(report_dir or cfg.report_dir)
    claim(report_dir, cfg.name)
    built = build(cfg, study_path, out_dir, report_dir, about)
    atomic_write_text(report_dir / "results.csv", built["table"].to_csv(index=False))
    atomic_write_text(report_dir / "stats.json", json.dumps(built["stats"], indent=1, default=str))
    atomic_write_text(report_dir / "index.md", to_markdown(built["blocks"]))
    atomic_write_text(
        report_dir / "index.html",
        to_html(built["blocks"], report_dir, report_title(cfg, about["secondary"])),
    )
    return report_dir / "index.md"
