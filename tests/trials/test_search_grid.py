"""A grid search tells every listed point without Optuna's RuntimeError."""

from __future__ import annotations

import optuna

from rcl_study.trials.design import grid_sampler, search_distributions, search_trials

SPACE = {
    "name": "s",
    "study": {
        "kind": "search",
        "seeds": [0, 1],
        "n_trials": 10,
        "sampler": "grid",
        "space": {
            "loss.scale": {"low": 1.0, "high": 2.0, "step": 0.5},
            "loss.margin": {"type": "categorical", "choices": [0.0, 0.5]},
        },
    },
}


def test_grid_search_asks_and_tells_every_point(tiny_study):
    cfg = tiny_study.parse(SPACE)
    assert search_trials(cfg) == 6
    dists = search_distributions(cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=grid_sampler(cfg, seed=0))
    for _ in range(search_trials(cfg)):
        trial = study.ask(dists)
        study.tell(trial, trial.params["loss.scale"])  # Optuna's GridSampler raised here
    points = {(t.params["loss.scale"], t.params["loss.margin"]) for t in study.trials}
    assert points == {(s, m) for s in (1.0, 1.5, 2.0) for m in (0.0, 0.5)}


def test_the_grid_sampler_pickles(tiny_study):
    import pickle

    sampler = grid_sampler(tiny_study.parse(SPACE), seed=0)
    assert type(pickle.loads(pickle.dumps(sampler))) is type(sampler)  # Ray saves the searcher
