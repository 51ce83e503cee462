"""The only statistics of the toolkit (scipy), as pure functions over plain numbers.

Every function returns plain dicts; a statistic that cannot be computed is ``None`` with a
``note`` saying why (one seed, identical values), never NaN.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def _clean(x: Sequence[float]) -> np.ndarray:
    arr = np.asarray([v for v in x if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean; None with fewer than 2 values."""
    x = _clean(values)
    if len(x) < 2:
        return None
    if np.all(x == x[0]):  # identical values: a zero-width interval, not a rounding artefact
        return (float(x[0]), float(x[0]))
    sd = x.std(ddof=1)
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * sd / math.sqrt(len(x))
    return (float(x.mean() - half), float(x.mean() + half))


def bootstrap_interval(
    values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (resampling seeds); None with < 2 values."""
    x = _clean(values)
    if len(x) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, 0.5 + confidence / 2])
    return (float(lo), float(hi))


def summarize(values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000) -> dict:
    """n, mean, standard deviation (ddof=1) and t / bootstrap intervals of one variant."""
    x = _clean(values)
    identical = len(x) >= 2 and bool(np.all(x == x[0]))
    out: dict = {
        "n": int(len(x)),
        "mean": float(x.mean()) if len(x) else None,
        "std": (0.0 if identical else float(x.std(ddof=1))) if len(x) >= 2 else None,
        "ci_t": t_interval(x, confidence),
        "ci_boot": bootstrap_interval(x, confidence, n_boot),
    }
    if len(x) == 0:
        out["note"] = "no successful trial"
    elif len(x) == 1:
        out["note"] = "one seed: no spread or interval"
    elif identical:
        out["note"] = "identical values on every seed: zero spread"
    return out


def cohens_dz(diffs: Sequence[float]) -> float | None:
    """Cohen's d_z of paired differences: mean / sd (None if < 2 values or sd = 0)."""
    d = _clean(diffs)
    if len(d) < 2 or d.std(ddof=1) == 0:
        return None
    return float(d.mean() / d.std(ddof=1))


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Hedges' g of ``b - a`` with the pooled sd and the small-sample correction."""
    x, y = _clean(a), _clean(b)
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return None
    pooled = math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0:
        return None
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    return float((y.mean() - x.mean()) / pooled * correction)


def paired_comparison(baseline: Sequence[float], variant: Sequence[float]) -> dict:
    """Compare a variant with the baseline over matched seeds (same order, same length).

    Returns the mean difference (variant - baseline) with its t-interval, the paired t-test and
    Wilcoxon signed-rank p-values (two-sided), Cohen's d_z, Hedges' g and the probability of
    improvement (share of seeds where the variant is better; ties count one half).
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(variant, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs matched seeds, got {a.shape} and {b.shape}")
    d = b - a
    out: dict = {
        "n": int(len(d)),
        "mean_diff": float(d.mean()) if len(d) else None,
        "ci_diff": t_interval(d),
        "p_ttest": None,
        "p_wilcoxon": None,
        "d_z": cohens_dz(d),
        "hedges_g": hedges_g(a, b),
        "prob_improvement": float(np.mean((d > 0) + 0.5 * (d == 0))) if len(d) else None,
        "notes": [],
    }
    if len(d) < 2:
        out["notes"].append("one seed: no test")
        return out
    if np.all(d == d[0]):
        out["notes"].append("identical differences on every seed: tests undefined")
        return out
    out["p_ttest"] = float(stats.ttest_rel(b, a).pvalue)
    if np.all(d == 0) or np.count_nonzero(d) < 1:
        out["notes"].append("no non-zero difference: Wilcoxon undefined")
    else:
        out["p_wilcoxon"] = float(stats.wilcoxon(b, a, zero_method="wilcox").pvalue)
        if len(d) < 6:
            out["notes"].append(f"Wilcoxon with {len(d)} seeds cannot reach p < 0.05")
    return out


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None entries are skipped and stay None)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    order = sorted(idx, key=lambda i: pvalues[i])
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def factorial_effects(
    design: np.ndarray, y: Sequence[float], names: Sequence[str], confidence: float = 0.95
) -> dict:
    """Main effects and interactions of a 2^k design by least squares (seeds are replicates).

    ``design`` is ``[n, k]`` of 0/1 (component off/on) per observation. Factors are coded -1/+1,
    so each effect (main or interaction) is twice its regression coefficient: the change in the
    mean response when the factor goes from off to on, averaged over the other factors.

    Returns ``{"effects": [{term, effect, se, ci, p}], "df_resid", "note"}``; ``se``/``ci``/``p``
    are None when there are no residual degrees of freedom (one seed).
    """
    X01 = np.asarray(design, dtype=float)
    yv = np.asarray(y, dtype=float)
    n, k = X01.shape
    coded = 2 * X01 - 1
    terms, cols = [], []
    for order in range(1, k + 1):
        for combo in itertools.combinations(range(k), order):
            terms.append(":".join(names[i] for i in combo))
            cols.append(np.prod(coded[:, combo], axis=1))
    X = np.column_stack([np.ones(n)] + cols)
    coef, *_ = np.linalg.lstsq(X, yv, rcond=None)
    resid = yv - X @ coef
    df = n - np.linalg.matrix_rank(X)
    out: dict = {"df_resid": int(df), "effects": [], "note": None}
    cov = None
    if df > 0:
        sigma2 = float(resid @ resid) / df
        cov = sigma2 * np.linalg.pinv(X.T @ X)
    else:
        out["note"] = "no replicate seeds: effects without standard errors"
    tcrit = stats.t.ppf(0.5 + confidence / 2, df) if df > 0 else None
    for j, term in enumerate(terms, start=1):
        eff = 2 * float(coef[j])
        row: dict = {"term": term, "effect": eff, "se": None, "ci": None, "p": None}
        if cov is not None:
            se = 2 * math.sqrt(max(cov[j, j], 0.0))
            row["se"] = se
            row["ci"] = (eff - tcrit * se, eff + tcrit * se)
            row["p"] = float(2 * stats.t.sf(abs(eff) / se, df)) if se > 0 else None
        out["effects"].append(row)
    return out


def best_of_sweep(groups: dict[str, Sequence[float]], mode: str = "max") -> dict | None:
    """The swept value with the best mean, with its t-interval and how many values tie with it.

    ``groups`` maps each swept value (as text) to its per-seed results.
    """
    means = {k: float(np.mean(_clean(v))) for k, v in groups.items() if len(_clean(v))}
    if not means:
        return None
    best = max(means, key=means.get) if mode == "max" else min(means, key=means.get)
    ci = t_interval(groups[best])
    overlapping = [k for k in means if k != best and ci is not None and ci[0] <= means[k] <= ci[1]]
    return {"value": best, "mean": means[best], "ci_t": ci, "within_ci": overlapping}
