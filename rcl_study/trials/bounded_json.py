"""JSON read within a size and a nesting bound, the nesting measured on the raw text.

The toolkit's own JSON files (a records line, ``plan.json``, a trial's ``config.json``) are
parsed by :func:`load_json`: text longer than its limit, or whose containers nest deeper than
:data:`MAX_JSON_DEPTH`, is refused as a :class:`ValueError` before it is parsed, so no reader
meets a ``RecursionError`` and no parsed value is walked again in Python to measure it.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: the longest record line read (a record with a long history is well under it)
MAX_LINE_BYTES = 16 * 1024 * 1024
#: the deepest nesting of JSON containers read in a record or a plan
MAX_JSON_DEPTH = 32

#: every byte but the brackets and the quote: deleted before the nesting is measured
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STRING = re.compile(rb'"[^"]*"')
_PAIR = re.compile(rb"\[\]|\{\}")


def nesting_within(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``data`` nests its containers at most ``limit`` deep.

    Measured on the raw bytes, never on a parsed value: escaped backslashes and quotes are
    dropped, then every byte but brackets and quotes, then the strings (``"..."``: brackets
    inside text do not nest); what is left is brackets alone, from which innermost pairs are
    removed once per level. Exact for valid JSON; text that is not JSON is refused by the parser.
    """
    plain = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _STRING.sub(b"", plain.translate(None, _NOT_STRUCTURE))
    for _ in range(limit):
        brackets, removed = _PAIR.subn(b"", brackets)
        if not removed:  # none left, or unmatched: text the parser refuses
            return True
    return not brackets


def load_json(data: bytes, limit: int | None = None) -> Any:
    """Parse JSON ``data`` within a size and nesting limit.

    Raises:
        ValueError: not UTF-8 JSON, longer than ``limit`` bytes (default
            :data:`MAX_LINE_BYTES`), or nested deeper than :data:`MAX_JSON_DEPTH` (refused
            before it is parsed: a line of nested brackets is never a RecursionError).

    """
    limit = MAX_LINE_BYTES if limit is None else limit
    if len(data) > limit:
        raise ValueError(f"longer than {limit} bytes")
    if not nesting_within(data):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH}") from None
    except UnicodeDecodeError as e:
        raise ValueError(str(e)) from None
