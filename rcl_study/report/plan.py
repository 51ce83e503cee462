"""Seed plan of a study: from its stored records (a pilot) or from an assumed sd.

Used by ``python -m rcl_study.run STUDY.yaml --plan-seeds [--effect E] [--sd S]``; trains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rcl_study.config import ConfigError, StudyFile
from rcl_study.report import analysis, power
from rcl_study.report.report_stats import PairedTest, SeedPlan
from rcl_study.report.table import current_metrics, results_table
from rcl_study.report.within import within_of
from rcl_study.trials.design import baseline_variant, expand, within_keys
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialRecord

#: target effects when none is given, for metrics on [0, 1] (accuracies)
DEFAULT_EFFECTS = (0.01, 0.02, 0.05)


def _within_family(cfg: StudyFile) -> tuple[str, str] | None:
    """``(within, other)`` when the study's primary family is its ``report.within`` analysis.

    That is, declared without a ``report.baseline`` (with one, its comparisons stay primary).
    """
    return None if cfg.report.baseline else within_keys(cfg)


def family_size(cfg: StudyFile) -> int:
    """Tests the summary corrects together (its Holm family).

    The variants - 1 comparisons with the baseline, or, for a ``report.within`` study, the values
    of its ``within`` key.
    """
    if cfg.study.kind == "search":
        return 1
    keys = _within_family(cfg)
    if keys:
        return max(1, len(cfg.study.grid[keys[0]]))
    return max(1, len({p.variant for p in expand(cfg)}) - 1)


@dataclass(frozen=True)
class Pilot:
    """The pooled sd of paired differences in a pilot's records, and where it came from.

    ``identical``: the family's tests identical to their baseline by construction (left out of
    the sd and of the family).
    """

    sd: float
    source: str
    identical: int


def pilot_sd(cfg: StudyFile, records: list[TrialRecord], where: Path | None = None) -> Pilot | None:
    """Pooled sd of paired differences with the baseline in ``records`` and where it came from.

    Tests identical to their baseline at every seed (:attr:`.PairedTest.identical`) are left out.
    """
    records = [r.replace(metrics=current_metrics(r.metrics)) for r in records]
    df = results_table(records, cfg.study.metric)
    if not len(df):
        return None
    keys = _within_family(cfg)
    if keys:
        tests: list[PairedTest] = list(within_of(cfg, df, n_boot=100).rows)
        comps = [r for r in tests if r.p_ttest is not None]
        what = f"paired tests of {keys[1]} at each {keys[0]}"
    else:
        base = baseline_variant(cfg, list(dict.fromkeys(df["variant"])))
        tests = list(analysis.comparisons(df, cfg.study.metric, base, cfg.study.mode, n_boot=100))
        comps = [c for c in tests if not c.identical]
        what = f"paired comparisons with {base}"
    pooled = power.pooled_sd([(c.sd_diff, c.n) for c in comps])
    if not pooled:
        return None
    used = [c for c in comps if c.sd_diff is not None]
    where = where or cfg.output_dir
    source = f"pilot: pooled over {len(used)} {what} in {where}, {pooled[1]} df"
    return Pilot(pooled[0], source, sum(t.identical for t in tests))


def study_plan(
    cfg: StudyFile,
    sd: float | None = None,
    effects: list[float] | None = None,
    records_dir: Path | None = None,
) -> SeedPlan:
    """The seed plan: MDE at the study's seeds and seeds needed per target effect.

    ``sd`` (assumed sd of paired differences) wins over the records; without it the study's
    stored records (in ``records_dir``, default ``study.output_dir``; the records shipped with
    the report when ``runs/`` is absent: :func:`.shipped.records_folder`) are the pilot, and
    without records this is a :class:`ConfigError`.
    """
    where = Path(records_dir or cfg.output_dir)
    family = family_size(cfg)
    if sd is not None:
        if sd <= 0:
            raise ConfigError(f"{cfg.name}: --sd must be positive, got {sd:g}")
        source = "assumed (--sd)"
    else:
        pilot = pilot_sd(cfg, StudyFolder(where).records(), where)
        if pilot is None:
            raise ConfigError(
                f"{cfg.name}: --plan-seeds: no paired results in {where} to estimate "
                "the sd of paired differences; pass --sd (an assumed sd)"
            )
        sd, source, family = pilot.sd, pilot.source, family - pilot.identical
    return power.plan(
        sd,
        len(cfg.study.seeds),
        cfg.report.alpha,
        family,
        list(effects or DEFAULT_EFFECTS),
        source,
    )


def rounds_lines(
    cfg: StudyFile, sd: float, effects: list[float] | None = None, family: int | None = None
) -> list[str]:
    """Seeds in planned rounds (``study.rounds``): power and expected seeds per target effect.

    Group-sequential, two-sided, O'Brien-Fleming-type spending at Holm's conservative level
    ``alpha / family`` (:mod:`rcl_study.trials.sequential`; ``family``: the seed plan's, else
    :func:`family_size`); with no rounds declared, the three equal rounds that reach 80% power
    for each effect.
    """
    from rcl_study.trials import sequential

    level = cfg.report.alpha / (family or family_size(cfg))
    rounds = cfg.study.rounds
    out = []
    if rounds:
        out.append(
            f"planned rounds {rounds} (cumulative seeds; group-sequential, O'Brien-Fleming-type "
            f"spending at alpha/m = {level:.4g}): nominal levels "
            + ", ".join(f"{p:.3g}" for p in sequential.nominal_levels(rounds, level))
        )
    for e in effects or DEFAULT_EFFECTS:
        size = e / sd if sd > 0 else float("inf")
        if rounds:
            pw = sequential.power(size, rounds, level)
            used = sequential.expected_seeds(size, rounds, level)
            out.append(
                f"effect {e:g}: power {pw:.0%} over the rounds; {used:.1f} seeds used on average"
            )
        else:
            plan = sequential.rounds_for_power(size, level)
            out.append(f"effect {e:g}: study.rounds {plan} reach 80% power (3 equal looks)")
    return out
