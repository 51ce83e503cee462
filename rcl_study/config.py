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
import math
import types
import typing
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
    "equiangular_gap_deg",
)
#: the one declaration of each metric's direction ("max": higher is better) and range (None:
#: unbounded), used by study.mode's check, the report's tables, figures and summary
METRIC_INFO: dict[str, tuple[str, tuple[float, float] | None]] = {
    "top1": ("max", (0.0, 1.0)),
    "balanced_acc": ("max", (0.0, 1.0)),
    "many_acc": ("max", (0.0, 1.0)),
    "medium_acc": ("max", (0.0, 1.0)),
    "few_acc": ("max", (0.0, 1.0)),
    "top1_lossless": ("max", (0.0, 1.0)),
    "balanced_acc_lossless": ("max", (0.0, 1.0)),
    "best_top1": ("max", (0.0, 1.0)),
    "best_balanced_acc": ("max", (0.0, 1.0)),
    "compactness": ("max", (-1.0, 1.0)),
    # sd (degrees) of the pairwise angles between class means; 0 = all equal (equiangular)
    "equiangular_gap_deg": ("min", (0.0, 180.0)),
}
#: metric keys renamed since records were first written: old -> new (old records stay readable)
RENAMED_METRICS = {"balancedness": "equiangular_gap_deg"}
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
}


class ConfigError(ValueError):
    """A bad study file or override; the message is one line naming the file and the key."""


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
    augment: Literal["auto", "autoaugment", "bcl", "crop_flip", "crop", "none"] = "auto"
    max_per_class: int | None = Field(None, ge=1)
    test_limit: int | None = Field(None, ge=1)
    workers: int = Field(4, ge=0)

    @field_validator("split_seed")
    @classmethod
    def _seed_range(cls, v: int | None) -> int | None:
        return _check_seed(v)


class ModelConfig(_Strict):
    """Backbone and heads (BCL: projection MLP, classifier, prototype MLP)."""

    arch: Literal["auto", "small_cnn", "resnet32", "resnet50", "resnext50"] = "auto"
    proj_hidden: int = Field(512, ge=1)
    proj_dim: int = Field(128, ge=1)
    width: int = Field(32, ge=1)
    norm: Literal["batch", "sync_batch", "none"] = "batch"
    classifier: Literal["linear", "cosine"] = "linear"


class TrainConfig(_Strict):
    """Optimisation. CIFAR defaults follow BCL (Zhu et al. 2022); sources in ``train.py``."""

    epochs: int = Field(200, ge=1)
    seed: int = 0
    batch_size: int = Field(256, ge=2)
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

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        return _check_seed(v)  # type: ignore[return-value]


class LossConfig(_Strict):
    """The loss of ``docs/loss.md``; ``None`` knobs take the preset's value."""

    preset: Literal[PRESETS] = "bcl+rcl"  # type: ignore[valid-type]
    temperature: float = Field(0.1, gt=0)
    balance: float | None = Field(None, ge=0)
    scale: float | None = Field(None, gt=0)
    margin: float | None = Field(None, ge=0)
    class_averaging: bool | None = None
    prototypes: bool | None = None
    logit_adjust: bool | None = None
    tau_la: float = Field(1.0, ge=0)
    scale_on: Literal["all", "views"] = "all"


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
    retries: int = Field(1, ge=0)  # --resume runs a failed trial again this many times
    output_dir: str | None = None

    @field_validator("metric", mode="before")
    @classmethod
    def _renamed_metric(cls, v: Any) -> Any:
        return RENAMED_METRICS.get(v, v) if isinstance(v, str) else v

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
                raise ValueError(f"unknown component '{c}'{_suggest(c, COMPONENTS)}")
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
    alpha: float = Field(0.05, gt=0, lt=1)


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


#: a study file is a page of settings: refuse anything larger before parsing it
MAX_FILE_BYTES = 1 << 20
#: nesting depth and node count (aliases expanded) a study file may have
MAX_DEPTH = 32
MAX_NODES = 100_000


class _Refused(yaml.YAMLError):
    """A study file refused by :class:`_StudyLoader` (message is one phrase)."""


class _StudyLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys and deep nesting while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose one node, refusing nesting deeper than :data:`MAX_DEPTH`."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels (line {line})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A mapping, refusing a key written twice (YAML merge keys ``<<`` may be overridden)."""
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                    key_node, yaml.ScalarNode
                ):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    line = key_node.start_mark.line + 1
                    raise _Refused(f"duplicate key '{key}' (line {line})")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_graph(root: Any) -> None:
    """Refuse self-referencing aliases and alias bombs (depth and size with aliases expanded)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES} values once aliases are expanded")
            if depth[key] > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded")
            continue
        if key in size:
            continue
        if key in on_path:
            raise _Refused(f"an alias refers to itself (line {node.start_mark.line + 1})")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node))


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and 0 in data[:2]):
        raise ValueError("UTF-16 text; save the study file as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); "
            "save the study file as UTF-8"
        ) from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML study file safely; every problem becomes a one-line :class:`ConfigError`.

    Plain ``safe_load`` types only, UTF-8 only, at most :data:`MAX_FILE_BYTES`; duplicate keys,
    self-referencing aliases, nesting deeper than :data:`MAX_DEPTH` and more than
    :data:`MAX_NODES` values (aliases expanded) are refused before any object is built.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: study file not found")
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{p}: cannot read the study file ({err.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{p}: larger than {MAX_FILE_BYTES >> 20} MiB; not a study file")
    try:
        text = _decode(data)
    except ValueError as err:
        raise ConfigError(f"{p}: {err}") from None
    loader = None
    try:
        loader = _StudyLoader(text)  # the reader refuses unprintable characters here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return loader.construct_document(node)
    except _Refused as err:
        raise ConfigError(f"{p}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}") from None
    except (ValueError, OverflowError) as err:  # e.g. an integer of 5,000 digits
        raise ConfigError(f"{p}: not valid YAML ({str(err).splitlines()[0][:80]})") from None
    finally:
        if loader is not None:
            loader.dispose()


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
    cfg = parse_study(raw, str(path))
    _check_kind_keys(raw, str(path))
    return cfg


def _check_kind_keys(raw: dict[str, Any], source: str) -> None:
    """Refuse study keys that another kind of study reads (e.g. ``study.space`` in an ablation)."""
    study = raw.get("study")
    if not isinstance(study, dict):
        return
    kind = study.get("kind", StudyConfig.model_fields["kind"].default)
    if kind not in ("ablation", "grid", "search"):
        return  # the schema names the bad kind
    for key in study:
        owner = KIND_KEYS.get(str(key))
        if owner is not None and owner != kind:
            raise ConfigError(
                f"{source}: study.{key}: only a study of kind '{owner}' reads it, this one is "
                f"'{kind}'; remove it or change study.kind"
            )


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
