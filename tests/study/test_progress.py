"""The status line a person watching a study reads: counts, epochs, elapsed time and ETA."""

from rcl_study.study import progress as progress_mod
from rcl_study.study.progress import Progress
from rcl_study.trials.records import TrialRecord, TrialStatus


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _record(tid):
    return TrialRecord(trial_id=tid, status=TrialStatus.OK, metrics={"balanced_acc": 0.5})


def test_status_line_counts_and_eta_by_hand():
    clock, lines = Clock(), []
    p = Progress(True, epochs_per_trial=10, clock=clock, write=lines.append)
    p.start(total=6, done=1)  # one recorded before this run
    assert "ETA unknown" in p.status_line()
    clock.now += 10
    p.evaluation("a", {"epoch": 5})
    p.evaluation("b", {"epoch": 5})
    clock.now += 10  # 20 s elapsed, 10 epochs done: 0.5 epoch/s
    line = p.status_line()
    # done 1, running a and b (10 of 20 epochs), left 6-1-2 = 3 trials (30 epochs)
    assert "trials 1 done, 2 running, 3 left; running: 10/20 epochs" in line
    assert "20s elapsed, ETA 1m20s" in line  # (10 + 30) epochs / 0.5 epoch/s = 80 s
    p.evaluation("a", {"epoch": 10})
    p.record(_record("a"))
    assert "trials 2 done, 1 running, 3 left; running: 5/10 epochs" in p.status_line()
    assert lines[-1].startswith("[2/6 trials, 20s] a: ok balanced_acc=0.5000")


def test_status_lines_at_most_every_30_seconds():
    clock, lines = Clock(), []
    p = Progress(True, epochs_per_trial=4, clock=clock, write=lines.append)
    p.start(total=3, done=0)
    for step in range(1, 9):  # an evaluation every 10 s for 80 s
        clock.now += 10
        p.evaluation("a", {"epoch": step})
    status = [ln for ln in lines if ln.startswith("[status")]
    assert len(status) == 2  # at 30 s and 60 s
    assert progress_mod.STATUS_EVERY == 30.0


def test_disabled_progress_prints_no_status():
    clock, lines = Clock(), []
    p = Progress(False, epochs_per_trial=4, clock=clock, write=lines.append)
    p.start(total=3, done=0)
    clock.now += 100
    p.evaluation("a", {"epoch": 1})
    assert not [ln for ln in lines if ln.startswith("[status")]
