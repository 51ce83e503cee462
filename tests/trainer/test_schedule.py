"""The learning-rate schedule: BCL's CIFAR step decay beside cosine.

Expected values are written out by hand from the sources' rule (``docs/recipe.md`` row 19: warm-up
``lr * (e + 1) / 5``, then ``lr *= 0.1`` for every milestone with ``epoch >= milestone``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rcl_study.config import ConfigError, load_study, parse_study, to_dict
from rcl_study.trainer.setup import lr_at, make_schedule
from rcl_study.trials.design import expand, trial_config
from rcl_study.trials.records import config_hash

ROOT = Path(__file__).resolve().parents[2]

#: the CIFAR-10-LT studies that run BCL's recipe (200 epochs, ResNet-32)
CIFAR_RECIPE = (
    "ablation",
    "gpu_ablation",
    "imbalance_sweep",
    "margin_sweep",
    "reproduce_bcl",
    "scale_sweep",
    "search",
)


def _cfg(**train):
    return parse_study({"name": "x", "train": train})


def test_step_schedule_at_160_and_180_after_warmup():
    cfg = _cfg(schedule="step", milestones=[160, 180], lr=0.15, warmup_epochs=5, epochs=200)
    sched = make_schedule(cfg, n=2560, num_processes=1)  # 10 steps of 256 per epoch
    assert sched.steps == 10
    assert sched.lr(0, 0) == pytest.approx(0.15 / 50)  # warm-up, per step: 50 steps
    assert sched.lr(4, 9) == pytest.approx(0.15)  # the warm-up's last step
    assert sched.lr(5, 0) == pytest.approx(0.15)
    assert sched.lr(159, 9) == pytest.approx(0.15)  # constant until epoch 160 (0-based)
    assert sched.lr(160, 0) == pytest.approx(0.015)
    assert sched.lr(179, 9) == pytest.approx(0.015)
    assert sched.lr(180, 0) == pytest.approx(0.0015)
    assert sched.lr(199, 9) == pytest.approx(0.0015)


def test_cosine_stays_the_default_and_unchanged():
    cfg = _cfg(lr=0.1, warmup_epochs=1, epochs=10)
    assert cfg.train.schedule == "cosine" and cfg.train.milestones is None
    sched = make_schedule(cfg, n=100, num_processes=1)  # 1 step of 100 per epoch
    # warm-up epoch 0 at lr, then half-cosine over the 9 steps left: step 5 at progress 4/9,
    # cos(80 degrees) = 0.173648...
    assert sched.lr(0, 0) == pytest.approx(0.1)
    assert sched.lr(1, 0) == pytest.approx(0.1)
    assert sched.lr(5, 0) == pytest.approx(0.05 * 1.1736481776669303)
    assert lr_at(50, 100, 10, 0.2) == lr_at(50, 100, 10, 0.2, None)


@pytest.mark.parametrize(
    "train, message",
    [
        ({"schedule": "step"}, "needs milestones"),
        ({"schedule": "step", "milestones": []}, "needs milestones"),
        ({"schedule": "step", "milestones": [180, 160]}, "increase strictly"),
        ({"schedule": "step", "milestones": [160, 160]}, "increase strictly"),
        ({"schedule": "step", "milestones": [5, 180], "warmup_epochs": 5}, "after the warm-up"),
        ({"milestones": [160, 180]}, "only for schedule 'step'"),
        ({"schedule": "linear"}, "train.schedule"),
    ],
)
def test_schedule_is_validated(train, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**train)


def test_a_milestone_past_the_last_epoch_is_allowed():
    # a 2-epoch rehearsal of a 200-epoch study keeps its milestones; they never fire
    cfg = _cfg(schedule="step", milestones=[160, 180], epochs=2, warmup_epochs=0)
    sched = make_schedule(cfg, n=64, num_processes=1)
    assert [sched.lr(e, 0) for e in range(2)] == [cfg.train.lr, cfg.train.lr]


@pytest.mark.parametrize("name", CIFAR_RECIPE)
def test_cifar_recipe_studies_take_the_step_schedule_and_cosine_classifier(name):
    cfg = load_study(ROOT / "studies" / f"{name}.yaml")
    assert cfg.train.epochs == 200
    assert (cfg.train.schedule, cfg.train.milestones) == ("step", [160, 180])
    assert cfg.model.classifier == "cosine"


#: trial hashes of the first trial of each study, computed with the code of commit d7deddd (no
#: step schedule, no validation split): the studies that are not CIFAR recipe studies hash, hence
#: resume, as before when nothing else changed what they compute (the validation split changes
#: the training images, so only ``data.val_per_class: 0`` keeps the old hash)
HASHES_BEFORE = {
    "quickstart": ("none__s0", "320fea89f2508ed3"),
}


@pytest.mark.parametrize("name", sorted(HASHES_BEFORE))
def test_other_studies_keep_cosine_and_their_hashes(name):
    cfg = load_study(ROOT / "studies" / f"{name}.yaml")
    assert cfg.train.schedule == "cosine" and cfg.model.classifier == "linear"
    plan = expand(cfg)[0]
    trial = to_dict(trial_config(cfg, plan.overrides, plan.seed))
    assert plan.trial_id == HASHES_BEFORE[name][0]
    assert config_hash(trial) != HASHES_BEFORE[name][1]  # the validation split moved images
    old_data = load_study(ROOT / "studies" / f"{name}.yaml", ["data.val_per_class=0"])
    trial = to_dict(trial_config(old_data, plan.overrides, plan.seed))
    assert config_hash(trial) == HASHES_BEFORE[name][1]


def test_the_recipe_change_changes_the_cifar_hash():
    # a record made with cosine decay (commit d7deddd) is not reused for the step schedule
    cfg = load_study(ROOT / "studies" / "reproduce_bcl.yaml")
    plan = expand(cfg)[0]
    assert config_hash(to_dict(trial_config(cfg, plan.overrides, plan.seed))) != (
        "183061811c154609"  # its hash at commit d7deddd (cosine decay)
    )
