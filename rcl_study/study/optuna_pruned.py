"""Ray Tune's Optuna searcher, telling Optuna which trials ASHA pruned.

Ray's ``OptunaSearch`` tells Optuna ``COMPLETE`` with the last reported score for every trial
that ended without an error, a trial the scheduler stopped included. Here a trial that ended
without its final result (the trainable's last report carries ``trial_finished``) is told
``PRUNED``: Optuna's storage, its dashboard and its samplers see it as pruned, not finished.
"""

from __future__ import annotations

from ray.tune.search.optuna import OptunaSearch

#: the key of the trainable's last report (:func:`rcl_study.study.ray_trial.final`)
FINISHED = "trial_finished"


class PrunedAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells Optuna ``PRUNED`` for a trial stopped before it finished."""

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Tell Optuna the trial's state: ``PRUNED`` when it ended without its final report."""
        if result and not error and not result.get(FINISHED):
            # no objective value and no error: Ray's searcher tells Optuna PRUNED
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            result = {k: v for k, v in result.items() if k not in metrics}
        super().on_trial_complete(trial_id, result, error)
