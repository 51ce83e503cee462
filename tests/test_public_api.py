"""A notebook's view: the names exported by ``rcl_study`` alone run a study and read it back."""

import json
import subprocess
import sys

import rcl_study
from tests.conftest import TINY_STUDY


def test_import_is_light_and_names_are_public():
    code = "import sys, rcl_study; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert set(rcl_study.__all__) >= {"load_study", "run_study", "StudyFolder", "write_report"}


def test_a_study_through_the_public_names_only(tmp_path):
    study = TINY_STUDY(
        name="api",
        data={"test_limit": 60},
        study={"components": ["margin"]},
        resources={"executor": "local"},
    )
    path = tmp_path / "api.yaml"
    path.write_text(json.dumps(study))  # JSON is YAML
    cfg = rcl_study.load_study(
        path, [f"study.output_dir={tmp_path / 'runs'}", f"report.dir={tmp_path / 'rep'}"]
    )
    records = rcl_study.run_study(cfg, progress=False)
    assert len(records) == 4 and all(r.status is rcl_study.TrialStatus.OK for r in records)
    assert rcl_study.StudyFolder(cfg.output_dir).records() == records
    index = rcl_study.write_report(cfg, str(path))
    assert index.name == "index.md" and "margin" in index.read_text()
