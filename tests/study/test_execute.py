"""Running a study's trials (``rcl_study.study.execute``): a reused artifact proves its config.

A trial's folder holds ``config.json`` (the configuration it was written for), ``result.json``
and ``checkpoint.pt``. Rows of RESULT_CASES are stored results a later run may find: only one
that carries the ``config_hash`` of the trial's current configuration is reused. Rows of
CHANGE_CASES change the study between a run that left a trial folder (no record yet) and
``--resume``: refused naming the keys (``rcl_study.study.checks.check_changes``), and with
``--accept-changes`` the old checkpoint and result are set aside, never resumed or reused under
the new configuration.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rcl_study.study import execute
from rcl_study.study.checks import StudyChanged, check_changes
from rcl_study.trainer.result import TrialResult, TrialStatus
from rcl_study.trials.design import expand
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import config_hash
from rcl_study.trials.unit import Unit
from tests.conftest import TINY_STUDY

BASE = {"study": {"components": ["margin"], "seeds": [0]}, "resources": {"executor": "local"}}


def setup(tmp_path, **changes: Any):
    """The study (with ``changes``), its folder, the first plan and its resolver."""
    cfg = TINY_STUDY.parse(BASE, study={"output_dir": str(tmp_path / "runs")}, **changes)
    plan = expand(cfg)[0]
    return cfg, StudyFolder(cfg.output_dir), plan, execute.Resolver(cfg)


RESULT_CASES = [
    ("no config_hash (an older run)", lambda h: {"status": "ok", "balanced_acc": 0.9}),
    ("another configuration's hash", lambda h: {"status": "ok", "config_hash": "0" * 16}),
    ("a hash that is not text", lambda h: {"status": "ok", "config_hash": 7}),
    ("not a mapping", lambda h: [h]),
]


@pytest.mark.parametrize("name,make", RESULT_CASES, ids=[c[0] for c in RESULT_CASES])
def test_a_stored_result_of_another_configuration_is_not_reused(tmp_path, name, make):
    cfg, folder, plan, resolve = setup(tmp_path)
    expected = config_hash(resolve(plan)[1])
    (folder.trial_dir(plan.trial_id)).mkdir(parents=True)
    (folder.trial_dir(plan.trial_id) / "result.json").write_text(json.dumps(make(expected)))
    assert execute.stored_result(folder, plan, expected) is None


def test_a_stored_result_of_this_configuration_is_reused(tmp_path):
    cfg, folder, plan, resolve = setup(tmp_path)
    expected = config_hash(resolve(plan)[1])
    folder.trial_dir(plan.trial_id).mkdir(parents=True)
    row = {"status": "ok", "config_hash": expected}
    (folder.trial_dir(plan.trial_id) / "result.json").write_text(json.dumps(row))
    assert execute.stored_result(folder, plan, expected) == TrialResult(
        status=TrialStatus.OK, config_hash=expected
    )


CHANGE_CASES = [
    ("loss.scale changed", {"loss": {"scale": 2.5}}, "loss.scale"),
    ("train.lr changed", {"train": {"lr": 0.07}}, "train.lr"),
    ("data.imbalance_ratio changed", {"data": {"imbalance_ratio": 20}}, "data.imbalance_ratio"),
]


def leave_a_started_trial(tmp_path):
    """A run that wrote a trial's config, checkpoint and result, then stopped before its record."""
    cfg, folder, plan, resolve = setup(tmp_path)
    _, config = resolve(plan)
    d = folder.trial_dir(plan.trial_id)
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"plan": plan.to_json(), "config": config}))
    (d / "checkpoint.pt").write_bytes(b"old weights")
    (d / "result.json").write_text(json.dumps({"status": "ok", "config_hash": config_hash(config)}))
    return plan


@pytest.mark.parametrize("name,change,key", CHANGE_CASES, ids=[c[0] for c in CHANGE_CASES])
def test_resume_refuses_a_changed_trial_folder_naming_the_keys(tmp_path, name, change, key):
    leave_a_started_trial(tmp_path)
    cfg, *_ = setup(tmp_path, **change)
    with pytest.raises(StudyChanged) as err:
        check_changes(cfg)
    assert key in str(err.value) and "\n" not in str(err.value)
    check_changes(cfg, accept=True)  # --accept-changes: allowed ...


@pytest.mark.parametrize("name,change,key", CHANGE_CASES, ids=[c[0] for c in CHANGE_CASES])
def test_accepted_changes_never_resume_old_work(tmp_path, monkeypatch, name, change, key):
    plan = leave_a_started_trial(tmp_path)
    cfg, folder, _, resolve = setup(tmp_path, **change)
    seen: dict[str, Any] = {}

    def fake_train(cfg, report=None, workdir=None, log=None, config_hash=None, name=None):
        seen["checkpoint"] = (workdir / "checkpoint.pt").exists()
        return TrialResult(status=TrialStatus.OK, metrics={"balanced_acc": 0.5})

    monkeypatch.setattr("rcl_study.trainer.loop.train_trial", fake_train)
    results = execute.train_unit(Unit((plan,), None), resolve, folder, None, 1)
    assert seen == {"checkpoint": False}  # ... but the old checkpoint is not resumed
    assert results[plan.trial_id].metrics["balanced_acc"] == 0.5  # nor the old result reused
    d = folder.trial_dir(plan.trial_id)
    assert (
        sorted(p.name for p in d.glob("*.stale-*"))
        == [p for p in sorted(p.name for p in d.glob("*.stale-*")) if "stale" in p]
        and len(list(d.glob("checkpoint.stale-*.pt"))) == 1
    )
    stored = json.loads((d / "result.json").read_text())
    assert stored["config_hash"] == config_hash(resolve(plan)[1])
