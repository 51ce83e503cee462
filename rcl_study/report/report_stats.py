"""The typed statistics of a report: what the analysis hands to the sections, figures and words.

Every part is a frozen dataclass; :meth:`ReportStats.to_json` gives the ``stats.json`` form (the
fields in their order, nested parts the same way; a few parts flatten or leave out keys, each
saying so in its own ``to_json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

Interval = tuple[float, float] | list[float] | None

#: why a paired test did not run when its paired differences are exactly zero at every seed: the
#: variant is the baseline by construction (left out of the Holm family, the pooled sd, the MDE
#: and every family count)
IDENTICAL = "identical to the baseline at every seed"


def to_json(value: Any) -> Any:
    """``value`` in plain JSON form: a part by its own ``to_json``, lists and dicts item by item."""
    if hasattr(value, "to_json") and dataclasses.is_dataclass(value):
        return value.to_json()
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


class _Part:
    """The default JSON form of a part: its fields in their order."""

    def to_json(self) -> dict[str, Any]:
        """The part as a dict, field by field (:func:`to_json` on each value)."""
        return {f.name: to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class Mde(_Part):
    """One analysis's minimum detectable effect and what it applies to."""

    value: float
    analysis: str
    test: str
    alpha: float
    family: int
    power: float
    basis: str


@dataclass(frozen=True)
class MdeRow(_Part):
    """The MDE at one number of seeds."""

    seeds: int
    mde: float | None


@dataclass(frozen=True)
class SeedsNeeded(_Part):
    """The seeds a paired t-test needs to detect one target effect (None: too many)."""

    effect: float
    seeds: int | None


@dataclass(frozen=True)
class SeedPlan(_Part):
    """The seed plan: the MDE at the study's seeds, an MDE table, seeds per target effect."""

    sd: float
    source: str
    alpha: float
    family: int
    power: float
    n_now: int
    mde_now: float | None
    mde_table: list[MdeRow]
    needed: list[SeedsNeeded]


@dataclass(frozen=True)
class VariantSummary(_Part):
    """One variant over its seeds: counts, mean, sd, intervals, IQM, notes, column means.

    ``means`` maps a results column to its mean over the finished seeds (None where the column
    is absent); ``stats.json`` carries each as ``<column>_mean``.
    """

    n: int
    mean: float | None
    std: float | None
    ci_t: Interval
    ci_boot: Interval
    iqm: float | None
    iqm_ci: Interval
    notes: list[str]
    variant: str
    trials: int
    failed: int
    seeds: list[int]
    means: dict[str, float | None] = field(default_factory=dict)

    def mean_of(self, column: str) -> float | None:
        """The mean of ``column`` over the finished seeds (None when not recorded)."""
        return self.means.get(column)

    def to_json(self) -> dict[str, Any]:
        """The summary with each column mean flattened to ``<column>_mean``."""
        out = super().to_json()
        means = out.pop("means")
        return {**out, **{f"{k}_mean": v for k, v in means.items()}}


@dataclass(frozen=True)
class PairedTest(_Part):
    """A paired comparison over matched seeds (``stats.paired_comparison``), before Holm."""

    n: int
    mean_diff: float | None
    ci_diff: Interval
    sd_diff: float | None
    p_ttest: float | None
    p_wilcoxon: float | None
    d_z: float | None
    d_z_ci: Interval
    g_z: float | None
    g_z_ci: Interval
    share_improved: float | None
    prob_improvement: float | None
    prob_improvement_ci: Interval
    untested: str | None
    notes: list[str]

    @property
    def identical(self) -> bool:
        """Whether the two arms are identical at every seed (the same by construction)."""
        return self.untested == IDENTICAL


@dataclass(frozen=True)
class Comparison(PairedTest):
    """A variant against the baseline, with its Holm-adjusted p-values."""

    variant: str
    baseline: str
    seeds: list[int]
    p_ttest_holm: float | None
    p_wilcoxon_holm: float | None


@dataclass(frozen=True)
class WithinRow(PairedTest):
    """The effect of the other key at one value of the ``within`` key, with Holm."""

    level: str
    seeds: list[int]
    control_mean: float | None
    treatment_mean: float | None
    p_ttest_holm: float | None
    p_wilcoxon_holm: float | None


@dataclass(frozen=True)
class Anova(_Part):
    """One-way ANOVA of the per-seed differences across values; ``untested`` says why not."""

    F: float | None  # noqa: N815 - the statistic's name, as stats.json has it
    p: float | None
    df: list[int] | None
    untested: str | None


@dataclass(frozen=True)
class WithinAnalysis(_Part):
    """A ``report.within`` analysis: the effect of ``other`` at each value of ``within``."""

    within: str
    other: str
    control: str
    treatment: str
    rows: list[WithinRow]
    anova: Anova | None
    mde: Mde | None
    tested: int


@dataclass(frozen=True)
class FactorialTerm(_Part):
    """One main effect or interaction of a factorial model."""

    term: str
    effect: float
    se: float | None
    ci: Interval
    p: float | None
    p_holm: float | None


