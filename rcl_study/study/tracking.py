"""Live tracking: every trial (pack members too) as its own run, written on the driver.

The executors hand the driver's sink (:class:`rcl_study.study.executor.Sink`) each member's
evaluation as it happens and each member's record when it ends; ``run_study`` passes both
to the trackers ``resources.tracking`` names (see :func:`make_trackers`), so trials on remote Ray
workers appear as well as local ones. A :class:`Tracker` has three methods: :meth:`~Tracker.
evaluation`, :meth:`~Tracker.finished` and :meth:`~Tracker.close`.

- ``tensorboard`` (the default): :class:`TensorBoardTracker`, event files in
  ``<output_dir>/tensorboard/<trial id>/`` (``tensorboard --logdir runs/<study>/tensorboard``).
- ``mlflow``: :class:`MlflowTracker`, one MLflow run per trial in ``resources.mlflow_uri``
  (default ``sqlite:///<output_dir>/mlflow.db``), the experiment named after the study.
- ``wandb``: :class:`~rcl_study.study.wandb_tracker.WandbTracker`, one W&B run per trial,
  offline in ``<output_dir>/wandb/`` unless ``resources.wandb_mode: online``.

The scalars of an evaluation get the names in :data:`TAGS` (others: ``other/<key>``), at step =
the epoch. :class:`Trackers` guards the fan-out: a tracker that raises is switched off with one
warning line and never costs a record.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rcl_study.config import ConfigError, StudyFile
from rcl_study.study.tracked_names import TAGS, scalars, tag
from rcl_study.trials.records import TrialPlan, TrialRecord

__all__ = [
    "TAGS",
    "MlflowTracker",
    "TensorBoardTracker",
    "Tracker",
    "Trackers",
    "check_tracking",
    "make_trackers",
    "mlflow_uri",
    "tag",
    "tracking_text",
]

#: where the TensorBoard runs go, under the study's output folder
TENSORBOARD_DIR = "tensorboard"
#: the pip command that installs what each tracker needs
INSTALL = {"mlflow": 'pip install "rcl_study[mlflow]"', "wandb": 'pip install "rcl_study[wandb]"'}


#: MLflow's state of a run that did not finish (an MLflow run state, not a trial status)
RUN_KILLED = "KILLED"


@runtime_checkable
class Tracker(Protocol):
    """Receives each trial's evaluations and its final record, on the driver."""

    #: the value of ``resources.tracking`` that selects it (for messages)
    name: str

    def evaluation(self, trial_id: str, metrics: dict[str, float]) -> None:
        """Trial ``trial_id`` evaluated after epoch ``metrics["epoch"]``."""
        ...

    def finished(self, record: TrialRecord) -> None:
        """The trial ended (any status) with ``record``; its run may be closed."""
        ...

    def close(self) -> None:
        """The study run ends (also after an error): flush and close what is open."""
        ...


class TensorBoardTracker:
    """One TensorBoard run per trial: ``<folder>/<trial id>/`` event files (tensorboardX).

    Scalars at step = epoch under the names of :data:`TAGS`; when the trial ends, its status as
    text (``status``) and its hyperparameters for TensorBoard's HParams tab, then the run's writer
    is closed.
    """

    name = "tensorboard"

    def __init__(self, folder: str | Path, flush_secs: int = 10):
        self.folder, self.flush_secs = Path(folder), flush_secs
        self.writers: dict[str, Any] = {}

    def _writer(self, trial_id: str):
        w = self.writers.get(trial_id)
        if w is None:
            w = _tensorboardx().SummaryWriter(
                str(self.folder / trial_id), flush_secs=self.flush_secs
            )
            self.writers[trial_id] = w
        return w

    def evaluation(self, trial_id: str, metrics: dict[str, float]) -> None:
        """Add the evaluation's scalars to the trial's run."""
        step, values = scalars(metrics)
        w = self._writer(trial_id)
        for name, v in values.items():
            w.add_scalar(name, v, step)

    def finished(self, record: TrialRecord) -> None:
        """Write the trial's status and hyperparameters, then close its run."""
        hparams = _tensorboardx().summary.hparams
        w = self._writer(record.trial_id)
        text = record.status.value + (f": {record.reason}" if record.reason else "")
        step = int(record.metrics.get("epoch") or 0)
        w.add_text("status", text, step)
        params = {**record.overrides, "seed": record.seed, "variant": record.variant}
        hp = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
        hp["status"] = record.status.value
        _, start, _ = hparams(hp, {})
        w.file_writer.add_summary(start)
        self.writers.pop(record.trial_id).close()

    def close(self) -> None:
        """Close the runs of trials still open (a stopped study)."""
        while self.writers:
            _, w = self.writers.popitem()
            w.close()


