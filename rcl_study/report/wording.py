"""The words of a report: number formats, the summary sentences, definitions and tables.

What the statistics support, said in words: significant after Holm, not significant (with the
study's minimum detectable effect), or not tested and why; each metric's direction comes from
``rcl_study.config.METRIC_INFO`` via ``analysis.direction``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pandas as pd

from rcl_study.config.metrics import val_key
from rcl_study.report import power, robust, shown, stats
from rcl_study.report.labels import Labels
from rcl_study.report.markup import Block, lit
from rcl_study.report.report_stats import Mde, ReportStats, SweepBest, WithinAnalysis
from rcl_study.report.table import bounds, direction


def fmt(x: Any, digits: int = 4) -> str:
    """A number (or a 2-tuple interval) with ``digits`` decimals; None and NaN as "n/a"."""
    if x is None or (isinstance(x, float) and pd.isna(x)):
        return "n/a"
    if isinstance(x, (tuple, list)) and len(x) == 2:
        return f"[{fmt(x[0], digits)}, {fmt(x[1], digits)}]"
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


def with_ci(x: Any, ci: Any, digits: int = 2) -> str:
    """A value followed by its interval in brackets."""
    return "n/a" if x is None else f"{fmt(x, digits)} {fmt(ci, digits)}"


def with_boot_ci(x: Any, ci: Any, digits: int = 2) -> str:
    """A value with its bootstrap interval, or the value alone where none was computed."""
    return "n/a" if x is None else (fmt(x, digits) if ci is None else with_ci(x, ci, digits))


def iqm_words(ns: list[int]) -> str:
    """Which runs the IQM averages at each number of seeds ``ns`` (e.g. "the middle 4 of 6")."""
    said = [f"the middle {robust.iqm_kept(n)} of {n} seeds" for n in sorted(set(ns)) if n]
    return ", ".join(said) or "no seeds"


def varied_keys(cfg: Any) -> dict[str, str]:
    """The dotted keys the study varies between trials, each with what varies it."""
    study = cfg.study
    if study.kind == "grid":
        return {k: "the grid" for k in study.grid}
    if study.kind == "search":
        return {k: "the search space" for k in study.space}
    return {f"loss.{c}": "the ablation" for c in study.components}


def baseline_label(cfg: Any, st: ReportStats, escape: bool = True) -> str:
    """The baseline's name, saying what an ablation's all-off or all-on variant is.

    An ablation's all-off variant is named "none": it reads 'the all-off variant "none"
    (balance, scale off)', never "baseline: none" (as if there were no baseline).
    """
    name, q = st.baseline, (lit if escape else str)
    if name is None:
        return "none (no variant to compare with)"
    comps = ", ".join(q(c) for c in cfg.study.components)
    if cfg.study.kind == "ablation" and name == "none":
        return f'the all-off variant "none" ({comps} off)'
    if cfg.study.kind == "ablation" and name == "all" and cfg.study.design == "leave_one_out":
        return f'the all-on variant "all" ({comps} on)'
    return q(Labels.of(cfg).name(name))


def design_lines(cfg: Any, st: ReportStats) -> list[str]:
    """The Design block: what the study fixed and what it varied.

    A key the study varies (a grid's ``loss.preset``) is never shown as a fixed setting.
    """
    varied = varied_keys(cfg)

    def setting(key: str, label: str, value: Any) -> str:
        return f"{label} varied by {varied[key]}" if key in varied else f"{label} {lit(value)}"

    kind = cfg.study.kind
    design = f"{kind} ({cfg.study.design})" if kind == "ablation" else kind
    better = "higher" if st.mode == "max" else "lower"
    lines = [
        f"kind: {design}",
        f"seeds: {list(cfg.study.seeds)}",
        f"data: {setting('data.dataset', 'dataset', cfg.data.dataset)}, "
        f"{setting('data.imbalance_ratio', 'imbalance ratio', f'{cfg.data.imbalance_ratio:g}')}",
        f"loss: {setting('loss.preset', 'preset', cfg.loss.preset)}; "
        f"{setting('loss.temperature', 'temperature', cfg.loss.temperature)}",
        f"training: {setting('train.epochs', 'epochs', cfg.train.epochs)}, "
        f"{setting('train.batch_size', 'batch', cfg.train.batch_size)}",
        f"metric: test {lit(st.metric)} ({better} is better; "
        + (
            f"choices on validation {lit(val_key(st.metric))}"
            if st.on_validation
            else f"old records without a validation split: choices {stats.ON_TEST}"
        )
        + f"); baseline: {baseline_label(cfg, st)}; alpha {st.alpha:g}",
    ]
    if kind == "ablation":
        lines.append(f"components: {', '.join(lit(c) for c in cfg.study.components)}")
    if kind == "grid":
        lines.append(f"grid: {lit(json.dumps(cfg.study.grid))}")
    return lines


def mde_text(info: Mde, metric: str) -> str:
    """One analysis's MDE in words (:func:`.power.mde_words`), its names escaped."""
    named = replace(info, analysis=lit(info.analysis), basis=lit(info.basis))
    return power.mde_words(named, lit(metric), bounds(metric))


def mde_again(info: Mde, metric: str) -> str:
    """The MDE after a summary's non-significant result, where its section has a Power line.

    An MDE beyond the metric's range is said once, in that Power line: here a pointer to it.
    """
    if power.beyond_range(info.value, bounds(metric)):
        return "no effect within the metric's range is detectable: see Power above"
    return mde_text(info, metric)


def _direction_word(metric: str) -> str:
    return "higher better" if direction(metric) == "max" else "lower better"


def _better(diff: float, mode: str) -> str:
    return "better" if (diff > 0) == (mode == "max") else "worse"


def summary_sentences(st: ReportStats) -> list[str]:
    """What the tests support, in words: significant after Holm, not significant, not tested."""
    out = _comparison_sentences(st)
    fx, metric, alpha = st.factorial, st.metric, st.alpha
    if fx and fx.effects:
        if fx.effects[0].p is None:
            out.append(f"Factorial effects: not tested ({lit(fx.note or 'no residual df')}).")
        else:
            clear = [e for e in fx.effects if e.p_holm is not None and e.p_holm < alpha]
            family = f"Holm over the {len(fx.effects)} terms of {lit(fx.model)}"
            own = f" ({mde_text(fx.mde, metric)})" if fx.mde else ""
            if clear:
                out.append(
                    f"Factorial terms significant on test {lit(metric)} ({family}): "
                    + ", ".join(
                        f"{lit(e.term)} ({e.effect:+.4f}, p = {lit(format_p(e.p_holm, alpha))})"
                        for e in clear
                    )
                    + f"{own}."
                )
            else:
                out.append(
                    "No factorial main effect or interaction is significant on test "
                    f"{lit(metric)} ({family}){own}."
                )
    for key, best in st.sweeps.items():
        if best and best.value is not None:
            out.append(_best_sentence(key, best, metric, st.mode, alpha))
    if st.within:
        out.extend(_within_sentences(st.within, metric, st.mode, alpha))
    return out


def _comparison_sentences(st: ReportStats) -> list[str]:
    """The comparisons with the baseline in words: significant, not significant, not tested."""
    comps, metric, mode, alpha = st.comparisons, st.metric, st.mode, st.alpha
    out = []
    tested = [c for c in comps if c.p_ttest is not None]
    sig = [c for c in tested if c.p_ttest_holm is not None and c.p_ttest_holm < alpha]
    for c in sig:
        out.append(
            f"**{lit(c.variant)}** is significantly {_better(c.mean_diff, mode)} than "
            f"**{lit(c.baseline)}** on test {lit(metric)} ({c.mean_diff:+.4f}, "
            "paired t-test, Holm over "
            f"{len(tested)} comparisons with the baseline: p = "
            f"{lit(format_p(c.p_ttest_holm, alpha))}, {c.n} seeds)."
        )
    nonsig = [c for c in tested if c not in sig]
    if nonsig:
        tail = f" ({mde_again(st.mde, metric)})" if st.mde else ""
        out.append(
            "No significant difference from the baseline after Holm correction "
            f"(alpha {alpha:g}) for: {', '.join(lit(c.variant) for c in nonsig)}{tail}."
        )
    for c in comps:
        if c.p_ttest is None and not c.identical:  # an identical one: said in its note column
            why = c.untested or "no test"
            out.append(f"**{lit(c.variant)}** vs **{lit(c.baseline)}**: not tested ({lit(why)}).")
    return out


def _within_sentences(w: WithinAnalysis, metric: str, mode: str, alpha: float) -> list[str]:
    """The ``report.within`` analysis in words: each value's test after Holm, then the ANOVA."""
    other, key, treat = lit(w.other), lit(w.within), lit(w.treatment)
    family = f"paired t-test, Holm over the {w.tested} values of {key} tested"
    out = []
    for r in (r for r in w.rows if not r.identical):  # said in its note column
        at = f"At {key} = {lit(r.level)}"
        if r.p_ttest is None:
            out.append(f"{at}: {other} not tested ({lit(r.untested or 'no test')}).")
        elif r.p_ttest_holm < alpha:
            out.append(
                f"{at}, **{treat}** is significantly {_better(r.mean_diff, mode)} than "
                f"**{lit(w.control)}** on test {lit(metric)} ({r.mean_diff:+.4f} "
                f"{fmt(r.ci_diff)}; {family}: p = {lit(format_p(r.p_ttest_holm, alpha))}, "
                f"{r.n} seeds)."
            )
        else:
            out.append(
                f"{at}: no significant difference between {treat} and {lit(w.control)} "
                f"({r.mean_diff:+.4f} {fmt(r.ci_diff)}; {family}: p = "
                f"{lit(format_p(r.p_ttest_holm, alpha))})."
            )
    nonsig = [r for r in w.rows if r.p_ttest is not None and r.p_ttest_holm >= alpha]
    if nonsig and w.mde:
        out.append(f"For the non-significant values: {mde_again(w.mde, metric)}.")
    a = w.anova
    if a and a.p is not None:
        verdict = "changes" if a.p < alpha else "no significant change"
        out.append(
            f"Across {key}: {verdict} in the effect of {other} (one-way ANOVA, F({a.df[0]}, "
            f"{a.df[1]}) = {a.F:.3g}, p = {lit(format_p(a.p, alpha))})."
        )
    return out


def _best_sentence(key: str, best: SweepBest, metric: str, mode: str, alpha: float) -> str:
    """The best value of one swept key: the split it was chosen on, the split it is reported on."""
    sel, rep = best.selected_on, best.reported_on
    chosen = (
        f"chosen on validation {lit(val_key(metric))} of seeds {sel}"
        if best.selected_by == "validation"
        else f"chosen on test {lit(metric)} of seeds {sel}"
    )
    where = f"on held-out seeds {rep}" if best.held_out else f"on the same seeds {rep}"
    ci = f", 95% CI {fmt(best.ci_t)}" if best.held_out else ""
    head = (
        f"**Best {lit(key)}:** {lit(best.value)} ({chosen}; test {lit(metric)} {where}: "
        f"mean {best.mean:.4f}{ci})"
    )
    if best.note:
        head += f" ({lit(best.note)})"
    vs = [
        f"{lit(v.other)} {v.mean_diff:+.4f} "
        + (
            f"p = {lit(format_p(v.p_holm, alpha))}"
            if v.p_holm is not None
            else f"not tested ({lit(v.untested)})"
        )
        for v in best.versus
    ]
    own = f" ({mde_text(best.mde, metric)})" if best.mde else ""
    return (
        head
        + f"; best minus each other value on test {lit(metric)} of those seeds (paired t-test, "
        f"Holm over {len(vs)}): " + ("; ".join(vs) or "none") + own + "."
    )


def definitions(metric: str, mode: str, alpha: float, seeds: list[int]) -> list[str]:
    """One line per statistic of the report and the test behind each column.

    ``seeds``: the number of seeds of each variant (the IQM's line says which it averages).
    """
    better = "higher" if mode == "max" else "lower"
    return [
        f"Metric: {metric} on the test split ({better} is better: study.mode {mode}); "
        "significance "
        f"level alpha = {alpha:g}.",
        "mean, sd: mean and sample standard deviation (ddof 1) over seeds; n/trials: seeds with "
        "a finite metric / trials recorded (a NaN metric counts as a failed trial).",
        "95% CI (t): Student-t interval of the mean over seeds, clipped to the metric's range "
        "(e.g. [0, 1] for accuracies) where it crosses it.",
        "95% CI (bootstrap): percentile bootstrap over seeds (seeded), computed only from "
        f"{stats.MIN_BOOT_SEEDS} seeds up, as every bootstrap interval of this report (IQM, "
        "P(improve), performance profiles): below that a nominal 95% interval covers about "
        "50-89% of the time; elsewhere: " + stats.BOOT_NOT_COMPUTED + ".",
        "IQM: interquartile mean, scipy trim_mean(x, 0.25) as rliable: floor(n/4) seeds are cut "
        f"from each end, so here it averages {iqm_words(seeds)}; "
        "with a 95% percentile stratified-bootstrap interval (rliable; resampling seeds within "
        "the variant; seeded) from 10 seeds up.",
        "splits: every number is on the test split unless it says validation (val_ keys); "
        "choices (a grid's best value, a search's objective, the chosen epoch) are made on "
        "validation, never on test, except for old records without a validation split, where "
        "the report says: " + stats.ON_TEST + ".",
        "last epoch vs chosen epoch: the primary numbers are the last epoch's; 'test at the "
        "validation-chosen epoch' is the test metric at the first epoch with the highest "
        "validation metric (chosen_<metric>); old records' best-epoch column (maximum over "
        "evaluations on test) is optimistic.",
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
        "stratified-bootstrap interval (50,000 resamples, rliable's default) from 10 seeds up; "
        "share improved: share of common seeds on which the "
        "variant is better (paired, ties 1/2).",
        "effect (factorial): change in the mean when a component goes off -> on, averaged over "
        "the other components (twice the -1/+1 coded OLS coefficient), t-test of the "
        "coefficient in the model named beside the table.",
        "MDE: minimum detectable effect, one per analysis (paired comparisons with the baseline, "
        "factorial terms, each grid key's best-versus-other tests), each from its own test and "
        "family: the true difference that analysis's t-test calls significant with 80% power "
        "at level alpha/m (m: its Holm family size; the conservative bound for Holm): a true "
        "difference that large is missed in 20% of repeated studies, a smaller one more often "
        "(scipy's noncentral t, checked against statsmodels' TTestPower and a simulation).",
        "best value (grid): the value with the best mean validation metric on the selection "
        "seeds; with 4 or more common seeds those are the first half and the test metric is "
        "reported on the held-out second half; with fewer, chosen and reported on the same seeds "
        "(optimistic, no interval of the best); tested on test against each other value, Holm.",
        "not tested (reason): no test was run (one seed, no common seed, or no variance); this "
        "is not evidence of no difference.",
    ]


def _epoch_column(st: ReportStats) -> tuple[str, str] | None:
    """(results column, header) of the chosen-epoch column, or None when the records have none."""
    metric, vs = st.metric, st.variants
    for column, head in (
        (f"chosen_{metric}", "test at the validation-chosen epoch"),
        (f"best_{metric}", f"best epoch ({stats.ON_TEST})"),
    ):
        if any(s.mean_of(column) is not None for s in vs):
            return column, head
    return None


def variant_table(st: ReportStats) -> tuple[Block, list[str]]:
    """The variant table, and the notes every variant shares (said once, under the table)."""
    metric, vs = st.metric, st.variants
    boot = any(s.ci_boot for s in vs)
    val = val_key(metric)
    has_val = any(s.mean_of(val) is not None for s in vs)
    epoch = _epoch_column(st)
    head = ["variant", "ok/trials", "mean (test, last epoch)", "sd", "95% CI (t)"]
    head += ["95% CI (bootstrap)"] if boot else []
    iqm = shown.iqm_shown(vs)
    head += ["IQM [95% CI from 10 seeds]"] if iqm else []
    head += ["mean (validation, last epoch)"] if has_val else []
    head += [epoch[1]] if epoch else []
    head += ["many (test)", "medium (test)", "few (test)"]
    head += [f"{k} (test, {_direction_word(k)})" for k in ("compactness", "equiangular_gap_deg")]
    head += ["notes"]
    common = set.intersection(*(set(s.notes) for s in vs)) if len(vs) > 1 else set()
    rows = []
    for s in vs:
        row = [s.variant, f"{s.n}/{s.trials}", fmt(s.mean), fmt(s.std), fmt(s.ci_t)]
        row += [fmt(s.ci_boot)] if boot else []
        if iqm:
            row += [with_boot_ci(s.iqm, s.iqm_ci, 4) if s.n >= shown.MIN_IQM_SEEDS else "n/a"]
        row += [fmt(s.mean_of(val))] if has_val else []
        row += [fmt(s.mean_of(epoch[0]))] if epoch else []
        row += [fmt(s.mean_of(k), 3) for k in ("many_acc", "medium_acc", "few_acc", "compactness")]
        row += [fmt(s.mean_of("equiangular_gap_deg"), 2)]
        row += ["; ".join(n for n in s.notes if n not in common)]
        rows.append(row)
    return ("table", head, rows), sorted(common)


def comparison_table(st: ReportStats) -> Block:
    """The paired comparisons with the baseline: differences, tests, effect sizes, notes.

    The Wilcoxon and P(improve) columns only where they can say something (:mod:`.shown`).
    """
    alpha, comps = st.alpha, st.comparisons
    wilcoxon = shown.wilcoxon_note(comps, alpha) is None
    improve = shown.improve_shown(comps)
    head = ["variant", "seeds", "diff (test)", "95% CI", "p (t)", "p (t, Holm)"]
    head += ["p (Wilcoxon)", "p (W, Holm)"] if wilcoxon else []
    head += ["d_z [95% CI]", "g_z [95% CI]"]
    head += ["P(improve) [95% CI from 10 seeds]"] if improve else []
    head += ["share improved", "notes"]
    rows = []
    for c in comps:
        row = [c.variant, str(c.n), fmt(c.mean_diff), fmt(c.ci_diff)]
        row += [format_p(c.p_ttest, alpha), format_p(c.p_ttest_holm, alpha)]
        if wilcoxon:
            row += [format_p(c.p_wilcoxon, alpha), format_p(c.p_wilcoxon_holm, alpha)]
        row += [with_ci(c.d_z, c.d_z_ci), with_ci(c.g_z, c.g_z_ci)]
        row += [with_boot_ci(c.prob_improvement, c.prob_improvement_ci)] if improve else []
        row += [fmt(c.share_improved, 2), "; ".join(shown.shown_notes(c.notes, wilcoxon))]
        rows.append(row)
    return ("table", head, rows)
