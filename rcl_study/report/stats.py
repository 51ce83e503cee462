"""Summaries, paired tests, Holm, factorial effects, sweeps (scipy, statsmodels): pure functions.

Each function takes plain numbers and returns plain numbers, tuples or dicts, which
:mod:`rcl_study.report.analysis` turns into the typed :mod:`rcl_study.report.report_stats`; the
other statistics live beside it (``robust``: rliable's; ``power``: seed planning; ``paired``:
paired proportions). A statistic that cannot be computed is ``None`` with a note saying why (one
seed, no variance), never NaN. ``mode`` is the metric's direction
(``"max"``: higher is better), as declared in ``rcl_study.config.METRIC_INFO``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from rcl_study.report import robust

#: relative tolerance below which a spread counts as none (round-off, not variance)
TOL = 1e-9
#: fewest seeds for which any bootstrap interval is computed (mean, IQM, P(improve), profiles;
#: measured coverage of a nominal 95% interval of the mean: 0.50 at 2 seeds, 0.73 at 3, 0.84 at
#: 5; of the IQM 0.52 at 2, 0.89 at 6; of P(improve) 0.63 at 2)
MIN_BOOT_SEEDS = robust.MIN_BOOT_SEEDS
#: what a report says where a bootstrap interval is left out
BOOT_NOT_COMPUTED = f"not computed (n < {MIN_BOOT_SEEDS}: the bootstrap under-covers)"


def _clean(x: Sequence[float]) -> np.ndarray:
    arr = np.asarray([v for v in x if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def no_variance(x: Sequence[float]) -> bool:
    """True when ``x`` (>= 2 values) has no spread beyond floating-point round-off."""
    a = _clean(x)
    return len(a) >= 2 and float(np.ptp(a)) <= TOL * max(1.0, float(np.abs(a).max()))


def _clip(ci: tuple[float, float] | None, bounds: tuple[float, float] | None):
    if ci is None or bounds is None:
        return ci
    return (max(ci[0], bounds[0]), min(ci[1], bounds[1]))


def t_interval(
    values: Sequence[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean, clipped to ``bounds``; None with < 2 values."""
    x = _clean(values)
    if len(x) < 2:
        return None
    if no_variance(x):  # identical values: a zero-width interval, not a rounding artefact
        m = float(x[0]) if np.all(x == x[0]) else float(x.mean())
        return (m, m)
    sd = x.std(ddof=1)
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * sd / math.sqrt(len(x))
    return _clip((float(x.mean() - half), float(x.mean() + half)), bounds)


