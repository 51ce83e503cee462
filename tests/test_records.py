"""The results table on disk and the smoke shrinking (pure, fast)."""

from pathlib import Path

import pytest

from rcl_study.config import load_study
from rcl_study.study.records import append_record, load_plan, load_records, write_plan
from rcl_study.study.runner import StudyExists, apply_smoke, check_folder

ROOT = Path(__file__).resolve().parents[1]


def test_records_replace_by_trial_id_and_stay_valid_json(tmp_path):
    append_record(tmp_path, {"trial_id": "a", "status": "ok", "x": 1})
    append_record(tmp_path, {"trial_id": "b", "status": "failed", "reason": "boom"})
    append_record(tmp_path, {"trial_id": "a", "status": "ok", "x": 2})
    recs = load_records(tmp_path)
    assert [(r["trial_id"], r.get("x")) for r in recs] == [("b", None), ("a", 2)]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    with pytest.raises(ValueError, match="status"):
        append_record(tmp_path, {"trial_id": "c", "status": "weird"})


def test_plan_roundtrip(tmp_path):
    write_plan(tmp_path, [{"trial_id": "a"}], {"study": "s"})
    assert load_plan(tmp_path) == {"meta": {"study": "s"}, "trials": [{"trial_id": "a"}]}
    assert load_plan(tmp_path / "none") == {"meta": {}, "trials": []}


def test_smoke_shrinks_but_keeps_the_design():
    cfg = load_study(ROOT / "studies/ablation.yaml")
    smoke = apply_smoke(cfg)
    assert smoke.name == "ablation-smoke" and smoke.study.seeds == cfg.study.seeds
    assert smoke.study.components == cfg.study.components
    assert smoke.train.epochs == 2 and smoke.train.max_steps_per_epoch == 2
    assert str(smoke.output_dir) == "runs/ablation-smoke"
    assert str(smoke.report_dir) == "reports/ablation-smoke"


def test_existing_study_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_study(ROOT / "studies/quickstart.yaml")
    check_folder(cfg, resume=False, overwrite=False)  # nothing there yet
    append_record(cfg.output_dir, {"trial_id": "a", "status": "ok"})
    with pytest.raises(StudyExists, match="--resume"):
        check_folder(cfg, resume=False, overwrite=False)
    check_folder(cfg, resume=True, overwrite=False)