@dataclass(frozen=True)
class FactorialEffects(_Part):
    """The factorial model's terms, its residual df, a note and the terms' MDE."""

    df_resid: int
    effects: list[FactorialTerm]
    note: str | None
    model: str | None
    mde: Mde | None = None

    def to_json(self) -> dict[str, Any]:
        """``stats.json``'s form; a design with an empty cell (no model) lists its effects first."""
        out = super().to_json()
        if self.model is None:
            return {k: out[k] for k in ("effects", "note", "df_resid", "model", "mde")}
        return out


@dataclass(frozen=True)
class SweepVersus(_Part):
    """The best value of a swept key against one other value (paired t-test on test)."""

    other: str
    mean_diff: float | None
    sd_diff: float | None
    n: int
    p: float | None
    untested: str | None
    p_holm: float | None


@dataclass(frozen=True)
class SweepBest(_Part):
    """The best value of one swept key (``stats.best_of_sweep``) and its tests' MDE.

    ``value`` None: no seed where every value finished (``note`` says so; nothing else holds).
    """

    value: str | None
    note: str | None
    selected_by: str = "test"
    selected_on: list[int] = field(default_factory=list)
    selection_means: dict[str, float] = field(default_factory=dict)
    reported_on: list[int] = field(default_factory=list)
    held_out: bool = False
    mean: float | None = None
    ci_t: Interval = None
    versus: list[SweepVersus] = field(default_factory=list)
    mde: Mde | None = None

    def to_json(self) -> dict[str, Any]:
        """``stats.json``'s form: with a value, every field (the note after the tests)."""
        if self.value is None:
            return {"value": None, "note": self.note}
        out = super().to_json()
        note, mde = out.pop("note"), out.pop("mde")
        return {**out, "note": note, "mde": mde}


@dataclass(frozen=True)
class SearchPoint(_Part):
    """One search trial that reported the objective (a pruned one: its last evaluation).

    ``best_so_far``: the best objective of the finished trials so far (None before the first).
    """

    trial: int
    value: float
    params: dict[str, Any]
    best_so_far: float | None
    trial_id: str = ""
    pruned: bool = False


@dataclass(frozen=True)
class SearchTrial(_Part):
    """One search trial as the report lists it: parameters, objective, status, last epoch."""

    trial_id: str
    params: dict[str, Any]
    value: float | None
    status: str
    epoch: float | None = None


@dataclass(frozen=True)
class SearchAnalysis(_Part):
    """A search's optimisation history and parameter importances on its objective.

    ``trials``: every search trial in the order sampled; ``best``: the finished trial best on
    the objective (the configuration re-run at the reporting seeds as variant ``best``).
    """

    history: list[SearchPoint]
    importances: dict[str, float] | None
    note: str | None
    objective: str
    objective_split: str
    trials: list[SearchTrial] = field(default_factory=list)
    best: SearchTrial | None = None


@dataclass(frozen=True)
class PlateauRow(_Part):
    """The plateau criterion for one variant (``plateau`` None: not checked, ``why`` says why)."""

    variant: str
    n: int
    last_epoch: int | None
    tail_epochs: list[int]
    movement: float | None
    sd: float | None
    plateau: bool | None
    why: str


@dataclass(frozen=True)
class Plateau(_Part):
    """The plateau criterion on test ``metric`` and, where recorded, on validation."""

    metric: str
    test: list[PlateauRow]
    validation: list[PlateauRow] | None


@dataclass(frozen=True)
class Profile(_Part):
    """Performance profiles: thresholds and, per variant, the share of runs above each."""

    taus: list[float]
    curves: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class SecondaryOf(_Part):
    """A report of the secondary analysis ``name``; its primary report is in another folder."""

    name: str
    primary_report: str


@dataclass(frozen=True)
class SecondaryRef(_Part):
    """A secondary analysis the study declares: its baseline and its report folder."""

    name: str
    baseline: str
    dir: str


@dataclass(frozen=True)
class ReportStats(_Part):
    """Everything a report states about its study, from the analysis of its records.

    ``secondary`` names the primary report when this is a secondary analysis; a primary report
    lists its ``secondaries`` instead (``stats.json`` carries that key only there).
    """

    study: str
    metric: str
    mode: str
    alpha: float
    planned: int
    recorded: int
    status_counts: dict[str, int]
    baseline: str | None
    on_validation: bool
    secondary: SecondaryOf | None
    secondaries: list[SecondaryRef]
    variants: list[VariantSummary]
    comparisons: list[Comparison]
    factorial: FactorialEffects | None
    sweeps: dict[str, SweepBest | None]
    search: SearchAnalysis | None
    within: WithinAnalysis | None
    plateau: Plateau | None
    plan: SeedPlan | None
    mde: Mde | None
    profile: Profile | None
    #: which variance the intervals over seeds include (None: no record says)
    intervals_include: str | None = None
    #: the primary contrasts tested at each look (``report.primary`` or ``study.rounds``)
    sequential: Any = None
    #: each variant's feature measures with intervals (:class:`.instrument.FeatureRow`)
    features: list[Any] = field(default_factory=list)
    #: paired per-class differences of the primary contrasts (:class:`.instrument.PerClassRow`)
    per_class: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``stats.json``'s content (a secondary analysis lists no ``secondaries``).

        The instrument's parts (``intervals_include`` .. ``per_class``) appear when they hold
        something.
        """
        out = super().to_json()
        if self.secondary is not None:
            del out["secondaries"]
        for key in ("intervals_include", "sequential", "features", "per_class"):
            if not out[key]:
                del out[key]
        return out
