"""``docs/keys.md``: generated from the schema, complete, and every key explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rcl_study.config.reference import key_rows, keys_markdown
from rcl_study.config.schema import StudyFile

DOC = Path(__file__).resolve().parents[2] / "docs" / "keys.md"


def _json_schema_keys(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> list[str]:
    """Dotted keys found by walking pydantic's JSON schema (a route independent of the page)."""

    def section(prop: dict[str, Any]) -> dict[str, Any] | None:
        ref = prop.get("$ref") or next(
            (a["$ref"] for a in prop.get("allOf", []) if "$ref" in a), None
        )
        return schema["$defs"][ref.split("/")[-1]] if ref else None

    keys: list[str] = []
    for name, prop in node.get("properties", {}).items():
        key = prefix + name
        inner = section(prop)
        if inner is not None:
            keys += _json_schema_keys(schema, inner, key + ".")
            continue
        keys.append(key)
        items = section(prop.get("items", {})) if prop.get("type") == "array" else None
        values = prop.get("additionalProperties")
        values = section(values) if isinstance(values, dict) else None
        if items is not None:
            keys += _json_schema_keys(schema, items, key + "[].")
        if values is not None:
            keys += _json_schema_keys(schema, values, key + ".<key>.")
    return keys


def test_keys_page_matches_the_schema():
    """Regenerate with ``python -m rcl_study.config.reference > docs/keys.md``."""
    assert DOC.read_text(encoding="utf-8") == keys_markdown()


def test_every_key_of_the_schema_is_listed_once():
    schema = StudyFile.model_json_schema()
    expected = _json_schema_keys(schema, schema, "")
    listed = [r.key for r in key_rows()]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(expected)
    assert {
        "data.workers",
        "loss.margin",
        "study.space.<key>.step",
        "report.secondary[].name",
    } <= set(listed)


def test_every_key_has_a_meaning_type_and_default():
    for row in key_rows():
        assert row.meaning.strip(), f"{row.key}: write a '#:' comment above the field"
        assert row.type and row.default, row.key


def test_bounds_and_defaults_are_read_from_the_fields():
    rows = {r.key: r for r in key_rows()}
    assert rows["data.imbalance_ratio"].bounds == ">= 1.0"
    assert rows["data.imbalance_ratio"].default == "`10.0`"
    assert rows["train.momentum"].bounds == ">= 0, < 1"
    assert rows["report.alpha"].bounds == "> 0, < 1"
    assert rows["study.seeds"].default == "`[0, 1, 2]`"
    assert rows["study.rounds"].bounds == "length >= 1, length <= 20"
    assert rows["name"].default == "required"
    assert rows["loss.balance"].default == "null"
    assert rows["train.progress"].default == "true"
