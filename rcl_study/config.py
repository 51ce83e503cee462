"""Typed, strict study files.

A study file is YAML with the sections ``name``, ``data``, ``model``, ``train``, ``loss``,
``study``,
``resources`` and ``report``. Every section is a pydantic model with ``extra="forbid"``, so an
unknown key at any depth is an error that names the key and suggests the closest valid one.
Every error in this module is a :class:`ConfigError` whose message is a single line.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
PRESETS = ("ce", "la", "supcon", "bcl", "rcl", "bcl+rcl")
#: scalar test metrics a study can optimise or compare (see ``rcl_study.metrics``)
METRICS = (
    "top1",
    "balanced_acc",
    "many_acc",
    "medium_acc",
    "few_acc",
    "top1_lossless",
    "balanced_acc_lossless",
    "compactness",
    "balancedness",
)
#: CPU held by a data-parallel trial's own Tune function while its Ray Train workers run
DRIVER_CPU = 0.01
COMPONENTS = ("balance", "scale", "margin", "class_averaging", "prototypes", "logit_adjust")
#: dotted keys in which the members of one pack of trials may differ (``rcl_study.pack``)
PACKABLE_KEYS = (
    "loss.balance",
    "loss.scale",
    "loss.margin",
    "loss.class_averaging",
    "loss.prototypes",
    "loss.logit_adjust",
    "loss.scale_on",
)


class ConfigError(ValueError):
    """A bad study file or override; the message is one line naming the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DataConfig(_Strict):
    """Which data, how long-tailed, where it lives."""

    dataset: Literal[DATASETS] = "digits_lt"  # type: ignore[valid-type]
    root: str | None = None
    download: bool = False
    imbalance_ratio: float = Field(10.0, ge=1.0)
    profile: Literal["exponential", "step"] = "exponential"
    split_seed: int | None = None
    path: str | None = None
    train_list: str | None = None
    test_list: str | None = None
    num_classes: int | None = Field(None, ge=2)
    image_size: int = Field(224, ge=8)
    augment: Literal["auto", "bcl", "crop_flip", "crop", "none"] = "auto"
    max_per_class: int | None = Field(None, ge=1)
    test_limit: int | None = Field(None, ge=1)
    workers: int = Field(4, ge=0)


class ModelConfig(_Strict):
    """Backbone and heads (BCL: projection MLP, classifier, prototype MLP)."""

    arch: Literal["auto", "small_cnn", "resnet32", "resnet50", "resnext50"] = "auto"
    proj_hidden: int = Field(512, ge=1)
    proj_dim: int = Field(128, ge=1)
    width: int = Field(32, ge=1)
    norm: Literal["batch", "sync_batch", "none"] = "batch"


class TrainConfig(_Strict):
    """Optimisation. CIFAR defaults follow BCL (Zhu et al. 2022); sources in ``train.py``."""

    epochs: int = Field(200, ge=1)
    seed: int = 0
    batch_size: int = Field(256, ge=2)
    lr: float = Field(0.1, gt=0)
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


class LossConfig(_Strict):
    """The loss of ``docs/rcl_loss.md``; ``None`` knobs take the preset's value."""

    preset: Literal[PRESETS] = "bcl+rcl"  # type: ignore[valid-type]
    temperature: float = Field(0.1, gt=0)
    balance: float | None = Field(None, ge=0)
    scale: float | None = Field(None, gt=0)
    margin: float | None = Field(None, ge=0)
    class_averaging: bool | None = None
    prototypes: bool | None = None
    logit_adjust: bool | None = None
    tau_la: float = Field(1.0, ge=0)


class RangeSpec(_Strict):
    """One search dimension for Optuna."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> RangeSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical range needs a non-empty 'choices' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} range needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
        return self


class StudyConfig(_Strict):
    """What the study varies: an ablation, a grid sweep or an Optuna search."""

    kind: Literal["ablation", "grid", "search"] = "ablation"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    components: list[str] = Field(default_factory=lambda: ["balance", "scale", "margin"])
    design: Literal["factorial", "leave_one_out", "add_one_in"] = "factorial"
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    space: dict[str, RangeSpec] = Field(default_factory=dict)
    n_trials: int = Field(20, ge=1)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    asha: bool = False
    metric: Literal[METRICS] = "balanced_acc"  # type: ignore[valid-type]
    mode: Literal["max", "min"] = "max"
    retries: int = Field(0, ge=0)
    output_dir: str | None = None

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v

    @field_validator("components")
    @classmethod
    def _known_components(cls, v: list[str]) -> list[str]:
        for c in v:
            if c not in COMPONENTS:
                raise ValueError(f"unknown component '{c}'{_suggest(c, COMPONENTS)}")
        return v


class ResourcesConfig(_Strict):
    """How trials share the machine or cluster."""

    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    workers_per_trial: int | None = Field(None, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    address: str | None = None
    #: members trained together in one process (``auto``: where ``benchmarks/pack_speed.py``
    #: showed a gain; ``1``: never); see ``rcl_study.study.packing``
    pack: int | Literal["auto"] = "auto"
    #: ``ray`` (Ray Tune, trials in parallel) or ``local`` (this process, one unit at a time,
    #: without importing Ray)
    executor: Literal["ray", "local"] = "ray"

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
    bootstrap: int = Field(2000, ge=100)


class StudyFile(_Strict):
    """A whole study file."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
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
        return Path(self.study.output_dir or f"runs/{self.name}")

    @property
    def report_dir(self) -> Path:
        """Folder of the study's report."""
        return Path(self.report.dir or f"reports/{self.name}")


