"""The report's sections on the declared plan, the feature measures and the per-class table.

Each reads the typed statistics (:mod:`.instrument`'s parts of :class:`.report_stats.ReportStats`)
and returns its blocks (:mod:`.markup`), an empty list when it has nothing to say.
"""

from __future__ import annotations

from rcl_study.config.metrics import METRIC_INFO
from rcl_study.report import wording
from rcl_study.report.instrument import SequentialSummary
from rcl_study.report.markup import Block, lit
from rcl_study.report.report_input import ReportInput


def intervals(r: ReportInput) -> list[Block]:
    """Which variance the intervals over seeds include (seeds only, or seeds and data draws)."""
    said = r.stats.intervals_include
    return [("p", f"**What the intervals include.** Variation over {lit(said)}.")] if said else []


def _declaration(s: SequentialSummary) -> str:
    source = "report.primary" if s.declared else "the default family (no report.primary)"
    when = (
        "written to plan.json when the run started, before any trial ran"
        if s.plan_declared
        else "in the study file (this run's plan.json predates declarations)"
    )
    sesoi = f"SESOI {s.sesoi:g}" if s.sesoi is not None else "no SESOI (no futility stops)"
    rounds = f"planned rounds {s.rounds} (cumulative seeds)" if len(s.rounds) > 1 else "one look"
    return (
        f"Declared ({lit(source)}, {when}): {len(s.primary)} primary contrast(s) on test "
        f"{lit(s.metric)}, {sesoi}, {rounds}, alpha {s.alpha:g}. Tested by the paired t-test at "
        "each look's nominal level: O'Brien-Fleming-type alpha spending (Lan-DeMets), Holm across "
        "the primary contrasts (a rejected contrast passes its level on), and, with a SESOI, a "
        "contrast whose repeated confidence interval lies inside (-SESOI, +SESOI) decided 'no "
        "effect of that size' (rcl_study/trials/sequential.py). Every other analysis in this "
        "report is exploratory."
    )


def sequential(r: ReportInput) -> list[Block]:
    """The declared primary contrasts and their test at each look, with boundaries."""
    s = r.stats.sequential
    if s is None:
        return []
    head = ["look", "seeds", "contrast", "difference", "repeated 95%-family CI", "p (t-test)"]
    head += ["level (alpha/m)", "nominal level", "decision"]
    rows = [
        [
            str(x.look),
            str(x.seeds),
            x.contrast,
            wording.fmt(x.mean),
            wording.fmt(x.rci),
            wording.format_p(x.p, s.alpha),
            wording.fmt(x.level),
            wording.fmt(x.nominal, 6),
            x.decision,
        ]
        for x in s.looks
    ]
    bounds = ", ".join(f"{c:.3f}" for c in s.boundaries)
    ended = "; ".join(f"{lit(k)}: {how} at look {n}" for k, (how, n) in s.decided.items())
    looks = {x.look for x in s.looks}
    state = (
        f"{len(looks)} of {len(s.rounds)} looks taken ({s.seeds_run} of {s.seeds_planned} seeds "
        f"complete: every variant recorded). Decided: {ended or 'none'}."
    )
    if s.decided and len(s.decided) == len(s.primary) and len(looks) < len(s.rounds):
        state += " Every contrast was decided: the study stopped early."
    title = "Sequential test of the primary contrasts" if len(s.rounds) > 1 else "Primary contrasts"
    return [
        ("h", 2, title),
        ("p", _declaration(s)),
        ("p", f"Boundaries (z scale, at alpha/m for all {len(s.primary)} open): {bounds}. {state}"),
        ("table", head, rows),
    ]


def features(r: ReportInput) -> list[Block]:
    """Each variant's feature measures with 95% t-intervals over seeds (docs/measures.md)."""
    rows = r.stats.features
    if not rows:
        return []
    names = list(dict.fromkeys(m for row in rows for m in row.measures))
    head = ["variant", "seeds"] + [f"{m} ({_better(m)})" for m in names]
    table = [
        [row.variant, str(row.n)] + [_with_interval(row.measures.get(m)) for m in names]
        for row in rows
    ]
    return [
        ("h", 2, "Feature measures (test, mean [95% t-interval over seeds])"),
        (
            "p",
            "proj_*: the normalised projections, where the contrastive loss acts; compactness "
            "and equiangular_gap_deg: the backbone's features. Definitions and sources: "
            "docs/measures.md. Descriptive: no test, no correction.",
        ),
        ("table", head, table),
    ]


def _better(metric: str) -> str:
    info = METRIC_INFO.get(metric)
    return "higher is better" if not info or info[0] == "max" else "lower is better"


def _with_interval(v: list[float | None] | None) -> str:
    if not v:
        return "n/a"
    mean, lo, hi = v
    return wording.fmt(mean, 3) + ("" if lo is None else f" {wording.fmt([lo, hi], 3)}")


def per_class(r: ReportInput) -> list[Block]:
    """Paired per-class accuracy differences of the primary contrasts (descriptive)."""
    rows = r.stats.per_class
    if not rows:
        return []
    head = ["contrast", "class", "training images (mean over draws)", "seeds", "difference"]
    head.append("95% t-interval")
    table = [
        [
            x.contrast,
            str(x.label),
            wording.fmt(x.train_images, 1),
            str(x.n),
            wording.fmt(x.diff),
            wording.fmt(x.ci),
        ]
        for x in rows
    ]
    return [
        ("h", 2, "Per-class differences of the primary contrasts (test accuracy per class)"),
        (
            "p",
            "Paired by seed; descriptive (no test, no correction). With random tail classes "
            "(data.class_order: random) a class is rare in some draws and frequent in others: "
            "its training images are the mean over the draws.",
        ),
        ("table", head, table),
    ]
