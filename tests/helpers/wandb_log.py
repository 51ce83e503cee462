"""Read an offline W&B run file (``run-<id>.wandb``) back, without W&B's own reader.

The file is W&B's transaction log: a 7-byte header (``:W&B``, a magic number, a version),
then LevelDB-log records (checksum, length, type; FULL = 1, FIRST = 2, MIDDLE = 3, LAST = 4)
in 32 KiB blocks, each record a ``wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 32768


def _records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    buf = path.read_bytes()
    assert buf[:4] == b":W&B", path
    pos, parts = 7, b""
    while pos + 7 <= len(buf):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", buf[pos : pos + 7])
        parts += buf[pos + 7 : pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """What one offline run holds: its name, group, config, history, summary and exit code."""

    name: str = ""
    group: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


def read_offline_run(path: Path) -> OfflineRun:
    """The run logged in ``path`` (a ``run-<id>.wandb`` file)."""
    run = OfflineRun()
    for rec in _records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group = rec.run.display_name, rec.run.run_group
            run.config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            run.config.update({_key(i): json.loads(i.value_json) for i in rec.config.update})
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            run.summary.update({_key(i): json.loads(i.value_json) for i in rec.summary.update})
        elif kind == "exit":
            run.exit_code = rec.exit.exit_code
    return run
