"""The tiny study as YAML text with dotted keys replaced: where bad study files start from."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.conftest import DROP, TINY_STUDY

#: the tiny study as this file's cases start from: one step, two trials (balance off and on)
BASE: dict[str, Any] = TINY_STUDY(
    name="adv",
    data={"test_limit": DROP},
    train={"max_steps_per_epoch": 1, "warmup_epochs": DROP},
    loss={"scale": 1.2},
    study={"components": ["balance"], "seeds": [0]},
)


def study(**dotted: Any) -> str:
    """BASE as YAML with dotted keys replaced (``study=...`` replaces a whole section)."""
    raw = json.loads(json.dumps(BASE))
    for key, value in dotted.items():
        node = raw
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return yaml.safe_dump(raw, sort_keys=False)
