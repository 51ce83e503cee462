"""Studies end to end through Ray Tune: records, resume after SIGKILL, faults, search."""

import json
import os
import signal
import time

import pytest

from rcl_study.trials.design import expand, trial_config
from rcl_study.trials.folder import StudyFolder

# ---------------------------------------------------------------------------- dry runs (fast)


@pytest.mark.parametrize(
    "components,design,seeds,expected",
    [
        (["balance", "scale", "margin"], "factorial", [0, 1], 16),
        (["balance", "scale"], "factorial", [0, 1, 2], 12),
        (["balance", "scale", "margin", "class_averaging"], "factorial", [0], 16),
        (["balance", "scale", "margin"], "leave_one_out", [0, 1], 8),
        (["balance", "scale", "margin"], "add_one_in", [0, 1, 2], 12),
    ],
)
def test_ablation_counts(components, design, seeds, expected, tiny_study):
    cfg = tiny_study.parse(
        study={"kind": "ablation", "components": components, "design": design, "seeds": seeds}
    )
    plans = expand(cfg)
    assert len(plans) == expected
    assert len({p.trial_id for p in plans}) == expected
    if design == "factorial":  # every on/off cell exactly once per seed
        cells = {tuple(p.overrides[f"loss.{c}"] for c in components) for p in plans}
        assert len(cells) == 2 ** len(components)


def test_grid_counts_and_values(tiny_study):
    cfg = tiny_study.parse(
        study={
            "kind": "grid",
            "seeds": [0, 1, 2],
            "grid": {"loss.scale": [1, 1.5, 2], "data.imbalance_ratio": [10, 50]},
        }
    )
    plans = expand(cfg)
    assert len(plans) == 3 * 2 * 3
    first = trial_config(cfg, plans[0].overrides, plans[0].seed)
    assert first.loss.scale == 1 and first.data.imbalance_ratio == 10


