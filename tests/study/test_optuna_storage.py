"""A search's Optuna study in an RDB (SQLite here), read back with Optuna."""

from __future__ import annotations

import optuna
import pytest

from rcl_study.config import ConfigError
from rcl_study.study.executor import SearchRequest
from rcl_study.trials.design import optuna_storage, search_distributions

SEARCH = {
    "name": "store",
    "study": {
        "kind": "search",
        "seeds": [0, 1],
        "n_trials": 3,
        "space": {"loss.scale": {"low": 1.0, "high": 2.0}},
    },
}


def test_a_search_on_sqlite_reads_back_with_optuna(tmp_path, tiny_study):
    pytest.importorskip("ray")
    from rcl_study.study.ray_tune import _optuna_searcher

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg = tiny_study.parse(SEARCH, study={"storage": url})
    request = SearchRequest(search_distributions(cfg), 3)
    searcher = _optuna_searcher(cfg, tmp_path, request)
    for i in range(3):  # what Ray Tune does with a searcher: suggest, then complete
        point = searcher.suggest(f"t{i}")
        # the trainable's last report says it finished (else Optuna is told PRUNED)
        result = {"val_balanced_acc": 0.1 * i, "trial_finished": True, **point}
        searcher.on_trial_complete(f"t{i}", result)
    stored = optuna.load_study(study_name="store", storage=url)
    done = [t for t in stored.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3
    assert all(1.0 <= t.params["loss.scale"] <= 2.0 for t in done)
    assert not (tmp_path / "optuna.journal").exists()


def test_the_journal_file_stays_the_default(tmp_path, tiny_study):
    cfg = tiny_study.parse(SEARCH)
    assert isinstance(optuna_storage(cfg, tmp_path), optuna.storages.JournalStorage)


def test_storage_must_be_a_url(tiny_study):
    with pytest.raises(ConfigError, match="study.storage"):
        tiny_study.parse(SEARCH, study={"storage": "optuna.db"})


def test_storage_only_for_a_search(tiny_study, tmp_path):
    from rcl_study.config import load_study

    path = tiny_study.write(tmp_path, study={"storage": "sqlite:///x.db"})
    with pytest.raises(ConfigError, match="study.storage"):
        load_study(path)


@pytest.mark.slow
def test_a_grid_search_through_ray_on_sqlite(tmp_path, tiny_study, cli):
    """End to end: a grid search (2 points, n_trials 5) on SQLite, read back with Optuna."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = tiny_study.Only({"loss.margin": {"type": "categorical", "choices": [0.0, 0.5]}})
    path = tiny_study.write(
        tmp_path,
        SEARCH,
        study={"sampler": "grid", "n_trials": 5, "storage": url, "space": space},
        resources={"max_concurrent": 1},
    )
    proc = cli.run(path, "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    stored = optuna.load_study(study_name="store", storage=url)
    done = [t for t in stored.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["loss.margin"] for t in done) == [0.0, 0.5]
