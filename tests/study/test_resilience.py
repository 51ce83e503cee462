"""Fault paths of a study folder without training: damaged records, changed studies, retries,
the driver lock, a report that cannot be written, trial ids."""

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rcl_study import run
from rcl_study.config import load_study, to_dict
from rcl_study.store.folders import claim
from rcl_study.study import runner
from rcl_study.study.lock import LOCK, StudyLock, StudyLocked
from rcl_study.study.runner import (
    StudyChanged,
    absolute_paths,
    check_changes,
    check_run_folders,
    prepare_folder,
)
from rcl_study.trials.design import expand, trial_config
from rcl_study.trials.folder import DAMAGED, RECORDS, StudyFolder
from rcl_study.trials.records import config_hash
from tests.conftest import DROP, Only

ROOT = Path(__file__).resolve().parents[2]

#: this file's tiny study: 2 components (4 variants x 2 seeds), threads left to the default
TINY_HERE = {"train": {"threads": DROP}, "study": {"components": ["scale", "margin"]}}


def _record(cfg, plan, status="ok", **extra):
    """A record as the driver writes it for ``plan`` of ``cfg`` (no training)."""
    config = to_dict(trial_config(cfg, plan.overrides, plan.seed))
    return {
        "trial_id": plan.trial_id,
        "variant": plan.variant,
        "seed": plan.seed,
        "overrides": plan.overrides,
        "status": status,
        "reason": "",
        "metrics": {"balanced_acc": 0.5},
        "config": config,
        "config_hash": config_hash(config),
        **extra,
    }


def _record_all(folder: Path, study: Path) -> list:
    cfg = absolute_paths(load_study(study))
    plans = expand(cfg)
    claim(folder / "runs/tiny", "tiny")  # as a run leaves it: marked
    for p in plans:
        StudyFolder(folder / "runs/tiny").append(_record(cfg, p))
    return plans


# ------------------------------------------------------------------ item 5: damaged records


def _damage(out: Path) -> list[bytes]:
    """Two good records around four damaged lines; returns the damaged lines."""
    StudyFolder(out).append({"trial_id": "a", "status": "ok"})
    StudyFolder(out).append({"trial_id": "b", "status": "ok"})
    bad = [
        b'{"trial_id": "c", "status": "ok", "metr',  # truncated by a crash
        b"\xff\xfe not utf-8",
        b'{"trial_id": "d"}',  # no status
        b'["a", "list"]',
    ]
    lines = (out / RECORDS).read_bytes().splitlines()
    (out / RECORDS).write_bytes(b"\n".join([lines[0], *bad, lines[1]]))  # no final newline
    return bad


def test_damaged_lines_are_skipped_then_set_aside_and_their_trials_rerun(tmp_path):
    bad = _damage(tmp_path)
    assert [r["trial_id"] for r in StudyFolder(tmp_path).read_rows()[0]] == ["a", "b"]
    assert StudyFolder(tmp_path).done_ids() == {"a", "b"}  # c runs again on resume
    assert StudyFolder(tmp_path).move_damaged_lines() == 4
    assert (tmp_path / DAMAGED).read_bytes().splitlines() == bad
    assert [json.loads(x)["trial_id"] for x in (tmp_path / RECORDS).read_text().splitlines()] == [
        "a",
        "b",
    ]
    assert StudyFolder(tmp_path).move_damaged_lines() == 0


def test_append_keeps_damaged_lines_instead_of_dropping_them(tmp_path):
    bad = _damage(tmp_path)
    StudyFolder(tmp_path).append({"trial_id": "c", "status": "ok"})
    assert [r["trial_id"] for r in StudyFolder(tmp_path).read_rows()[0]] == ["a", "b", "c"]
    assert StudyFolder(tmp_path).damaged_lines() == bad  # left in place: append does not read
    assert StudyFolder(tmp_path).move_damaged_lines() == 4
    assert (tmp_path / DAMAGED).read_bytes().splitlines() == bad


def test_damaged_records_do_not_block_checks_and_overwrite_keeps_them(
    tmp_path, monkeypatch, tiny_study
):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_study.parse(TINY_HERE)
    claim(cfg.output_dir, cfg.name)
    _damage(cfg.output_dir)
    with pytest.raises(runner.StudyExists):
        check_run_folders(cfg, resume=False, overwrite=False)
    check_run_folders(cfg, resume=True, overwrite=False)
    check_run_folders(cfg, resume=False, overwrite=True)
    damaged = StudyFolder(cfg.output_dir).damaged_lines()
    assert len(damaged) == 4
    out = prepare_folder(cfg, overwrite=True)
    assert StudyFolder(out).read_rows()[0] == []
    # the damaged file went aside with the old study, line for line
    (moved,) = Path(cfg.output_dir).parent.glob(f"{Path(cfg.output_dir).name}.replaced-*")
    assert StudyFolder(moved).damaged_lines() == damaged