def test_dry_run_prints_trials_and_runs_nothing(tmp_path, tiny_study, cli):
    path = tiny_study.write(tmp_path)
    proc = cli.run(path, "--dry-run", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "16 trials (8 variants x 2 seeds)" in proc.stdout
    assert "1 CPU + 0 GPU per trial" in proc.stdout
    assert not (tmp_path / "runs").exists() and not (tmp_path / "reports").exists()


def test_unreachable_ray_address_fails_fast(tmp_path, tiny_study, cli):
    path = tiny_study.write(tmp_path)
    t0 = time.time()
    proc = cli.run(path, "--set", "resources.address=127.0.0.1:9", "--no-progress", timeout=120)
    assert proc.returncode == 2
    assert "does not answer" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert time.time() - t0 < 30


# ----------------------------------------------------------------------- Ray end to end (slow)


@pytest.mark.slow
def test_quickstart_reduced_end_to_end_and_no_silent_overwrite(tmp_path, tiny_study, cli):
    path = tiny_study.write(tmp_path)
    proc = cli.run(path, "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = StudyFolder(tmp_path / "runs" / "tiny").read_rows()[0]
    assert len(records) == 16 and len({r["trial_id"] for r in records}) == 16
    assert all(r["status"] == "ok" for r in records)
    r = records[0]
    for key in (
        "config",
        "seed",
        "history",
        "metrics",
        "wall_time",
        "device",
        "versions",
        "git_rev",
        "reason",
    ):
        assert key in r
    assert r["config"]["train"]["seed"] == r["seed"]
    # every trial's best epoch is chosen on validation, and its TEST score reported
    for rec in records:
        chosen = max(rec["history"], key=lambda h: h["val_balanced_acc"])  # first of ties
        assert rec["metrics"]["chosen_epoch_balanced_acc"] == chosen["epoch"]
        assert rec["metrics"]["chosen_balanced_acc"] == chosen["balanced_acc"]
        assert rec["metrics"]["n_val"] == 200 and rec["metrics"]["n_test"] > 0
    trial_cfg = json.loads(
        (tmp_path / "runs/tiny/trials" / r["trial_id"] / "config.json").read_text()
    )
    assert trial_cfg["config"]["loss"] == r["config"]["loss"]
    index = (tmp_path / "reports/tiny/index.md").read_text()
    for variant in ("none", "balance", "scale", "margin", "balance+scale+margin"):
        assert f"| {variant} | 2/2 |" in index
    assert (tmp_path / "reports/tiny/figures/variants.png").stat().st_size > 0
    csv = (tmp_path / "reports/tiny/results.csv").read_text().strip().splitlines()
    assert len(csv) == 17
    # a second run without --resume refuses, and changes nothing
    before = (tmp_path / "runs/tiny/records.jsonl").read_bytes()
    again = cli.run(path, "--no-progress")
    assert again.returncode == 2 and "--resume" in again.stderr
    assert (tmp_path / "runs/tiny/records.jsonl").read_bytes() == before
    # --report-only reproduces the same tables from the stored records
    stats_before = json.loads((tmp_path / "reports/tiny/stats.json").read_text())
    (tmp_path / "reports/tiny/index.md").unlink()
    assert cli.run(path, "--report-only", "--no-progress").returncode == 0
    assert (tmp_path / "reports/tiny/index.md").read_text() == index
    assert json.loads((tmp_path / "reports/tiny/stats.json").read_text()) == stats_before


@pytest.mark.slow
def test_resume_after_sigkill_runs_each_trial_once(tmp_path, tiny_study, cli):
    path = tiny_study.write(
        tmp_path,
        train={"epochs": 3, "max_steps_per_epoch": 4},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    # SIGKILL to the driver and the Ray processes it started
    before = cli.stop_midway(path, records=tmp_path / "runs/tiny", at_least=3).finished
    assert 3 <= len(before) < 16
    resumed = cli.run(path, "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = StudyFolder(tmp_path / "runs/tiny").read_rows()[0]
    ids = [r["trial_id"] for r in after]
    assert len(ids) == 16 and len(set(ids)) == 16
    for r in after:  # recorded trials were not run again
        if r["trial_id"] in before:
            assert r["finished"] == before[r["trial_id"]]


@pytest.mark.slow
def test_failing_and_diverging_trials_are_recorded_and_study_goes_on(tmp_path, tiny_study, cli):
    # IR 1000 leaves a digit class with no image (the trial raises); lr 1e30 diverges
    path = tiny_study.write(
        tmp_path,
        study={
            "kind": "grid",
            "seeds": [0],
            "grid": {"data.imbalance_ratio": [10, 1000], "train.lr": [0.05, 1.0e30]},
        },
    )
    proc = cli.run(path, "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = {
        (r["overrides"]["data.imbalance_ratio"], r["overrides"]["train.lr"]): r
        for r in StudyFolder(tmp_path / "runs/tiny").read_rows()[0]
    }
    assert len(recs) == 4
    assert recs[(10, 0.05)]["status"] == "ok"
    assert recs[(1000, 0.05)]["status"] == "failed"
    assert "0 images" in recs[(1000, 0.05)]["reason"]
    assert recs[(10, 1.0e30)]["status"] == "diverged"
    assert "non-finite loss at epoch 1" in recs[(10, 1.0e30)]["reason"]
    index = (tmp_path / "reports/tiny/index.md").read_text()
    assert "Trials that did not finish" in index


@pytest.mark.slow
def test_all_trials_failing_still_writes_a_report(tmp_path, tiny_study, cli):
    path = tiny_study.write(
        tmp_path,
        data={"imbalance_ratio": 1000},
        study={"kind": "ablation", "components": ["margin"], "seeds": [0]},
    )
    proc = cli.run(path, "--no-progress")
    assert proc.returncode == 2 and "0 images" in proc.stderr  # caught before Ray starts
    path = tiny_study.write(
        tmp_path,
        study={"kind": "grid", "seeds": [0], "grid": {"data.imbalance_ratio": [1000, 2000]}},
    )
    proc = cli.run(path, "--no-progress")
    assert proc.returncode == 1
    index = (tmp_path / "reports/tiny/index.md").read_text()
    assert "Every recorded trial failed" in index


@pytest.mark.slow
def test_search_then_best_config_rerun_over_seeds(tmp_path, tiny_study, cli):
    path = tiny_study.write(
        tmp_path,
        study={
            "kind": "search",
            "n_trials": 3,
            "seeds": [0, 1],
            "asha": True,
            "space": {
                "loss.scale": {"low": 1.0, "high": 2.0},
                "loss.margin": {"low": 0.0, "high": 1.0},
            },
        },
    )
    proc = cli.run(path, "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = StudyFolder(tmp_path / "runs/tiny").read_rows()[0]
    search = [r for r in recs if r["variant"] == "search"]
    best = [r for r in recs if r["variant"] == "best"]
    # selected at seed 0, reported at seed 1: selection and report never share a seed
    assert len(search) == 3 and all(r["seed"] == 0 for r in search)
    assert sorted(r["seed"] for r in best) == [1]
    # ASHA may prune, but trials that ran to their last epoch are recorded as finished
    statuses = [r["status"] for r in search]
    assert set(statuses) <= {"ok", "pruned"} and "ok" in statuses
    ok = [r for r in search if r["status"] == "ok"]
    # the best configuration is chosen on VALIDATION, never on the test score
    top = max(ok, key=lambda r: r["metrics"]["val_balanced_acc"])
    assert all(r["overrides"] == top["overrides"] for r in best)
    assert (tmp_path / "runs/tiny/optuna.journal").exists()
    # Optuna was told each finished trial's validation score (the objective), not its test score
    import optuna

    from rcl_study.config import load_study
    from rcl_study.trials.design import optuna_storage

    stored = optuna.load_study(
        study_name="tiny", storage=optuna_storage(load_study(path), tmp_path / "runs/tiny")
    )
    by_point = {
        tuple(sorted(r["overrides"].items())): r["metrics"] for r in search if r["status"] == "ok"
    }
    told = [
        (t.value, by_point[tuple(sorted(t.params.items()))])
        for t in stored.trials
        if t.value is not None and tuple(sorted(t.params.items())) in by_point
    ]
    assert told and all(value == m["val_balanced_acc"] for value, m in told)
    # a trial ASHA stopped is pruned in Optuna's storage too, never a finished trial there
    pruned = {tuple(sorted(r["overrides"].items())) for r in search if r["status"] == "pruned"}
    state = {tuple(sorted(t.params.items())): t.state for t in stored.trials}
    assert all(state[p] == optuna.trial.TrialState.PRUNED for p in pruned if p in state)
    index = (tmp_path / "reports/tiny/index.md").read_text()
    assert "Optimisation history" in index
    assert index.index("## Best configuration") < index.index("## Design")


@pytest.mark.slow
def test_data_parallel_trial_through_ray_train(tmp_path, tiny_study, cli):
    # two DDP workers per trial through Ray Train's TorchTrainer, Accelerate inside (gloo on CPU)
    path = tiny_study.write(
        tmp_path,
        study={"kind": "ablation", "components": ["margin"], "seeds": [0]},
        resources={"cpus_per_trial": os.cpu_count(), "workers_per_trial": 2},
    )
    proc = cli.run(path, "--no-progress")
    assert proc.returncode == 2 and f"needs {os.cpu_count() + 0.01:g} CPUs" in proc.stderr
    assert not (tmp_path / "runs").exists()
    path = tiny_study.write(
        tmp_path,
        study={"kind": "ablation", "components": ["margin"], "seeds": [0]},
        resources={"cpus_per_trial": 1.8, "workers_per_trial": 2, "max_concurrent": 1},
    )
    proc = cli.run(path, "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = StudyFolder(tmp_path / "runs/tiny").read_rows()[0]
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs)
    assert all(r["metrics"]["processes"] == 2 for r in recs)


@pytest.mark.slow
def test_search_resume_samples_new_points(tmp_path, tiny_study, cli):
    study = {
        "kind": "search",
        "n_trials": 4,
        "seeds": [0, 1],
        "space": {
            "loss.scale": {"low": 1.0, "high": 2.0},
            "loss.margin": {"low": 0.0, "high": 1.0},
        },
    }
    path = tiny_study.write(
        tmp_path, study=study, resources={"cpus_per_trial": 1, "max_concurrent": 1}
    )
    stopped = cli.stop_midway(path, records=tmp_path / "runs/tiny", at_least=2, poll=0.3)
    before = stopped.finished
    assert 2 <= len(before) < 5
    resumed = cli.run(path, "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    recs = StudyFolder(tmp_path / "runs/tiny").read_rows()[0]
    search = [r for r in recs if r["variant"] == "search"]
    assert len(search) == 4 and len({r["trial_id"] for r in search}) == 4
    for r in recs:  # recorded trials were not run again
        if r["trial_id"] in before:
            assert r["finished"] == before[r["trial_id"]]
    assert [r["variant"] for r in recs].count("best") == 1


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_exits_130_and_resume_finishes(tmp_path, tiny_study, cli):
    path = tiny_study.write(
        tmp_path,
        study={"kind": "ablation", "components": ["margin"], "seeds": [0, 1]},
        train={"epochs": 3, "max_steps_per_epoch": 40},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    out = tmp_path / "runs/tiny"
    # Ctrl-C reaches the whole foreground group; killed if still running 120 s later
    stopped = cli.stop_midway(path, records=out, at_least=1, sig=signal.SIGINT, grace=120)
    err = stopped.stderr
    assert stopped.returncode == 130, err[-3000:]
    assert f"finish with: python -m rcl_study.run {path} --resume" in err
    assert "Tuner.restore" not in err and "Traceback" not in err
    before = {r["trial_id"]: r["finished"] for r in StudyFolder(out).read_rows()[0]}
    assert 1 <= len(before) < 4
    assert all(
        r["status"] == "ok" for r in StudyFolder(out).read_rows()[0]
    )  # no trial blamed for Ctrl-C
    assert not (out / "driver.lock").exists()
    resumed = cli.run(path, "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = StudyFolder(out).read_rows()[0]
    assert sorted(r["trial_id"] for r in after) == [
        "margin__s0",
        "margin__s1",
        "none__s0",
        "none__s1",
    ]
    for r in after:
        if r["trial_id"] in before:
            assert r["finished"] == before[r["trial_id"]]
