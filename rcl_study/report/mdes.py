"""The minimum detectable effect of each analysis of a report, from its own test and family."""

from __future__ import annotations

from typing import Any

from rcl_study.report import power
from rcl_study.report.report_stats import FactorialEffects, Mde, SeedPlan, SweepBest


def comparisons_mde(plan: SeedPlan | None, alpha: float) -> Mde | None:
    """The MDE of the paired comparisons with the baseline, from the seed plan (its pooled sd)."""
    if not plan or plan.mde_now is None:
        return None
    return power.mde_info(
        plan.mde_now,
        "paired comparisons with the baseline",
        "paired t-test",
        alpha,
        plan.family,
        f"{plan.n_now} seeds, pooled sd of paired differences {plan.sd:.3g}",
    )


def factorial_mde(fx: FactorialEffects | None, alpha: float) -> Mde | None:
    """The MDE of a factorial model's terms: the t-test of one term at alpha / (its terms).

    From the largest standard error of a term (all are equal in a complete 2^k design) and the
    model's residual df; None without standard errors.
    """
    ses = [e.se for e in (fx.effects if fx else []) if e.se is not None]
    if not ses:
        return None
    se, df, m = max(ses), int(fx.df_resid), len(fx.effects)
    return power.mde_info(
        power.mde_se(se, df, alpha, m),
        "factorial terms",
        "t-test of a term in the OLS model",
        alpha,
        m,
        f"standard error of an effect {se:.3g}, {df} residual df",
    )


def pooled_mde(
    pairs: list[tuple[Any, int]], n: int, m: int, analysis: str, alpha: float, seeds: str
) -> Mde | None:
    """The MDE of a family of ``m`` paired t-tests on ``n`` seeds, from their pooled sd.

    ``pairs``: ``(sd of paired differences, n)`` per test. None without a positive pooled sd.
    """
    pooled = power.pooled_sd(pairs)
    if not pooled or not pooled[0]:
        return None
    return power.mde_info(
        power.mde(n, pooled[0], alpha, m),
        analysis,
        "paired t-test",
        alpha,
        m,
        f"{n} {seeds}, pooled sd of paired differences {pooled[0]:.3g}",
    )


def sweep_mde(key: str, best: SweepBest | None, alpha: float) -> Mde | None:
    """The MDE of a grid's best-versus-other tests on the report seeds (pooled paired sd)."""
    if not best or not best.versus:
        return None
    pairs = [(v.sd_diff, v.n) for v in best.versus]
    n, m = len(best.reported_on), len(best.versus)
    return pooled_mde(pairs, n, m, f"best-versus-other tests of {key}", alpha, "report seeds")
