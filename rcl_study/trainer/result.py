"""What the trainer hands back: a trial's status, :class:`TrialResult` and :class:`Evaluation`.

One status enum, :class:`TrialStatus`, runs from the trainer to the record
(``rcl_study.trials.records`` re-exports it). A :class:`TrialResult` is what one trial (or one
member of a pack) returns; the study layer completes it with where and how long it ran
(:meth:`TrialResult.placed`) and turns it into a record. On disk (``trials/<id>/result.json``)
and on Ray's reporting channel it is one flat JSON object: its fields beside the metrics, as
:meth:`TrialResult.to_json` writes and :meth:`TrialResult.from_json` reads and checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class TrialStatus(str, Enum):
    """How a trial ended (the ``status`` of its result and of its record).

    ``ok``; ``diverged`` (a non-finite loss); ``failed`` (raised, or stored no result);
    ``pruned`` (stopped early by the ASHA scheduler); ``stopped`` (SIGTERM, Ctrl-C or a pack's
    time budget ended it before its last epoch: a partial result, its last evaluation and
    ``epochs_trained`` in ``metrics``; ``--resume`` trains it again, from its checkpoint).
    """

    OK = "ok"
    FAILED = "failed"
    DIVERGED = "diverged"
    PRUNED = "pruned"
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value


#: every status a result or record may hold, as written on disk
STATUSES = tuple(s.value for s in TrialStatus)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a trial or of a pack's members (the trainer's ``report`` payload).

    ``metrics``: each member's metrics after epoch ``epoch`` by its name (a single trial is a
    pack of one); empty on the other processes of a data-parallel run, which only say their
    epoch. ``training``: members still training.
    """

    epoch: int
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    training: int = 1
    #: the device the trial trains on (``cpu``, ``cuda:0``), so a trial stopped before its
    #: result still records where it ran
    device: str | None = None


_NUMBER = (int, float)
_OPT_INT = (int, type(None))
_OPT_STR = (str, type(None))
_OPT_DICT = (dict, type(None))


@dataclass(frozen=True, kw_only=True)
class TrialResult:
    """What one trial, or one member of a pack, returned (frozen).

    From the trainer: ``status``, ``reason``, ``device``, ``processes`` (data-parallel
    processes), ``epochs_trained`` (a stopped trial's), ``metrics`` (the last evaluation's
    scalars and lists, then ``epoch``, ``train_counts``, the split sizes and the evaluation
    chosen on validation), ``history`` (one metrics dict per evaluation), ``loss_spec`` and
    ``train_split`` (what names the training split).
    From the study layer (:meth:`placed`): ``plan``, ``config_hash``, ``wall_time``,
    ``environment`` (where it ran), ``pack`` and ``pack_wall_time`` (a pack member's), and under
    Ray ``resumed_from_epoch`` and ``restarts``. ``None`` means not known (nothing written).
    """

    status: TrialStatus
    reason: str = ""
    device: str | None = None
    processes: int | None = None
    epochs_trained: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_spec: dict[str, Any] | None = None
    #: the training split (:meth:`rcl_study.data.types.TrainSplit.to_json`), for the record
    train_split: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    config_hash: str | None = None
    wall_time: float | None = None
    environment: dict[str, Any] | None = None
    pack: str | None = None
    pack_wall_time: float | None = None
    resumed_from_epoch: int | None = None
    restarts: int | None = None

    def __post_init__(self) -> None:
        """Check the status (a string becomes a :class:`TrialStatus`) and the metric names."""
        object.__setattr__(self, "status", TrialStatus(self.status))
        clash = _NAMES.intersection(self.metrics)
        if clash:
            raise ValueError(f"metrics may not be named as result fields: {sorted(clash)}")

    @property
    def ok(self) -> bool:
        """True when the trial finished normally."""
        return self.status is TrialStatus.OK

    def placed(self, **changes: Any) -> TrialResult:
        """A copy with ``changes`` (the study layer's fields: plan, wall time, environment, ...)."""
        return dataclasses.replace(self, **changes)

    def record_metrics(self) -> dict[str, Any]:
        """The ``metrics`` of the trial's record, each field when known, in this order.

        Device, processes, epochs trained, the metrics, then wall time and Ray's restarts.
        """
        out: dict[str, Any] = {}
        for key in ("device", "processes", "epochs_trained"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(self.metrics)
        for key in ("wall_time", "resumed_from_epoch", "restarts"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def to_json(self) -> dict[str, Any]:
        """One flat JSON object: the fields that are known, the metrics beside them."""
        out: dict[str, Any] = {"status": self.status.value, "reason": self.reason}
        for name in _HEAD:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        out.update(self.metrics)
        out["history"] = self.history
        for name in _TAIL:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_json(cls, row: Any) -> TrialResult:
        """The result of a :meth:`to_json` object (a parsed ``result.json``), checked.

        Keys that are not fields are metrics, in their order.

        Raises:
            ValueError: not a JSON object, no valid ``status``, or a field of the wrong type.

        """
        if not isinstance(row, dict):
            raise ValueError("a trial result is a JSON object")
        if row.get("status") not in STATUSES:
            raise ValueError(f"result status must be one of {STATUSES}, got {row.get('status')!r}")
        for key, types in _TYPES.items():
            value = row.get(key)
            if not isinstance(value, types) or isinstance(value, bool):
                kinds = "/".join(t.__name__ for t in types)
                raise ValueError(f"result key {key!r} must be {kinds}")
        if not all(isinstance(h, dict) for h in row.get("history") or []):
            raise ValueError("result key 'history' must be a list of metric mappings")
        known = {k: row[k] for k in _NAMES if row.get(k) is not None}
        metrics = {k: v for k, v in row.items() if k not in _NAMES}
        return cls(**known, metrics=metrics)


#: the fields written before the metrics and after them (besides status, reason and history)
_HEAD = ("device", "processes", "epochs_trained")
_TAIL = (
    "loss_spec",
    "train_split",
    "plan",
    "config_hash",
    "wall_time",
    "environment",
    "pack",
    "pack_wall_time",
    "resumed_from_epoch",
    "restarts",
)
#: the JSON types each field may hold on disk (``None``: not known)
_TYPES: dict[str, tuple[type, ...]] = {
    "reason": _OPT_STR,
    "device": _OPT_STR,
    "processes": _OPT_INT,
    "epochs_trained": _OPT_INT,
    "history": (list, type(None)),
    "loss_spec": _OPT_DICT,
    "train_split": _OPT_DICT,
    "plan": _OPT_DICT,
    "config_hash": _OPT_STR,
    "wall_time": (*_NUMBER, type(None)),
    "environment": _OPT_DICT,
    "pack": _OPT_STR,
    "pack_wall_time": (*_NUMBER, type(None)),
    "resumed_from_epoch": _OPT_INT,
    "restarts": _OPT_INT,
}
_NAMES = frozenset(f.name for f in dataclasses.fields(TrialResult) if f.name != "metrics")
