"""scripts/ use the package's public engine: no loading by path, no patched runner, no raw loads.

And ``scripts/gpu/ablation.py run`` hands the engine only its plan's variants (``run_study``'s
``only``), seen here through an executor that records the units it is given instead of training
them. The end-to-end run of plans (b) then (a) is ``test_gpu_scripts``'s slow
``test_plan_b_then_a_through_the_engine_records_each_trial_once``.
"""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
SCRIPTS = sorted((ROOT / "scripts").rglob("*.py"))

#: what no script may contain: (pattern, why)
FORBIDDEN = [
    (r"spec_from_file_location", "load another script's private functions by path"),
    (r"\brunner\.executor\s*=", "patch the runner's executor (pass run_study an executor)"),
    (r"\btorch\.load\(", "load checkpoints raw (use rcl_study.trainer.checkpoint)"),
    (r"rcl_study\.study\.(records|space|tune)\b", "import the modules removed in 3d776f5"),
]


def test_there_are_scripts_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in SCRIPTS}
    assert {"scripts/jpeg_gap.py", "scripts/gpu/ablation.py", "scripts/gpu/smoke.py"} <= names


@pytest.mark.parametrize("pattern,why", FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_no_script_reaches_around_the_public_api(pattern, why):
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in SCRIPTS
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not hits, f"scripts must not {why}:\n" + "\n".join(hits)


def test_shell_scripts_name_no_removed_module():
    removed = re.compile(r"rcl_study\.study\.(records|space|tune)\b|import rcl_study\.train\b")
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "scripts").rglob("*.sh"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if removed.search(line)
    ]
    assert not hits


class RecordingExecutor:
    """An executor that keeps the units it is asked to run and trains nothing."""

    name = "local"

    def __init__(self):
        self.units = []

    def start(self, study):
        pass

    def run(self, study, units, folder, sink):
        self.units.extend(units)

    def search(self, study, request, folder, sink):
        raise AssertionError("an ablation has no search")

    def stop(self):
        pass


def _ablation():
    spec = importlib.util.spec_from_file_location(
        "ablation", ROOT / "scripts" / "gpu" / "ablation.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ablation_run_gives_the_engine_the_whole_ablation_as_one_pack(tmp_path, capsys):
    from rcl_study.study.executor import Executor
    from rcl_study.trials.folder import StudyFolder

    ab = _ablation()
    out = tmp_path / "runs"
    study = tmp_path / "s.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "name": "tiny_ablation",
                "data": {"dataset": "digits_lt", "test_limit": 60},
                "model": {"arch": "small_cnn", "width": 4, "proj_hidden": 8, "proj_dim": 4},
                "train": {"epochs": 1, "batch_size": 32, "max_steps_per_epoch": 1},
                "loss": {"preset": "bcl+rcl", "balance": 1.0, "scale": 1.2, "margin": 0.5},
                "study": {
                    "kind": "ablation",
                    "components": ["balance", "scale", "margin"],
                    "seeds": [0],
                    "output_dir": str(out),
                },
                "resources": {"executor": "local", "pack": 8, "cpus_per_trial": 1},
                "report": {"dir": str(tmp_path / "report")},  # the run ships its records there
            }
        )
    )
    ex = RecordingExecutor()
    assert isinstance(ex, Executor)
    # nothing trained, so nothing recorded: "not all ok"
    assert ab.run(str(study), [], 100.0, executor=ex) == 1
    members = [m for u in ex.units for m in u.members]
    assert len(members) == 8 and len(ex.units) == 1  # the whole 2^3 ablation, one pack
    assert ex.units[0].pack_id is not None
    assert len(StudyFolder(out).plan()["trials"]) == 8
    assert "run: budget 100.0 s, priority none, balance+scale+margin" in capsys.readouterr().out
