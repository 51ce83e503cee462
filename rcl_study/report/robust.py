"""rliable's statistics (Agarwal et al., NeurIPS 2021) in numpy/scipy.

Interquartile mean, probability of improvement and performance profiles, each with a
stratified-bootstrap interval: runs (seeds) are resampled with replacement within each stratum
(here one stratum per variant, since a study has one task), with a fixed seed so a report is
reproducible. We do not depend on the ``rliable`` package (1.2.0): it pulls in ``arch``
(pinned below 8) and ``absl-py`` for three short functions that numpy and scipy compute
directly and the tests check by hand; its bootstrap (``arch``, 50,000 reps by default, seeded
through ``random_state``) would give the same kind of interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

SEED = 0


def _arr(x: Sequence[float]) -> np.ndarray:
    a = np.asarray([v for v in x if v is not None], dtype=float)
    return a[np.isfinite(a)]


def iqm(x: Sequence[float]) -> float | None:
    """Interquartile mean: the mean of the middle 50% of runs.

    25% trimmed from each end, as ``scipy.stats.trim_mean(x, 0.25)``, which rliable uses.
    """
    a = _arr(x)
    return float(stats.trim_mean(a, 0.25)) if len(a) else None


def _percentile(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    lo, hi = np.quantile(reps, [(1 - confidence) / 2, 0.5 + confidence / 2], axis=0)
    return float(lo), float(hi)


def iqm_interval(
    x: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = SEED
) -> tuple[float, float] | None:
    """Percentile stratified-bootstrap interval of the IQM (None with < 2 runs)."""
    a = _arr(x)
    if len(a) < 2:
        return None
    rng = np.random.default_rng(seed)
    samples = a[rng.integers(0, len(a), size=(n_boot, len(a)))]
    return _percentile(stats.trim_mean(samples, 0.25, axis=1), confidence)


def _pairwise_better(x: np.ndarray, y: np.ndarray, mode: str) -> np.ndarray:
    """P(X better than Y) + 0.5 P(tie) for each row pair of ``x [B, n]`` and ``y [B, m]``."""
    diff = x[..., :, None] - y[..., None, :]
    if mode == "min":
        diff = -diff
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-2, -1))


def prob_improvement(x: Sequence[float], y: Sequence[float], mode: str = "max") -> float | None:
    """Rliable's probability of improvement P(X > Y).

    The Mann-Whitney U statistic over all pairs of runs of X and Y divided by their number,
    ties counting one half; for ``mode="min"`` "better" means lower.
    """
    a, b = _arr(x), _arr(y)
    if not len(a) or not len(b):
        return None
    return float(_pairwise_better(a, b, mode))


def prob_improvement_interval(
    x: Sequence[float],
    y: Sequence[float],
    mode: str = "max",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """Stratified-bootstrap interval of P(X > Y): X's and Y's runs resampled separately."""
    a, b = _arr(x), _arr(y)
    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(seed)
    xa = a[rng.integers(0, len(a), size=(n_boot, len(a)))]
    yb = b[rng.integers(0, len(b), size=(n_boot, len(b)))]
    return _percentile(_pairwise_better(xa, yb, mode), confidence)


def performance_profile(
    runs: dict[str, Sequence[float]],
    taus: Sequence[float],
    mode: str = "max",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = SEED,
) -> dict[str, dict[str, list[float]]]:
    """Run-score distribution (performance profile) of each variant.

    The share of its runs scoring better than each threshold tau (above tau for ``max``, below
    for ``min``), with a stratified-bootstrap band.

    Returns ``{variant: {"share": [...], "lo": [...], "hi": [...]}}`` over ``taus``.
    """
    t = np.asarray(taus, dtype=float)
    out = {}
    rng = np.random.default_rng(seed)
    for name, vals in runs.items():
        a = _arr(vals)
        if not len(a):
            continue
        above = (a[:, None] > t) if mode == "max" else (a[:, None] < t)
        share = above.mean(axis=0)
        boot = a[rng.integers(0, len(a), size=(n_boot, len(a)))]
        bab = (boot[..., None] > t) if mode == "max" else (boot[..., None] < t)
        lo, hi = np.quantile(bab.mean(axis=1), [(1 - confidence) / 2, 0.5 + confidence / 2], 0)
        out[name] = {"share": share.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
    return out
