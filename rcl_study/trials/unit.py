"""The unit of work an executor runs: one trial, or a pack of trials that train together.

A :class:`Unit` is frozen and travels as it is, as a Python object, from the planner
(:func:`rcl_study.study.packing.plan_units`) through an executor (in this process, or to a Ray
worker through Ray's object store) to the trainer; no code tells a pack from a single trial by the
keys of a dict.
"""

from __future__ import annotations

from dataclasses import dataclass

from rcl_study.trials.records import TrialPlan


@dataclass(frozen=True)
class Unit:
    """What one executor slot trains: one trial (``pack_id`` None) or a pack of 2+ members.

    Members train in one process and see the same batches (``rcl_study.trainer.pack``); each keeps
    its own folder and record. ``pack_id`` names the pack's checkpoint folder.
    """

    members: tuple[TrialPlan, ...]
    pack_id: str | None = None

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a unit has at least one member")
        if self.pack_id is None and len(self.members) != 1:
            raise ValueError("a unit of several members is a pack: give it a pack_id")

    @classmethod
    def single(cls, plan: TrialPlan) -> Unit:
        """The unit of one trial."""
        return cls((plan,))

    @property
    def is_pack(self) -> bool:
        """True for a pack (even one cut down to a single member still to train)."""
        return self.pack_id is not None

    @property
    def name(self) -> str:
        """The pack's id, or the trial's id."""
        return self.pack_id or self.members[0].trial_id
