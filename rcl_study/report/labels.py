"""Display names for a report (``report.labels``): variants, keys and grid values.

The analysis keeps the recorded names (``stats.json``, ``results.csv``); only what a reader sees
(tables, figures, ``tables.tex``) shows the study's display names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rcl_study.report.markup import Block


@dataclass(frozen=True)
class Labels:
    """A study's display names; a name not listed is shown as it is."""

    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, cfg: Any) -> Labels:
        """The labels ``cfg.report.labels`` declares."""
        return cls(dict(cfg.report.labels))

    def name(self, text: object) -> str:
        """The display name of a variant or a key."""
        return self.names.get(str(text), str(text))

    def value(self, key: str, value: object) -> str:
        """The display name of one value of ``key``: ``"<key>=<value>"``'s label, else the value."""
        return self.names.get(f"{key}={value}", self.names.get(str(value), str(value)))

    def first_column(self, block: Block) -> Block:
        """A table block with its first column (variant names) shown by their display names."""
        kind, head, rows = block
        return (kind, head, [[self.name(row[0]), *row[1:]] for row in rows])
