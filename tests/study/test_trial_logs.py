"""A trial's own output is kept on the driver: runs/<study>/logs/<unit>.log."""

from rcl_study.study.execute import log_path
from rcl_study.study.local import LocalExecutor
from rcl_study.study.packing import plan_units
from rcl_study.study.runner import RecordBook
from rcl_study.trials.design import expand
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialPlan
from rcl_study.trials.unit import Unit
from tests.conftest import TINY_STUDY


def test_local_units_write_their_progress_and_errors_to_their_log(tmp_path):
    cfg = TINY_STUDY.parse(
        train={"epochs": 2, "eval_every": 1},
        study={"seeds": [0], "components": ["margin"], "output_dir": str(tmp_path)},
        resources={"executor": "local", "pack": 2},
    )
    plans = expand(cfg)
    broken = TrialPlan("broken__s0", "broken", 0, {"data.dataset": "arrays", "data.path": "/no"})
    units = [*plan_units(cfg, plans, plans), Unit.single(broken)]
    folder = StudyFolder(tmp_path)
    LocalExecutor().run(cfg, units, folder, RecordBook(folder, lambda r: None))
    pack = units[0]
    lines = log_path(folder, pack).read_text().splitlines()
    for member in pack.members:  # one progress line per member and evaluation
        mine = [ln for ln in lines if ln.startswith(f"[{member.trial_id}] epoch ")]
        assert [ln.split()[2] for ln in mine] == ["1/2", "2/2"], lines
    failed = log_path(folder, units[1]).read_text()
    assert "Traceback" in failed and "/no" in failed


def test_a_single_trial_and_a_search_point_name_themselves_in_their_lines(tmp_path):
    from rcl_study.study.execute import Resolver, train_and_save

    cfg = TINY_STUDY.parse(train={"epochs": 1}, study={"seeds": [0], "output_dir": str(tmp_path)})
    folder = StudyFolder(tmp_path)
    plans = [
        TrialPlan("margin__s0", "margin", 0, {"loss.margin": 0.5}),
        TrialPlan("search-1a2b", "search", 0, {"loss.scale": 1.23456, "loss.preset": "bcl"}),
    ]
    lines: list[str] = []
    for plan in plans:
        result = train_and_save(plan, Resolver(cfg), folder, None, 1, log=lines.append)
        assert result.ok, result.reason
    assert lines[0].startswith("[margin__s0] epoch 1/1 ")  # the trial, not the study's name
    assert lines[1].startswith("[search-1a2b] epoch 1/1 ")
    assert lines[1].endswith(" (loss.scale=1.235 loss.preset=bcl)")
