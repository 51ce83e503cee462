"""Dotted keys (``loss.scale``) of a study: checked against the schema, read and set.

One walker, :func:`walk`, goes down a raw mapping along a dotted key and raises when a parent is
not a mapping; ``--set`` (:func:`apply_overrides`), ``--smoke`` and every trial's resolution
(:func:`set_path`) go through it.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from rcl_study.config.base import TRIAL_SECTIONS
from rcl_study.config.errors import ConfigError, suggest
from rcl_study.config.schema import StudyFile, parse_study


def walk(
    raw: dict[str, Any], key: str, source: str = "<study>", create: bool = True
) -> tuple[dict[str, Any] | None, str]:
    """(the mapping that holds the last part of dotted ``key``, that part), going down ``raw``.

    Missing parents are created as empty mappings when ``create`` (else the mapping is None).

    Raises:
        ConfigError: a parent on the way exists but is not a mapping.

    """
    *parents, leaf = key.split(".")
    node: Any = raw
    for i, part in enumerate(parents):
        if part not in node:
            if not create:
                return None, leaf
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            dotted = ".".join(parents[: i + 1])
            raise ConfigError(f"{source}: '{key}': '{dotted}' is not a mapping")
    return node, leaf


def set_in(raw: dict[str, Any], updates: dict[str, Any], source: str = "<study>") -> None:
    """Set dotted-key ``updates`` in the raw mapping ``raw`` in place (see :func:`walk`)."""
    for key, value in updates.items():
        node, leaf = walk(raw, key, source)
        assert node is not None  # created
        node[leaf] = value


#: dotted keys found in the schema (a trial's keys are checked once, not once per trial)
_KNOWN_KEYS: set[str] = set()


def check_key(key: str, source: str, where: str = "--set") -> None:
    """Raise :class:`ConfigError` unless the dotted ``key`` exists in the schema."""
    if key not in _KNOWN_KEYS:
        _check_key_path(key.split("."), source, where)
        _KNOWN_KEYS.add(key)


def _check_key_path(parts: list[str], source: str, where: str = "--set") -> None:
    model: Any = StudyFile
    for i, part in enumerate(parts):
        if model is None:
            return  # inside a free-form dict (e.g. study.grid): any key is allowed
        fields = model.model_fields
        if part not in fields:
            dotted = ".".join(parts[: i + 1])
            raise ConfigError(f"{source}: {where}: unknown key '{dotted}'{suggest(part, fields)}")
        ann = fields[part].annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif i < len(parts) - 1:
            if getattr(ann, "__origin__", None) is dict:
                model = None
                continue
            raise ConfigError(f"{source}: {where}: '{'.'.join(parts[: i + 1])}' has no sub-keys")


#: the study keys whose own keys are dotted trial keys: ``--set`` names them in brackets
BRACKETED = ("study.grid", "study.space")


def split_key(key: str, source: str = "<study>") -> list[str]:
    """The parts of an override key; ``[...]`` quotes one part that holds dots.

    ``study.grid[loss.scale]`` is ``["study", "grid", "loss.scale"]`` and
    ``study.space[loss.scale].high`` is ``["study", "space", "loss.scale", "high"]``.
    """
    parts: list[str] = []
    rest = key.strip()
    while rest:
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise ConfigError(f"{source}: --set '{key}': a '[' without its ']'")
            parts.append(rest[1:end])
            rest = rest[end + 1 :].removeprefix(".")
            continue
        cut = [i for i in (rest.find("."), rest.find("[")) if i >= 0]
        end = min(cut) if cut else len(rest)
        parts.append(rest[:end])
        rest = rest[end:].removeprefix(".")
    for owner in BRACKETED:
        head = owner.split(".")
        if parts[:2] == head and len(parts) > 2 and not key.strip().startswith(f"{owner}["):
            name = ".".join(parts[2:4])
            raise ConfigError(
                f"{source}: --set '{key}': name a key of {owner} in brackets, e.g. "
                f"{owner}[{name}]=..."
            )
    return parts


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw study mapping.

    A key of ``study.grid`` or ``study.space`` (itself dotted) goes in brackets:
    ``study.grid[loss.scale]=[1, 2]``, ``study.space[loss.scale].high=3``.
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{source}: --set '{item}': expected key.path=value")
        key, value = item.split("=", 1)
        parts = split_key(key, source)
        _check_key_path(parts, source)
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            parsed = value
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                dotted = ".".join(parts[: i + 1])
                raise ConfigError(f"{source}: --set: '{key}': '{dotted}' is not a mapping")
        node[parts[-1]] = parsed
    return out


def check_overrides_used(cfg: StudyFile, overrides: list[str], source: str) -> None:
    """Refuse a ``--set`` on a key that each trial sets anyway (it would be ignored).

    ``train.seed`` (``study.seeds`` sets it), a key that ``study.grid`` sweeps or that
    ``study.space`` searches (for a grid or search study).
    """
    owned: dict[str, str] = {"train.seed": "study.seeds"}
    if cfg.study.kind == "grid":
        owned.update({k: "study.grid" for k in cfg.study.grid})
    elif cfg.study.kind == "search":
        owned.update({k: "study.space" for k in cfg.study.space})
    hit: dict[str, str] = {}
    for item in overrides:
        key = ".".join(split_key(item.split("=", 1)[0], source))
        for k, owner in owned.items():
            if key == k or k.startswith(f"{key}.") or key.startswith(f"{k}."):
                hit[k] = owner
    if hit:
        named = ", ".join(f"{k} (set by {o})" for k, o in hit.items())
        raise ConfigError(
            f"{source}: --set: every trial sets {named}; a --set there would be ignored: "
            "change the study key instead"
        )


def to_dict(cfg: BaseModel) -> dict[str, Any]:
    """A plain, JSON/YAML-safe dict of a config."""
    return cfg.model_dump(mode="json")


def set_path(cfg: StudyFile, updates: dict[str, Any]) -> StudyFile:
    """A new validated config with dotted-key ``updates`` applied (e.g. ``{"loss.scale": 2}``).

    Updates of trial settings only (every trial's resolution) validate the trial sections again
    and keep the study's other sections as validated once (a grid of many points is not checked
    again for every trial); the checks across sections run again on the whole.
    """
    for key in updates:
        check_key(key, cfg.name, "key")
    if all(key.split(".", 1)[0] in TRIAL_SECTIONS for key in updates):
        raw: dict[str, Any] = {"name": cfg.name}
        raw.update((s, to_dict(getattr(cfg, s))) for s in TRIAL_SECTIONS)
        set_in(raw, updates, cfg.name)
        kept = {s: getattr(cfg, s) for s in StudyFile.model_fields if s not in raw}
        return parse_study({**raw, **kept}, cfg.name)
    raw = to_dict(cfg)
    set_in(raw, updates, cfg.name)
    return parse_study(raw, cfg.name)


def add_set_option(parser: Any, help: str) -> None:
    """Add the command lines' ``--set KEY=VALUE`` option (repeatable) to an argparse parser.

    The values collect in ``overrides``, for :func:`apply_overrides`.
    """
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )
