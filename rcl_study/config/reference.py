"""The reference of study-file keys (``docs/keys.md``), generated from the schema itself.

Each key's type, default and bounds come from its pydantic field; its meaning is the ``#:``
comment above the field in the section's source (the convention Sphinx reads as attribute
documentation). ``python -m rcl_study.config.reference`` prints the page; a test fails when
``docs/keys.md`` and the schema drift apart, or when a key has no meaning written.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from rcl_study.config.schema import StudyFile

_FIELD_LINE = re.compile(r"^    ([a-z_][a-z0-9_]*)\s*:")


@dataclass(frozen=True)
class KeyRow:
    """One study-file key: its dotted name, type, default, bounds and meaning."""

    key: str
    type: str
    default: str
    bounds: str
    meaning: str


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The ``#:`` comment lines directly above each field of ``model``'s class body, joined."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(model).splitlines():
        stripped = line.strip()
        if line.startswith("    #:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD_LINE.match(line)
        if match and pending:
            comments[match.group(1)] = " ".join(pending)
        if stripped:
            pending = []
    return comments


def _type_name(ann: Any) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if ann is type(None):
        return "null"
    if ann is Any:
        return "any"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "mapping"
    return getattr(ann, "__name__", str(ann))


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`" if value != "" else '`""`'


_BOUND_SYMBOLS = ((at.Ge, "ge", ">="), (at.Gt, "gt", ">"), (at.Le, "le", "<="), (at.Lt, "lt", "<"))


def _bounds(field: Any) -> str:
    parts = []
    for meta in field.metadata:
        for kind, attr, symbol in _BOUND_SYMBOLS:
            if isinstance(meta, kind):
                parts.append(f"{symbol} {getattr(meta, attr)}")
        if isinstance(meta, at.MinLen):
            parts.append(f"length >= {meta.min_length}")
        if isinstance(meta, at.MaxLen):
            parts.append(f"length <= {meta.max_length}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _nested(ann: Any) -> tuple[type[BaseModel] | None, str]:
    """The section model inside ``ann`` (a model, or a list or dict of one) and its key suffix."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann, ""
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0], "[]"
    if origin is dict and len(args) == 2 and isinstance(args[1], type):
        if issubclass(args[1], BaseModel):
            return args[1], ".<key>"
    return None, ""


def key_rows(model: type[BaseModel] = StudyFile, prefix: str = "") -> list[KeyRow]:
    """Every key of ``model`` (by default the whole study file), depth first, in schema order."""
    comments = field_comments(model)
    rows: list[KeyRow] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        section, suffix = _nested(field.annotation)
        if section is not None and not suffix:
            rows.extend(key_rows(section, key + "."))
            continue
        rows.append(
            KeyRow(
                key=key,
                type=_type_name(field.annotation),
                default=_default(field),
                bounds=_bounds(field),
                meaning=comments.get(name, ""),
            )
        )
        if section is not None:
            rows.extend(key_rows(section, key + suffix + "."))
    return rows


_HEADER = """# Study-file keys

Every key a study file (or `--set KEY=VALUE`) takes, by its dotted name, generated from the
schema (`python -m rcl_study.config.reference > docs/keys.md`; a test fails when they drift).
Unknown keys are refused with the closest valid one suggested; values outside the bounds are
refused in one line. Only `data`, `model`, `train` and `loss` keys vary between trials (as
`study.grid` or `study.space` keys). The science behind the defaults is in `docs/recipe.md`,
the loss's knobs in `docs/loss.md`, the metrics in `docs/measures.md`.
"""


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def _cell(text: str) -> str:
    """Markdown for a table cell: Sphinx roles and double backquotes as code, pipes escaped."""
    return _ROLE.sub(r"`\1`", text).replace("``", "`").replace("|", "\\|")


def keys_markdown() -> str:
    """The ``docs/keys.md`` page: one table per top-level section."""
    out = [_HEADER]
    section = None
    for row in key_rows():
        top = row.key.split(".")[0] if "." in row.key else "(top level)"
        if top != section:
            section = top
            out.append(f"\n## `{top}`\n" if top != "(top level)" else "\n## Top level\n")
            out.append("| key | type | default | bounds | meaning |")
            out.append("| --- | --- | --- | --- | --- |")
        cells = (f"`{row.key}`", row.type, row.default, row.bounds, row.meaning)
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(keys_markdown(), end="")