def bootstrap_interval(
    values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (resampling seeds); None below MIN_BOOT_SEEDS."""
    x = _clean(values)
    if len(x) < MIN_BOOT_SEEDS:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, 0.5 + confidence / 2])
    return (float(lo), float(hi))


def summarize(
    values: Sequence[float],
    confidence: float = 0.95,
    n_boot: int = 2000,
    bounds: tuple[float, float] | None = None,
) -> dict:
    """Summary of one variant over seeds, with notes saying what is missing and why.

    n, mean, sd (ddof=1), t-interval (clipped to ``bounds``), bootstrap interval from
    ``MIN_BOOT_SEEDS`` seeds up, and the interquartile mean with its bootstrap interval.
    """
    x = _clean(values)
    identical = no_variance(x)
    notes: list[str] = []
    ci_t = t_interval(x, confidence)
    clipped = _clip(ci_t, bounds)
    if clipped != ci_t:
        notes.append(f"t-interval clipped to the metric's range [{bounds[0]:g}, {bounds[1]:g}]")
    enough = len(x) >= MIN_BOOT_SEEDS
    out: dict = {
        "n": int(len(x)),
        "mean": float(x.mean()) if len(x) else None,
        "std": (0.0 if identical else float(x.std(ddof=1))) if len(x) >= 2 else None,
        "ci_t": clipped,
        "ci_boot": bootstrap_interval(x, confidence, n_boot) if enough else None,
        "iqm": robust.iqm(x) if len(x) else None,
        "iqm_ci": robust.iqm_interval(x, confidence, n_boot) if enough else None,
        "notes": notes,
    }
    if len(x) == 0:
        notes.insert(0, "no successful trial")
    elif len(x) == 1:
        notes.insert(0, "one seed: no spread or interval")
    elif identical:
        notes.insert(0, "identical values on every seed: zero spread")
    if 2 <= len(x) < MIN_BOOT_SEEDS:
        notes.append(f"bootstrap intervals (mean, IQM, P(improve)): {BOOT_NOT_COMPUTED}")
    return out


def _ncp_interval(t: float, df: int, confidence: float) -> tuple[float, float] | None:
    """Confidence interval of a noncentral t's noncentrality given one observed ``t``.

    None when a bound lies beyond |nc| = 1000 (too few seeds for a finite interval).
    """
    tail = (1 - confidence) / 2

    def cdf(nc: float) -> float:  # decreasing in nc; NaN far in the tails of scipy's nct
        v = float(stats.nct.cdf(t, df, nc))
        return v if np.isfinite(v) else (1.0 if nc < t else 0.0)

    def root(target: float) -> float | None:
        lo, hi = t - 10.0, t + 10.0
        while cdf(lo) < target:
            lo -= 10.0 + abs(lo)
            if lo < -1000:
                return None
        while cdf(hi) > target:
            hi += 10.0 + abs(hi)
            if hi > 1000:
                return None
        return float(optimize.brentq(lambda nc: cdf(nc) - target, lo, hi, xtol=1e-10))

    lo, hi = root(1 - tail), root(tail)
    return None if lo is None or hi is None else (lo, hi)


def cohens_dz(diffs: Sequence[float]) -> float | None:
    """Cohen's d_z of paired differences: mean / sd (None if < 2 values or no variance)."""
    d = _clean(diffs)
    if len(d) < 2 or no_variance(d):
        return None
    return float(d.mean() / d.std(ddof=1))


def paired_effect_sizes(diffs: Sequence[float], confidence: float = 0.95) -> dict:
    """Paired effect sizes d_z and g_z with exact confidence intervals.

    d_z = mean(d) / sd(d); Hedges' g_z = J(n-1) d_z with J(m) = 1 - 3 / (4m - 1); intervals
    from the noncentral t (inverting t = d_z sqrt(n)).
    """
    d = _clean(diffs)
    dz = cohens_dz(d)
    if dz is None:
        return {"d_z": None, "d_z_ci": None, "g_z": None, "g_z_ci": None}
    n = len(d)
    nc = _ncp_interval(dz * math.sqrt(n), n - 1, confidence)
    ci = (nc[0] / math.sqrt(n), nc[1] / math.sqrt(n)) if nc else None
    if n < 3:  # the correction is 0 at 1 df: no g_z
        return {"d_z": dz, "d_z_ci": ci, "g_z": None, "g_z_ci": None}
    j = 1 - 3 / (4 * (n - 1) - 1)
    g_ci = (j * ci[0], j * ci[1]) if ci else None
    return {"d_z": dz, "d_z_ci": ci, "g_z": j * dz, "g_z_ci": g_ci}


def _wilcoxon_floor(n_nonzero: int) -> float:
    """Smallest two-sided exact Wilcoxon p-value possible with ``n_nonzero`` differences."""
    return min(1.0, 2.0 / 2**n_nonzero)


def paired_comparison(
    baseline: Sequence[float],
    variant: Sequence[float],
    mode: str = "max",
    alpha: float = 0.05,
    n_boot: int = 2000,
) -> dict:
    """Compare a variant with the baseline over matched seeds (same order, same length).

    Returns the mean difference (variant - baseline) with its t-interval, the paired t-test and
    Wilcoxon signed-rank p-values (two-sided), d_z and g_z with intervals, the share of seeds
    improved (paired; ties one half), and rliable's probability of improvement P(variant better
    than baseline) over all pairs of runs with a stratified-bootstrap interval. ``untested`` says
    why no test was run (None when the t-test ran).
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(variant, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs matched seeds, got {a.shape} and {b.shape}")
    d = b - a
    gain = d if mode == "max" else -d
    out: dict = {
        "n": int(len(d)),
        "mean_diff": float(d.mean()) if len(d) else None,
        "ci_diff": t_interval(d),
        "sd_diff": (0.0 if no_variance(d) else float(d.std(ddof=1))) if len(d) >= 2 else None,
        "p_ttest": None,
        "p_wilcoxon": None,
        **paired_effect_sizes(d),
        "share_improved": float(np.mean((gain > 0) + 0.5 * (gain == 0))) if len(d) else None,
        "prob_improvement": robust.prob_improvement(b, a, mode) if len(d) else None,
        "prob_improvement_ci": robust.prob_improvement_interval(b, a, mode),
        "untested": None,
        "notes": [],
    }
    if len(d) == 0:
        out["untested"] = "no common seed"
    elif len(d) < 2:
        out["untested"] = "one seed"
    elif no_variance(d):
        out["untested"] = "no variance: every seed gives the same difference"
    if out["untested"]:
        out["notes"].append(f"no test ({out['untested']})")
        return out
    out["p_ttest"] = float(stats.ttest_rel(b, a).pvalue)
    nonzero = int(np.count_nonzero(np.abs(d) > TOL * max(1.0, float(np.abs(d).max()))))
    if nonzero == 0:
        out["notes"].append("no non-zero difference: Wilcoxon undefined")
        return out
    out["p_wilcoxon"] = float(stats.wilcoxon(b, a, zero_method="wilcox").pvalue)
    dropped = f" ({len(d) - nonzero} zero dropped)" if nonzero < len(d) else ""
    if _wilcoxon_floor(nonzero) >= alpha:
        out["notes"].append(
            f"Wilcoxon on {nonzero} non-zero differences{dropped} cannot reach p < {alpha:g}"
        )
    elif dropped:
        out["notes"].append(f"Wilcoxon on {nonzero} non-zero differences{dropped}")
    return out


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (statsmodels; None entries skipped and stay None)."""
    from statsmodels.stats.multitest import multipletests

    idx = [i for i, p in enumerate(pvalues) if p is not None]
    adjusted: list[float | None] = [None] * len(pvalues)
    if idx:
        adj = multipletests([float(pvalues[i]) for i in idx], method="holm")[1]
        for i, p in zip(idx, adj):
            adjusted[i] = float(p)
    return adjusted


def factorial_effects(
    design: np.ndarray,
    y: Sequence[float],
    names: Sequence[str],
    seeds: Sequence[int] | None = None,
    confidence: float = 0.95,
) -> dict:
    """Main effects and interactions of a 2^k design by ordinary least squares (statsmodels).

    ``design`` is ``[n, k]`` of 0/1 (component off/on) per observation. Factors are coded -1/+1,
    so each effect (main or interaction) is twice its regression coefficient: the change in the
    mean response when the factor goes from off to on, averaged over the other factors. With
    ``seeds`` the model is ``y ~ A*B*... + C(seed)``: seeds are blocks, matching the pairing of
    the paired tests (give seeds only when every cell has every seed).

    Returns ``{"effects": [{term, effect, se, ci, p, p_holm}], "df_resid", "model", "note"}``;
    ``p_holm`` is Holm-adjusted over the family of all 2^k - 1 terms. ``se``/``ci``/``p`` are
    None without residual degrees of freedom or without residual variance.
    """
    import statsmodels.formula.api as smf

    X01 = np.asarray(design, dtype=float)
    yv = np.asarray(y, dtype=float)
    k = X01.shape[1]
    frame = pd.DataFrame(2 * X01 - 1, columns=[f"f{i}" for i in range(k)])
    frame["y"] = yv
    rhs = "*".join(frame.columns[:k])
    if seeds is not None:
        frame["seed"] = [str(s) for s in seeds]
        rhs += " + C(seed)"
    fit = smf.ols(f"y ~ {rhs}", data=frame).fit()
    df = int(round(fit.df_resid))
    model = "OLS y ~ " + "*".join(names) + (" + C(seed)" if seeds is not None else "")
    out: dict = {"df_resid": df, "effects": [], "note": None, "model": model}
    scale = max(1.0, float(np.abs(yv).max()))
    if df <= 0:
        out["note"] = "no replicate seeds: effects without standard errors"
    elif float(fit.ssr) <= (TOL * scale) ** 2 * len(yv):
        out["note"] = "no test (no variance: the model fits every seed exactly)"
    tested = out["note"] is None
    tcrit = stats.t.ppf(0.5 + confidence / 2, df) if tested else None
    for order in range(1, k + 1):
        for combo in itertools.combinations(range(k), order):
            key = ":".join(f"f{i}" for i in combo)
            eff = 2 * float(fit.params[key])
            row: dict = {
                "term": ":".join(names[i] for i in combo),
                "effect": eff,
                "se": None,
                "ci": None,
                "p": None,
            }
            if tested:
                se = 2 * float(fit.bse[key])
                row.update(
                    se=se, ci=(eff - tcrit * se, eff + tcrit * se), p=float(fit.pvalues[key])
                )
            out["effects"].append(row)
    for row, adj in zip(out["effects"], holm([e["p"] for e in out["effects"]])):
        row["p_holm"] = adj
    return out


#: what a choice made on the test set says (records from before the validation split)
ON_TEST = "chosen on the test set (old records without a validation split): optimistic"


def _finite_groups(groups: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """``groups`` without missing or non-finite results, and without empty values."""
    out = {
        k: {s: v for s, v in g.items() if v is not None and np.isfinite(v)}
        for k, g in groups.items()
    }
    return {k: g for k, g in out.items() if g}


def split_seeds(common: Sequence[int]) -> tuple[list[int], list[int], bool]:
    """(selection seeds, report seeds, held out): halves from 4 common seeds up, else all both."""
    common = sorted(common)
    if len(common) >= 4:
        return common[: len(common) // 2], common[len(common) // 2 :], True
    return common, common, False


def best_of_sweep(
    groups: dict[str, dict[int, float]],
    mode: str = "max",
    alpha: float = 0.05,
    select: dict[str, dict[int, float]] | None = None,
) -> dict | None:
    """The swept value chosen on validation of some seeds, reported on test of others.

    ``groups`` maps each swept value (as text) to ``{seed: test result}``; ``select`` the same
    for the validation results (``val_<metric>``). On the seeds every value finished (in both):
    with 4 or more, the first half (sorted) selects the value with the best mean validation
    result, and the second half reports its mean TEST result, t-interval and paired tests
    (on test) against every other value, Holm over those tests; with fewer, selection and report
    share the seeds, no interval of the best is given and the note says the advantage is
    optimistic. Without ``select`` (old records without a validation split) the choice is made
    on test and the note says so (:data:`ON_TEST`). ``selected_by`` names the split chosen on.
    """
    groups = _finite_groups(groups)
    chooser = _finite_groups(select) if select is not None else None
    if chooser is not None:
        groups = {k: g for k, g in groups.items() if k in chooser}
        chooser = {k: chooser[k] for k in groups}
    if not groups:
        return None
    on = chooser if chooser is not None else groups
    common = sorted(
        set.intersection(*(set(g) for g in groups.values()), *(set(g) for g in on.values()))
    )
    sel, report, held_out = split_seeds(common)
    if not sel:
        return {"value": None, "note": "no seed where every value finished"}
    sel_means = {k: float(np.mean([g[s] for s in sel])) for k, g in on.items()}
    best = (max if mode == "max" else min)(sel_means, key=sel_means.get)
    best_vals = [groups[best][s] for s in report]
    comps = []
    for k, g in groups.items():
        if k != best:
            c = paired_comparison([g[s] for s in report], best_vals, mode, alpha, n_boot=500)
            comps.append(
                {
                    "other": k,
                    "mean_diff": c["mean_diff"],
                    "sd_diff": c["sd_diff"],
                    "n": c["n"],
                    "p": c["p_ttest"],
                    "untested": c["untested"],
                }
            )
    for c, adj in zip(comps, holm([c["p"] for c in comps])):
        c["p_holm"] = adj
    notes = [] if chooser is not None else [ON_TEST]
    if not held_out:
        notes.append(
            f"only {len(common)} common seeds: chosen and reported on the same seeds, so the "
            "best's advantage is optimistic"
        )
    return {
        "value": best,
        "selected_by": "validation" if chooser is not None else "test",
        "selected_on": [int(s) for s in sel],
        "selection_means": sel_means,
        "reported_on": [int(s) for s in report],
        "held_out": held_out,
        "mean": float(np.mean(best_vals)),
        "ci_t": t_interval(best_vals) if held_out else None,
        "versus": comps,
        "note": "; ".join(notes) or None,
    }
