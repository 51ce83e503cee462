"""One contract, every executor: the local one and Ray Tune run the same units the same way."""

import pytest

from rcl_study.config import ConfigError
from rcl_study.study.executor import Executor, SearchRequest
from rcl_study.study.packing import plan_units
from rcl_study.study.runner import RecordBook, make_executor, run_study, select
from rcl_study.trials.design import expand
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialPlan, TrialStatus
from rcl_study.trials.unit import Unit
from tests.conftest import TINY_STUDY

#: differences from the shared tiny study (tests/conftest.py)
TINY_HERE = {
    "name": "contract",
    "data": {"test_limit": 60},
    "train": {"progress": False},
    "study": {"seeds": [0], "components": ["balance", "margin"]},
    "resources": {"executor": "local", "pack": 2},
}

EXECUTORS = ["local", pytest.param("ray", marks=pytest.mark.slow)]


def _study(tmp_path, executor="local", **study):
    return TINY_STUDY.parse(
        TINY_HERE,
        study={**study, "output_dir": str(tmp_path / "runs")},
        report={"dir": str(tmp_path / "report")},
        resources={"executor": executor},
    )


def _units(cfg):
    """Two packs of two members, and a single trial whose data file is missing (it fails)."""
    plans = expand(cfg)
    units = plan_units(cfg, plans, plans)
    broken = TrialPlan(
        "broken__s0", "broken", 0, {"data.dataset": "arrays", "data.path": "/no.npz"}
    )
    return [*units, Unit.single(broken)]


@pytest.mark.parametrize("kind", EXECUTORS)
def test_executor_runs_every_member_and_records_a_failure_without_stopping(tmp_path, kind):
    if kind == "ray":
        pytest.importorskip("ray")
    cfg = _study(tmp_path, kind)
    executor = make_executor(cfg)
    assert isinstance(executor, Executor) and executor.name == kind
    units = _units(cfg)
    assert [len(u.members) for u in units] == [2, 2, 1] and units[0].is_pack
    folder = StudyFolder(tmp_path / "runs")
    seen, evals = [], []
    book = RecordBook(folder, seen.append, lambda tid, m: evals.append((tid, m)))
    executor.start(cfg)
    try:
        executor.run(cfg, units, folder, book)
    finally:
        executor.stop()
        executor.stop()  # stop twice is safe
    by_id = {r.trial_id: r for r in seen}
    planned = {p.trial_id for u in units for p in u.members}
    assert set(by_id) == planned and len(seen) == 5  # one record per member, none doubled
    assert by_id["broken__s0"].status is TrialStatus.FAILED
    assert "no.npz" in by_id["broken__s0"].reason
    ok = [r for r in seen if r.trial_id != "broken__s0"]
    assert all(r.status is TrialStatus.OK and 0 <= r.metrics["top1"] <= 1 for r in ok)
    assert {r.pack for r in ok} == {u.pack_id for u in units[:2]}
    # every member's evaluation reached the driver as it happened, pack members included
    assert sorted(tid for tid, m in evals if m["epoch"] == 1) == sorted(r.trial_id for r in ok)
    assert all(0 <= m["balanced_acc"] <= 1 for _, m in evals)
    assert {r.trial_id for r in folder.records()} == planned


@pytest.mark.slow
def test_both_executors_give_the_same_metrics(tmp_path):
    pytest.importorskip("ray")
    got = {}
    for kind in ("local", "ray"):
        cfg = _study(tmp_path / kind, kind)
        records = run_study(cfg, progress=False)
        got[kind] = {r.trial_id: (r.metrics["top1"], r.metrics["balanced_acc"]) for r in records}
    assert got["local"] == got["ray"] and len(got["local"]) == 4


def test_local_executor_refuses_a_search_in_one_line(tmp_path):
    cfg = _study(tmp_path)
    with pytest.raises(ConfigError, match="a search needs 'ray'"):
        make_executor(cfg).search(cfg, SearchRequest({}, 1), StudyFolder(tmp_path), None)


def test_only_runs_the_named_variants_and_keeps_the_rest_planned(tmp_path):
    cfg = _study(tmp_path)
    records = run_study(cfg, progress=False, only=["none", "balance+margin"])
    assert sorted(r.variant for r in records) == ["balance+margin", "none"]
    folder = StudyFolder(tmp_path / "runs")
    assert len(folder.plan()["trials"]) == 4  # the whole design stays planned
    records = run_study(cfg, resume=True, progress=False, only=["margin__s0"])  # a trial id
    assert [r.variant for r in records] == ["margin"]  # the named trial's record alone
    assert len(StudyFolder(tmp_path / "runs").records()) == 3


def test_only_names_unknown_variants(tmp_path):
    cfg = _study(tmp_path)
    with pytest.raises(ConfigError, match=r"only: nope is not a variant or trial"):
        select(expand(cfg), ["nope", "none"], cfg.name)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="only: nope"):
        run_study(cfg, progress=False, only=["nope"])
    assert not (tmp_path / "runs").exists()  # refused before anything is written
