"""Seeds in planned rounds: a group-sequential test of the primary contrasts (pure functions).

A study declares ``study.rounds: [n1, n2, ..., nK]``, the cumulative number of seeds at each look
(the last is every seed). After each round every primary contrast (a paired difference per seed)
is tested; the study stops once each one is decided.

- **Efficacy.** Two-sided, with the type I error spent across the looks by the Lan-DeMets
  O'Brien-Fleming-type function ``alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))`` at
  information fraction ``t = n_k / n_K`` (Lan and DeMets 1983; Jennison and Turnbull 2000,
  ch. 7). The boundaries ``c_1, ..., c_K`` (z scale) come from the joint normal law of the
  statistics at the looks (correlation ``sqrt(n_j / n_k)``), by the recursive numerical
  integration of Armitage, McPherson and Rowe (1969) (Jennison and Turnbull ch. 19). With few
  seeds each look uses the paired t-test at the boundary's nominal level ``2 (1 - Phi(c_k))``.
- **The family.** Holm across the primary contrasts as a graphical procedure over the looks
  (Maurer and Bretz 2013; Ye et al. 2013): each open contrast is tested at ``alpha / m_open``'s
  boundary, where ``m_open`` counts the contrasts not yet rejected; a rejection passes its level
  to the others, who are tested again at the same look with the larger level.
- **Futility** (with ``report.sesoi``, the smallest effect of interest). A contrast whose
  repeated confidence interval (at its current level's nominal level, valid simultaneously over
  the looks: Jennison and Turnbull 1989) lies inside ``(-sesoi, +sesoi)`` is decided "no effect
  of that size"; such a stop is non-binding, so it never raises the type I error. Its level is
  not passed on.

Validity is checked by simulation in ``tests/trials/test_sequential.py``: the family-wise error
under the null, and the planned power against simulated studies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import integrate, optimize, stats

from rcl_study.config import ConfigError, StudyFile

#: points of the grid each look's continuation density is kept on
GRID = 601


def spent(t: float, alpha: float) -> float:
    """The type I error spent by information fraction ``t`` (O'Brien-Fleming type, two-sided)."""
    if t <= 0:
        return 0.0
    return float(min(alpha, 2 - 2 * stats.norm.cdf(stats.norm.isf(alpha / 2) / math.sqrt(t))))


def check_rounds(rounds: Sequence[int]) -> None:
    """Raise ``ValueError`` unless ``rounds`` are increasing counts of seeds, each at least 2."""
    if not rounds:
        raise ValueError("rounds: give at least one look")
    if any(not isinstance(n, int) or isinstance(n, bool) for n in rounds):
        raise ValueError(f"rounds: whole numbers of seeds, got {list(rounds)}")
    if rounds[0] < 2 or any(b <= a for a, b in zip(rounds, rounds[1:])):
        raise ValueError(f"rounds: increasing numbers of seeds from 2 up, got {list(rounds)}")


def _tail(grid: np.ndarray, w: np.ndarray, shift: float, sd: float, b: float) -> float:
    """P(|S_prev + D| >= b) over the continuation density (grid, weights) of S_prev.

    ``D ~ N(shift, sd^2)``: the increment of the score between two looks.
    """
    hi = stats.norm.sf((b - grid - shift) / sd)
    lo = stats.norm.cdf((-b - grid - shift) / sd)
    return float(np.dot(w, hi + lo))


def _advance(grid: np.ndarray, w: np.ndarray, shift: float, sd: float, b: float):
    """The continuation density of the next look's score on ``(-b, b)``: (grid, weights)."""
    new = np.linspace(-b, b, GRID)
    step = new[1] - new[0]
    dens = stats.norm.pdf((new[:, None] - grid[None, :] - shift) / sd) / sd @ w
    simpson = np.ones(GRID)
    simpson[1:-1:2], simpson[2:-1:2] = 4, 2
    return new, dens * simpson * step / 3


def _start(info: float, shift: float, b: float):
    """The first look's continuation density of ``S_1 ~ N(shift, info)`` on ``(-b, b)``."""
    return _advance(np.zeros(1), np.ones(1), shift, math.sqrt(info), b)


@lru_cache(maxsize=256)
def boundaries(rounds: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    """The z-scale efficacy boundaries ``c_1..c_K`` of a two-sided test at level ``alpha``.

    ``P_0(|Z_j| < c_j for j < k, |Z_k| >= c_k) = spent(t_k) - spent(t_{k-1})``, with
    ``Z_k = S_k / sqrt(n_k)`` and ``S`` a sum of independent standard normals (one per seed).
    One look gives the fixed-sample ``z_{1 - alpha / 2}``.
    """
    check_rounds(rounds)
    total = rounds[-1]
    out: list[float] = []
    grid = w = None
    prev_n, prev_spent = 0, 0.0
    for n in rounds:
        target = spent(n / total, alpha) - prev_spent
        sd = math.sqrt(n - prev_n)
        if grid is None:
            c = float(stats.norm.isf(target / 2))
            grid, w = _start(n, 0.0, c * math.sqrt(n))
        else:

            def excess(c: float, g=grid, ww=w, s=sd, n=n, t=target) -> float:
                return _tail(g, ww, 0.0, s, c * math.sqrt(n)) - t

            c = float(optimize.brentq(excess, 0.0, 40.0, xtol=1e-10)) if target > 0 else math.inf
            grid, w = _advance(grid, w, 0.0, sd, min(c, 40.0) * math.sqrt(n))
        out.append(c)
        prev_n, prev_spent = n, prev_spent + target
    return tuple(out)


def nominal_levels(rounds: Sequence[int], alpha: float) -> list[float]:
    """Each look's nominal two-sided level ``2 (1 - Phi(c_k))`` (the t-test's threshold)."""
    return [float(2 * stats.norm.sf(c)) for c in boundaries(tuple(rounds), float(alpha))]


@lru_cache(maxsize=4096)
def _critical(rounds: tuple[int, ...], alpha: float, k: int) -> tuple[float, float]:
    """(nominal level, critical |t|) of look ``k`` (0-based) at family level ``alpha``."""
    nominal = nominal_levels(rounds, alpha)[k]
    return nominal, float(stats.t.isf(nominal / 2, rounds[k] - 1))


def t_power_nc(nc: float, df: int, alpha: float) -> float:
    """Power of a two-sided t-test at level ``alpha`` with noncentrality ``nc`` and ``df`` df.

    P(|T| > t_crit) for T ~ noncentral t(df, nc) (scipy; statsmodels' TTestPower computes the
    same quantity for the paired case).
    """
    crit = stats.t.isf(alpha / 2, df)
    p = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    if np.isfinite(p):
        return p

    # scipy's nct can be NaN far in the tail (1 df): integrate T = (Z + nc) / sqrt(V / df)
    # over V ~ chi2(df) instead: P(|T| > c) = E[Phi(nc - c s) + Phi(-nc - c s)], s = sqrt(V/df)
    def f(v: float) -> float:
        s = math.sqrt(v / df)
        tails = stats.norm.cdf(nc - crit * s) + stats.norm.cdf(-nc - crit * s)
        return float(tails * stats.chi2.pdf(v, df))

    return float(integrate.quad(f, 0, np.inf, limit=200)[0])


def power(effect_size: float, rounds: Sequence[int], alpha: float) -> float:
    """Power of the sequential paired t-test of one contrast at level ``alpha``.

    ``effect_size``: mean / sd of the paired differences. Each look's marginal rejection
    probability is the noncentral t's at its nominal level (exact for the t-test); the looks'
    dependence is the normal recursion's, with each look's boundary moved so that its marginal
    matches (so the small-sample loss of the t-test is counted).
    """
    return float(min(1.0, sum(rejection_by_look(effect_size, rounds, alpha))))


def rejection_by_look(effect_size: float, rounds: Sequence[int], alpha: float) -> list[float]:
    """The probability that the first rejection comes at each look (see :func:`power`).

    An infinite effect size (paired differences without spread) is found at the first look.
    """
    rounds = tuple(rounds)
    if math.isinf(effect_size):
        return [1.0] + [0.0] * (len(rounds) - 1)
    levels = nominal_levels(rounds, alpha)
    out: list[float] = []
    grid, w, prev = None, None, 0
    for n, level in zip(rounds, levels):
        nc = effect_size * math.sqrt(n)
        c = _matching_boundary(nc, t_power_nc(nc, n - 1, level))
        b = c * math.sqrt(n)
        shift = effect_size * (n - prev)
        if grid is None:
            out.append(_two_tail(nc, c))
            grid, w = _start(n, shift, b)
        else:
            out.append(_tail(grid, w, shift, math.sqrt(n - prev), b))
            grid, w = _advance(grid, w, shift, math.sqrt(n - prev), b)
        prev = n
    return out


def expected_seeds(effect_size: float, rounds: Sequence[int], alpha: float) -> float:
    """Seeds a study uses on average when its one contrast has ``effect_size`` (efficacy stops)."""
    by_look = rejection_by_look(effect_size, rounds, alpha)
    return float(sum(n * p for n, p in zip(rounds, by_look)) + rounds[-1] * (1 - sum(by_look)))


def equal_rounds(total: int, looks: int) -> list[int]:
    """``looks`` looks at about equal numbers of seeds up to ``total`` (the first at least 2)."""
    marks = sorted({max(2, round(total * (k + 1) / looks)) for k in range(looks)})
    return [n for n in marks if n <= total] or [total]


def rounds_for_power(
    effect_size: float, alpha: float, looks: int = 3, target: float = 0.8, limit: int = 1000
) -> list[int] | None:
    """The fewest seeds, in ``looks`` about equal rounds, whose sequential power reaches ``target``.

    None when more than ``limit`` seeds would be needed.
    """
    if effect_size <= 0:
        return None

    def enough(total: int) -> bool:
        return power(effect_size, equal_rounds(total, looks), alpha) >= target

    lo, hi = max(2 * looks, 3) - 1, max(2 * looks, 3)
    while not enough(hi):  # power grows with the seeds: doubling, then bisection
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return equal_rounds(hi, looks)


def _matching_boundary(mean: float, marginal: float) -> float:
    """The ``c`` with ``P(|N(mean, 1)| >= c) = marginal``."""
    if marginal >= 1.0:
        return 0.0
    if marginal <= _two_tail(mean, 60.0 + abs(mean)):
        return 60.0 + abs(mean)
    return float(optimize.brentq(lambda c: _two_tail(mean, c) - marginal, 0.0, 60.0 + abs(mean)))


def _two_tail(mean: float, c: float) -> float:
    return float(stats.norm.sf(c - mean) + stats.norm.cdf(-c - mean))


@dataclass(frozen=True)
class ContrastLook:
    """One primary contrast at one look: its estimate, test, interval and decision.

    ``level``: the family level it was tested at (``alpha / open contrasts``); ``nominal``: that
    level's nominal threshold at this look; ``rci``: the repeated confidence interval at it;
    ``decision``: ``reject`` (an effect), ``futile`` (no effect as large as the SESOI),
    ``continue``, or ``decided earlier``.
    """

    name: str
    n: int
    mean: float
    se: float
    p: float
    level: float
    nominal: float
    rci: tuple[float, float]
    decision: str


@dataclass(frozen=True)
class Look:
    """One look: its number (1-based), seeds, and each contrast's test."""

    index: int
    n: int
    contrasts: list[ContrastLook]


@dataclass(frozen=True)
class SequentialResult:
    """The looks taken, each contrast's final decision (and at which look), and whether to stop.

    ``decided``: contrast -> (decision, look index) for each decided contrast; ``stop``: every
    contrast is decided (or the last round is reached).
    """

    rounds: tuple[int, ...]
    alpha: float
    sesoi: float | None
    looks: list[Look] = field(default_factory=list)
    decided: dict[str, tuple[str, int]] = field(default_factory=dict)
    stop: bool = False


def _test(d: np.ndarray) -> tuple[float, float, float]:
    """(mean, se, two-sided paired t-test p) of the differences ``d``."""
    n = len(d)
    mean, sd = float(np.mean(d)), float(np.std(d, ddof=1))
    se = sd / math.sqrt(n)
    if se == 0:
        return mean, 0.0, (1.0 if mean == 0 else 0.0)
    return mean, se, float(2 * stats.t.sf(abs(mean) / se, n - 1))


def sequential_test(
    diffs: Mapping[str, Sequence[float]],
    rounds: Sequence[int],
    alpha: float = 0.05,
    sesoi: float | None = None,
) -> SequentialResult:
    """Test the primary contrasts at every look their seeds reach.

    ``diffs``: contrast -> paired differences, one per seed in the order the seeds were planned
    (the first ``n_k`` form look k); every contrast has as many. Looks are taken at each round
    the data reaches; a contrast decided at one look stays decided.
    """
    rounds = tuple(int(n) for n in rounds)
    check_rounds(rounds)
    arrays = {k: np.asarray(v, dtype=float) for k, v in diffs.items()}
    have = min((len(a) for a in arrays.values()), default=0)
    names = list(arrays)
    m = len(names)
    result = SequentialResult(rounds, float(alpha), sesoi)
    rejected: set[str] = set()
    for k, n in enumerate(rounds):
        if n > have or len(result.decided) == m:
            break
        tests = {c: _test(arrays[c][:n]) for c in names}
        rows: dict[str, ContrastLook] = {}
        changed = True
        while changed:  # Holm's step-down: a rejection raises the others' level
            changed = False
            open_ = [c for c in names if c not in result.decided]
            level = alpha / max(1, m - len(rejected))
            nominal, crit = _critical(rounds, level, k)
            for c in open_:
                mean, se, p = tests[c]
                rci = (mean - crit * se, mean + crit * se)
                decision = "continue"
                if p < nominal:
                    decision = "reject"
                    rejected.add(c)
                    result.decided[c] = ("reject", k + 1)
                    changed = True
                rows[c] = ContrastLook(c, n, mean, se, p, level, nominal, rci, decision)
        for c in names:
            if c in result.decided or c not in rows:
                continue
            lo, hi = rows[c].rci
            if sesoi is not None and -sesoi < lo and hi < sesoi:
                result.decided[c] = ("futile", k + 1)
                rows[c] = _replace(rows[c], "futile")
        looked = [rows.get(c) or _earlier(c, n, tests[c], result.decided[c]) for c in names]
        result.looks.append(Look(k + 1, n, looked))
    done = len(result.decided) == m or (result.looks and result.looks[-1].n == rounds[-1])
    return SequentialResult(rounds, result.alpha, sesoi, result.looks, result.decided, bool(done))


def _replace(row: ContrastLook, decision: str) -> ContrastLook:
    return ContrastLook(
        row.name, row.n, row.mean, row.se, row.p, row.level, row.nominal, row.rci, decision
    )


def _earlier(name: str, n: int, test: tuple[float, float, float], how: tuple[str, int]):
    mean, se, p = test
    nan = float("nan")
    return ContrastLook(name, n, mean, se, p, nan, nan, (nan, nan), f"decided earlier ({how[0]})")


@dataclass(frozen=True)
class Contrast:
    """One primary contrast: ``treatment - control``, paired by seed."""

    treatment: str
    control: str

    @property
    def name(self) -> str:
        """``"<treatment> - <control>"``, as ``report.primary`` writes it."""
        return f"{self.treatment} - {self.control}"


def primary_contrasts(cfg: StudyFile, plans: Sequence) -> list[Contrast]:
    """The study's primary contrasts: ``report.primary`` as declared, else the default family.

    Default: with ``report.within``, the other key's effect (second value minus first) at each
    value of the within key; otherwise each variant minus the baseline. ``plans``: the planned
    trials (:class:`~rcl_study.trials.records.TrialPlan`), whose variants the contrasts name.

    Raises:
        ConfigError: a declared contrast names a variant the study does not plan.

    """
    from rcl_study.trials.design import baseline_variant, within_keys

    variants = list(dict.fromkeys(p.variant for p in plans))
    if cfg.report.primary:
        out = []
        for text in cfg.report.primary:
            treatment, control = (part.strip() for part in text.split(" - "))
            for v in (treatment, control):
                if v not in variants:
                    raise ConfigError(
                        f"{cfg.name}: report.primary: '{v}' is not a variant of this study "
                        f"({', '.join(variants)})"
                    )
            out.append(Contrast(treatment, control))
        return out
    keys = within_keys(cfg)
    if keys is not None:
        within, other = keys
        lo, hi = cfg.study.grid[other]
        by = {(repr(p.overrides[within]), repr(p.overrides[other])): p.variant for p in plans}
        return [
            Contrast(by[(repr(w), repr(hi))], by[(repr(w), repr(lo))])
            for w in cfg.study.grid[within]
        ]
    base = baseline_variant(cfg, variants)
    return [Contrast(v, base) for v in variants if base is not None and v != base]


def contrast_differences(
    records: Sequence, contrasts: Sequence[Contrast], metric: str, seeds: Sequence[int]
) -> dict[str, list[float]]:
    """Each contrast's paired differences of ``metric``, one per seed, in the order of ``seeds``.

    A seed counts for a contrast when both of its variants have a finished (``ok``) record with
    a finite ``metric`` at that seed; ``records``:
    :class:`~rcl_study.trials.records.TrialRecord`.
    """
    value: dict[tuple[str, int], float] = {}
    for r in records:
        v = r.metrics.get(metric)
        if r.ok and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            value[(r.variant, r.seed)] = float(v)
    return {
        c.name: [
            value[(c.treatment, s)] - value[(c.control, s)]
            for s in seeds
            if (c.treatment, s) in value and (c.control, s) in value
        ]
        for c in contrasts
    }
