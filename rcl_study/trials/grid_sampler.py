"""Optuna's grid sampler for ask-and-tell use (a module of its own: Ray pickles the sampler).

Optuna's :class:`~optuna.samplers.GridSampler` calls ``study.stop()`` once the grid is done,
which raises ``RuntimeError`` outside ``study.optimize``: under Ray's ask and tell, every tell
after the grid was covered. A grid search here asks for at most the grid's points
(:func:`rcl_study.trials.design.search_trials`), so nothing needs stopping.
"""

from __future__ import annotations

from typing import Any

import optuna


class AskTellGridSampler(optuna.samplers.GridSampler):
    """A :class:`~optuna.samplers.GridSampler` that never stops the study."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        """Nothing: the search asks for the grid's points and no more."""
        return None
