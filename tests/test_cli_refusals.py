"""The command line refuses what it would ignore (exit 2, one line naming keys)."""

from __future__ import annotations

import pytest

from rcl_study.run import main

GRID = {"name": "g", "study": {"kind": "grid", "seeds": [0], "grid": {"loss.scale": [1.0, 2.0]}}}
SEARCH = {
    "name": "s",
    "study": {
        "kind": "search",
        "seeds": [0, 1],
        "n_trials": 10,
        "space": {"loss.scale": {"low": 1.0, "high": 2.0}},
    },
}


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Run in a fresh folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], err


def test_set_on_a_grid_key_is_refused(here, tiny_study, capsys):
    path = tiny_study.write(here, GRID)
    code, _, err = _run(capsys, path, "--set", "loss.scale=3.0", "--dry-run")
    _one_line_error(code, err, "loss.scale", "study.grid")


def test_set_on_a_search_key_is_refused(here, tiny_study, capsys):
    path = tiny_study.write(here, SEARCH)
    code, _, err = _run(capsys, path, "--set", "loss.scale=3.0", "--dry-run")
    _one_line_error(code, err, "loss.scale", "study.space")


def test_set_on_the_seed_is_refused(here, tiny_study, capsys):
    path = tiny_study.write(here)
    code, _, err = _run(capsys, path, "--set", "train.seed=3", "--dry-run")
    _one_line_error(code, err, "train.seed", "study.seeds")


def test_resume_with_overwrite_is_refused(here, tiny_study, capsys):
    path = tiny_study.write(here)
    code, _, err = _run(capsys, path, "--resume", "--overwrite")
    _one_line_error(code, err, "--resume", "--overwrite")


@pytest.mark.parametrize("flags", [["--effect", "0.01"], ["--sd", "0.02"]])
def test_plan_seeds_options_need_plan_seeds(here, tiny_study, capsys, flags):
    path = tiny_study.write(here)
    code, _, err = _run(capsys, path, "--dry-run", *flags)
    _one_line_error(code, err, flags[0], "--plan-seeds")


def test_set_reaches_inside_the_grid_with_brackets(here, tiny_study, capsys):
    path = tiny_study.write(here, GRID)
    code, out, err = _run(
        capsys, path, "--set", "study.grid[loss.scale]=[1.0, 2.0, 3.0]", "--dry-run"
    )
    assert code == 0, err
    assert "3 trials" in out


def test_set_reaches_inside_the_space_with_brackets(tiny_study):
    import tempfile
    from pathlib import Path

    from rcl_study.config import load_study

    with tempfile.TemporaryDirectory() as d:
        path = tiny_study.write(Path(d), SEARCH)
        cfg = load_study(path, ["study.space[loss.scale].high=4.0"])
    assert cfg.study.space["loss.scale"].high == 4.0


def test_set_inside_the_grid_without_brackets_says_how(here, tiny_study, capsys):
    path = tiny_study.write(here, GRID)
    code, _, err = _run(capsys, path, "--set", "study.grid.loss.scale=[1.0]", "--dry-run")
    _one_line_error(code, err, "study.grid[loss.scale]")


def test_grid_sampler_needs_values_or_a_step(tiny_study):
    from rcl_study.config import ConfigError

    with pytest.raises(ConfigError, match=r"study.space.*loss.scale.*step"):
        tiny_study.parse(SEARCH, study={"sampler": "grid"})


def test_grid_sampler_dry_run_counts_the_grid(here, tiny_study, capsys):
    path = tiny_study.write(
        here, SEARCH, study={"sampler": "grid", "space": {"loss.scale": {"step": 0.5}}}
    )
    code, out, err = _run(capsys, path, "--dry-run")
    assert code == 0, err
    assert "3 search trials" in out  # 1.0, 1.5, 2.0 (n_trials 10 would repeat points)
    assert "= 4 trials" in out  # and the best at the other seed


def test_grid_sampler_distributions_are_the_grid(tiny_study):
    from rcl_study.trials.design import search_distributions

    cfg = tiny_study.parse(
        SEARCH, study={"sampler": "grid", "space": {"loss.scale": {"step": 0.5}}}
    )
    dist = search_distributions(cfg)["loss.scale"]
    assert list(dist.choices) == [1.0, 1.5, 2.0]


def test_dry_run_checks_the_data_is_there(here, tiny_study, capsys):
    path = tiny_study.write(here, data={"dataset": "arrays", "path": "missing.npz"})
    code, _, err = _run(capsys, path, "--dry-run")
    _one_line_error(code, err, "missing.npz")


