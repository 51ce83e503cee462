"""The results table on disk and the smoke shrinking (pure, fast)."""

import json
import re
from pathlib import Path

import pytest

from rcl_study.config import load_study
from rcl_study.store.folders import claim
from rcl_study.study.execute import Resolver
from rcl_study.study.recording import make_record
from rcl_study.study.runner import StudyExists, apply_smoke, check_run_folders
from rcl_study.trainer.result import TrialResult
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import STATUSES, TrialPlan, TrialRecord, TrialStatus
from tests.conftest import DROP, Only

ROOT = Path(__file__).resolve().parents[2]


def test_records_replace_by_trial_id_and_stay_valid_json(tmp_path):
    StudyFolder(tmp_path).append({"trial_id": "a", "status": "ok", "x": 1})
    StudyFolder(tmp_path).append({"trial_id": "b", "status": "failed", "reason": "boom"})
    StudyFolder(tmp_path).append({"trial_id": "a", "status": "ok", "x": 2})
    recs = StudyFolder(tmp_path).read_rows()[0]
    assert [(r["trial_id"], r.get("x")) for r in recs] == [("b", None), ("a", 2)]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    with pytest.raises(ValueError, match="status"):
        StudyFolder(tmp_path).append({"trial_id": "c", "status": "weird"})


def test_plan_roundtrip(tmp_path):
    StudyFolder(tmp_path).write_plan([{"trial_id": "a"}], {"study": "s"})
    assert StudyFolder(tmp_path).plan() == {"meta": {"study": "s"}, "trials": [{"trial_id": "a"}]}
    assert StudyFolder(tmp_path / "none").plan() == {"meta": {}, "trials": []}


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
    check_run_folders(cfg, resume=False, overwrite=False)  # nothing there yet
    claim(cfg.output_dir, cfg.name)
    StudyFolder(cfg.output_dir).append({"trial_id": "a", "status": "ok"})
    with pytest.raises(StudyExists, match="--resume"):
        check_run_folders(cfg, resume=False, overwrite=False)
    check_run_folders(cfg, resume=True, overwrite=False)


# ------------------------------------------------------------------------------ the typed record

#: the keys of a record on disk, in their order: the same as the untyped dicts records.jsonl held
OLD_KEYS = [
    "trial_id",
    "variant",
    "seed",
    "overrides",
    "status",
    "reason",
    "metrics",
    "history",
    "loss_spec",
    "wall_time",
    "device",
    "pack",
    "config",
    "config_hash",
    "attempts",
    "finished",
    "versions",
    "python",
    "host",
    "git_rev",
]
#: this file's tiny study: one component, one seed; train, loss and resources left to defaults
TINY_HERE = {
    "train": DROP,
    "loss": DROP,
    "study": {"components": ["scale"], "seeds": [0]},
    "resources": DROP,
}


def _full_row(**changes):
    row = {
        "trial_id": "scale__s3",
        "variant": "scale",
        "seed": 3,
        "overrides": {"loss.scale": 1.5},
        "status": "diverged",
        "reason": "loss is nan at step 4",
        "metrics": {"balanced_acc": 0.25, "per_class_acc": [0.5, 0.0]},
        "history": [{"epoch": 1, "balanced_acc": 0.25}],
        "loss_spec": {"balance": 1.0},
        "wall_time": 2.5,
        "device": "cpu",
        "pack": "pack__s3__0123abcd",
        "config": {"train": {"seed": 3}},
        "config_hash": "00112233aabbccdd",
        "attempts": 2,
        "finished": "2026-11-27T12:00:00",
        "versions": {"torch": "2.14.1"},
        "python": "3.11.9",
        "host": "h",
        "git_rev": "abc",
    }
    row.update(changes)
    return row


def test_record_round_trip_keeps_every_key_and_unknown_ones():
    row = _full_row(future_key={"x": [1, 2]})
    rec = TrialRecord.from_json(row)
    assert rec.status is TrialStatus.DIVERGED and not rec.ok
    assert rec.seed == 3 and rec.attempts == 2 and rec.pack == "pack__s3__0123abcd"
    assert rec.metrics["per_class_acc"] == [0.5, 0.0]
    assert rec.extra == {"future_key": {"x": [1, 2]}}
    assert rec.to_json() == row
    assert list(rec.to_json()) == [*OLD_KEYS, "future_key"]  # same keys, same order on disk
    assert TrialRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec


def test_old_record_without_hash_attempts_pack_loads_with_defaults(tmp_path):
    old = {
        k: v
        for k, v in _full_row(status="ok").items()
        if k not in ("config_hash", "attempts", "pack")
    }
    folder = StudyFolder(tmp_path)
    folder.records_path.write_text(json.dumps(old) + "\n")
    (rec,) = folder.records()
    assert (rec.config_hash, rec.attempts, rec.pack) == (None, 1, None)
    assert rec.status is TrialStatus.OK and rec.metrics["balanced_acc"] == 0.25
    minimal = TrialRecord.from_json({"trial_id": "a", "status": "failed"})
    assert (minimal.reason, minimal.overrides, minimal.history, minimal.device) == (
        "",
        {},
        [],
        None,
    )
    # appending another trial leaves the old line exactly as it was (its keys too)
    folder.append(TrialRecord(trial_id="b", status=TrialStatus.OK))
    lines = [json.loads(x) for x in folder.records_path.read_text().splitlines()]
    assert lines[0] == old
    assert folder.done_ids(retries=1) == {"scale__s3", "b"}


