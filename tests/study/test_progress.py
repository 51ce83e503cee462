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
    assert "ETA after two evaluations" in p.status_line()
    clock.now += 60  # start-up: a minute before the first evaluation
    p.evaluation("a", {"epoch": 2})
    p.evaluation("b", {"epoch": 2})
    assert "ETA after two evaluations" in p.status_line()
    clock.now += 4  # then 2 epochs in 4 s each, side by side: 2 x 0.5 = 1 epoch/s
    p.evaluation("a", {"epoch": 4})
    p.evaluation("b", {"epoch": 4})
    line = p.status_line()
    # done 1, running a and b (8 of 20 epochs), left 6-1-2 = 3 trials (30 epochs)
    assert "trials 1 done, 2 running, 3 left; running: 8/20 epochs" in line
    # (12 + 30) epochs at 1 epoch/s; counting the start-up (8 epochs in 64 s) would say 5m36s
    assert "1m04s elapsed, ETA 42s" in line
    clock.now += 12
    p.evaluation("a", {"epoch": 10})
    p.record(_record("a"))
    # b alone at 0.5 epoch/s: (6 + 30) epochs / 0.5 = 72 s
    assert "trials 2 done, 1 running, 3 left; running: 4/10 epochs" in p.status_line()
    assert "ETA 1m12s" in p.status_line()
    assert lines[-1].startswith("[2/6 trials, 76s] a: ok balanced_acc=0.5000")


def test_a_trial_measured_before_sets_the_pace_of_a_new_one():
    clock = Clock()
    p = Progress(False, epochs_per_trial=10, clock=clock, write=lambda line: None)
    p.start(total=2, done=0)
    p.evaluation("a", {"epoch": 5})
    clock.now += 10
    p.evaluation("a", {"epoch": 10})  # 0.5 epoch/s
    p.record(_record("a"))
    p.evaluation("b", {"epoch": 1})  # one evaluation: its own pace is not known yet
    assert p.eta_seconds() == 18.0  # 9 epochs at a's 0.5 epoch/s


def test_the_snapshot_goes_to_on_status_at_each_tick_and_at_the_end():
    clock, snaps = Clock(), []
    p = Progress(
        False, epochs_per_trial=4, clock=clock, write=lambda line: None, on_status=snaps.append
    )
    p.start(total=3, done=1)
    clock.now += 31
    p.evaluation("a", {"epoch": 1})
    assert len(snaps) == 1 and snaps[0].running == {"a": 1} and snaps[0].left == 1
    assert snaps[0].total == 3 and snaps[0].done == 1 and not snaps[0].finished
    p.record(_record("a"))
    p.close(finished=True)
    assert snaps[-1].finished and snaps[-1].done == 2 and snaps[-1].eta_seconds is None


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
