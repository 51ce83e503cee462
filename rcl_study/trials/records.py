"""One typed trial plan and one typed trial record (as Optuna's ``FrozenTrial``, ``TrialState``).

A :class:`TrialPlan` says what a trial runs (a named variant at one seed); a :class:`TrialRecord`
is what the study folder keeps of it once it ended. Executors build records, the driver and the
report read their attributes. On disk a record is one JSON object whose keys are the field names
below (the environment fields flat beside them); :meth:`TrialRecord.from_json` reads records of
every earlier version: a missing key gets its default, an unknown key is kept in ``extra`` and
written back by :meth:`TrialRecord.to_json`, so nothing is lost.

``config_hash`` is the SHA-256 (first 16 hex digits) of the trial's defining configuration
(:func:`defining_config`): the resolved trial config without the keys that do not change what the
trial computes (``name``, ``train.progress``, ``train.threads``, ``train.checkpoint_every``,
``train.keep_checkpoints``, ``data.download``, the ``study``, ``resources`` and ``report``
sections), plus the number of
data-parallel workers, which does change it.

This module sits below ``study/`` and ``report/``; of the package it imports only the dotted-key
walker, the seed range and the metric declarations of ``config``, and the status enum of the
trainer's result (:class:`TrialStatus`, re-exported here).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rcl_study.config.base import SEED_LIMIT
from rcl_study.config.errors import ConfigError
from rcl_study.config.keys import walk
from rcl_study.trainer.result import STATUSES, TrialStatus
from rcl_study.trials.metric_values import MAX_MAGNITUDE, check_metrics

__all__ = [
    "STATUSES",
    "TrialPlan",
    "TrialRecord",
    "TrialStatus",
    "changed_keys",
    "config_hash",
    "defining_config",
    "dumps",
    "environment",
]


@dataclass(frozen=True)
class TrialPlan:
    """One planned trial: a named variant at one seed."""

    trial_id: str
    variant: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain dict (plan files, trial folders, Ray Tune's param space)."""
        return {
            "trial_id": self.trial_id,
            "variant": self.variant,
            "seed": self.seed,
            "overrides": dict(self.overrides),
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> TrialPlan:
        """The plan of a :meth:`to_json` dict."""
        return cls(row["trial_id"], row["variant"], row["seed"], dict(row.get("overrides") or {}))


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """What the study folder keeps of one ended trial (one line of ``records.jsonl``).

    ``metrics`` maps metric name to value (the last evaluation, plus lists such as
    ``per_class_acc``); ``history`` holds one metrics dict per evaluation; ``attempts`` counts
    this trial's records so far, this one included; ``pack`` names the pack the trial ran in
    (None when alone); ``versions``, ``python``, ``host``, ``git_rev`` describe where it ran (the
    worker's, when it sent them), ``hardware`` its device (``device_name``, ``cuda``, ``cudnn``);
    ``extra`` keeps keys this version does not know.
    """

    trial_id: str
    variant: str = ""
    seed: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    status: TrialStatus  # kw_only: required, though after fields with defaults (disk order)
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_spec: Any = None
    wall_time: float | None = None
    device: str | None = None
    pack: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str | None = None
    attempts: int = 1
    finished: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    python: str | None = None
    host: str | None = None
    git_rev: str | None = None
    hardware: dict[str, Any] = field(default_factory=dict)
    #: the training split the trial ran on (``digest``, ``class_counts``, ``class_order``,
    #: ``split_seed``: :class:`rcl_study.data.types.TrainSplit`); None in older records
    train_split: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the trial finished normally."""
        return self.status is TrialStatus.OK

    def to_json(self) -> dict[str, Any]:
        """The record as written on disk: its fields in order, then the ``extra`` keys."""
        out = {f.name: getattr(self, f.name) for f in _FIELDS}
        out["status"] = self.status.value
        if not self.hardware:  # records written before it existed read and write back unchanged
            del out["hardware"]
        if self.train_split is None:  # likewise
            del out["train_split"]
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, row: Any) -> TrialRecord:
        """A record from a parsed JSON line, of this or any earlier version.

        Raises:
            ValueError: ``row`` is not a dict, has no string ``trial_id``, or a ``status`` that
                is not a :class:`TrialStatus` (such a line counts as damaged).

        """
        if not isinstance(row, dict) or not isinstance(row.get("trial_id"), str):
            raise ValueError("a record is a JSON object with a string 'trial_id'")
        status = row.get("status")
        if status not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {status!r}")
        check_row(row)
        known = {f.name: row[f.name] for f in _FIELDS if f.name in row}
        for key in ("overrides", "metrics", "config", "versions", "hardware"):
            if known.get(key) is None and key in known:
                known[key] = {}
        if known.get("history") is None and "history" in known:
            known["history"] = []
        if known.get("reason") is None and "reason" in known:
            known["reason"] = ""
        known["status"] = TrialStatus(status)
        extra = {k: v for k, v in row.items() if k not in _NAMES}
        return cls(**known, extra=extra)

    def replace(self, **changes: Any) -> TrialRecord:
        """A copy with ``changes`` applied (records are frozen)."""
        return dataclasses.replace(self, **changes)


_NUMBER = (int, float)
_OPT_STR = (str, type(None))
#: the JSON types each known key of a record may hold (``None`` always reads as the default)
_ROW_TYPES: dict[str, tuple[type, ...]] = {
    "variant": (str,),
    "overrides": (dict, type(None)),
    "reason": _OPT_STR,
    "metrics": (dict, type(None)),
    "history": (list, type(None)),
    "wall_time": (*_NUMBER, type(None)),
    "device": _OPT_STR,
    "pack": _OPT_STR,
    "config": (dict, type(None)),
    "config_hash": _OPT_STR,
    "finished": (str,),
    "versions": (dict, type(None)),
    "python": _OPT_STR,
    "host": _OPT_STR,
    "git_rev": _OPT_STR,
    "hardware": (dict, type(None)),
    "train_split": (dict, type(None)),
}


def check_row(row: dict[str, Any]) -> None:
    """Check a record's known keys against the record schema.

    A record written by the toolkit holds every field; a hand edit or a damaged line may not.
    ``seed`` is present whenever ``variant`` is (a record of the full form), and an integer
    in NumPy's seed range when the variant is named (the report pairs variants by seed);
    ``attempts`` a positive integer; ``wall_time`` a finite number (not a bool); ``history`` a
    list of mappings; every metric, in ``metrics`` and in each evaluation of ``history``, as
    :func:`~rcl_study.trials.metric_values.check_metrics` says; the other keys have the JSON
    type of their field (``metrics``, ``config``, ``overrides`` mappings).
    Unknown keys are not checked (they are kept in ``extra``).

    Raises:
        ValueError: the first key that breaks the schema, named.

    """
    for key, types in _ROW_TYPES.items():
        if key in row and not isinstance(row[key], types):
            raise ValueError(f"record key {key!r} must be {'/'.join(t.__name__ for t in types)}")
    if ("variant" in row and "seed" not in row) or (row.get("variant") and row["seed"] is None):
        raise ValueError("record key 'seed' is missing (a record of a variant names its seed)")
    seed = row.get("seed")
    if seed is not None and (type(seed) is not int or not 0 <= seed < SEED_LIMIT):
        raise ValueError(f"record key 'seed' must be an integer in [0, 2**32), not {seed!r}")
    attempts = row.get("attempts", 1)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ValueError("record key 'attempts' must be a positive integer")
    wall = row.get("wall_time")
    if isinstance(wall, bool) or (wall is not None and not abs(wall) <= MAX_MAGNITUDE):
        raise ValueError(f"record key 'wall_time' must be a finite number, not {wall!r}")
    if not all(isinstance(h, dict) for h in row.get("history") or []):
        raise ValueError("record key 'history' must be a list of metric mappings")
    check_metrics(row.get("metrics") or {}, "metric")
    for i, point in enumerate(row.get("history") or []):
        check_metrics(point, f"history[{i}] metric")


_FIELDS = tuple(f for f in dataclasses.fields(TrialRecord) if f.name != "extra")
_NAMES = frozenset(f.name for f in _FIELDS)


def _json_default(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` as records and plans are written (numbers from tensors, the rest as text)."""
    return json.dumps(obj, default=_json_default, **kwargs)


_NOT_DEFINING = (
    "name",
    "train.progress",
    "train.threads",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "data.download",
    "study",
    "resources",
    "report",
)


def defining_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved trial config (``to_dict`` form) that decides what the trial computes.

    Drops the keys listed in the module docstring and adds ``data_parallel_workers``.
    """
    out = copy.deepcopy(config)
    res = config.get("resources") or {}
    gpus = res.get("gpus_per_trial") or 0
    out["data_parallel_workers"] = int(gpus) if gpus > 1 else (res.get("workers_per_trial") or 1)
    for key in _NOT_DEFINING:
        try:
            node, leaf = walk(out, key, create=False)
        except ConfigError:  # an old or hand-edited record: a section that is not a mapping
            continue
        if node is not None:
            node.pop(leaf, None)
    # keys added later hash as before while at the values that compute what records written
    # before them computed (no extra loss, cosine decay, no validation split: the same training
    # images); the default validation split changes the training set, so it changes the hash
    for section, key, default in (
        ("loss", "classification", None),
        ("loss", "classification_params", {}),
        ("loss", "contrastive", None),
        ("loss", "contrastive_params", {}),
        ("train", "schedule", "cosine"),
        ("train", "milestones", None),
        ("data", "val_per_class", 0),
        ("data", "head_images", None),
        ("data", "val_list", None),
        ("data", "class_order", "fixed"),
    ):
        node = out.get(section)
        if isinstance(node, dict) and key in node and node[key] == default:
            del node[key]
    return out


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 (16 hex digits) of :func:`defining_config` as canonical JSON."""
    blob = dumps(defining_config(config), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two trial configs' defining parts."""

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(d, dict):
            return {prefix: d}
        items: dict[str, Any] = {}
        for k, v in d.items():
            items.update(flat(v, f"{prefix}{k}."))
        return items if d else {prefix: d}

    a = {k.rstrip("."): v for k, v in flat(defining_config(old)).items()}
    b = {k.rstrip("."): v for k, v in flat(defining_config(new)).items()}
    return sorted(k for k in a.keys() | b.keys() if a.get(k, None) != b.get(k, None))


_VERSIONS: dict[str, str] | None = None


def environment() -> dict[str, Any]:
    """Package versions, Python, host and the project's git revision, for every record."""
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = {}
        for pkg in ("rcl_study", "torch", "torchvision", "ray", "optuna", "accelerate", "numpy"):
            try:
                _VERSIONS[pkg] = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                _VERSIONS[pkg] = "missing"
    return {
        "versions": dict(_VERSIONS),
        "python": platform.python_version(),
        "host": platform.node(),
        "git_rev": git_revision(),
    }


@functools.lru_cache(maxsize=1)
def git_revision() -> str:
    """``git rev-parse HEAD`` of the project (``unknown`` outside a checkout), ``+dirty`` if so.

    Asked once per process (two ``git`` processes), not once per record.
    """
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("+dirty" if dirty else "")) if rev else "unknown"
