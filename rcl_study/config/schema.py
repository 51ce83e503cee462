"""The schema of a study file: one strict, frozen pydantic model per section.

A study file is YAML with the sections ``name``, ``data``, ``model``, ``train``, ``loss``,
``study`` (:mod:`.study_section`), ``resources`` (:mod:`.resources_section`) and ``report``. Every
section is a pydantic model with ``extra="forbid"`` (:mod:`.base`), so an unknown key at any depth
is an error that names the key and suggests the closest valid one. Validation errors become
one-line :class:`~rcl_study.config.errors.ConfigError` messages through :func:`parse_study`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from rcl_study.config.base import (
    Strict,
    check_seed,
    registered,
)
from rcl_study.config.dependent import refuse_ignored
from rcl_study.config.errors import ConfigError, format_error
from rcl_study.config.metrics import VALIDATED, selection_metric
from rcl_study.config.resources_section import ResourcesConfig
from rcl_study.config.study_section import StudyConfig
from rcl_study.losses.presets import PRESETS


class DataConfig(Strict):
    """Which data, how long-tailed, where it lives."""

    #: a registered dataset: ``digits_lt``, ``cifar10_lt``, ``cifar100_lt``,
    #: ``fashion_mnist_lt``, ``imagenet_lt``, ``inaturalist``, ``places_lt``, ``arrays`` (an
    #: exported ``.npz``) or a plugin's (``docs/plugins.md``)
    dataset: str = "digits_lt"
    #: the folder the dataset is read from (``~`` expanded; default: the dataset's own place, e.g.
    #: Debian's package for Fashion-MNIST)
    root: str | None = None
    #: fetch the dataset into ``root`` when it is missing (CIFAR, Fashion-MNIST); off: a missing
    #: dataset is an error
    download: bool = False
    #: the long tail's ratio of the largest to the smallest class (1: balanced)
    imbalance_ratio: float = Field(10.0, ge=1.0)
    #: how class sizes fall from head to tail: ``exponential`` (LDAM-DRW's CIFAR-LT) or ``step``
    #: (half the classes at the head's size, half at the tail's)
    profile: Literal["exponential", "step"] = "exponential"
    #: the seed of the long-tailed subset and the validation split: a number (None: 0, the
    #: published LDAM-DRW split), or ``trial``: each trial draws its own with its ``train.seed``
    #: (every variant of one seed trains on the same draw, so comparisons stay paired)
    split_seed: int | Literal["trial"] | None = None
    #: which classes are head and tail: ``fixed`` (class 0 the head, the last class the tail, as
    #: LDAM-DRW) or ``random`` (a permutation of the classes drawn from the split seed)
    class_order: Literal["fixed", "random"] = "fixed"
    #: the ``arrays`` dataset's ``.npz`` file (else ``root``), as written by ``python -m
    #: rcl_study.data export``
    path: str | None = None
    #: a list dataset's training list file (``<image path> <label>`` per line, paths under ``root``)
    train_list: str | None = None
    #: a list dataset's test list file (same format as ``train_list``)
    test_list: str | None = None
    #: a list dataset's number of classes (default: the largest label plus one)
    num_classes: int | None = Field(None, ge=2)
    #: the side in pixels list datasets (ImageNet-LT, iNaturalist, Places-LT) are decoded at; CIFAR
    #: and the digit sets keep their own
    image_size: int = Field(224, ge=8, le=4096)
    #: the augmentation recipe of the three views (``docs/recipe.md``): ``auto`` picks
    #: ``autoaugment`` at 32 px colour, ``bcl`` above, ``crop`` for small or grey images
    augment: Literal["auto", "autoaugment", "bcl", "crop_flip", "crop", "none"] = "auto"
    #: cap each training class at this many images after the long tail is drawn (shrinks a study for
    #: a rehearsal)
    max_per_class: int | None = Field(None, ge=1)
    #: evaluate on about this many test images, the same number from every class (shrinks a
    #: rehearsal)
    test_limit: int | None = Field(None, ge=1)
    #: images of the head class before the long tail (default: the source's largest class;
    #: digits_lt its smallest): 300 at IR 100 keeps 300, 179, ..., 3 images per class
    head_images: int | None = Field(None, ge=1, le=10_000_000)
    #: validation images per class, class-balanced, disjoint from training and test (see
    #: docs/recipe.md, "Validation split"); 0: no validation split (choices fall back to test)
    val_per_class: int = Field(20, ge=0, le=100_000)
    #: a list dataset's validation list file (ImageNet-LT, iNaturalist and Places-LT ship one)
    val_list: str | None = None
    #: threads decoding each batch of a list dataset read from disk (0 or 1: no extra
    #: threads; datasets held in memory ignore it)
    workers: int = Field(4, ge=0)

    @field_validator("split_seed")
    @classmethod
    def _seed_range(cls, v: int | str | None) -> int | str | None:
        return v if isinstance(v, str) else check_seed(v)

    @field_validator("dataset")
    @classmethod
    def _registered_dataset(cls, v: str) -> str:
        return registered("datasets", v)


class ModelConfig(Strict):
    """Backbone and heads (BCL: projection MLP, classifier, prototype MLP)."""

    #: ``auto`` (by image size) or a registered backbone (``rcl_study.registry``)
    arch: str = "auto"
    #: hidden width of the projection MLP of the contrastive branch (and of the prototype MLP)
    proj_hidden: int = Field(512, ge=1)
    #: output width of the projection MLP: the space the contrastive loss compares in
    proj_dim: int = Field(128, ge=1)
    #: channels of the first stage of the small CNNs and ResNet-32 (each later stage doubles it);
    #: torchvision's networks ignore it
    width: int = Field(32, ge=1)
    #: normalisation layers: ``batch``, ``sync_batch`` (synchronised across data-parallel GPU
    #: workers) or ``none``
    norm: Literal["batch", "sync_batch", "none"] = "batch"
    #: the classification head: ``linear``, or ``cosine`` (normalised weights and features, as BCL's
    #: CIFAR code)
    classifier: Literal["linear", "cosine"] = "linear"

    @field_validator("arch")
    @classmethod
    def _registered_arch(cls, v: str) -> str:
        return v if v == "auto" else registered("backbones", v)


class TrainConfig(Strict):
    """Optimisation. CIFAR defaults follow BCL (Zhu et al. 2022); sources in ``docs/recipe.md``."""

    #: passes over the long-tailed training set
    epochs: int = Field(200, ge=1, le=100_000)
    #: the trial's seed (network initialisation, batch order, augmentation; with ``data.split_seed:
    #: trial`` also the data draw); a study sets it from ``study.seeds``
    seed: int = 0
    #: images per step, summed over data-parallel workers
    batch_size: int = Field(256, ge=2, le=1 << 20)
    #: the peak learning rate of SGD with momentum, reached after the warm-up
    lr: float = Field(0.15, gt=0)
    #: SGD's momentum
    momentum: float = Field(0.9, ge=0, lt=1)
    #: SGD's L2 weight decay
    weight_decay: float = Field(5e-4, ge=0)
    #: epochs of linear learning-rate warm-up from 0
    warmup_epochs: int = Field(5, ge=0)
    #: after the warm-up: ``cosine`` decay to 0, or ``step``: x0.1 at each of ``milestones``
    #: (0-based epochs; BCL's CIFAR recipe: [160, 180], set in the CIFAR studies, see
    #: ``docs/recipe.md`` row 19; the default stays cosine for every other study)
    schedule: Literal["cosine", "step"] = "cosine"
    #: epochs where a ``step`` schedule multiplies the learning rate by 0.1
    milestones: list[int] | None = None
    #: weight of the classification term in BCL's total loss (``alpha * L_cls + beta * L_con``)
    alpha: float = Field(2.0, ge=0)
    #: weight of the contrastive term (0 for presets without one)
    beta: float = Field(0.6, ge=0)
    #: save a resumable checkpoint every this many epochs (and at the end)
    checkpoint_every: int = Field(1, ge=1)
    #: evaluate on validation and test every this many epochs (and at the end); learning curves have
    #: this resolution
    eval_every: int = Field(1, ge=1)
    #: stop each epoch after this many steps (a rehearsal); None: the whole training set
    max_steps_per_epoch: int | None = Field(None, ge=1)
    #: ``auto`` (CUDA when there is one), ``cpu`` or ``cuda`` (an error without one)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    #: PyTorch CPU threads of the trial (None: PyTorch's default); one per trial suits many trials
    #: on one machine
    threads: int | None = Field(None, ge=1)
    #: print a progress line per epoch on the trial's log
    progress: bool = True
    #: after a trial succeeds: keep its last checkpoint (resume, inspection) or delete it
    keep_checkpoints: Literal["last", "none"] = "last"

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        return check_seed(v)  # type: ignore[return-value]

    @model_validator(mode="after")
    def _schedule_milestones(self) -> TrainConfig:
        """``step`` needs increasing milestones after the warm-up; ``cosine`` takes none.

        A milestone at or past ``epochs`` is allowed (it never fires): a short rehearsal of a
        200-epoch study (``--set train.epochs=2``) keeps the study's milestones.
        """
        ms = self.milestones
        if self.schedule == "cosine":
            if ms is not None:
                raise ValueError(
                    "milestones: only for schedule 'step' (cosine ignores them); "
                    "set train.schedule: step or drop train.milestones"
                )
            return self
        if not ms:
            raise ValueError("schedule 'step' needs milestones, e.g. train.milestones: [160, 180]")
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"milestones must increase strictly, got {ms}")
        if ms[0] <= self.warmup_epochs:
            raise ValueError(
                f"milestones must come after the warm-up (warmup_epochs {self.warmup_epochs}), "
                f"got {ms}"
            )
        return self


#: the largest magnitude of a classification loss's parameter (a weight, a margin, a power)
PARAM_LIMIT = 1e6
#: a number passed to a registered loss (``classification_params``, ``contrastive_params``)
LossParam = Annotated[float, Field(ge=-PARAM_LIMIT, le=PARAM_LIMIT)]


class LossConfig(Strict):
    """The loss of ``docs/loss.md``; ``None`` knobs take the preset's value."""

    #: the loss family member (``docs/loss.md``, "The training loss and the presets")
    preset: Literal[tuple(PRESETS)] = "bcl+rcl"  # type: ignore[valid-type]
    #: the contrastive temperature tau
    temperature: float = Field(0.1, gt=0)
    #: RCL's balance gamma: weight of the log-prior term that rebalances the contrastive softmax
    #: (None: the preset's)
    balance: float | None = Field(None, ge=0)
    #: RCL's compactness scale s on the contrastive similarities (None: the preset's; 1 is off)
    scale: float | None = Field(None, gt=0)
    #: RCL's tail margin m in logits, largest for the rarest class (None: the preset's; see
    #: ``docs/loss.md``, margins in units that matter)
    margin: float | None = Field(None, ge=0)
    #: BCL's class-averaging of the contrastive denominator (None: the preset's)
    class_averaging: bool | None = None
    #: BCL's class-complement: one prototype per class among the candidates (None: the preset's)
    prototypes: bool | None = None
    #: logit-adjusted cross-entropy for the classification term (None: the preset's)
    logit_adjust: bool | None = None
    #: the logit adjustment's strength (1: Balanced Softmax)
    tau_la: float = Field(1.0, ge=0)
    #: where ``scale`` applies: ``all`` similarities, or ``views`` only (prototype products
    #: unscaled, so the scale is no temperature in disguise)
    scale_on: Literal["all", "views"] = "all"
    #: a registered classification loss replacing the preset's (None: the preset's CE or
    #: logit-adjusted CE), called with ``classification_params`` as keyword arguments
    classification: str | None = None
    #: keyword arguments of ``classification`` (numbers)
    classification_params: dict[str, LossParam] = Field(default_factory=dict)
    #: a registered contrastive loss replacing the preset's SupCon / BCL / RCL loss
    #: (``docs/plugins.md``): called with the features, labels, class counts, prototypes and
    #: every loss knob above, plus ``contrastive_params``; only for presets with a contrastive term
    contrastive: str | None = None
    #: extra keyword arguments of ``contrastive`` (numbers)
    contrastive_params: dict[str, LossParam] = Field(default_factory=dict)

    @field_validator("classification")
    @classmethod
    def _registered_loss(cls, v: str | None) -> str | None:
        return v if v is None else registered("losses", v)

    @field_validator("contrastive")
    @classmethod
    def _registered_contrastive(cls, v: str | None) -> str | None:
        return v if v is None else registered("contrastive", v)


