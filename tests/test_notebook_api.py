"""A notebook runs a study and reads it as a table with public names only."""

import json

import rcl_study
from tests.conftest import TINY_STUDY


def test_a_notebook_runs_a_study_and_reads_a_dataframe(tmp_path):
    from rcl_study import StudyFolder, TrialStatus, load_study, run_study, write_report

    path = tmp_path / "nb.yaml"
    path.write_text(
        json.dumps(
            TINY_STUDY(
                name="nb",
                data={"test_limit": 60},
                study={"components": ["margin"], "seeds": [0]},
                resources={"executor": "local"},
            )
        )
    )
    study = load_study(path, [f"study.output_dir={tmp_path / 'runs'}", f"report.dir={tmp_path}/r"])
    records = run_study(study, progress=False)
    assert [r.status for r in records] == [TrialStatus.OK, TrialStatus.OK]
    df = StudyFolder(study.output_dir).dataframe()
    assert list(df["variant"]) == ["none", "margin"]
    assert list(df["status"]) == ["ok", "ok"]
    assert list(df["seed"]) == [0, 0]
    assert sorted(df["loss.margin"]) == [0.0, 0.5]
    assert df["balanced_acc"].between(0, 1).all()
    assert "per_class_acc" not in df.columns
    assert write_report(study, str(path)).name == "index.md"
    assert {"load_study", "run_study", "StudyFolder", "write_report"} <= set(rcl_study.__all__)


def test_an_empty_folder_is_an_empty_table(tmp_path):
    df = rcl_study.StudyFolder(tmp_path).dataframe()
    assert len(df) == 0 and "balanced_acc" not in df.columns and "status" in df.columns