def test_dry_run_refuses_the_folders_the_run_refuses(here, tiny_study, capsys):
    """A dry run said nothing of a records folder that the run itself then refused."""
    path = tiny_study.write(here)
    (here / "runs" / "tiny").mkdir(parents=True)
    (here / "runs" / "tiny" / "notes.txt").write_text("the user's own file")
    code, _, dry = _run(capsys, path, "--dry-run")
    _one_line_error(code, dry, "runs/tiny", "notes.txt")
    code, _, real = _run(capsys, path, "--no-progress")
    assert (code, real) == (2, dry)  # the same line as the run's
    assert (here / "runs" / "tiny" / "notes.txt").read_text() == "the user's own file"
    path = tiny_study.write(
        here, report={"dir": "elsewhere/tiny/report"}, study={"output_dir": "elsewhere/tiny"}
    )
    code, _, err = _run(capsys, path, "--dry-run")
    _one_line_error(code, err, "overlap")
    assert not (here / "elsewhere").exists()  # a dry run writes nothing


def test_dry_run_says_when_the_study_folder_needs_resume(here, tiny_study, capsys):
    from rcl_study.store.folders import claim
    from rcl_study.trials.folder import StudyFolder

    path = tiny_study.write(here)
    claim(here / "runs" / "tiny", "tiny")
    StudyFolder(here / "runs" / "tiny").append({"trial_id": "none__s0", "status": "ok"})

    def tree():
        return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in here.rglob("*") if p.is_file()}

    before = tree()
    code, out, err = _run(capsys, path, "--dry-run")
    assert code == 0, err
    note = [line for line in out.splitlines() if line.startswith("note: ")]
    assert len(note) == 1 and "1 trials recorded" in note[0] and "--resume" in note[0]
    code, out, err = _run(capsys, path, "--dry-run", "--resume")
    assert code == 0 and "note: " not in out, err
    code, out, err = _run(capsys, path, "--dry-run", "--overwrite")
    assert code == 0 and "note: " not in out, err
    assert tree() == before  # a dry run writes nothing, whatever it is told


def test_dry_run_shows_the_gpu_a_local_trial_takes(here, tiny_study, capsys):
    path = tiny_study.write(here, resources={"executor": "local"}, train={"device": "cuda"})
    code, out, err = _run(capsys, path, "--dry-run")
    assert "0 GPU per trial" not in out
    assert "1 GPU per trial" in out


@pytest.mark.parametrize("module", ["rcl_study.run", "rcl_study.train", "rcl_study.data.__main__"])
def test_help_explains_every_argument(module, capsys):
    import argparse
    import importlib

    mod = importlib.import_module(module)
    parser = mod._parser()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 15, action.dest
    if module == "rcl_study.run":
        smoke = next(a for a in parser._actions if a.dest == "smoke")
        assert "GPU" in smoke.help


#: numeric flags outside their range: refused by argparse's type, one line naming the flag
NUMERIC_FLAGS = [
    ["--plan-seeds", "--effect", "nan", "--sd", "0.02"],
    ["--plan-seeds", "--effect", "inf", "--sd", "0.02"],
    ["--plan-seeds", "--sd", "nan", "--effect", "0.01"],
    ["--plan-seeds", "--sd", "inf", "--effect", "0.01"],
    ["--plan-seeds", "--sd", "-0.5", "--effect", "0.01"],
    ["--plan-seeds", "--effect", "-0.01", "--sd", "0.02"],
    ["--plan-seeds", "--effect", "0", "--sd", "0.02"],
    ["--plan-seeds", "--effect", "1e999", "--sd", "0.02"],
]


@pytest.mark.parametrize("flags", NUMERIC_FLAGS, ids=[" ".join(f[1:3]) for f in NUMERIC_FLAGS])
def test_a_numeric_flag_out_of_range_is_refused(here, tiny_study, capsys, flags):
    path = tiny_study.write(here)
    code, out, err = _run(capsys, path, *flags)
    _one_line_error(code, err, flags[1], "argument")
    assert not out


EXPORT_FLAGS = [
    ("--imbalance-ratio", "nan"),
    ("--imbalance-ratio", "inf"),
    ("--imbalance-ratio", "0.5"),
    ("--split-seed", "-1"),
    ("--split-seed", str(2**32)),
    ("--val-per-class", "-3"),
    ("--head-images", "0"),
]


@pytest.mark.parametrize("flag,value", EXPORT_FLAGS, ids=[" ".join(f) for f in EXPORT_FLAGS])
def test_a_numeric_export_flag_out_of_range_is_refused(here, capsys, flag, value):
    from rcl_study.data.__main__ import main as data_main

    argv = ["export", "--dataset", "digits_lt", "--imbalance-ratio", "10", "--out", "x.npz"]
    argv += [flag, value]
    with pytest.raises(SystemExit) as stop:
        data_main(argv)
    _one_line_error(stop.value.code, capsys.readouterr().err, flag, "argument")
    assert not (here / "x.npz").exists()
