"""A data draw per seed, end to end: each record names its training split and carries proj_*."""

from __future__ import annotations

from rcl_study.config import parse_study
from rcl_study.config.metrics import PROJECTION_METRICS
from rcl_study.study.runner import run_study
from tests.conftest import TINY_STUDY


def _run(tmp_path, **data):
    raw = TINY_STUDY(
        name="draws",
        data=data,
        study={"components": ["margin"], "seeds": [0, 1]},
        resources={"executor": "local"},
    )
    raw["study"]["output_dir"] = str(tmp_path / "runs")
    raw["report"] = {"dir": str(tmp_path / "rep")}
    return {r.trial_id: r for r in run_study(parse_study(raw), progress=False)}


def test_records_name_their_split_equal_within_a_seed_and_different_across(tmp_path):
    recs = _run(tmp_path, split_seed="trial", class_order="random")
    assert len(recs) == 4 and all(r.ok for r in recs.values())
    split = {tid: r.train_split for tid, r in recs.items()}
    assert split["none__s0"] == split["margin__s0"]  # every arm of one seed: the same draw
    assert split["none__s1"] == split["margin__s1"]
    assert split["none__s0"]["digest"] != split["none__s1"]["digest"]
    for tid, r in recs.items():
        s = r.train_split
        assert s["split_seed"] == r.seed
        assert sorted(s["class_order"]) == list(range(10))
        head = s["class_order"][0]
        assert s["class_counts"][head] == max(s["class_counts"])  # the drawn head is the largest
        assert all(m in r.metrics for m in PROJECTION_METRICS), tid


def test_a_fixed_split_is_the_same_for_every_seed(tmp_path):
    recs = _run(tmp_path)
    digests = {r.train_split["digest"] for r in recs.values()}
    assert len(digests) == 1
    assert next(iter(recs.values())).train_split["class_order"] == list(range(10))
