"""The report's sections on two analyses: late movement of the curves, and ``report.within``.

Heading and table text go raw (the renderer escapes them); paragraph text through ``lit``.
"""

from __future__ import annotations

from rcl_study.report import shown, wording
from rcl_study.report.markup import Block, lit
from rcl_study.report.report_stats import Plateau, PlateauRow, WithinAnalysis


def _within_rows(w: WithinAnalysis, alpha: float, wilcoxon: bool) -> list[list[str]]:
    """One table row per value of the ``within`` key (the Wilcoxon column where shown)."""
    f, p = wording.fmt, wording.format_p
    return [
        [
            r.level,
            str(r.n),
            f(r.control_mean),
            f(r.treatment_mean),
            f"{f(r.mean_diff)} {f(r.ci_diff)}",
            p(r.p_ttest, alpha),
            p(r.p_ttest_holm, alpha),
            *([p(r.p_wilcoxon_holm, alpha)] if wilcoxon else []),
            "; ".join(shown.shown_notes(r.notes, wilcoxon)),
        ]
        for r in w.rows
    ]


def _anova_text(w: WithinAnalysis, alpha: float) -> str | None:
    """Whether the effect changes across the values (the ANOVA), or why that is not tested."""
    a, k = w.anova, lit(w.within)
    if a and a.p is not None:
        verdict = (
            ": the effect differs between values."
            if a.p < alpha
            else ": no significant change (this does not show that the effect is the same at "
            "every value)."
        )
        return (
            f"**Does the effect change with {k}?** One-way ANOVA of the per-seed differences "
            f"across the {a.df[0] + 1} values, assuming the values independent (they "
            f"train on different data, but share seed numbers and the test set): "
            f"F({a.df[0]}, {a.df[1]}) = {a.F:.3g}, p = "
            f"{lit(wording.format_p(a.p, alpha))}{verdict} It asks whether the effect "
            "differs anywhere, not whether it grows."
        )
    if a:
        return f"Whether the effect changes with {k}: not tested ({lit(a.untested)})."
    return None


def within_section(w: WithinAnalysis, metric: str, alpha: float) -> list[Block]:
    """The section of a ``report.within`` analysis: one row per value, the ANOVA, the MDE."""
    other, key = w.other, w.within
    note = shown.wilcoxon_note(w.rows, alpha)
    head = [key, "seeds", w.control, w.treatment, "difference [95% CI]", "p (t-test)", "p (Holm)"]
    head += ["note"] if note else ["p (Wilcoxon, Holm)", "note"]
    untested = [r.level for r in w.rows if r.p_ttest is None and not r.identical]
    family = f"one Holm family: the {w.tested} values tested"
    if untested:
        family += f" (not tested: {', '.join(map(lit, untested))}; see the note column)"
    family += "" if note else " (separately for the t-test and the Wilcoxon columns)"
    diff = f"{w.treatment} - {w.control}"
    out: list[Block] = [
        ("h", 2, f"Effect of {other} ({diff}) at each {key} (test {metric})"),
        (
            "p",
            f"Declared in the study file (report.within). Paired by seed at each value of "
            f"{lit(key)}; {family}.",
        ),
        *([("p", f"{lit(note)}.")] if note else []),
        ("table", head, _within_rows(w, alpha, note is None)),
    ]
    anova = _anova_text(w, alpha)
    if anova:
        out.append(("p", anova))
    if w.mde:
        out.append(("p", f"**Power.** {wording.mde_text(w.mde, metric)}."))
    return out


def _verdict(row: PlateauRow | None) -> str:
    if row is None:
        return "not checked (no validation)"
    if row.plateau is None:
        return f"not checked ({row.why})"
    return "yes" if row.plateau else "no"


def _count(rows: list[PlateauRow]) -> str:
    checked = [r for r in rows if r.plateau is not None]
    return f"{sum(r.plateau for r in checked)} of {len(checked)} variants"


def _plateau_row(r: PlateauRow, val: dict[str, PlateauRow] | None) -> list[str]:
    """One variant's row: its tail, movement, sd and verdict (and on validation, when recorded)."""
    tail = r.tail_epochs
    row = [
        r.variant,
        f"{tail[0]}-{tail[-1]} ({len(tail)} evaluations)" if tail else "n/a",
        wording.fmt(r.movement),
        wording.fmt(r.sd),
        _verdict(r),
    ]
    if val is not None:
        v = val.get(r.variant)
        said = v is not None and v.movement is not None
        row.append(
            _verdict(v) + (f" ({wording.fmt(v.movement)} vs {wording.fmt(v.sd)})" if said else "")
        )
    return row


#: the section's title: it measures how much the curves still move late, not convergence
LATE = "Late movement of the learning curves"


def plateau_section(pl: Plateau) -> list[Block]:
    """The section on late movement: the criterion, a count, one row per variant."""
    test, val = pl.test, pl.validation
    if not any(r.plateau is not None for r in test):
        why = "; ".join(sorted({r.why for r in test})) or "no finished trial"
        return [("h", 2, LATE), ("p", f"Not checked ({lit(why)}).")]
    metric = lit(pl.metric)
    said = f"On test {metric}, {_count(test)} move less than the seed sd"
    if val:
        said += f" (on validation {metric}: {_count(val)})"
    head = ["variant", "last fifth (epochs)", "movement", "seed sd", "moves less than the sd"]
    vrows = {r.variant: r for r in val} if val else None
    rows = [_plateau_row(r, vrows) for r in test]
    if val:
        head.append("on validation (movement vs sd)")
    return [
        ("h", 2, f"{LATE} (test {pl.metric})"),
        (
            "p",
            f"{said}. Criterion: over the last fifth of the epochs, the range of the variant's "
            "mean learning curve (mean over seeds at each evaluation; movement: its max - min "
            "there) against the sample sd over seeds of its final value; a curve that does not "
            "move is below it. This measures late movement, not convergence: where the learning "
            "rate decays towards the end (a cosine schedule), a curve moves little there whether "
            "or not it has converged. A descriptive criterion, not a statistical test, and a "
            "lenient one where the seeds disagree widely (a large sd); where a variant still "
            "moves more, its numbers answer the question for this training budget only.",
        ),
        ("table", head, rows),
    ]
