"""A notebook's view: the names exported by ``rcl_study`` alone run a study and read it back."""

import json
import subprocess
import sys

import rcl_study


def test_import_is_light_and_names_are_public():
    code = "import sys, rcl_study; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert set(rcl_study.__all__) >= {"load_study", "run_study", "StudyFolder", "write_report"}


def test_a_study_through_the_public_names_only(tmp_path):
    study = {
        "name": "api",
        "data": {"dataset": "digits_lt", "imbalance_ratio": 10, "test_limit": 60},
        "model": {"arch": "small_cnn", "width": 8, "proj_hidden": 16, "proj_dim": 8},
        "train": {"epochs": 1, "batch_size": 32, "max_steps_per_epoch": 2, "warmup_epochs": 0},
        "loss": {"preset": "bcl+rcl", "balance": 1.0, "scale": 1.5, "margin": 0.5},
        "study": {"kind": "ablation", "seeds": [0, 1], "components": ["margin"]},
        "resources": {"cpus_per_trial": 1, "executor": "local"},
    }
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