def test_unknown_status_is_a_damaged_line(tmp_path):
    folder = StudyFolder(tmp_path)
    folder.append(TrialRecord.from_json(_full_row(status="ok")))
    weird = json.dumps(_full_row(trial_id="w", status="exploded")).encode()
    with open(folder.records_path, "ab") as f:
        f.write(weird + b"\n")
    assert [r.trial_id for r in folder.records()] == ["scale__s3"]
    assert folder.damaged_lines() == [weird]
    with pytest.raises(ValueError, match="status"):
        TrialRecord.from_json(_full_row(status="exploded"))
    assert folder.move_damaged_lines() == 1
    assert folder.damaged_path.read_bytes() == weird + b"\n"


#: records of a variant whose seed a hand edit took away: each is a damaged line
SEEDLESS = [
    ("seed removed", lambda r: r.pop("seed")),
    ("seed null", lambda r: r.update(seed=None)),
]


@pytest.mark.parametrize("name,edit", SEEDLESS, ids=[c[0] for c in SEEDLESS])
def test_a_record_of_a_variant_without_its_seed_is_a_damaged_line(name, edit, tmp_path):
    row = {"trial_id": "a__s0", "variant": "a", "seed": 0, "status": "ok", "metrics": {}}
    edit(row)
    with pytest.raises(ValueError, match="seed"):
        TrialRecord.from_json(row)
    (tmp_path / "records.jsonl").write_text(json.dumps(row) + "\n")
    assert StudyFolder(tmp_path).records() == []
    assert StudyFolder(tmp_path).damaged_lines() == [json.dumps(row).encode()]


def test_report_only_reads_a_record_whose_seed_was_removed_without_a_traceback(
    tmp_path, monkeypatch, capsys
):
    """A shipped report's record hand-edited to ``"seed": null``: the line is damaged (said in
    one note, kept), the report is built from the others."""
    import shutil

    from rcl_study import run

    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "reports" / "quickstart", tmp_path / "reports" / "quickstart")
    (tmp_path / "studies").mkdir()
    shutil.copy(ROOT / "studies" / "quickstart.yaml", tmp_path / "studies")
    path = tmp_path / "reports" / "quickstart" / "records.jsonl"
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    first["seed"] = None
    lines[0] = json.dumps(first)
    path.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    assert run.main(["studies/quickstart.yaml", "--report-only"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "1 damaged line(s)" in err, err
    assert path.read_bytes() == before


def test_status_enum_covers_every_status_the_code_writes(tiny_study):
    assert set(STATUSES) == {"ok", "failed", "diverged", "pruned", "stopped"}
    written: set[str] = set()
    patterns = (
        r'\bstatus"?\]?\s*(?::\s*str\s*)?[=:]\s*"(\w+)"',  # status = "x", "status": "x", status="x"
        r'\bstatus, \w+(?:\.reason)? = "(\w+)"',  # status, reason = "x", ...
    )
    for path in (ROOT / "rcl_study").rglob("*.py"):
        text = path.read_text()
        for pat in patterns:
            written.update(re.findall(pat, text))
        # the enum's members by name (an unknown name raises KeyError)
        written.update(TrialStatus[n].value for n in re.findall(r"\bTrialStatus\.([A-Z]+)\b", text))
    assert {"ok", "diverged"} <= written  # the scan sees the trainers' statuses
    assert written <= set(STATUSES), written - set(STATUSES)
    for status in TrialStatus:  # what execute builds: every status makes a record
        cfg = tiny_study.parse(TINY_HERE)
        plan = TrialPlan("scale__s0", "scale", 0, {"loss.scale": 1.5})
        config = Resolver(cfg)(plan)[1]
        result = TrialResult(status=status, metrics={"balanced_acc": 0.5})
        rec = make_record(plan, config, result, 1.0)
        assert rec.status is status and list(rec.to_json()) == OLD_KEYS
        assert rec.config["train"]["seed"] == 0 and len(rec.config_hash) == 16


def test_report_does_not_import_the_study_package():
    for path in (ROOT / "rcl_study/report").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"from \.\.study[\. ]|rcl_study\.study\b", text), path.name


def test_tune_recorder_records_a_pruned_search_trial_as_a_typed_record(tmp_path, tiny_study):
    pytest.importorskip("ray")
    from rcl_study.study import ray_tune as tune
    from rcl_study.study.runner import RecordBook

    cfg = tiny_study.parse(TINY_HERE, study=Only(kind="search", seeds=[4, 5]))
    seen = []
    book = RecordBook(StudyFolder(tmp_path), seen.append)
    recorder = tune._Recorder(cfg, None, StudyFolder(tmp_path), book)

    class Trial:  # what the callback reads of a Tune trial that ASHA stopped after epoch 1
        trial_id = "t1"
        config = {"loss.scale": 1.25}
        last_result = {"epoch": 1, "balanced_acc": 0.4, "time_this_iter_s": 3.0}

    recorder.on_trial_complete(0, [], Trial())
    (rec,) = seen
    assert rec.trial_id.startswith("search-") and rec.variant == "search" and rec.seed == 4
    assert rec.status is TrialStatus.PRUNED and rec.overrides == {"loss.scale": 1.25}
    assert rec.metrics == {"epoch": 1, "balanced_acc": 0.4}
    assert rec.config["loss"]["scale"] == 1.25 and rec.attempts == 1
    assert StudyFolder(tmp_path).records() == [rec]
