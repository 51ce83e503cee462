"""Nothing lost at the deadline: a stopped trial or pack records every member.

A ``KeyboardInterrupt`` raised inside the third epoch stands for SIGTERM (the GPU scripts' handler
raises it there, as Ctrl-C does). Expected: each member recorded ``stopped`` with its evaluation
after epoch 2 and ``epochs_trained`` 2; ``--resume`` trains epoch 3 from the checkpoint and the
trial ends ``ok`` with evaluations at 1, 2, 3; the report counts the stopped trials as partial.
"""

from __future__ import annotations

import pytest

from rcl_study.study.local import LocalExecutor
from rcl_study.study.runner import run_study
from rcl_study.trials.folder import StudyFolder

TINY_HERE = {
    "name": "stopped",
    "train": {"epochs": 3, "eval_every": 1, "checkpoint_every": 1},
    "study": {"components": ["margin"], "seeds": [0]},
}


def _sigterm_in_epoch(monkeypatch, module, name: str, at: int) -> None:
    """Make ``module.name`` (an epoch function ``f(x, epoch)``) raise as SIGTERM at ``at``."""
    real = getattr(module, name)

    def epoch(x, e, *rest):
        if e == at:
            raise KeyboardInterrupt("SIGTERM")
        return real(x, e, *rest)

    monkeypatch.setattr(module, name, epoch)


@pytest.mark.parametrize("pack", [2, 1])
def test_a_stopped_unit_records_every_member_and_resumes(tmp_path, monkeypatch, tiny_study, pack):
    import rcl_study.trainer.loop as loop
    import rcl_study.trainer.pack as packing

    out = tmp_path / "runs"
    cfg = tiny_study.parse(
        TINY_HERE,
        study={"output_dir": str(out)},
        report={"dir": str(tmp_path / "rep")},  # the run ships its records there
        resources={"pack": pack, "executor": "local"},
    )
    with monkeypatch.context() as m:
        if pack > 1:
            _sigterm_in_epoch(m, packing, "train_pack_epoch", 2)
        else:
            _sigterm_in_epoch(m, loop, "train_epoch", 2)
        with pytest.raises(KeyboardInterrupt):
            run_study(cfg, progress=False, executor=LocalExecutor())
    recs = StudyFolder(out).records()
    # pack: both members stopped in epoch 3; alone: the first trial stopped, the second not run
    assert len(recs) == (2 if pack > 1 else 1)
    for r in recs:
        assert r.status.value == "stopped"
        assert r.reason == "stopped by SIGTERM after epoch 2 of 3"
        assert r.metrics["epoch"] == 2 and r.metrics["epochs_trained"] == 2
        assert [h["epoch"] for h in r.history] == [1, 2]
        assert 0 <= r.metrics["top1"] <= 1
    assert not (out / "driver.lock").exists()
    # resume: the stopped trials train on from their checkpoint, the others start
    done = run_study(cfg, resume=True, progress=False, executor=LocalExecutor())
    assert len(done) == 2 and all(r.ok for r in done)
    for r in done:
        assert [h["epoch"] for h in r.history] == [1, 2, 3]
    stopped_ids = {r.trial_id for r in recs}
    assert all(r.attempts == (2 if r.trial_id in stopped_ids else 1) for r in done)


def test_the_report_shows_stopped_trials_as_partial(tmp_path, monkeypatch, tiny_study):
    import rcl_study.trainer.pack as packing
    from rcl_study.report.render import write_report

    out = tmp_path / "runs"
    cfg = tiny_study.parse(
        TINY_HERE,
        study={"output_dir": str(out)},
        resources={"pack": 2, "executor": "local"},
        report={"dir": str(tmp_path / "rep"), "bootstrap": 100},
    )
    _sigterm_in_epoch(monkeypatch, packing, "train_pack_epoch", 2)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, progress=False, executor=LocalExecutor())
    write_report(cfg, "s.yaml")
    text = (tmp_path / "rep" / "index.md").read_text()
    assert "2 of 2 planned trials recorded (partial; stopped 2: 2 partial" in text
    assert "| stopped (partial) | stopped by SIGTERM after epoch 2 of 3 |" in text
