"""The local executor end to end (no Ray): a study killed midway resumes each trial once."""

import signal

from rcl_study.trials.folder import StudyFolder


def test_local_study_killed_midway_resumes_each_trial_once(tmp_path, tiny_study, cli):
    path = tiny_study.write(
        tmp_path,
        train={"epochs": 3, "max_steps_per_epoch": 4, "progress": False},
        study={"components": ["margin"]},
        resources={"executor": "local", "pack": 1},
        report={"bootstrap": 100},
    )
    out = tmp_path / "runs/tiny"
    stopped = cli.stop_midway(path, records=out, at_least=1, poll=0.2)
    assert stopped.returncode == -signal.SIGKILL  # killed mid-study, not finished
    before = stopped.finished
    assert 1 <= len(before) < 4
    resumed = cli.run(path, "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stale lock" in resumed.stderr  # the killed driver's lock is taken over
    after = StudyFolder(out).read_rows()[0]
    assert sorted(r["trial_id"] for r in after) == [
        "margin__s0",
        "margin__s1",
        "none__s0",
        "none__s1",
    ]
    assert all(r["status"] == "ok" for r in after)
    for r in after:  # recorded trials were not run again
        if r["trial_id"] in before:
            assert r["finished"] == before[r["trial_id"]]
