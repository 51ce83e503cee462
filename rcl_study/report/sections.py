"""The sections of a report, in order: one function each, from the report's typed statistics.

Each section returns its blocks (:mod:`.markup`; an empty list when it has nothing to say).
Heading and table text go raw (the renderer escapes them); paragraph text through ``lit``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rcl_study.config import StudyFile
from rcl_study.report import instrument_sections, power, search_sections, shown, wording
from rcl_study.report.labels import Labels
from rcl_study.report.markup import Block, code, lit
from rcl_study.report.provenance import provenance_block
from rcl_study.report.report_input import ReportInput
from rcl_study.report.report_stats import ReportStats, SecondaryOf
from rcl_study.report.section_analyses import plateau_section, within_section
from rcl_study.report.table import FAILURES, bounds

#: how a secondary analysis is labelled wherever its tests appear
SECONDARY = "secondary (not part of the primary Holm family)"


def report_title(cfg: StudyFile, sec: SecondaryOf | None) -> str:
    """The report's title (a secondary analysis names itself)."""
    return f"Study report: {cfg.name}" + (f", secondary analysis {sec.name}" if sec else "")


def reproduce_command(study_path: str, overrides: dict[str, Any], seed: int) -> str:
    """The single-trial command that reproduces one row."""
    sets = [f"--set {shlex.quote(f'{k}={v}')}" for k, v in overrides.items()]
    return " ".join(
        ["python -m rcl_study.train", shlex.quote(study_path), *sets, f"--set train.seed={seed}"]
    )


def regenerate_command(study_path: str, secondary: str | None = None) -> str:
    """The command that rebuilds this report (a secondary analysis's names it)."""
    cmd = ["python", "-m", "rcl_study.run", study_path, "--report-only"]
    return shlex.join(cmd + (["--secondary", secondary] if secondary else []))


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


def title(r: ReportInput) -> list[Block]:
    """The title; a secondary analysis says what it is and where its primary report is."""
    sec = r.stats.secondary
    out: list[Block] = [("h", 1, report_title(r.cfg, sec))]
    if sec:
        out.append(
            (
                "p",
                f"**Secondary analysis {lit(sec.name)}** of study {lit(r.cfg.name)}, declared "
                "in the study file (report.secondary): the same records compared with another "
                f"baseline; its tests are {SECONDARY}: they form their own Holm family. The "
                f"primary report: {lit(sec.primary_report)}.",
            )
        )
    return out


def question(r: ReportInput) -> list[Block]:
    """The study's question, where its file states one."""
    q = r.cfg.report.question
    return [("p", f"**Question.** {lit(q)}")] if q else []


def _counts(st: ReportStats) -> str:
    """The recorded trials per status, saying that stopped ones are partial."""
    counts = ", ".join(f"{lit(k)} {v}" for k, v in st.status_counts.items()) or "none"
    stopped = st.status_counts.get("stopped", 0)  # ended before their last epoch
    return counts + (f": {stopped} partial, at their last evaluation" if stopped else "")


def progress(r: ReportInput) -> list[Block]:
    """How many planned trials are recorded; when none finished, that nothing is compared."""
    st = r.stats
    done, counts = st.recorded, _counts(st)
    stopped = st.status_counts.get("stopped", 0)
    state = "complete" if done >= st.planned and st.planned and not stopped else "partial"
    text = f"**Progress.** {done} of {st.planned} planned trials recorded ({state}; {counts})."
    out: list[Block] = [("p", text)]
    if done and not st.status_counts.get("ok"):
        failed = sum(st.status_counts.get(s, 0) for s in FAILURES)
        out.append(
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
    return out


def design(r: ReportInput) -> list[Block]:
    """What the study fixed and varied, and where the numbers came from."""
    out: list[Block] = [("h", 2, "Design"), ("ul", wording.design_lines(r.cfg, r.stats))]
    where = provenance_block(r.records)
    if where[0] == "table":
        out.append(("p", "**Where the numbers came from** (the trials ran on different settings):"))
    return [*out, where]


def results(r: ReportInput) -> list[Block]:
    """The variant table with the comparisons' MDE and the notes every variant shares."""
    st = r.stats
    if not st.variants:
        return []
    out: list[Block] = [("h", 2, f"Results (test {st.metric}, over seeds)")]
    if st.mde:
        out.append(("p", f"**Power.** {wording.mde_text(st.mde, st.metric)}."))
    table, common = wording.variant_table(st)
    out.append(Labels.of(r.cfg).first_column(table))
    if common:
        out.append(("p", "Every variant: " + "; ".join(map(lit, common)) + "."))
    hidden = [shown.iqm_note(st.variants), shown.profile_note(st.variants)]
    return out + [("p", f"{lit(note)}.") for note in hidden if note]


def plateau(r: ReportInput) -> list[Block]:
    """Late movement of the learning curves (:func:`.section_analyses.plateau_section`)."""
    return plateau_section(r.stats.plateau) if r.stats.plateau else []


def within(r: ReportInput) -> list[Block]:
    """The declared ``report.within`` analysis (:func:`.section_analyses.within_section`)."""
    st = r.stats
    return within_section(st.within, st.metric, st.alpha) if st.within else []


def comparisons(r: ReportInput) -> list[Block]:
    """The paired comparisons with the baseline, one Holm family."""
    st = r.stats
    if not st.comparisons:
        return []
    sec = st.secondary
    label = wording.baseline_label(r.cfg, st, False)
    family = "Its own Holm family, " + SECONDARY if sec else "One Holm family"
    ran = shown.tested(st.comparisons)
    wilcoxon = shown.wilcoxon_note(st.comparisons, st.alpha)
    family += f": the {len(ran)} comparisons with the baseline tested"
    untested = [c.variant for c in st.comparisons if c.p_ttest is None and not c.identical]
    if untested:
        family += f" (not tested: {', '.join(map(lit, untested))}; see the note column)"
    family += "" if wilcoxon else " (separately for the t-test and the Wilcoxon columns)"
    hidden = [wilcoxon, shown.improve_note(st.comparisons)]
    return [
        (
            "h",
            2,
            f"Paired comparisons with the baseline ({label})" + (f", {SECONDARY}" if sec else ""),
        ),
        ("p", f"{family}."),
        *[("p", f"{lit(note)}.") for note in hidden if note],
        Labels.of(r.cfg).first_column(wording.comparison_table(st)),
    ]


def factorial(r: ReportInput) -> list[Block]:
    """The factorial model's terms, their tests after Holm, and its note."""
    fx, st = r.stats.factorial, r.stats
    if not fx:
        return []
    out: list[Block] = [("h", 2, f"Factorial effects (test {st.metric})")]
    if fx.model:
        out.append(
            (
                "p",
                f"Model: {lit(fx.model)} (ordinary least squares, statsmodels; "
                "factors coded -1/+1; seeds as blocks where every cell has every "
                f"seed). Holm family: the {len(fx.effects)} terms.",
            )
        )
    if fx.note:
        out.append(("p", f"Note: {lit(fx.note)}."))
    f, p = wording.fmt, wording.format_p
    rows = [
        [e.term, f(e.effect), f(e.se), f(e.ci), p(e.p, st.alpha), p(e.p_holm, st.alpha)]
        for e in fx.effects
    ]
    if rows:
        out.append(("table", ["term", "effect", "se", "95% CI", "p", "p (Holm)"], rows))
    return out


def summary(r: ReportInput) -> list[Block]:
    """What the tests support, in words."""
    sentences = wording.summary_sentences(r.stats)
    return [
        ("h", 2, "Summary" + (f" ({SECONDARY})" if r.stats.secondary else "")),
        ("ul", sentences or ["Not enough successful trials for a test."]),
    ]


def seed_planning(r: ReportInput) -> list[Block]:
    """The seed plan from these records, where one could be made."""
    plan = r.stats.plan
    if not plan:
        return []
    lines = power.plan_lines(plan, bounds(r.stats.metric))
    return [("h", 2, "Seed planning"), ("ul", [lit(line) for line in lines])]


def definitions(r: ReportInput) -> list[Block]:
    """One line per statistic of the report."""
    st = r.stats
    lines = wording.definitions(st.metric, st.mode, st.alpha, [v.n for v in st.variants])
    return [("h", 2, "Definitions"), ("ul", [lit(line) for line in lines])]


def figures(r: ReportInput) -> list[Block]:
    """Every drawn figure under its title."""
    out: list[Block] = []
    for name, fname in r.figures:
        out += [("h", 3, name), ("img", f"figures/{fname}", name)]
    return out


def unfinished(r: ReportInput) -> list[Block]:
    """The trials that did not finish, with their reasons."""
    df = r.table
    bad = df[df["status"] != "ok"] if len(df) else df
    if not len(bad):
        return []
    rows = [
        [t.trial_id, t.status + " (partial)" * (t.status == "stopped"), str(t.reason)]
        for t in bad.itertuples()
    ]
    return [("h", 2, "Trials that did not finish"), ("table", ["trial", "status", "reason"], rows)]


def damaged(r: ReportInput) -> list[Block]:
    """The lines of the records file set aside as damaged (never counted), each with why."""
    if not r.damaged:
        return []
    rows = [[str(d.line), d.why] for d in r.damaged]
    return [
        ("h", 2, "Records set aside as damaged"),
        (
            "p",
            f"{len(rows)} line(s) of the records file are no valid record and count nowhere "
            "in this report (kept in the file; `--resume` moves them to "
            "`records.damaged.jsonl` and runs their trials again):",
        ),
        ("table", ["line", "why"], rows),
    ]


def reproduce(r: ReportInput) -> list[Block]:
    """Where each trial's configuration is stored, and the command that trains each one again."""
    runs = shown_path(r.cfg.output_dir)
    commands = "\n".join(
        f"# {t.trial_id}\n" + reproduce_command(r.study_path, t.overrides, t.seed)
        for t in r.records
    )
    return [
        ("h", 2, "Reproduce"),
        (
            "p",
            "Each row below is one trial; its full resolved configuration is stored in "
            f"{code(f'{runs}/records.jsonl')} (key `config`), in the copy of those "
            "records shipped with this report (`records.jsonl` beside it), and in "
            f"{code(f'{runs}/trials/<trial>/config.json')}.",
        ),
        ("code", commands),
    ]


def regenerate(r: ReportInput) -> list[Block]:
    """The commands that rebuild this report and each declared secondary analysis."""
    out: list[Block] = [
        (
            "p",
            f"Secondary analysis {lit(other.name)} ({SECONDARY}): baseline "
            f"{lit(other.baseline)}, report in {lit(other.dir)}, rebuilt by "
            f"{code(regenerate_command(r.study_path, other.name))}.",
        )
        for other in r.stats.secondaries
    ]
    sec = r.stats.secondary
    command = code(regenerate_command(r.study_path, sec.name if sec else None))
    return [*out, ("p", f"Regenerate this report without training: {command}.")]


def paper_tables(r: ReportInput) -> list[tuple[str, Block]]:
    """The tables ``tables.tex`` holds, each with its caption: the variants and the comparisons."""
    st, labels = r.stats, Labels.of(r.cfg)
    out = []
    if st.variants:
        table = labels.first_column(wording.variant_table(st)[0])
        out.append((f"{r.cfg.name}: test {st.metric} per variant, over seeds", table))
    if st.comparisons:
        base = wording.baseline_label(r.cfg, st, False)
        table = labels.first_column(wording.comparison_table(st))
        out.append((f"{r.cfg.name}: paired comparisons with the baseline ({base})", table))
    searched = search_sections.trial_table(r)
    if searched:
        out.append((f"{r.cfg.name}: every search trial", searched))
    return out


#: the report's sections, in order
SECTIONS: tuple[Callable[[ReportInput], list[Block]], ...] = (
    title,
    question,
    progress,
    search_sections.best,
    design,
    instrument_sections.sequential,
    results,
    instrument_sections.intervals,
    plateau,
    within,
    comparisons,
    factorial,
    instrument_sections.features,
    instrument_sections.per_class,
    search_sections.search,
    summary,
    seed_planning,
    definitions,
    figures,
    unfinished,
    damaged,
    reproduce,
    regenerate,
)


def blocks(r: ReportInput) -> list[Block]:
    """Every block of the report: each section's, in order."""
    return [b for section in SECTIONS for b in section(r)]
