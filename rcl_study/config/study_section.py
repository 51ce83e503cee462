"""The ``study`` section: what to vary (ablation, grid, search), over which seeds, how many trials.

:func:`planned_trials` counts a design arithmetically, before anything is expanded, so that a
typo in a grid is refused before it costs memory (``study.max_trials``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rcl_study.config.base import (
    COMPONENTS,
    Strict,
    check_seed,
    first_repeat,
    trial_key,
)
from rcl_study.config.errors import suggest
from rcl_study.config.metrics import METRIC_INFO, METRICS, RENAMED_METRICS


class RangeSpec(Strict):
    """One search dimension for Optuna."""

    #: ``float``, ``int`` or ``categorical``
    type: Literal["float", "int", "categorical"] = "float"
    #: the range's lower end (float and int)
    low: float | None = None
    #: the range's upper end (float and int)
    high: float | None = None
    #: sample the range on a log scale
    log: bool = False
    #: the distance between two values (a grid sampler needs it for a float range)
    step: float | None = Field(None, gt=0)
    #: a categorical range's values (numbers, strings, booleans or null)
    choices: list[Any] | None = None

    def grid_values(self) -> list[Any] | None:
        """Every value of the range (choices; low to high by step), or None for a continuum."""
        if self.type == "categorical":
            return list(self.choices or [])
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            return None
        n = round((self.high - self.low) / self.step)
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    @model_validator(mode="after")
    def _check(self) -> RangeSpec:
        if self.step is not None and (self.log or self.type == "categorical"):
            raise ValueError("'step' is for a linear float or int range, not log or categorical")
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical range needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("a categorical range takes 'choices' only, not low/high/log")
            for c in self.choices:
                if not (c is None or isinstance(c, (bool, int, float, str))):
                    raise ValueError(f"choice {c!r} is not a number, string, boolean or null")
            twice = first_repeat(self.choices)
            if twice is not None:
                raise ValueError(f"choice {self.choices[twice]!r} is listed twice")
        else:
            if self.choices is not None:
                raise ValueError(f"a {self.type} range takes low/high, not 'choices'")
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} range needs 'low' and 'high'")
            if self.type == "int" and not (self.low.is_integer() and self.high.is_integer()):
                raise ValueError(f"an int range needs whole bounds, got [{self.low}, {self.high}]")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
            if self.step is not None:
                if self.type == "int" and not self.step.is_integer():
                    raise ValueError(f"an int range needs a whole step, got {self.step}")
                n = (self.high - self.low) / self.step
                if abs(n - round(n)) > 1e-9:
                    raise ValueError(
                        f"high ({self.high}) is not low ({self.low}) plus whole steps of "
                        f"{self.step}"
                    )
        return self


#: the default of ``study.max_trials``
MAX_TRIALS = 10_000


def planned_trials(study: Any) -> int:
    """How many trials a study section plans, counted arithmetically (nothing is expanded).

    A grid: the product of its value counts times the seeds; an ablation: 2**components
    (factorial) or components + 1, times the seeds; a search: ``n_trials`` plus one best re-run
    per further seed.
    """
    seeds = len(study.seeds)
    if study.kind == "grid":
        return math.prod(len(v) for v in study.grid.values()) * seeds
    if study.kind == "search":
        return study.n_trials + max(seeds - 1, 0)
    comps = len(study.components)
    return (2**comps if study.design == "factorial" else comps + 1) * seeds


class AshaConfig(Strict):
    """ASHA's successive halving of a search (Ray Tune's ``ASHAScheduler``), on epochs.

    At each rung (``grace_period`` epochs, then times ``reduction_factor``, up to ``max_t``) a
    trial whose validation score is not in the best ``1/reduction_factor`` is stopped (pruned).
    """

    #: epochs every trial trains before ASHA may stop it (the first rung)
    grace_period: int = Field(1, ge=1)
    #: each rung keeps the best 1/reduction_factor of the trials that reach it
    reduction_factor: float = Field(3, gt=1)
    #: the epoch the rungs go up to (None: past train.epochs); a trial that reaches it trains
    #: on to its last epoch
    max_t: int | None = Field(None, ge=1)


class StudyConfig(Strict):
    """What the study varies: an ablation, a grid sweep or an Optuna search."""

    #: ``ablation`` (switch RCL components on and off), ``grid`` (every combination of ``grid``) or
    #: ``search`` (Optuna over ``space``)
    kind: Literal["ablation", "grid", "search"] = "ablation"
    #: the seeds every variant runs with (``train.seed``); a search's first seed chooses, the others
    #: re-run the best
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    #: an ablation's components (``balance``, ``scale``, ``margin``, ...), each switched between its
    #: off value and the study's value
    components: list[str] = Field(default_factory=lambda: ["balance", "scale", "margin"])
    #: an ablation's variants: ``factorial`` (all 2^k), ``leave_one_out`` or ``add_one_in`` (k + 1)
    design: Literal["factorial", "leave_one_out", "add_one_in"] = "factorial"
    #: a grid's keys (dotted, in ``data``, ``model``, ``train`` or ``loss``) and the values each
    #: takes
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    #: a search's keys and the range each is drawn from
    space: dict[str, RangeSpec] = Field(default_factory=dict)
    #: a search's trials on its first seed
    n_trials: int = Field(20, ge=1)
    #: the most trials a study may plan (a grid, an ablation or a search), counted before
    #: anything is expanded; raise it to run a larger study
    max_trials: int = Field(MAX_TRIALS, ge=1)
    #: Optuna's sampler: ``tpe``, ``random`` or ``grid``
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    #: a search's early stopping: true (ASHA's defaults) or a mapping of its settings
    asha: AshaConfig | bool = False
    #: where Optuna keeps the search: None, the journal file ``<output_dir>/optuna.journal``; or
    #: an RDB URL (``sqlite:///runs/x/optuna.db``, ``postgresql://user@host/db``)
    storage: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9+_]*://")
    #: the metric a study compares and a search optimises (``docs/measures.md``); chosen on its
    #: validation counterpart when there is a validation split
    metric: Literal[METRICS] = "balanced_acc"  # type: ignore[valid-type]
    #: ``max`` or ``min`` the metric
    mode: Literal["max", "min"] = "max"
    #: times ``--resume`` runs a failed trial again
    retries: int = Field(1, ge=0, le=100)
    #: the folder of the study's records (default: ``runs/<name>``)
    output_dir: str | None = None
    #: seeds in planned rounds: the cumulative number of ``seeds`` run before each look (the
    #: last is all of them); after each round the primary contrasts (``report.primary``) are
    #: tested group-sequentially and the study stops once each is decided
    #: (``rcl_study.trials.sequential``). None: every seed at once, one analysis at the end
    rounds: list[int] | None = Field(None, min_length=1, max_length=20)

    @model_validator(mode="after")
    def _rounds_cover_the_seeds(self) -> StudyConfig:
        if self.rounds is None:
            return self
        if self.kind == "search":
            raise ValueError(
                "rounds: a search selects on its own seed; rounds are for a grid or an ablation"
            )
        r = self.rounds
        if r[0] < 2 or any(b <= a for a, b in zip(r, r[1:])):
            raise ValueError(f"rounds: increasing numbers of seeds from 2 up, got {r}")
        if r[-1] != len(self.seeds):
            raise ValueError(
                f"rounds: the last look is after every seed ({len(self.seeds)} in study.seeds), "
                f"not {r[-1]}"
            )
        return self

    @field_validator("metric", mode="before")
    @classmethod
    def _renamed_metric(cls, v: Any) -> Any:
        return RENAMED_METRICS.get(v, v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _trials_within_bound(self) -> StudyConfig:
        n = planned_trials(self)
        if n > self.max_trials:
            raise ValueError(
                f"this {self.kind} plans {n} trials, more than max_trials ({self.max_trials}); "
                "fix the design or raise study.max_trials"
            )
        return self

    @model_validator(mode="after")
    def _mode_matches_metric(self) -> StudyConfig:
        want = METRIC_INFO[self.metric][0]
        if self.mode != want:
            better = "higher" if want == "max" else "lower"
            raise ValueError(
                f"mode '{self.mode}' contradicts metric '{self.metric}' ({better} is better): "
                f"set mode: {want}"
            )
        return self

    @model_validator(mode="after")
    def _grid_sampler_values(self) -> StudyConfig:
        if self.kind == "search" and self.sampler == "grid":
            loose = [k for k, r in self.space.items() if r.grid_values() is None]
            if loose:
                raise ValueError(
                    "sampler 'grid' tries listed values only: give "
                    + ", ".join(f"study.space.{k}" for k in loose)
                    + " 'choices' or a 'step'"
                )
        return self

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        for seed in v:
            check_seed(seed)
        return v

    @field_validator("components")
    @classmethod
    def _known_components(cls, v: list[str]) -> list[str]:
        for c in v:
            if c not in COMPONENTS:
                raise ValueError(f"unknown component '{c}'{suggest(c, COMPONENTS)}")
        if len(set(v)) != len(v):
            raise ValueError("components must be distinct")
        return v

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            trial_key(key)
            twice = first_repeat(values)
            if twice is not None:
                raise ValueError(f"{key}: value {values[twice]!r} is listed twice")
        return v

    @field_validator("space")
    @classmethod
    def _space_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            trial_key(key)
        return v
