"""The one-line error of every bad study file or override, and how it is worded.

:class:`ConfigError` is what every part of ``rcl_study.config`` raises; :func:`format_error` turns
pydantic's ``ValidationError`` into one line naming the file and the key (suggesting the closest
valid key or value).
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A bad study file or override; the message is one line naming the file and the key."""


def suggest(word: str, options: Any) -> str:
    """`` (did you mean 'X'?)`` for the closest of ``options`` to ``word``, else ``""``."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def format_error(source: str, err: ValidationError, root: type[BaseModel]) -> str:
    """One line for the first problem of ``err`` (unknown keys first), ``root`` the top model."""
    errors = err.errors()
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = tuple(e["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    if e["type"] == "extra_forbidden":
        owner = _owner_model(root, loc[:-1])
        hint = suggest(loc[-1], owner.model_fields) if owner else ""
        return f"{source}: unknown key '{key}'{hint}"
    if e["type"] == "missing":
        return f"{source}: missing required key '{key}'"
    msg = e["msg"].removeprefix("Value error, ")
    if not loc:  # a check across sections names its keys itself
        return f"{source}: {msg}"
    if e["type"] == "literal_error" and "input" in e:
        options = e.get("ctx", {}).get("expected", "")
        hint = suggest(
            e["input"], [o.strip(" '") for o in str(options).replace(" or ", ",").split(",")]
        )
        return f"{source}: {key}: {msg}, got {e['input']!r}{hint}"
    got = f", got {e['input']!r}" if "input" in e and not isinstance(e["input"], dict) else ""
    return f"{source}: {key}: {msg}{got}"


def _owner_model(root: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """Model owning the keys at ``path``, walking dicts of models such as ``study.space.X``."""
    model: Any = root
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