def test_report_only_survives_a_damaged_line(tmp_path, monkeypatch, capsys, tiny_study):
    monkeypatch.chdir(tmp_path)
    study = tiny_study.write(tmp_path, TINY_HERE)
    _damage(tmp_path / "runs/tiny")
    seen = {}

    def fake_write_report(cfg, study_path, *args):
        seen["ids"] = [r["trial_id"] for r in StudyFolder(cfg.output_dir).read_rows()[0]]
        return cfg.report_dir / "index.md"

    monkeypatch.setattr("rcl_study.report.render.write_report", fake_write_report)
    assert run.main([str(study), "--report-only"]) == 0
    assert seen["ids"] == ["a", "b"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "4 damaged line(s)" in err[0]


# ------------------------------------------------------- item 6: changed studies and retries


def test_config_hash_covers_what_defines_a_trial_only(tiny_study):
    cfg = tiny_study.parse(TINY_HERE)
    base = to_dict(cfg)
    h = config_hash(base)
    same = tiny_study.parse(
        TINY_HERE,
        name="renamed",
        train={"threads": 3, "progress": False},
        resources={"cpus_per_trial": 2, "max_concurrent": 4},
        report={"question": "why?"},
    )
    assert config_hash(to_dict(same)) == h
    for key, value in (
        ("train", {"lr": 0.2}),
        ("loss", {"margin": 0.25}),
        ("data", {"imbalance_ratio": 20}),
    ):
        other = tiny_study.parse(TINY_HERE, **{key: value})
        assert config_hash(to_dict(other)) != h, key
    dp = tiny_study.parse(TINY_HERE, resources={"cpus_per_trial": 2, "workers_per_trial": 2})
    assert config_hash(to_dict(dp)) != h  # data-parallel trials see another global batch


def test_resume_refuses_a_study_whose_trials_changed_and_names_the_keys(
    tmp_path, monkeypatch, tiny_study
):
    monkeypatch.chdir(tmp_path)
    study = tiny_study.write(tmp_path, TINY_HERE)
    _record_all(tmp_path, study)
    check_changes(absolute_paths(load_study(study)))  # unchanged: fine
    # keys that do not change a trial: fine
    check_changes(absolute_paths(load_study(study, ["train.threads=2", "report.question=q"])))
    changed = absolute_paths(load_study(study, ["train.lr=0.3", "loss.margin=0.7"]))
    with pytest.raises(StudyChanged) as err:
        check_changes(changed)
    msg = str(err.value)
    assert "train.lr" in msg and "--accept-changes" in msg
    assert "loss.margin" in msg and "8 recorded trials" in msg
    # margin changes only the variants with margin on: 4 of 8 trials, but lr all 8
    check_changes(changed, accept=True)


def test_resume_of_a_changed_study_is_exit_2_with_one_line(
    tmp_path, monkeypatch, capsys, tiny_study
):
    monkeypatch.chdir(tmp_path)
    study = tiny_study.write(tmp_path, TINY_HERE)
    _record_all(tmp_path, study)
    before = (tmp_path / "runs/tiny" / RECORDS).read_bytes()
    study.write_text(study.read_text().replace("epochs: 1", "epochs: 2"))
    assert run.main([str(study), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {study}: ")
    assert "train.epochs" in err[0] and "--accept-changes" in err[0]
    assert (tmp_path / "runs/tiny" / RECORDS).read_bytes() == before
    assert not (tmp_path / "runs/tiny" / LOCK).exists()


def test_failed_trials_are_retried_up_to_retries_and_diverged_never(tmp_path, tiny_study):
    StudyFolder(tmp_path).append({"trial_id": "ok", "status": "ok"})
    StudyFolder(tmp_path).append({"trial_id": "div", "status": "diverged"})
    StudyFolder(tmp_path).append({"trial_id": "f1", "status": "failed", "attempts": 1})
    StudyFolder(tmp_path).append({"trial_id": "f2", "status": "failed", "attempts": 2})
    StudyFolder(tmp_path).append({"trial_id": "old", "status": "failed"})  # before attempts existed
    assert StudyFolder(tmp_path).done_ids(retries=0) == {"ok", "div", "f1", "f2", "old"}
    assert StudyFolder(tmp_path).done_ids(retries=1) == {"ok", "div", "f2"}
    assert StudyFolder(tmp_path).done_ids(retries=2) == {"ok", "div"}
    assert tiny_study.parse(TINY_HERE).study.retries == 1


# ----------------------------------------------------------------------- item 7: the lock


def test_second_driver_is_refused_and_stale_lock_taken_over(tmp_path):
    first = StudyLock(tmp_path)
    assert first.acquire() is None
    info = json.loads((tmp_path / LOCK).read_text())
    assert info["pid"] == os.getpid() and info["host"] == platform.node()
    with pytest.raises(StudyLocked, match=f"pid {os.getpid()}"):
        StudyLock(tmp_path).acquire()
    first.release()
    assert not (tmp_path / LOCK).exists()
    # a lock left by a dead process on this host is stale
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    (tmp_path / LOCK).write_text(json.dumps({"pid": int(dead), "host": platform.node()}))
    lock = StudyLock(tmp_path)
    note = lock.acquire()
    assert note and "stale" in note and dead in note
    lock.release()
    # a lock from another host is never taken over
    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(StudyLocked, match="elsewhere.example"):
        StudyLock(tmp_path).acquire()


def test_two_drivers_racing_get_one_lock(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        from rcl_study.study.lock import StudyLock, StudyLocked
        time.sleep(max(0.0, {__import__("time").time() + 2.0} - time.time()))
        try:
            StudyLock(sys.argv[1]).acquire()
        except StudyLocked:
            print("refused"); sys.exit(0)
        print("got it"); time.sleep(2)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["got it", "refused", "refused"]


def test_run_refuses_a_study_held_by_a_live_driver(tmp_path, monkeypatch, capsys, tiny_study):
    monkeypatch.chdir(tmp_path)
    study = tiny_study.write(tmp_path, TINY_HERE)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / "runs/tiny" / LOCK
        lock.parent.mkdir(parents=True)
        lock.write_text(json.dumps({"pid": holder.pid, "host": platform.node()}))
        assert run.main([str(study), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid}" in err[0] and "another driver" in err[0]
        assert json.loads(lock.read_text())["pid"] == holder.pid  # untouched
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------- item 8: a report that cannot be written


def test_report_failure_after_trials_is_exit_2_and_keeps_records(
    tmp_path, monkeypatch, capsys, tiny_study
):
    monkeypatch.chdir(tmp_path)
    study = tiny_study.write(tmp_path, TINY_HERE)

    def fake_run_study(cfg, **kw):
        StudyFolder(cfg.output_dir).append({"trial_id": "a", "status": "ok"})
        return StudyFolder(cfg.output_dir).read_rows()[0]

    def broken_report(cfg, study_path, *args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    monkeypatch.setattr("rcl_study.report.render.write_report", broken_report)
    assert run.main([str(study), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "records are kept" in err[0]
    assert [r["trial_id"] for r in StudyFolder(tmp_path / "runs/tiny").read_rows()[0]] == ["a"]


# --------------------------------------------------------------------- item 10: trial ids


def test_long_grid_points_get_distinct_stable_ids(tiny_study):
    long_keys = {
        "train.weight_decay": [0.0005],
        "train.momentum": [0.9],
        "train.warmup_epochs": [0],
        "loss.temperature": [0.1],
        "train.lr": [0.05, 0.06],  # differs only past the old 60-character cut
    }
    cfg = tiny_study.parse(TINY_HERE, study=Only(kind="grid", seeds=[0], grid=long_keys))
    plans = expand(cfg)
    assert len(plans) == 2 and plans[0].trial_id != plans[1].trial_id
    for p in plans:
        assert p.trial_id.startswith("train.weight_decay=0.0005_train.momentum=0.9")
        assert len(p.trial_id) <= 64
    assert [p.trial_id for p in expand(cfg)] == [p.trial_id for p in plans]  # stable
    short = tiny_study.parse(
        TINY_HERE,
        study=Only(kind="grid", seeds=[0], grid={"loss.scale": [1.5], "train.lr": [0.1]}),
    )
    assert expand(short)[0].trial_id == "loss.scale=1.5_train.lr=0.1__s0"  # short ids unchanged
    # characters replaced for the file system: x/y and x_y must not collide
    paths = tiny_study.parse(
        TINY_HERE, study=Only(kind="grid", seeds=[0], grid={"data.path": ["x/y", "x_y"]})
    )
    assert len({p.trial_id for p in expand(paths)}) == 2
