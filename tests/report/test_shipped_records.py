"""The run ships its records into the report folder; a report rebuilds from them without runs/.

A report build only reads records: shipped or run records stay byte for byte as they were, a
damaged line included (reported, kept).
"""

import json
import shutil

import yaml

from rcl_study import run
from rcl_study.config import load_study
from rcl_study.study.runner import absolute_paths
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.shipping import ship_study
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


def _ship(tmp_path):
    """What the run does when its trials end: ship the records into the report folder."""
    ship_study(absolute_paths(load_study(tmp_path / "studies" / "syn.yaml")))


def test_report_ships_its_records_and_rebuilds_without_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    recs = _study(tmp_path)
    _ship(tmp_path)
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
    _ship(tmp_path)
    report = tmp_path / "reports" / "syn"
    text = (report / "records.jsonl").read_text() + (report / "plan.json").read_text()
    assert "/home/alice" not in text and "/data/mnist" in text
    shipped = {json.loads(line)["trial_id"]: json.loads(line) for line in text.splitlines()[:24]}
    got = shipped[recs[0]["trial_id"]]["config"]
    assert got["study"] == {"output_dir": None, "seeds": [0]}
    assert got["report"] == {"dir": None, "alpha": 0.05}
    # the study's own records are untouched
    assert "/home/alice" in (tmp_path / "runs" / "syn" / "records.jsonl").read_text()


def test_report_only_leaves_the_records_byte_identical_and_keeps_a_damaged_line(
    tmp_path, monkeypatch, capsys
):
    """A fresh clone: reports/syn/ holds the shipped records, one line of them damaged; runs/ is
    not there. --report-only reads them and writes no record: both files stay byte for byte."""
    monkeypatch.chdir(tmp_path)
    _study(tmp_path)
    _ship(tmp_path)
    shutil.rmtree(tmp_path / "runs")
    report = tmp_path / "reports" / "syn"
    with (report / "records.jsonl").open("ab") as f:
        f.write(b'{"trial_id": "none__s9", "status": "o\n')  # a line cut short, then hand-edited
    before = {name: (report / name).read_bytes() for name in ("records.jsonl", "plan.json")}
    for _ in range(2):
        capsys.readouterr()
        assert run.main(["studies/syn.yaml", "--report-only"]) == 0
        err = capsys.readouterr().err
        damaged = [line for line in err.splitlines() if "damaged line" in line]
        assert len(damaged) == 1 and "records.jsonl: 1 damaged line" in damaged[0], err
        assert {n: (report / n).read_bytes() for n in before} == before
    assert not (report / "records.damaged.jsonl").exists()
    assert not list(tmp_path.rglob(".rcl_study.files"))  # no manifest written


def test_report_only_writes_no_record_in_the_runs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _study(tmp_path)
    runs = tmp_path / "runs" / "syn"
    before = {p.name: p.read_bytes() for p in runs.iterdir()}
    assert run.main(["studies/syn.yaml", "--report-only"]) == 0
    assert {p.name: p.read_bytes() for p in runs.iterdir()} == before
    assert not (tmp_path / "reports" / "syn" / "records.jsonl").exists()  # shipped by runs only
