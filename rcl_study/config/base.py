"""What every section of the study-file schema shares: the strict base model and the checks.

Constants of the schema (datasets, ablation components, seed range, which sections vary between
trials, which study keys belong to which kind of study) and the small validators the sections use.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from rcl_study.losses.presets import OFF_VALUES

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
    """``"scalar"`` for int/float annotations, ``"list"`` for lists of them.

    In a union the numeric member decides (``int | Literal["trial"] | None`` is a scalar): a
    boolean is never one of its numbers.
    """
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        shapes = {_numeric_shape(a) for a in typing.get_args(ann)} - {None}
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


class Strict(BaseModel):
    """A section: unknown keys refused, frozen, defaults validated, numbers never booleans."""

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


def check_seed(v: int | None) -> int | None:
    """``v`` when it is a valid NumPy seed (or None); else a ``ValueError``."""
    if v is not None and not 0 <= v < SEED_LIMIT:
        raise ValueError(f"a seed must be in [0, 2**32) (NumPy's range), not {v}")
    return v


def registered(kind: str, name: str) -> str:
    """``name`` when it is a registered part of ``kind``; else a one-line error with a hint."""
    from rcl_study import registry

    if name not in registry.names(kind):
        raise ValueError(registry.unknown(kind, name))
    return name


def same_value(a: Any, b: Any) -> bool:
    """Equal values of the same kind (``1 == True`` in Python, not here)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def trial_key(key: str) -> None:
    """A key a grid or search may vary: a trial setting, not the seed (``study.seeds`` does)."""
    if key == "train.seed":
        raise ValueError("train.seed is set per trial by study.seeds; list the seeds there")
    if key.split(".", 1)[0] not in TRIAL_SECTIONS:
        raise ValueError(
            f"'{key}' is not a trial setting; only {', '.join(TRIAL_SECTIONS)} keys vary"
        )
