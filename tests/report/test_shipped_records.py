"""Issue 20, item 4: a report ships its records and rebuilds from a fresh folder without runs/."""

import json
import shutil

import yaml

from rcl_study import run
from rcl_study.trials.folder import StudyFolder
from tests.report.test_report import _ablation_records


def _study(tmp_path):
    study = {
        "name": "syn",
        "data": {"dataset": "digits_lt"},
        "study": {"kind": "ablation", "seeds": [0, 1, 2]},
    }
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "syn.yaml").write_text(yaml.safe_dump(study))
    recs = _ablation_records()
    folder = StudyFolder(tmp_path / "runs" / "syn")
    for r in reversed(recs):  # finished in another order than planned
        folder.append(r)
    folder.write_plan([{"trial_id": r["trial_id"]} for r in recs] + [{"trial_id": "x"}], {})
    return recs


def test_report_ships_its_records_and_rebuilds_without_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    recs = _study(tmp_path)
    assert run.main(["studies/syn.yaml", "--report-only"]) == 0
    report = tmp_path / "reports" / "syn"
    shipped = [json.loads(line) for line in (report / "records.jsonl").read_text().splitlines()]
    assert [r["trial_id"] for r in shipped] == [r["trial_id"] for r in recs]  # plan order
    assert shipped == StudyFolder(tmp_path / "runs" / "syn").read_rows()[0][::-1]
    assert not list(report.glob(".*.tmp"))  # written atomically: no temporary left
    first = (report / "index.md").read_text(), (report / "stats.json").read_text()
    assert "24 of 25 planned trials recorded (partial" in first[0]
    # a committed report carries no machine path: folders under the working folder are shown
    # relative to it (they are made absolute once per command)
    assert str(tmp_path) not in first[0] and "`runs/syn/records.jsonl`" in first[0]
    capsys.readouterr()
    plan_before = run.main(["studies/syn.yaml", "--plan-seeds"])
    before = capsys.readouterr().out

    shutil.rmtree(tmp_path / "runs")  # a fresh clone: reports/ only
    capsys.readouterr()
    assert run.main(["studies/syn.yaml", "--report-only"]) == 0
    err = capsys.readouterr().err
    note = [line for line in err.splitlines() if "records shipped with the report" in line]
    assert len(note) == 1 and "reports/syn/records.jsonl" in note[0]
    assert ((report / "index.md").read_text(), (report / "stats.json").read_text()) == first

    assert plan_before == 0 and run.main(["studies/syn.yaml", "--plan-seeds"]) == 0
    out = capsys.readouterr()
    assert "records shipped with the report" in out.err
    assert out.out.replace("reports/syn", "runs/syn") == before  # the same plan, other folder
    assert "minimum detectable effect" in out.out


def test_without_runs_or_shipped_records_the_error_stays(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _study(tmp_path)
    shutil.rmtree(tmp_path / "runs")
    assert run.main(["studies/syn.yaml", "--report-only"]) == 2
    err = capsys.readouterr().err
    assert "no records in " in err and "runs/syn;" in err  # the folder, made absolute once


def test_shipped_records_leave_out_the_machines_absolute_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recs = _study(tmp_path)
    runs = StudyFolder(tmp_path / "runs" / "syn")
    config = {
        "name": "syn",
        "study": {"output_dir": "/home/alice/work/runs/syn", "seeds": [0]},
        "report": {"dir": "/home/alice/work/reports/syn", "alpha": 0.05},
        "data": {"root": "/data/mnist"},  # data paths are kept: they may define the trial
    }
    runs.append({**recs[0], "config": config})  # a later attempt of the first trial
    runs.write_plan([{"trial_id": r["trial_id"]} for r in recs], {"config": config})
    assert run.main(["studies/syn.yaml", "--report-only"]) == 0
    report = tmp_path / "reports" / "syn"
    text = (report / "records.jsonl").read_text() + (report / "plan.json").read_text()
    assert "/home/alice" not in text and "/data/mnist" in text
    shipped = {json.loads(line)["trial_id"]: json.loads(line) for line in text.splitlines()[:24]}
    got = shipped[recs[0]["trial_id"]]["config"]
    assert got["study"] == {"output_dir": None, "seeds": [0]}
    assert got["report"] == {"dir": None, "alpha": 0.05}
    # the study's own records are untouched
    assert "/home/alice" in (tmp_path / "runs" / "syn" / "records.jsonl").read_text()


def test_rebuilding_a_report_keeps_its_manifest_at_one_line_per_file(tmp_path, monkeypatch):
    from rcl_study.files import MANIFEST, read_manifest

    monkeypatch.chdir(tmp_path)
    _study(tmp_path)
    report = tmp_path / "reports" / "syn"
    for _ in range(3):
        assert run.main(["studies/syn.yaml", "--report-only"]) == 0
    lines = (report / MANIFEST).read_text().splitlines()
    files = [p for p in report.rglob("*") if p.is_file() and not p.name.startswith(".rcl_study")]
    assert len(lines) == len(read_manifest(report)) == len(files)
