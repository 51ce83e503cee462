"""A trial folder's own files are read through the store: a FIFO there is never waited on."""

from __future__ import annotations

import os
import threading

from rcl_study.study import execute
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialPlan


def _in_thread(call):
    out: list = []
    t = threading.Thread(target=lambda: out.append(call()), daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "the read waited on a FIFO"
    return out[0]


def test_a_fifo_as_result_or_config_is_not_waited_on(tmp_path):
    folder = StudyFolder(tmp_path / "runs")
    plan = TrialPlan("a__s0", "a", 0, {})
    trial = folder.trial_dir(plan.trial_id)
    trial.mkdir(parents=True)
    os.mkfifo(trial / "result.json")
    os.mkfifo(trial / "config.json")
    assert _in_thread(lambda: execute.stored_result(folder, plan)) is None
    assert _in_thread(lambda: execute._stale(folder, plan, {})) == "unreadable"
