"""A declared ``report.within`` analysis: the effect of one grid key at each value of another.

Paired by seed at each value, Holm over the values tested, a one-way ANOVA of whether the effect
changes across values, and the MDE of those paired tests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from rcl_study.report import stats
from rcl_study.report.analysis import paired
from rcl_study.report.mdes import pooled_mde
from rcl_study.report.report_stats import IDENTICAL, Anova, Mde, WithinAnalysis, WithinRow
from rcl_study.report.table import mean_of, ok_rows
from rcl_study.trials.design import within_keys


def same_value(a: Any, b: Any) -> bool:
    """Whether two grid values are the same point.

    Numbers by value (``100 == 100.0``, as pandas stores a mixed column); a missing value (None,
    NaN) equals only another missing one; booleans only booleans; anything else by its text.
    """

    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    if missing(a) or missing(b):
        return missing(a) and missing(b)
    numeric = (int, float, np.integer, np.floating)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, numeric) and isinstance(b, numeric):
        return float(a) == float(b)
    return str(a) == str(b)


def _with_holm(rows: list[dict[str, Any]]) -> list[WithinRow]:
    """The rows with Holm-adjusted t-test and Wilcoxon p-values (one family: these rows)."""
    adj = {k: stats.holm([r[k] for r in rows]) for k in ("p_ttest", "p_wilcoxon")}
    return [
        WithinRow(**r, p_ttest_holm=t, p_wilcoxon_holm=w)
        for r, t, w in zip(rows, adj["p_ttest"], adj["p_wilcoxon"])
    ]


def within_effects(
    df: pd.DataFrame,
    metric: str,
    within: str,
    other: str,
    values: list[Any],
    levels: list[Any],
    mode: str,
    alpha: float,
    n_boot: int,
) -> WithinAnalysis:
    """The effect of ``other`` (``values[1]`` minus ``values[0]``) at each of ``levels``.

    ``levels`` are the grid's values of ``within``, in its order. Rows are matched to grid
    values by :func:`same_value`. Paired by seed at each level
    (:func:`.analysis.paired`; seeds missing from either arm are left out and named), Holm
    over the levels that could be tested (one family; ``tested`` counts them); whether the effect
    changes across levels: a one-way ANOVA of the per-seed differences of the levels whose arms
    are not identical by construction (scipy ``f_oneway``; the
    levels are assumed independent: an assumption, since they share seed numbers and the test
    set); the MDE of the paired tests from the pooled sd of the tested levels.
    """
    ok = ok_rows(df, metric)
    control, treatment = values
    empty = WithinAnalysis(within, other, str(control), str(treatment), [], None, None, 0)
    if within not in ok or other not in ok:
        return empty
    rows: list[dict[str, Any]] = []
    groups: list[np.ndarray] = []

    def arm(at: pd.DataFrame, value: Any) -> pd.Series:
        keep = at[other].map(lambda v: same_value(v, value))
        return at[keep.astype(bool)].set_index("seed")[metric].astype(float)

    for level in levels:
        at = ok[ok[within].map(lambda v, lv=level: same_value(v, lv)).astype(bool)]
        c, t = arm(at, control), arm(at, treatment)
        seeds = sorted(set(c.index) & set(t.index))
        res = paired(c.loc[seeds].tolist(), t.loc[seeds].tolist(), mode, alpha, n_boot)
        missing = sorted(set(c.index) ^ set(t.index))
        if missing:
            res["notes"].append(f"seeds {missing} have one arm only: left out")
        res.update(
            level=str(level),
            seeds=[int(s) for s in seeds],
            control_mean=mean_of(c.loc[seeds]),
            treatment_mean=mean_of(t.loc[seeds]),
        )
        rows.append(res)
        if res["untested"] != IDENTICAL:  # the same arms by construction: no effect to compare
            groups.append(t.loc[seeds].to_numpy() - c.loc[seeds].to_numpy())
    typed = _with_holm(rows)
    tested = [r for r in typed if r.p_ttest is not None]
    return WithinAnalysis(
        within,
        other,
        str(control),
        str(treatment),
        typed,
        _anova(groups),
        _within_mde(tested, other, alpha),
        len(tested),
    )


def within_of(cfg: Any, df: pd.DataFrame, n_boot: int = 2000) -> WithinAnalysis | None:
    """The study's declared ``report.within`` analysis (:func:`within_effects` on its grid).

    None when it declares none or ``df`` is empty.
    """
    keys = within_keys(cfg)
    if not keys or not len(df):
        return None
    within, other = keys
    grid, st = cfg.study.grid, cfg.study
    return within_effects(
        df,
        st.metric,
        within,
        other,
        list(grid[other]),
        list(grid[within]),
        st.mode,
        cfg.report.alpha,
        n_boot,
    )


def _anova(groups: list[np.ndarray]) -> Anova:
    """One-way ANOVA of the per-seed differences across the groups (``untested`` says why not)."""
    from scipy import stats as sps

    usable = [g for g in groups if len(g) >= 2]
    n = sum(len(g) for g in usable)
    if len(usable) < 2 or n - len(usable) < 1:
        return Anova(None, None, None, "fewer than two values with at least two seeds each")
    if all(stats.no_variance(g) for g in usable):
        return Anova(None, None, None, "no variance within any value")
    res = sps.f_oneway(*usable)
    return Anova(float(res.statistic), float(res.pvalue), [len(usable) - 1, n - len(usable)], None)


def _within_mde(tested: list[WithinRow], other: str, alpha: float) -> Mde | None:
    """The MDE of the tested levels' paired t-tests (Holm family: those levels)."""
    if not tested:
        return None
    pairs = [(r.sd_diff, r.n) for r in tested]
    n, m = min(r.n for r in tested), len(tested)
    return pooled_mde(pairs, n, m, f"paired tests of {other} at each value", alpha, "seeds")
