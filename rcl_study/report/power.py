"""Seed planning for paired comparisons: minimum detectable effect and seeds needed.

Power of the two-sided paired t-test (scipy's noncentral t; the tests check it against
statsmodels' ``TTestPower``): with n seeds and sd of
paired differences ``sd``, the minimum detectable effect (MDE) is the smallest mean difference
found with the given power at level ``alpha / family``. Holm's first (smallest) p-value is
compared with ``alpha / m``, so planning at ``alpha / m`` is Holm's conservative bound: the
actual power of Holm's step-down procedure is at least this.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize

from rcl_study.report.report_stats import Mde, MdeRow, SeedPlan, SeedsNeeded
from rcl_study.trials.sequential import t_power_nc

POWER = 0.8
MAX_SEEDS = 100_000


def t_power(effect_size: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs at level ``alpha``.

    ``effect_size`` is standardised (mean / sd of the differences): noncentrality
    ``effect_size * sqrt(n)`` with ``n - 1`` df (:func:`t_power_nc`).
    """
    return t_power_nc(effect_size * math.sqrt(n), n - 1, alpha)


def mde_se(
    se: float | None, df: int, alpha: float = 0.05, family: int = 1, power: float = POWER
) -> float | None:
    """Minimum detectable effect of a two-sided t-test of an estimate with standard error ``se``.

    The smallest true effect found with ``power`` at level ``alpha / family``: ``nc * se`` with
    ``t_power_nc(nc, df, alpha / family) = power``. None without df or a finite ``se``. The one
    power computation of every analysis (paired comparisons: ``se = sd / sqrt(n)``,
    ``df = n - 1``; a factorial term: its OLS standard error and residual df).
    """
    if df < 1 or se is None or not np.isfinite(se):
        return None
    if se == 0:
        return 0.0
    a = alpha / max(1, family)

    def gap(nc: float) -> float:
        return t_power_nc(nc, df, a) - power

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-12)) * se


def mde(n: int, sd: float, alpha: float = 0.05, family: int = 1, power: float = POWER):
    """Minimum detectable mean paired difference with ``n`` seeds (None below 2 seeds)."""
    if n < 2 or sd is None or not np.isfinite(sd):
        return None
    return mde_se(sd / math.sqrt(n), n - 1, alpha, family, power)


def mde_info(
    value: float | None, analysis: str, test: str, alpha: float, family: int, basis: str
) -> Mde | None:
    """One analysis's MDE with what it applies to (for the report's words); None without one."""
    if value is None:
        return None
    return Mde(value, analysis, test, alpha, max(1, family), POWER, basis)


Bounds = tuple[float, float] | None


def beyond_range(value: float | None, bounds: Bounds) -> bool:
    """Whether an effect ``value`` is wider than the metric's range (no such difference exists)."""
    return value is not None and bounds is not None and value > bounds[1] - bounds[0]


def _range(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:g}, {bounds[1]:g}]"


def mde_words(info: Mde, metric: str, bounds: Bounds = None) -> str:
    """What an MDE means, said plainly (no "detects differences of about X").

    "80% power at alpha/m for X": if the true difference were X, this design would call it
    significant in 80% of repetitions and miss it in 20%; smaller ones are missed more often.
    An MDE wider than the metric's range ``bounds`` is said as such, not as a number.
    """
    if beyond_range(info.value, bounds):
        return (
            f"MDE of the {info.analysis}: no effect within the metric's range is detectable "
            f"with {info.basis} ({info.test} on test {metric}, range {_range(bounds)}, at "
            f"alpha/m = {info.alpha:g}/{info.family}): a non-significant result says nothing "
            "about the size of the difference"
        )
    return (
        f"MDE of the {info.analysis}: {info.value:.3g} on test {metric} ({info.test} "
        f"at alpha/m = {info.alpha:g}/{info.family}, {info.basis}): were the true "
        f"difference {info.value:.3g}, this design would find it significant in "
        f"{info.power:.0%} of repeated studies and miss it in {1 - info.power:.0%}; "
        "smaller true differences are missed more often, so a non-significant result does not "
        "show that the difference is smaller"
    )


def seeds_needed(
    effect: float, sd: float, alpha: float = 0.05, family: int = 1, power: float = POWER
) -> int | None:
    """Fewest seeds (>= 2) whose paired t-test detects ``effect`` with ``power``."""
    if effect <= 0 or sd is None or not np.isfinite(sd):
        return None
    if sd == 0:
        return 2
    d, a = effect / sd, alpha / family
    lo, hi = 1, 2
    while t_power(d, hi, a) < power:
        lo, hi = hi, hi * 2
        if hi > MAX_SEEDS:
            return None
    while hi - lo > 1:  # power rises with n: bisection on the integers
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if t_power(d, mid, a) >= power else (mid, hi)
    return hi


def pooled_sd(sds: Sequence[tuple[float, int]]) -> tuple[float, int] | None:
    """Pooled sd of paired differences from ``(sd, n)`` per comparison, with its df.

    The square root of the (n - 1)-weighted mean variance.
    """
    use = [(s, n) for s, n in sds if s is not None and n >= 2]
    df = sum(n - 1 for _, n in use)
    if not df:
        return None
    return math.sqrt(sum((n - 1) * s * s for s, n in use) / df), df


def plan(
    sd: float,
    n_now: int,
    alpha: float,
    family: int,
    effects: Sequence[float],
    source: str,
    power: float = POWER,
) -> SeedPlan:
    """The seed plan: the MDE at ``n_now`` seeds, an MDE table and seeds per target effect."""
    family = max(1, family)
    return SeedPlan(
        sd,
        source,
        alpha,
        family,
        power,
        n_now,
        mde(n_now, sd, alpha, family, power),
        [MdeRow(n, mde(n, sd, alpha, family, power)) for n in (2, 3, 5, 8, 10, 15, 20)],
        [SeedsNeeded(e, seeds_needed(e, sd, alpha, family, power)) for e in effects],
    )


def plan_lines(p: SeedPlan, bounds: Bounds = None) -> list[str]:
    """A seed plan as short lines of text (CLI and report).

    An MDE wider than the metric's range ``bounds`` reads "none within the metric's range".
    """
    a = p.alpha / p.family
    none = f"none within the metric's range {_range(bounds)}" if bounds else ""

    def said(value: float) -> str:
        return "out of range" if beyond_range(value, bounds) else f"{value:.3g}"

    out = [
        f"sd of paired differences: {p.sd:.4g} ({p.source})",
        f"test: two-sided paired t-test, power {p.power:.0%}, level alpha/m = "
        f"{p.alpha:g}/{p.family} = {a:.4g} (Holm's conservative bound, family of "
        f"{p.family} comparison{'s' if p.family > 1 else ''})",
    ]
    if p.mde_now is not None:
        now = none if beyond_range(p.mde_now, bounds) else f"{p.mde_now:.4g}"
        out.append(f"minimum detectable effect with the study's {p.n_now} seeds: {now}")
    out.append(
        "MDE by seeds: "
        + ", ".join(f"{r.seeds}: {said(r.mde)}" for r in p.mde_table if r.mde is not None)
    )
    for r in p.needed:
        out.append(f"seeds needed for an effect of {r.effect:g}: {r.seeds}")
    return out
