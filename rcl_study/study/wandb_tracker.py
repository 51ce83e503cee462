"""The ``wandb`` tracker: one Weights & Biases run per trial (and per pack member).

Runs are written offline by default (``resources.wandb_mode: offline``): nothing leaves the
machine, and ``wandb sync <output_dir>/wandb/offline-run-*`` uploads them later; ``online``
sends them as they happen, under the account ``wandb login`` set up. Each run is named after
its trial, grouped by variant, in the project ``resources.wandb_project`` (default: the study's
name); config: the trial's overrides and seed; metrics: the evaluation's scalars under the names
of :data:`~rcl_study.study.tracking.TAGS`, at step = epoch; at the end the status and reason go
to the run's summary and the run finishes (exit code 0 when ``ok``, 1 otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rcl_study.study.tracked_names import scalars
from rcl_study.trials.records import TrialPlan, TrialRecord


class WandbTracker:
    """One W&B run per trial, several open at once (``reinit="create_new"``)."""

    name = "wandb"

    def __init__(
        self, folder: str | Path, project: str, mode: str, plans: Iterable[TrialPlan] = ()
    ):
        self.folder, self.project, self.mode = Path(folder), project, mode
        self.plans = {p.trial_id: p for p in plans}
        self.runs: dict[str, Any] = {}

    def _run(self, trial_id: str, about: TrialPlan | TrialRecord | None = None) -> Any:
        run = self.runs.get(trial_id)
        if run is None:
            import wandb

            about = about or self.plans.get(trial_id)
            config = {} if about is None else {**about.overrides, "seed": about.seed}
            run = wandb.init(
                project=self.project,
                name=trial_id,
                group=None if about is None else about.variant,
                config=config,
                dir=str(self.folder),
                mode=self.mode,
                reinit="create_new",
                settings=wandb.Settings(silent=True, console="off"),
            )
            self.runs[trial_id] = run
        return run

    def evaluation(self, trial_id: str, metrics: dict[str, float]) -> None:
        """Log the evaluation's scalars at step = epoch."""
        step, values = scalars(metrics)
        self._run(trial_id).log(values, step=step)

    def finished(self, record: TrialRecord) -> None:
        """Put the status and reason in the run's summary and finish it."""
        run = self._run(record.trial_id, record)
        run.summary["status"] = record.status.value
        if record.reason:
            run.summary["reason"] = record.reason[:5000]
        if record.pack:
            run.summary["pack"] = record.pack
        run.finish(exit_code=0 if record.status.value == "ok" else 1)
        del self.runs[record.trial_id]

    def close(self) -> None:
        """Finish the runs of trials still open (a stopped study), as not successful."""
        while self.runs:
            _, run = self.runs.popitem()
            run.finish(exit_code=1)