def _tensorboardx():
    """The ``tensorboardX`` module, imported without torch where torch is not loaded yet.

    tensorboardX imports torch when it can, only so that its writer also takes torch tensors; the
    tracker gives it floats and strings. In a Ray study's driver, which trains nothing, torch's
    import would otherwise be the largest part of the driver's start (about 1.5 s of CPU on a
    2-core machine). Torch is hidden for the length of this one import, then importable again.
    """
    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        import tensorboardX.summary

        return tensorboardX
    sys.modules["torch"] = None  # ``import torch`` raises ImportError: tensorboardX goes on
    try:
        import tensorboardX.summary
    finally:
        del sys.modules["torch"]
    return tensorboardX


class MlflowTracker:
    """One MLflow run per trial in the experiment ``experiment`` of the store ``tracking_uri``.

    Uses ``MlflowClient`` (no global active run), so that many trials are open at once. The run
    is named after the trial and created at its first evaluation; params: the trial's overrides
    and seed; tags: ``trial_id``, ``variant``, ``pack``, and at the end ``status`` and ``reason``;
    metrics: the evaluation's scalars (:data:`TAGS`) at step = epoch.
    """

    name = "mlflow"

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        plans: Iterable[TrialPlan] = (),
        artifact_location: str | None = None,
    ):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=artifact_location
            )
        self.plans = {p.trial_id: p for p in plans}
        self.runs: dict[str, str] = {}  # trial id -> open run id
        self.with_params: set[str] = set()

    def _run(self, trial_id: str) -> str:
        run_id = self.runs.get(trial_id)
        if run_id is None:
            run = self.client.create_run(
                self.experiment_id, run_name=trial_id, tags={"trial_id": trial_id}
            )
            run_id = self.runs[trial_id] = run.info.run_id
            plan = self.plans.get(trial_id)
            if plan is not None:
                self._describe(run_id, plan)
        return run_id

    def _describe(self, run_id: str, plan: TrialPlan | TrialRecord) -> None:
        """Log the trial's params and variant tag once."""
        if run_id in self.with_params:
            return
        from mlflow.entities import Param, RunTag

        params = [Param(k, str(v)) for k, v in plan.overrides.items()]
        params.append(Param("seed", str(plan.seed)))
        self.client.log_batch(run_id, params=params, tags=[RunTag("variant", plan.variant)])
        self.with_params.add(run_id)

    def evaluation(self, trial_id: str, metrics: dict[str, float]) -> None:
        """Log the evaluation's scalars at step = epoch."""
        from mlflow.entities import Metric

        step, values = scalars(metrics)
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in values.items()]
        self.client.log_batch(self._run(trial_id), metrics=batch)

    def finished(self, record: TrialRecord) -> None:
        """Tag the status, end the run (FINISHED when ok, FAILED or KILLED otherwise)."""
        from mlflow.entities import RunTag

        run_id = self._run(record.trial_id)
        self._describe(run_id, record)
        tags = [RunTag("status", record.status.value), RunTag("reason", record.reason[:5000])]
        if record.pack:
            tags.append(RunTag("pack", record.pack))
        self.client.log_batch(run_id, tags=tags)
        end = {"ok": "FINISHED", "pruned": RUN_KILLED, "stopped": RUN_KILLED}.get(
            record.status.value, "FAILED"
        )
        self.client.set_terminated(run_id, status=end)
        del self.runs[record.trial_id]

    def close(self) -> None:
        """Mark the runs of trials still open as KILLED (a stopped study)."""
        while self.runs:
            _, run_id = self.runs.popitem()
            self.client.set_terminated(run_id, status=RUN_KILLED)


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"[:300]


