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
    if origin is typing.Annotated:
        return _numeric_shape(typing.get_args(ann)[0])
    if ann in (int, float):
        return "scalar"
    args = typing.get_args(ann)
    if origin is list and args and _numeric_shape(args[0]) == "scalar":
        return "list"
    if origin is dict and len(args) == 2 and _numeric_shape(args[1]) == "scalar":
        return "dict"
    return None


def _check_number(v: Any) -> None:
    if isinstance(v, bool):
        raise ValueError("expected a number, not a boolean")


def check_tree(v: Any, where: str = "") -> None:
    """Refuse a value holding, at any depth, a float that is not finite or unwritable text.

    Text must encode as UTF-8 (a lone surrogate such as U+DC80, which a YAML escape or
    an undecodable command-line byte gives, would fail the first write of a record, a folder
    name or a report); mapping keys are text too. ``where`` names the place inside the value.
    """
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"expected a finite number{where and f' at {where}'}, got {v}")
    elif isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"text{where and f' at {where}'} cannot be written as UTF-8 (a lone surrogate, "
                f"{v[err.start]!r}, at character {err.start})"
            ) from None
    elif isinstance(v, dict):
        for key, item in v.items():
            check_tree(key, where)
            check_tree(item, f"{where}.{key}" if where else str(key))
    elif isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            check_tree(item, f"{where}[{i}]" if where else f"item {i}")


class Strict(BaseModel):
    """A section: unknown keys refused, frozen, defaults validated, numbers never booleans."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any, info: Any) -> Any:
        """Booleans are not numbers (YAML's ``yes`` is ``True``); values pass :func:`check_tree`.

        Inside lists and mappings too: a float at any depth is finite, any text is UTF-8 (a
        section's own fields check themselves, naming their keys).
        """
        shape, section = _field_kind(cls, info.field_name)
        if shape == "scalar":
            _check_number(v)
        elif shape == "list" and isinstance(v, list):
            for item in v:
                _check_number(item)
        elif shape == "dict" and isinstance(v, dict):
            for item in v.values():
                _check_number(item)
        if not section:  # a section checks its own fields
            check_tree(v)
        return v


#: (model, field) -> (its numeric shape, whether it is a section): read once per field
_FIELD_KINDS: dict[tuple[type, str], tuple[str | None, bool]] = {}


def _field_kind(model: type[BaseModel], name: str) -> tuple[str | None, bool]:
    """The numeric shape of a field's annotation and whether it is a model (a section)."""
    kind = _FIELD_KINDS.get((model, name))
    if kind is None:
        ann = model.model_fields[name].annotation
        section = isinstance(ann, type) and issubclass(ann, BaseModel)
        kind = _FIELD_KINDS[(model, name)] = (_numeric_shape(ann), section)
    return kind


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


def value_key(v: Any) -> Any:
    """A hashable stand-in for a study value: equal for two values exactly when they are the same.

    The same: of one kind at the top (a boolean is not a number: ``True`` is not ``1``) and equal
    in Python (``1`` is ``1.0``; lists and mappings equal item by item). Lists become tuples and
    mappings frozensets of their items, so duplicates are found by hashing, not pairwise.
    """
    return (isinstance(v, bool), _frozen(v))


def _frozen(v: Any) -> Any:
    if isinstance(v, dict):
        return frozenset((k, _frozen(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    return v


def same_value(a: Any, b: Any) -> bool:
    """Equal values of the same kind (``1 == True`` in Python, not here); see :func:`value_key`."""
    return value_key(a) == value_key(b)


def first_repeat(values: list[Any]) -> int | None:
    """The index of the first value listed a second time (:func:`same_value`), or None."""
    seen: set[Any] = set()
    for i, v in enumerate(values):
        key = value_key(v)
        if key in seen:
            return i
        seen.add(key)
    return None


def trial_key(key: str) -> None:
    """A key a grid or search may vary: a trial setting, not the seed (``study.seeds`` does)."""
    if key == "train.seed":
        raise ValueError("train.seed is set per trial by study.seeds; list the seeds there")
    if key.split(".", 1)[0] not in TRIAL_SECTIONS:
        raise ValueError(
            f"'{key}' is not a trial setting; only {', '.join(TRIAL_SECTIONS)} keys vary"
        )
