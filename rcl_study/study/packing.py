"""Group a study's trials into packs: members that train together in one process (pure).

A pack's members share everything but their loss knobs (:data:`PACKABLE`) and see the same
batches and augmentations (``rcl_study.trainer.pack``). ``resources.pack`` sets the members
per pack:

- ``1``: every trial alone (no packing);
- ``K``: packs of at most K members, each pack drawn from trials that differ only in
  :data:`PACKABLE` keys and share their seed;
- ``auto``: packs only where ``benchmarks/pack_speed.py`` measured a gain (see :func:`auto_size`).

The name ``pack`` (rather than ``batch_trials`` or ``group``) says what happens: several trials
packed into one process, one network after another on each shared batch; "batch" already means
the images of a step and "group" the convolution groups packing does *not* use.
"""

from __future__ import annotations

import hashlib
import json
import math
import os

from rcl_study.config import ConfigError, StudyFile
from rcl_study.losses.presets import PACKABLE_KEYS as PACKABLE
from rcl_study.trials.records import TrialPlan
from rcl_study.trials.unit import Unit


def pack_key(plan: TrialPlan) -> str:
    """Trials with equal keys may share a pack: same seed, same non-packable overrides."""
    fixed = {k: v for k, v in plan.overrides.items() if k not in PACKABLE}
    return json.dumps({"seed": plan.seed, "fixed": fixed}, sort_keys=True, default=str)


def pack_id(members: list[TrialPlan]) -> str:
    """A stable id of a pack, from its members' trial ids (the same members, the same id)."""
    blob = "\n".join(sorted(p.trial_id for p in members)).encode()
    return f"pack__s{members[0].seed}__{hashlib.sha1(blob).hexdigest()[:8]}"


def _groups(plans: list[TrialPlan]) -> list[list[TrialPlan]]:
    out: dict[str, list[TrialPlan]] = {}
    for p in plans:
        out.setdefault(pack_key(p), []).append(p)
    return list(out.values())


def _on_gpu(cfg: StudyFile) -> bool:
    """Whether the trials train on a GPU; asks torch only for the local executor's ``auto``.

    Under Ray a trial without a GPU share sees no GPU (Ray hides them), so its ``auto`` is the CPU
    and the driver, which trains nothing, needs no torch.
    """
    if cfg.train.device == "cpu":
        return False
    if cfg.resources.gpus_per_trial > 0 or cfg.train.device == "cuda":
        return True
    if cfg.resources.executor != "local":
        return False
    import torch

    return torch.cuda.is_available()


def slots(cfg: StudyFile) -> int:
    """How many units run at once: 1 for the local executor, else as CPUs and limits allow."""
    res = cfg.resources
    if res.executor == "local":
        return 1
    fit = max(1, int((os.cpu_count() or 1) // res.cpus_needed))
    return min(fit, res.max_concurrent) if res.max_concurrent else fit


def auto_size(cfg: StudyFile, plans: list[TrialPlan]) -> int:
    """Members per pack for ``resources.pack: auto``.

    Rule (evidence: ``docs/results.md``, "Packed trials"): on a GPU, 1 (no measurement yet);
    data-parallel trials, searches: 1; on a CPU, pack each group of same-seed trials into as
    few packs as keep every trial slot busy (``ceil(group / ceil(slots / groups))``): packing
    saves each trial's start-up, data loading and augmentation, while the network's work is
    the same, so it gains only while no slot is left idle by it.
    """
    if cfg.study.kind == "search" or cfg.resources.workers > 1 or _on_gpu(cfg) or not plans:
        return 1
    groups = _groups(plans)
    per_group = max(1, math.ceil(slots(cfg) / len(groups)))
    size = max(math.ceil(len(g) / per_group) for g in groups)
    return size if size >= 2 else 1


def _fail(cfg: StudyFile, msg: str) -> ConfigError:
    return ConfigError(f"{cfg.name}: resources.pack: {msg}")


def pack_size(cfg: StudyFile, plans: list[TrialPlan]) -> int:
    """The members per pack this study uses, after checking that such packs can be formed.

    Raises:
        ConfigError: naming ``resources.pack``, when packs of the asked size cannot be formed
            (a search, data-parallel trials, more members than same-seed trials that differ only
            in packable keys).

    """
    k = cfg.resources.pack
    if k == "auto":
        return auto_size(cfg, plans)
    if k == 1:
        return 1
    if cfg.study.kind == "search":
        raise _fail(
            cfg,
            f"{k} members per pack, but a search's trials are sampled one by one; use 1 or auto",
        )
    if cfg.resources.workers > 1:
        raise _fail(
            cfg,
            f"{k} members per pack, but a pack trains in one process and trials "
            f"here are data-parallel ({cfg.resources.workers} workers)",
        )
    largest = max((len(g) for g in _groups(plans)), default=0)
    if k > largest:
        raise _fail(
            cfg,
            f"{k} members per pack, but at most {largest} of the study's {len(plans)} trials "
            f"share a seed and differ only in packable keys ({', '.join(PACKABLE)})",
        )
    return k


def make_units(plans: list[TrialPlan], size: int) -> list[Unit]:
    """Split ``plans`` into units of at most ``size`` packable members (order kept in each pack).

    A group of n packable trials becomes ``ceil(n / size)`` packs of nearly equal size; a pack
    of one member is a plain trial (``pack_id`` None).
    """
    units = []
    for group in _groups(plans) if size > 1 else [[p] for p in plans]:
        n_packs = math.ceil(len(group) / size)
        bounds = [round(i * len(group) / n_packs) for i in range(n_packs + 1)]
        for lo, hi in zip(bounds, bounds[1:]):
            members = group[lo:hi]
            pid = pack_id(members) if len(members) > 1 else None
            units.append(Unit(tuple(members), pid))
    return units


def plan_units(cfg: StudyFile, plans: list[TrialPlan], todo: list[TrialPlan]) -> list[Unit]:
    """The units that train ``todo`` (the trials not yet recorded), sized on the whole plan.

    The size is checked and chosen on all ``plans`` (so that a resumed study asks the same of
    ``resources.pack``); the packs hold only trials still to run, so a partly recorded pack
    trains only its missing members.
    """
    return make_units(todo, pack_size(cfg, plans))
