"""Read a study file: strict, safe YAML, then overrides, then the schema.

:func:`read_yaml` accepts only plain ``safe_load`` types, UTF-8, at most :data:`MAX_FILE_BYTES`,
and refuses duplicate keys and alias bombs before any object is built; :func:`load_study` applies
``--set`` overrides (:mod:`rcl_study.config.keys`) and validates once
(:func:`rcl_study.config.schema.parse_study`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rcl_study.config.base import KIND_KEYS
from rcl_study.config.errors import ConfigError
from rcl_study.config.keys import apply_overrides
from rcl_study.config.schema import StudyFile, parse_study
from rcl_study.config.study_section import StudyConfig

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
