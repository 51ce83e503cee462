"""What a report shows at its number of seeds: an analysis that cannot say anything is left out.

The report says once why, each note in the one section that would have shown it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rcl_study.report.report_stats import PairedTest, VariantSummary

#: the IQM (trim_mean(x, 0.25)) cuts floor(n / 4) seeds from each end: below 4 it is the mean
MIN_IQM_SEEDS = 4
#: below 5 runs a performance profile is a step function of at most 4 steps: the runs themselves
MIN_PROFILE_SEEDS = 5
#: below 5 seeds per arm P(improve) takes at most 16 pairs of runs: a coarse share, no interval
MIN_IMPROVE_SEEDS = 5


def wilcoxon_floor(n: int) -> float:
    """The smallest exact two-sided Wilcoxon signed-rank p-value with ``n`` pairs: 2 / 2**n."""
    return min(1.0, 2.0 / 2**n)


def tested(tests: Sequence[PairedTest]) -> list[PairedTest]:
    """The tests of a Holm family that ran (a p-value); the others are outside the family."""
    return [t for t in tests if t.p_ttest is not None]


def wilcoxon_note(tests: Sequence[PairedTest], alpha: float) -> str | None:
    """Why no Wilcoxon column is shown, or None when it is.

    Not shown when even the smallest Wilcoxon p at the family's largest number of seeds is at or
    above Holm's first level alpha / m (m: the tests that ran): none could be significant.
    """
    ran = tested(tests)
    if not ran:
        return None
    n, m = max(t.n for t in ran), len(ran)
    floor = wilcoxon_floor(n)
    if floor < alpha / m:
        return None
    return (
        f"Wilcoxon not shown: with {n} seeds its smallest p is {floor:.3g}, above alpha/m = "
        f"{alpha:g}/{m} = {alpha / m:.3g}"
    )


def shown_notes(notes: Sequence[str], wilcoxon: bool) -> list[str]:
    """A row's notes, without its Wilcoxon notes where the Wilcoxon columns are not shown."""
    return [n for n in notes if wilcoxon or "Wilcoxon" not in n]


def iqm_shown(variants: Sequence[VariantSummary]) -> bool:
    """Whether some variant has the seeds for an IQM that trims anything."""
    return any(v.n >= MIN_IQM_SEEDS for v in variants)


def iqm_note(variants: Sequence[VariantSummary]) -> str | None:
    """Why the IQM column is not shown, or None when it is."""
    if iqm_shown(variants):
        return None
    return (
        f"IQM not shown: it cuts floor(n/4) seeds from each end, none below {MIN_IQM_SEEDS} seeds, "
        "where it equals the mean"
    )


def profile_shown(ns: Sequence[int]) -> bool:
    """Whether some variant has the runs for a performance profile (``ns``: runs per variant)."""
    return any(n >= MIN_PROFILE_SEEDS for n in ns)


def profile_note(variants: Sequence[VariantSummary]) -> str | None:
    """Why no performance profile is drawn, or None when one is (or nothing finished)."""
    ns = [v.n for v in variants if v.n]
    if not ns or profile_shown(ns):
        return None
    return (
        f"Performance profiles not shown: below {MIN_PROFILE_SEEDS} seeds a profile is a step "
        "function through the few runs themselves"
    )


def improve_shown(tests: Sequence[PairedTest]) -> bool:
    """Whether some comparison has the seeds for P(improve)."""
    return any(t.n >= MIN_IMPROVE_SEEDS for t in tests)


def improve_note(tests: Sequence[PairedTest]) -> str | None:
    """Why the P(improve) column is not shown, or None when it is."""
    if not tests or improve_shown(tests):
        return None
    return (
        f"P(improve) not shown: below {MIN_IMPROVE_SEEDS} seeds per arm it is a share of at most "
        f"{(MIN_IMPROVE_SEEDS - 1) ** 2} pairs of runs"
    )