class Trackers:
    """The guarded fan-out to every tracker: one that raises is warned about once and switched off.

    A tracker's failure never reaches the executor (a trial would be recorded failed) nor the
    record book (records are appended before the trackers hear of them).
    """

    def __init__(self, trackers: Iterable[Tracker], warn: Callable[[str], None] | None = None):
        self.trackers = list(trackers)
        self.warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))

    def _call(self, tracker: Tracker, method: str, *args: Any) -> None:
        try:
            getattr(tracker, method)(*args)
        except Exception as err:  # noqa: BLE001 - tracking must never stop or lose a study
            self.trackers.remove(tracker)
            self.warn(
                f"warning: tracker {getattr(tracker, 'name', type(tracker).__name__)} failed in "
                f"{method} ({_one_line(err)}); it is off for the rest of this run, records are "
                "unaffected"
            )
            if method != "close":
                try:  # release what it holds open, quietly
                    tracker.close()
                except Exception:  # noqa: BLE001
                    pass

    def evaluation(self, trial_id: str, metrics: dict[str, float]) -> None:
        """Hand an evaluation to every tracker still on."""
        for t in list(self.trackers):
            self._call(t, "evaluation", trial_id, metrics)

    def finished(self, record: TrialRecord) -> None:
        """Hand a record to every tracker still on."""
        for t in list(self.trackers):
            self._call(t, "finished", record)

    def close(self) -> None:
        """Close every tracker still on."""
        for t in list(self.trackers):
            self._call(t, "close")
        self.trackers = []


def mlflow_uri(cfg: StudyFile) -> str:
    """The MLflow tracking store of ``cfg`` (``resources.mlflow_uri`` or the study's SQLite)."""
    uri = cfg.resources.mlflow_uri
    if uri:
        return uri
    return f"sqlite:///{(cfg.output_dir / 'mlflow.db').resolve()}"


def check_tracking(cfg: StudyFile) -> None:
    """Refuse (one-line ConfigError) a tracker whose package cannot be imported.

    Called before anything runs or is written. tensorboardX is imported without torch
    (:func:`_tensorboardx`), which a Ray study's driver otherwise never needs.
    """
    names = cfg.resources.tracking
    for name in names:
        module = {"tensorboard": "tensorboardX", "mlflow": "mlflow", "wandb": "wandb"}.get(name)
        if module is None:
            continue
        try:
            _tensorboardx() if module == "tensorboardX" else __import__(module)
        except ImportError as err:
            pip = INSTALL.get(name, f"pip install {module}")
            raise ConfigError(
                f"{cfg.name}: resources.tracking: {name} needs the {module} package, which "
                f"cannot be imported ({_one_line(err)}); install it with {pip}, or remove "
                f"{name} from resources.tracking"
            ) from None


def make_trackers(cfg: StudyFile, plans: Iterable[TrialPlan] = ()) -> list[Tracker]:
    """The trackers ``resources.tracking`` names, opened (call once the output folder exists).

    ``plans`` (optional) lets trackers describe a trial's run from its first evaluation.

    Raises:
        ConfigError: a tracker's package is missing, or the MLflow store cannot be opened.

    """
    check_tracking(cfg)
    plans = list(plans)
    out: list[Tracker] = []
    for name in cfg.resources.tracking:
        if name == "tensorboard":
            out.append(TensorBoardTracker(cfg.output_dir / TENSORBOARD_DIR))
        elif name == "mlflow":
            uri = mlflow_uri(cfg)
            artifacts = None
            if not cfg.resources.mlflow_uri:  # the study's own store: its artifacts beside it
                artifacts = (cfg.output_dir / "mlartifacts").resolve().as_uri()
            try:
                out.append(MlflowTracker(uri, cfg.name, plans, artifacts))
            except Exception as err:  # noqa: BLE001 - any store error, as one line
                raise ConfigError(
                    f"{cfg.name}: resources.mlflow_uri: {uri}: the MLflow store cannot be opened "
                    f"({_one_line(err)})"
                ) from None
        elif name == "wandb":
            from rcl_study.study.wandb_tracker import WandbTracker

            project = cfg.resources.wandb_project or cfg.name
            out.append(WandbTracker(cfg.output_dir, project, cfg.resources.wandb_mode, plans))
    return out


def tracking_text(cfg: StudyFile) -> str:
    """One line: where a study's trials can be watched (for ``--dry-run``)."""
    where = []
    for name in cfg.resources.tracking:
        if name == "tensorboard":
            where.append(f"tensorboard --logdir {cfg.output_dir / TENSORBOARD_DIR}")
        elif name == "mlflow":
            where.append(f"mlflow ui --backend-store-uri {mlflow_uri(cfg)}")
        elif name == "wandb" and cfg.resources.wandb_mode == "offline":
            where.append(f"wandb sync {cfg.output_dir / 'wandb'}/offline-run-* (offline runs)")
        elif name == "wandb":
            where.append(f"W&B project {cfg.resources.wandb_project or cfg.name} (online)")
    return "tracking: " + ("; ".join(where) if where else "none (resources.tracking)")
