"""No host-device synchronisation inside one training step, for every loss preset and view recipe.

One warm-up step, then one full :func:`rcl_study.trainer.loop.train_step` under
:class:`SyncCounter`.
Each counted call is attributed to the innermost ``rcl_study`` source line that made it, so a
failure names the line to fix.
"""

from __future__ import annotations

import traceback
from collections import Counter
from functools import cache
from typing import get_args

import pytest

import rcl_study.trainer.batches as batches
import rcl_study.trainer.loop as train
import rcl_study.trainer.setup as trial_setup
from rcl_study.config import DataConfig
from rcl_study.losses import PRESETS
from tests.conftest import DROP, TINY_STUDY, Only
from tests.helpers.syncs import SyncCounter

RECIPES = [r for r in get_args(DataConfig.model_fields["augment"].annotation) if r != "auto"]


def _source() -> str:
    """``path:line`` (below ``rcl_study/``) of the innermost package frame on the stack."""
    for frame in reversed(traceback.extract_stack()):
        if "/rcl_study/" in frame.filename:
            return f"{frame.filename.rsplit('/rcl_study/', 1)[1]}:{frame.lineno}"
    return "outside rcl_study"


class _BySource(Counter):
    """A Counter of call names that also counts ``(source, name)`` pairs in ``sources``."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: Counter[tuple[str, str]] = Counter()

    def __setitem__(self, key, value) -> None:
        added = value - self.get(key, 0)
        if added > 0:
            self.sources[(_source(), key)] += added
        super().__setitem__(key, value)


@cache
def _step_syncs(preset: str, recipe: str) -> Counter:
    """``(source, call)`` counts of the second training step of a tiny trial."""
    cfg = TINY_STUDY.parse(
        name="syncs",
        data={"imbalance_ratio": DROP, "test_limit": 50, "augment": recipe},
        loss=Only(preset=preset),
        train=Only(batch_size=16, warmup_epochs=0, progress=False, threads=1),
        study=DROP,
        resources=DROP,
    )
    trial = trial_setup.setup(cfg)
    order = batches.epoch_order(trial.data, trial.sched, trial.gens.perm, 0)
    args = (trial.net, trial.spec, trial.data, order)
    train.train_step(*args, 0, trial.gens.aug, trial.sched.lr(0, 0))  # warm-up
    counter = SyncCounter()
    counter.calls = _BySource()
    with counter:
        train.train_step(*args, 1, trial.gens.aug, trial.sched.lr(0, 1))
    return counter.calls.sources


PARAMS = [pytest.param(p, r, id=f"{p}-{r}") for p in PRESETS for r in RECIPES]


@pytest.mark.parametrize("preset,recipe", PARAMS)
def test_training_step_has_no_sync(preset, recipe):
    syncs = _step_syncs(preset, recipe)
    assert not syncs, dict(syncs)


def test_counter_sees_a_sync_in_the_step(monkeypatch):
    """The count is live: a host read planted in the step is found and attributed."""
    real = train.forward_loss

    def with_item(*args, **kwargs):
        out = real(*args, **kwargs)
        out["loss"].item()
        return out

    monkeypatch.setattr(train, "forward_loss", with_item)
    _step_syncs.cache_clear()
    try:
        syncs = _step_syncs("ce", "none")
    finally:
        _step_syncs.cache_clear()
    assert sum(n for (src, call), n in syncs.items() if call == "_local_scalar_dense") == 1
    assert any(src.startswith("trainer/loop.py:") for src, _ in syncs)
