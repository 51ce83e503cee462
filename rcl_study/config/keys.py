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
            raise ConfigError(f"{source}: {where}: unknown key '{dotted}'{suggest(part, fields)}")
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
        set_in(out, {key.strip(): parsed}, f"{source}: --set")
    return out


def to_dict(cfg: BaseModel) -> dict[str, Any]:
    """A plain, JSON/YAML-safe dict of a config."""
    return cfg.model_dump(mode="json")


def set_path(cfg: StudyFile, updates: dict[str, Any]) -> StudyFile:
    """A new validated config with dotted-key ``updates`` applied (e.g. ``{"loss.scale": 2}``)."""
    raw = to_dict(cfg)
    for key in updates:
        check_key(key, cfg.name, "key")
    set_in(raw, updates, cfg.name)
    return parse_study(raw, cfg.name)
