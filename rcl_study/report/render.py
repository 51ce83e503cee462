"""Write ``reports/<study>/``: index.md, index.html, results.csv, stats.json and tables.tex.

``index.html`` is self-contained; ``tables.tex`` holds the tables as LaTeX booktabs, for a paper.

The report is built from the stored records alone, so ``--report-only`` regenerates it without
training: the analysis (:mod:`.assemble`) gives its :class:`~.report_stats.ReportStats`, the
figures are drawn from them (:mod:`.drawing`), and each section (:mod:`.sections`) becomes
blocks, each rendered both to Markdown and to HTML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rcl_study.config import StudyFile
from rcl_study.report import drawing, latex, sections
from rcl_study.report.assemble import analyse, in_plan_order, normalise
from rcl_study.report.markup import Block, to_html, to_markdown
from rcl_study.report.report_stats import ReportStats, SecondaryOf
from rcl_study.report.sections import report_title
from rcl_study.report.wording import format_p  # noqa: F401 - re-exported for callers
from rcl_study.store import atomic_write_text
from rcl_study.store.folders import claim
from rcl_study.trials.folder import RecordsRead, StudyFolder

#: a study's records as read once (:meth:`StudyFolder.read`) and its plan (``plan.json``)
Given = tuple[RecordsRead, dict[str, Any]]


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


@dataclass(frozen=True)
class BuiltReport:
    """A built report: blocks, statistics, results table (a row per trial) and LaTeX tables."""

    blocks: list[Block]
    stats: ReportStats
    table: pd.DataFrame
    tex: str


def build(
    cfg: StudyFile,
    study_path: str,
    out_dir: Path,
    report_dir: Path,
    secondary: SecondaryOf | None = None,
    given: Given | None = None,
) -> BuiltReport:
    """Compute tables and statistics, draw figures and lay out the sections.

    ``secondary`` says that this is a secondary analysis, and of which primary report;
    ``given`` the records and plan already read from ``out_dir`` (else they are read here).
    """
    if given is None:
        folder = StudyFolder(out_dir)
        given = folder.read(), folder.plan()
    read, plan = given
    records = normalise(in_plan_order(read.records, plan, cfg.study.kind))
    done = analyse(cfg, records, plan, secondary)
    figs = drawing.draw_all(cfg, records, done.ok, done.stats, report_dir / "figures")
    damaged = tuple(read.damaged)
    given = sections.ReportInput(cfg, study_path, done.stats, done.table, records, figs, damaged)
    tex = latex.tables_tex(cfg.name, sections.paper_tables(given))
    return BuiltReport(sections.blocks(given), done.stats, done.table, tex)


def write_report(
    cfg: StudyFile,
    study_path: str,
    out_dir: Path | None = None,
    report_dir: Path | None = None,
    secondary: str | None = None,
    given: Given | None = None,
) -> Path:
    """Build and write the report of a study from its stored records; returns ``index.md``.

    The records are only read (the run ships them into the report folder:
    :mod:`rcl_study.trials.shipping`); the folders were checked when the command started.
    ``secondary`` names a secondary analysis (``report.secondary``) to write instead, into its
    own folder; ``given`` the records and plan the caller already read from ``out_dir``.
    """
    primary = cfg
    if secondary:
        cfg = secondary_config(cfg, secondary)
    about = SecondaryOf(secondary, str(primary.report_dir)) if secondary else None
    out_dir = Path(out_dir or cfg.output_dir)
    report_dir = Path(report_dir or cfg.report_dir)
    claim(report_dir, cfg.name)
    built = build(cfg, study_path, out_dir, report_dir, about, given)
    atomic_write_text(report_dir / "results.csv", built.table.to_csv(index=False))
    stats_json = json.dumps(built.stats.to_json(), indent=1, default=str)
    atomic_write_text(report_dir / "stats.json", stats_json)
    atomic_write_text(report_dir / "tables.tex", built.tex)
    atomic_write_text(report_dir / "index.md", to_markdown(built.blocks))
    atomic_write_text(
        report_dir / "index.html", to_html(built.blocks, report_dir, report_title(cfg, about))
    )
    return report_dir / "index.md"
