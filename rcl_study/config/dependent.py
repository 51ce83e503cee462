"""Keys that only matter with another: refused where the toolkit would ignore them.

Each :class:`Dependent` names a key, its default, the keys that decide whether it is read (its
governors) and that decision. :func:`refuse_ignored` (a check of the whole study file) refuses a
key set away from its default where it would not be read, unless the study varies one of its
governors (a grid over ``loss.classification`` with ``classification_params`` set: some arms read
them); :func:`ignored` gives the keys a trial does not read, which the same-training check of a
grid resets to their defaults so that arms differing only there are found to be one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_study.config.base import same_value
from rcl_study.losses.presets import PRESETS, resolve_loss

#: a validated study file (:class:`~rcl_study.config.schema.StudyFile`, which imports this module)
StudyFile = Any


@dataclass(frozen=True)
class Dependent:
    """A key read only when ``reads(cfg)``; ``needs`` says when, in words."""

    key: str
    default: Any
    governors: tuple[str, ...]
    needs: str
    reads: Callable[[StudyFile], bool]


def _logit_adjusted(cfg: StudyFile) -> bool:
    spec = resolve_loss(cfg.loss, cfg.train.alpha, cfg.train.beta)
    return spec.logit_adjust and spec.classification is None


DEPENDENT = (
    Dependent(
        "loss.classification_params",
        {},
        ("loss.classification",),
        "loss.classification (the registered loss it is passed to)",
        lambda cfg: cfg.loss.classification is not None,
    ),
    Dependent(
        "loss.tau_la",
        1.0,
        ("loss.preset", "loss.logit_adjust", "loss.classification"),
        "the logit-adjusted cross-entropy (loss.logit_adjust on, by the preset or set, and no "
        "loss.classification)",
        _logit_adjusted,
    ),
    Dependent(
        "loss.contrastive",
        None,
        ("loss.preset",),
        "a preset with a contrastive term (supcon, bcl, rcl, bcl+rcl)",
        lambda cfg: PRESETS[cfg.loss.preset][1],
    ),
    Dependent(
        "loss.contrastive_params",
        {},
        ("loss.contrastive",),
        "loss.contrastive (the registered contrastive loss it is passed to)",
        lambda cfg: cfg.loss.contrastive is not None,
    ),
    Dependent(
        "report.sesoi",
        None,
        ("report.primary", "study.rounds", "study.kind"),
        "primary contrasts to test (report.primary or study.rounds, in a grid or an ablation)",
        lambda cfg: cfg.study.kind != "search" and bool(cfg.report.primary or cfg.study.rounds),
    ),
    Dependent(
        "resources.mlflow_uri",
        None,
        ("resources.tracking",),
        "mlflow in resources.tracking",
        lambda cfg: "mlflow" in cfg.resources.tracking,
    ),
)


def value_at(cfg: Any, key: str) -> Any:
    """The value of dotted ``key`` in a validated config."""
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def varied(cfg: StudyFile) -> set[str]:
    """The keys the study varies between trials (grid, space, ablation components)."""
    study = cfg.study
    if study.kind == "grid":
        return set(study.grid)
    if study.kind == "search":
        return set(study.space)
    return {f"loss.{c}" for c in study.components}


def ignored(cfg: StudyFile) -> dict[str, Any]:
    """``{key: default}`` of every dependent key set away from its default but not read."""
    return {
        d.key: d.default
        for d in DEPENDENT
        if not same_value(value_at(cfg, d.key), d.default) and not d.reads(cfg)
    }


def refuse_ignored(cfg: StudyFile) -> None:
    """Raise ``ValueError`` for a dependent key set where it would be ignored (see module doc)."""
    unread = ignored(cfg)
    moving = varied(cfg)
    for d in DEPENDENT:
        if d.key in unread and not moving & set(d.governors):
            raise ValueError(
                f"{d.key}: only read with {d.needs}; without it the value would be ignored: "
                f"set that, or remove {d.key}"
            )
