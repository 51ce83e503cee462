"""The schema of a study file: one strict, frozen pydantic model per section.

A study file is YAML with the sections ``name``, ``data``, ``model``, ``train``, ``loss``,
``study``,
``resources`` and ``report``. Every section is a pydantic model with ``extra="forbid"``, so an
unknown key at any depth is an error that names the key and suggests the closest valid one.
Validation errors become one-line :class:`~rcl_study.config.errors.ConfigError` messages through
:func:`parse_study`. The loss presets and ablation components are owned by
:mod:`rcl_study.losses.presets` and imported here.
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rcl_study.config.errors import ConfigError, format_error, suggest
from rcl_study.config.metrics import METRIC_INFO, METRICS, RENAMED_METRICS
from rcl_study.losses.presets import OFF_VALUES, PRESETS

#: the RCL/BCL knobs an ablation can switch on and off (owned by the loss presets)
COMPONENTS = tuple(OFF_VALUES)
DATASETS = (
    "digits_lt",
    "cifar10_lt",
    "cifar100_lt",
    "fashion_mnist_lt",
    "imagenet_lt",
    "inaturalist",
    "places_lt",
    "arrays",
)
#: CPU held by a data-parallel trial's own Tune function while its Ray Train workers run
DRIVER_CPU = 0.01


#: seeds feed ``numpy.random.default_rng`` / ``np.random.seed``: 0 <= seed < 2**32
SEED_LIMIT = 2**32
#: only these sections vary between trials (``study.grid`` / ``study.space`` keys)
TRIAL_SECTIONS = ("data", "model", "train", "loss")
#: study keys that only one kind of study reads
KIND_KEYS = {
    "components": "ablation",
    "design": "ablation",
    "grid": "grid",
    "space": "search",
    "n_trials": "search",
    "sampler": "search",
    "asha": "search",
    "storage": "search",
}


def _numeric_shape(ann: Any) -> str | None:
    """``"scalar"`` for int/float (optional) annotations, ``"list"`` for lists of them."""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        shapes = {_numeric_shape(a) for a in typing.get_args(ann) if a is not type(None)}
        return shapes.pop() if len(shapes) == 1 else None
    if ann in (int, float):
        return "scalar"
    if origin is list and typing.get_args(ann) and typing.get_args(ann)[0] in (int, float):
        return "list"
    return None


def _check_number(v: Any) -> None:
    if isinstance(v, bool):
        raise ValueError("expected a number, not a boolean")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("expected a finite number")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any, info: Any) -> Any:
        """Booleans are not numbers (YAML's ``yes`` is ``True``); numbers are finite."""
        shape = _numeric_shape(cls.model_fields[info.field_name].annotation)
        if shape == "scalar":
            _check_number(v)
        elif shape == "list" and isinstance(v, list):
            for item in v:
                _check_number(item)
        return v


def _check_seed(v: int | None) -> int | None:
    if v is not None and not 0 <= v < SEED_LIMIT:
        raise ValueError(f"a seed must be in [0, 2**32) (NumPy's range), not {v}")
    return v


class DataConfig(_Strict):
    """Which data, how long-tailed, where it lives."""

    #: a registered dataset (:data:`DATASETS`, or a plugin's: ``rcl_study.registry``)
    dataset: str = "digits_lt"
    root: str | None = None
    download: bool = False
    imbalance_ratio: float = Field(10.0, ge=1.0)
    profile: Literal["exponential", "step"] = "exponential"
    split_seed: int | None = None
    path: str | None = None
    train_list: str | None = None
    test_list: str | None = None
    num_classes: int | None = Field(None, ge=2)
    image_size: int = Field(224, ge=8, le=4096)
    augment: Literal["auto", "autoaugment", "bcl", "crop_flip", "crop", "none"] = "auto"
    max_per_class: int | None = Field(None, ge=1)
    test_limit: int | None = Field(None, ge=1)
    workers: int = Field(4, ge=0)

    @field_validator("split_seed")
    @classmethod
    def _seed_range(cls, v: int | None) -> int | None:
        return _check_seed(v)

    @field_validator("dataset")
    @classmethod
    def _registered_dataset(cls, v: str) -> str:
        return _registered("datasets", v)


class ModelConfig(_Strict):
    """Backbone and heads (BCL: projection MLP, classifier, prototype MLP)."""

    #: ``auto`` (by image size) or a registered backbone (``rcl_study.registry``)
    arch: str = "auto"
    proj_hidden: int = Field(512, ge=1)
    proj_dim: int = Field(128, ge=1)
    width: int = Field(32, ge=1)
    norm: Literal["batch", "sync_batch", "none"] = "batch"
    classifier: Literal["linear", "cosine"] = "linear"

    @field_validator("arch")
    @classmethod
    def _registered_arch(cls, v: str) -> str:
        return v if v == "auto" else _registered("backbones", v)


class TrainConfig(_Strict):
    """Optimisation. CIFAR defaults follow BCL (Zhu et al. 2022); sources in ``train.py``."""

    epochs: int = Field(200, ge=1, le=100_000)
    seed: int = 0
    batch_size: int = Field(256, ge=2, le=1 << 20)
    lr: float = Field(0.15, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: int = Field(5, ge=0)
    alpha: float = Field(2.0, ge=0)
    beta: float = Field(0.6, ge=0)
    checkpoint_every: int = Field(1, ge=1)
    eval_every: int = Field(1, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    threads: int | None = Field(None, ge=1)
    progress: bool = True
    #: after a trial succeeds: keep its last checkpoint (resume, inspection) or delete it
    keep_checkpoints: Literal["last", "none"] = "last"

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        return _check_seed(v)  # type: ignore[return-value]


class LossConfig(_Strict):
    """The loss of ``docs/loss.md``; ``None`` knobs take the preset's value."""

    preset: Literal[tuple(PRESETS)] = "bcl+rcl"  # type: ignore[valid-type]
    temperature: float = Field(0.1, gt=0)
    balance: float | None = Field(None, ge=0)
    scale: float | None = Field(None, gt=0)
    margin: float | None = Field(None, ge=0)
    class_averaging: bool | None = None
    prototypes: bool | None = None
    logit_adjust: bool | None = None
    tau_la: float = Field(1.0, ge=0)
    scale_on: Literal["all", "views"] = "all"
    #: a registered classification loss replacing the preset's (None: the preset's CE or
    #: logit-adjusted CE), called with ``classification_params`` as keyword arguments
    classification: str | None = None
    classification_params: dict[str, float] = Field(default_factory=dict)

    @field_validator("classification")
    @classmethod
    def _registered_loss(cls, v: str | None) -> str | None:
        return v if v is None else _registered("losses", v)


class RangeSpec(_Strict):
    """One search dimension for Optuna."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    #: the distance between two values (a grid sampler needs it for a float range)
    step: float | None = Field(None, gt=0)
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
            for i, c in enumerate(self.choices):
                if not (c is None or isinstance(c, (bool, int, float, str))):
                    raise ValueError(f"choice {c!r} is not a number, string, boolean or null")
                if any(_same(c, d) for d in self.choices[:i]):
                    raise ValueError(f"choice {c!r} is listed twice")
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


class StudyConfig(_Strict):
    """What the study varies: an ablation, a grid sweep or an Optuna search."""

    kind: Literal["ablation", "grid", "search"] = "ablation"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    components: list[str] = Field(default_factory=lambda: ["balance", "scale", "margin"])
    design: Literal["factorial", "leave_one_out", "add_one_in"] = "factorial"
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    space: dict[str, RangeSpec] = Field(default_factory=dict)
    n_trials: int = Field(20, ge=1)
    #: the most trials a study may plan (a grid, an ablation or a search), counted before
    #: anything is expanded; raise it to run a larger study
    max_trials: int = Field(MAX_TRIALS, ge=1)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    asha: bool = False
    #: where Optuna keeps the search: None, the journal file ``<output_dir>/optuna.journal``; or
    #: an RDB URL (``sqlite:///runs/x/optuna.db``, ``postgresql://user@host/db``)
    storage: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9+_]*://")
    metric: Literal[METRICS] = "balanced_acc"  # type: ignore[valid-type]
    mode: Literal["max", "min"] = "max"
    retries: int = Field(1, ge=0, le=100)  # --resume runs a failed trial again this many times
    output_dir: str | None = None

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
            _check_seed(seed)
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
            _trial_key(key)
            for i, x in enumerate(values):
                if any(_same(x, y) for y in values[:i]):
                    raise ValueError(f"{key}: value {x!r} is listed twice")
        return v

    @field_validator("space")
    @classmethod
    def _space_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            _trial_key(key)
        return v


class ResourcesConfig(_Strict):
    """How trials share the machine or cluster."""

    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    workers_per_trial: int | None = Field(None, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    address: str | None = None
    #: where Ray keeps trial checkpoints and its experiment state: a folder every node mounts
    #: (NFS) or a URI pyarrow understands (``s3://...``); default: ``<output_dir>/ray``
    storage: str | None = None
    #: times Ray Tune restarts a failed trial (e.g. its node died) from its last checkpoint in
    #: ``storage`` before recording it ``failed`` (``--resume`` retries failed trials too)
    max_failures: int = Field(0, ge=0, le=100)
    #: members trained together in one process (``auto``: where ``benchmarks/pack_speed.py``
    #: showed a gain; ``1``: never); see ``rcl_study.study.packing``
    pack: int | Literal["auto"] = "auto"
    #: ``ray`` (Ray Tune, trials in parallel) or ``local`` (this process, one unit at a time,
    #: without importing Ray)
    executor: Literal["ray", "local"] = "ray"
    #: live tracking on the driver, one run per trial (``rcl_study.study.tracking``):
    #: ``tensorboard`` (event files in ``<output_dir>/tensorboard``), ``mlflow`` (runs in
    #: ``mlflow_uri``; ``pip install "rcl_study[mlflow]"``), or ``none``
    tracking: list[Literal["tensorboard", "mlflow", "none"]] = Field(
        default_factory=lambda: ["tensorboard"]
    )
    #: the MLflow tracking store (None: ``sqlite:///<output_dir>/mlflow.db``)
    mlflow_uri: str | None = None

    @field_validator("tracking", mode="before")
    @classmethod
    def _tracking_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("tracking")
    @classmethod
    def _tracking_value(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"names a tracker twice: {v}")
        if "none" in v and len(v) > 1:
            raise ValueError(f"'none' cannot be combined with a tracker: {v}")
        return v

    @model_validator(mode="after")
    def _check_gpus(self) -> ResourcesConfig:
        g = self.gpus_per_trial
        if g > 1 and g != int(g):
            raise ValueError(f"gpus_per_trial above 1 must be a whole number, got {g}")
        if g > 1 and self.workers_per_trial not in (None, int(g)):
            raise ValueError(
                f"workers_per_trial ({self.workers_per_trial}) must equal gpus_per_trial ({g:g}):"
                " one data-parallel worker per GPU"
            )
        if 0 < g <= 1 and (self.workers_per_trial or 1) >= 2:
            raise ValueError(
                f"workers_per_trial ({self.workers_per_trial}) with "
                f"gpus_per_trial {g:g} would put {self.workers_per_trial} data-parallel"
                " ranks on one GPU; give each worker its own GPU (gpus_per_trial ="
                " workers_per_trial) or use one worker"
            )
        return self

    @field_validator("pack", mode="before")
    @classmethod
    def _pack_value(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError("must be 'auto' or a whole number of members >= 1")

    @model_validator(mode="after")
    def _check_pack(self) -> ResourcesConfig:
        if self.workers > 1 and self.executor == "local":
            raise ValueError(
                "executor 'local' runs each trial in this one process; data-parallel trials "
                f"({self.workers} workers) need 'ray'"
            )
        return self

    @property
    def workers(self) -> int:
        """Data-parallel workers of one trial: one per GPU above one GPU, else as set (1)."""
        if self.gpus_per_trial > 1:
            return int(self.gpus_per_trial)
        return self.workers_per_trial or 1

    @property
    def cpus_needed(self) -> float:
        """CPUs one trial holds: its own, plus a data-parallel trial's driver share."""
        return self.cpus_per_trial + (DRIVER_CPU if self.workers > 1 else 0.0)

    def shortfall(self, cpus: float, gpus: float, where: str) -> str | None:
        """Why one trial cannot fit on ``cpus`` and ``gpus`` of ``where`` (None when it fits)."""
        if self.cpus_needed > cpus:
            extra = f" (data-parallel trials hold {DRIVER_CPU:g} more)" if self.workers > 1 else ""
            return (
                f"resources.cpus_per_trial: a trial needs {self.cpus_needed:g} CPUs, but {where} "
                f"has {cpus:g}{extra}"
            )
        if self.gpus_per_trial > gpus:
            return (
                f"resources.gpus_per_trial: {self.gpus_per_trial:g} GPUs per trial, but {where} "
                f"has {gpus:g}"
            )
        return None


class ReportConfig(_Strict):
    """Where and how the report is written."""

    dir: str | None = None
    baseline: str | None = None
    question: str | None = None
    bootstrap: int = Field(2000, ge=100, le=1_000_000)
    alpha: float = Field(0.05, gt=0, lt=1)


def _registered(kind: str, name: str) -> str:
    """``name`` when it is a registered part of ``kind``; else a one-line error with a hint."""
    from rcl_study import registry

    if name not in registry.names(kind):
        raise ValueError(registry.unknown(kind, name))
    return name


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind (``1 == True`` in Python, not here)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _trial_key(key: str) -> None:
    """A key a grid or search may vary: a trial setting, not the seed (``study.seeds`` does)."""
    if key == "train.seed":
        raise ValueError("train.seed is set per trial by study.seeds; list the seeds there")
    if key.split(".", 1)[0] not in TRIAL_SECTIONS:
        raise ValueError(
            f"'{key}' is not a trial setting; only {', '.join(TRIAL_SECTIONS)} keys vary"
        )


#: the longest file name most file systems allow (bytes), less the ``-smoke`` suffix
NAME_LIMIT = 255 - len("-smoke")


class StudyFile(_Strict):
    """A whole study file."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        if set(v) == {"."}:
            raise ValueError("cannot be dots only (it names runs/<name>/ and reports/<name>/)")
        if len(v.encode()) > NAME_LIMIT:
            raise ValueError(f"at most {NAME_LIMIT} characters (it names folders), not {len(v)}")
        return v

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    study: StudyConfig = Field(default_factory=StudyConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @property
    def output_dir(self) -> Path:
        """Folder of the study's records (trials, checkpoints, results table)."""
        return Path(self.study.output_dir or f"runs/{self.name}").expanduser()  # as checked

    @property
    def report_dir(self) -> Path:
        """Folder of the study's report."""
        return Path(self.report.dir or f"reports/{self.name}").expanduser()  # as checked


def parse_study(raw: Any, source: str = "<study>") -> StudyFile:
    """Validate a mapping as a study file; raise :class:`ConfigError` with a one-line message."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: a study file must be a YAML mapping, got {type(raw).__name__}"
        )
    try:
        return StudyFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_error(source, err, StudyFile)) from None
