"""Paired proportions: two scorings of the same items, their gap, its interval and its test (pure).

Two scorings ``a`` and ``b`` of the same ``n`` items (the same images under a lossless and a
JPEG copy, the same model) form a paired 2x2 table: ``both`` right, ``only_a`` right under a
only, ``only_b`` right under b only, ``neither``. Then:

- ``gap = acc_a - acc_b = (only_a - only_b) / n``;
- its confidence interval: Newcombe (1998), "Improved confidence intervals for the difference
  between binomial proportions based on paired data", Statistics in Medicine 17:2635-2650,
  method 10 (Wilson score intervals of the two marginal proportions, combined with the phi
  correlation of the paired 2x2 table);
- the exact McNemar test of "no gap": two-sided binomial test of ``only_a`` out of
  ``only_a + only_b`` at 1/2.

Used by :mod:`rcl_study.report.jpeg_gap` (the lossless-vs-JPEG handicap of a checkpoint).
Numpy and scipy only; nothing of the package is imported.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["mcnemar_exact_p", "newcombe_paired_interval", "paired_gap", "wilson_interval"]


def wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a single proportion ``successes / n`` at normal quantile ``z``.

    Wilson (1927), "Probable inference, the law of succession, and statistical inference",
    JASA 22:209-212; the limits are clipped to [0, 1].
    """
    p = successes / n
    centre = (2 * n * p + z * z) / (2 * (n + z * z))
    half = z * math.sqrt(z * z + 4 * n * p * (1 - p)) / (2 * (n + z * z))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired_interval(
    both: int, only_a: int, only_b: int, neither: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's (1998) method 10 interval for ``p_a - p_b`` from a paired 2x2 table.

    Args:
        both: pairs a success under both conditions (``a`` in Newcombe's table).
        only_a: success under condition a only (``b``).
        only_b: success under condition b only (``c``).
        neither: failure under both (``d``).
        confidence: two-sided level.

    Returns:
        (lower, upper) for ``p_a - p_b = (only_a - only_b) / n``.

    Raises:
        ValueError: the table is empty.

    """
    n = both + only_a + only_b + neither
    if n == 0:
        raise ValueError("an empty table has no interval")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson_interval(both + only_a, n, z)
    l2, u2 = wilson_interval(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    if margins == 0:
        phi = 0.0
    else:
        num = both * neither - only_a * only_b
        if num > 0:  # Newcombe's continuity adjustment of phi toward zero
            num = max(num - n / 2, 0.0)
        phi = num / math.sqrt(margins)
    d = p1 - p2
    lo = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, lo), min(1.0, hi)


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p: binomial test of ``only_a`` of ``only_a + only_b`` at 1/2.

    McNemar (1947), "Note on the sampling error of the difference between correlated proportions
    or percentages", Psychometrika 12:153-157, in its exact (binomial) form; 1 when no pair
    differs.
    """
    m = only_a + only_b
    if m == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2**m
    return min(1.0, 2 * tail)


def paired_gap(correct_a: np.ndarray, correct_b: np.ndarray, confidence: float = 0.95) -> dict:
    """Accuracies of two paired scorings of the same items, their gap, its interval and test.

    Shape: bool ``[N]`` and bool ``[N]`` (item i right under a / under b) -> dict with ``n``,
    ``acc_a``, ``acc_b``, ``gap``, ``gap_ci`` (:func:`newcombe_paired_interval`),
    ``confidence``, ``ci_method``, ``table`` and ``mcnemar_exact_p``.

    Raises:
        ValueError: the masks differ in shape, are not 1-d, or are empty.

    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal, non-empty 1-d masks, got {a.shape} and {b.shape}")
    both, only_a = int(np.sum(a & b)), int(np.sum(a & ~b))
    only_b, neither = int(np.sum(~a & b)), int(np.sum(~a & ~b))
    lo, hi = newcombe_paired_interval(both, only_a, only_b, neither, confidence)
    n = a.size
    return {
        "n": n,
        "acc_a": (both + only_a) / n,
        "acc_b": (both + only_b) / n,
        "gap": (only_a - only_b) / n,
        "gap_ci": [lo, hi],
        "confidence": confidence,
        "ci_method": "Newcombe (1998) paired method 10 (Wilson score, phi-corrected)",
        "table": {"both": both, "only_a": only_a, "only_b": only_b, "neither": neither},
        "mcnemar_exact_p": mcnemar_exact_p(only_a, only_b),
    }