class SecondaryReport(Strict):
    """A secondary analysis of the study's records: another baseline, its own Holm family.

    Written to its own report (``dir``, default ``<report.dir>_<name>``), labelled secondary (not
    part of the primary Holm family), rebuilt by ``--report-only --secondary <name>``.
    """

    #: the analysis's name (``--report-only --secondary <name>``)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=100)
    #: the variant this analysis compares every other with
    baseline: str
    #: the analysis's question, printed at its top
    question: str | None = None
    #: its report folder (default: ``<report.dir>_<name>``)
    dir: str | None = None


def check_contrasts(contrasts: list[str]) -> list[str]:
    """``contrasts`` when each is ``"<treatment> - <control>"`` of two variants, none twice."""
    seen: set[str] = set()
    for c in contrasts:
        parts = [p.strip() for p in c.split(" - ")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(
                f"'{c}': a contrast is '<treatment variant> - <control variant>' (spaces "
                "around the minus)"
            )
        if parts[0] == parts[1]:
            raise ValueError(f"'{c}': a variant compared with itself")
        if c in seen:
            raise ValueError(f"'{c}': a contrast is listed twice")
        seen.add(c)
    return contrasts


class ReportConfig(Strict):
    """Where and how the report is written."""

    #: the report's folder (default: ``reports/<name>``)
    dir: str | None = None
    #: the variant every other is compared with (default: the first; an ablation's all-off variant)
    baseline: str | None = None
    #: the question the study answers, printed at the top of the report
    question: str | None = None
    #: bootstrap resamples for the intervals that use one (IQM, probability of improvement)
    bootstrap: int = Field(2000, ge=100, le=1_000_000)
    #: the family-wise error rate of each Holm family, and 1 - the intervals' coverage
    alpha: float = Field(0.05, gt=0, lt=1)
    #: analyses declared secondary (each its own report and Holm family)
    secondary: list[SecondaryReport] = Field(default_factory=list, max_length=100)
    #: a two-key grid whose other key has two values: that key's effect (second value minus
    #: first) at each value of this key, one Holm family, and whether it changes across them
    #: (one-way ANOVA); replaces the comparisons with the first variant unless ``baseline`` is set
    within: str | None = None
    #: the contrasts that answer the study's question, declared before the data: each
    #: ``"<treatment variant> - <control variant>"``; empty: the comparisons with the baseline
    #: (or, with ``within``, its effect at each value). Tested group-sequentially under
    #: ``study.rounds``; restated in the report as declared, apart from exploratory analyses
    primary: list[str] = Field(default_factory=list, max_length=100)
    #: the smallest effect of interest (in the metric's units, > 0): a primary contrast whose
    #: repeated confidence interval lies inside (-sesoi, +sesoi) is decided "no effect of that
    #: size" (futility, under ``study.rounds``); refused where no primary contrast is tested
    #: (neither ``report.primary`` nor ``study.rounds``, or a search)
    sesoi: float | None = Field(None, gt=0)
    #: display names for variants and keys in the report's tables, figures and ``tables.tex``
    #: (e.g. ``{"loss.preset=bcl+rcl": "BCL+RCL", "loss.scale": "scale s"}``); a grid value is
    #: named as ``"<key>=<value>"``; names not listed are shown as they are
    labels: dict[str, str] = Field(default_factory=dict, max_length=1000)

    @field_validator("primary")
    @classmethod
    def _contrast_form(cls, v: list[str]) -> list[str]:
        return check_contrasts(v)

    @field_validator("secondary")
    @classmethod
    def _unique_names(cls, v: list[SecondaryReport]) -> list[SecondaryReport]:
        names = [s.name for s in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two secondary analyses are named '{twice[0]}'; names are unique")
        return v


#: the longest file name most file systems allow (bytes), less the ``-smoke`` suffix
NAME_LIMIT = 255 - len("-smoke")


class StudyFile(Strict):
    """A whole study file."""

    #: the study's name: it names ``runs/<name>/`` and ``reports/<name>/``
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

    @model_validator(mode="after")
    def _search_chooses_on_validation(self) -> StudyFile:
        metric = self.study.metric
        if self.study.kind == "search" and self.data.val_per_class > 0 and metric not in VALIDATED:
            raise ValueError(
                f"study.metric: a search chooses on the validation split, and '{metric}' has no "
                f"validation counterpart; use one of {', '.join(VALIDATED)} (or set "
                "data.val_per_class: 0 to choose on test, optimistic)"
            )
        return self

    @model_validator(mode="after")
    def _dependent_keys_read(self) -> StudyFile:
        refuse_ignored(self)
        return self

    @property
    def selection_metric(self) -> str:
        """The key the study's choices read (``val_<study.metric>``; see ``selection_metric``)."""
        return selection_metric(self.study.metric, self.data.val_per_class > 0)

    @property
    def output_dir(self) -> Path:
        """Folder of the study's records (trials, checkpoints, results table)."""
        return Path(self.study.output_dir or f"runs/{self.name}").expanduser()  # as checked

    @property
    def report_dir(self) -> Path:
        """Folder of the study's report."""
        return Path(self.report.dir or f"reports/{self.name}").expanduser()  # as checked

    def secondary(self, name: str) -> SecondaryReport:
        """The secondary analysis called ``name`` (:class:`ConfigError` naming those declared)."""
        for s in self.report.secondary:
            if s.name == name:
                return s
        declared = ", ".join(s.name for s in self.report.secondary) or "none declared"
        raise ConfigError(
            f"{self.name}: --secondary '{name}' is not in report.secondary ({declared})"
        )

    def secondary_dir(self, name: str) -> Path:
        """Folder of a secondary analysis's report: its ``dir``, else ``<report dir>_<name>``."""
        s = self.secondary(name)
        if s.dir:
            return Path(s.dir).expanduser()
        return self.report_dir.with_name(f"{self.report_dir.name}_{name}")


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