# ---------------------------------------------------------------------------------------------
# helpers


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _format_error(source: str, err: ValidationError) -> str:
    errors = err.errors()
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = tuple(e["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    if e["type"] == "extra_forbidden":
        owner = _owner_model(loc[:-1])
        hint = _suggest(loc[-1], owner.model_fields) if owner else ""
        return f"{source}: unknown key '{key}'{hint}"
    if e["type"] == "missing":
        return f"{source}: missing required key '{key}'"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "literal_error" and "input" in e:
        options = e.get("ctx", {}).get("expected", "")
        hint = _suggest(
            e["input"], [o.strip(" '") for o in str(options).replace(" or ", ",").split(",")]
        )
        return f"{source}: {key}: {msg}, got {e['input']!r}{hint}"
    got = f", got {e['input']!r}" if "input" in e and not isinstance(e["input"], dict) else ""
    return f"{source}: {key}: {msg}{got}"


def _owner_model(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """Model owning the keys at ``path``, walking dicts of models such as ``study.space.X``."""
    model: Any = StudyFile
    parts = list(path)
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            return None
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif getattr(ann, "__origin__", None) is dict:
            model = ann.__args__[1]
            if parts:
                parts.pop(0)
            else:
                return None
        else:
            return None
    return model


def parse_study(raw: Any, source: str = "<study>") -> StudyFile:
    """Validate a mapping as a study file; raise :class:`ConfigError` with a one-line message."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: a study file must be a YAML mapping, got {type(raw).__name__}"
        )
    try:
        return StudyFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(source, err)) from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file with ``safe_load``; errors become :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: study file not found")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}") from None


def check_key(key: str, source: str, where: str = "--set") -> None:
    """Raise :class:`ConfigError` unless the dotted ``key`` exists in the schema."""
    _check_key_path(key.split("."), source, where)


def _check_key_path(parts: list[str], source: str, where: str = "--set") -> None:
    model: Any = StudyFile
    for i, part in enumerate(parts):
        if model is None:
            return  # inside a free-form dict (e.g. study.grid): any key is allowed
        fields = model.model_fields
        if part not in fields:
            dotted = ".".join(parts[: i + 1])
            raise ConfigError(f"{source}: {where}: unknown key '{dotted}'{_suggest(part, fields)}")
        ann = fields[part].annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif i < len(parts) - 1:
            if getattr(ann, "__origin__", None) is dict:
                model = None
                continue
            raise ConfigError(f"{source}: {where}: '{'.'.join(parts[: i + 1])}' has no sub-keys")


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw study mapping."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{source}: --set '{item}': expected key.path=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        _check_key_path(parts, source)
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            parsed = value
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: --set: '{key}' is not inside a mapping")
        node[parts[-1]] = parsed
    return out


def load_study(path: str | Path, overrides: list[str] | None = None) -> StudyFile:
    """Load, override and validate a study file.

    Args:
        path: the YAML study file.
        overrides: ``key.path=value`` strings, applied in order before validation.

    Returns:
        The frozen, validated :class:`StudyFile`.

    Raises:
        ConfigError: with one line naming the file and the offending key.

    """
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study file must be a YAML mapping, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or [], str(path))
    return parse_study(raw, str(path))


def to_dict(cfg: BaseModel) -> dict[str, Any]:
    """A plain, JSON/YAML-safe dict of a config."""
    return cfg.model_dump(mode="json")


def set_path(cfg: StudyFile, updates: dict[str, Any]) -> StudyFile:
    """A new validated config with dotted-key ``updates`` applied (e.g. ``{"loss.scale": 2}``)."""
    raw = to_dict(cfg)
    for key, value in updates.items():
        parts = key.split(".")
        _check_key_path(parts, cfg.name, "key")
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return parse_study(raw, cfg.name)
