"""Issue 22 item 4: a search's Optuna study in an RDB (SQLite here), read back with Optuna."""

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
        searcher.on_trial_complete(f"t{i}", {"balanced_acc": 0.1 * i, **point})
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
