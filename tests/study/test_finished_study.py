"""Resuming a finished study starts nothing; ``only=`` is honoured in what ``run_study`` returns."""

from rcl_study.study.local import LocalExecutor
from rcl_study.study.runner import run_study
from tests.study.test_executor_contract import _study


class CountingExecutor(LocalExecutor):
    """The local executor, counting how often it is started and how many units it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.starts = 0
        self.units = 0

    def start(self, study) -> None:  # noqa: D102
        self.starts += 1
        super().start(study)

    def run(self, study, units, folder, sink) -> None:  # noqa: D102
        self.units += len(units)
        super().run(study, units, folder, sink)


def test_resuming_a_finished_study_starts_nothing_and_returns_its_records(tmp_path):
    cfg = _study(tmp_path)
    first = run_study(cfg, progress=False)
    assert len(first) == 4
    again = CountingExecutor()
    records = run_study(cfg, resume=True, progress=False, executor=again)
    assert again.starts == 0 and again.units == 0
    assert sorted(r.trial_id for r in records) == sorted(r.trial_id for r in first)


def test_only_returns_the_records_of_the_named_variants(tmp_path):
    cfg = _study(tmp_path)
    run_study(cfg, progress=False, only=["none"])
    ex = CountingExecutor()
    records = run_study(cfg, resume=True, progress=False, only=["margin"], executor=ex)
    assert [r.variant for r in records] == ["margin"] and ex.starts == 1
    # finished now: a second resume of the same variant starts nothing and returns it alone
    ex = CountingExecutor()
    records = run_study(cfg, resume=True, progress=False, only=["margin__s0"], executor=ex)
    assert [r.trial_id for r in records] == ["margin__s0"] and ex.starts == 0
