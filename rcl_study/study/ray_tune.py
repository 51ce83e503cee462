"""The Ray Tune adapter, :class:`RayExecutor` (the driver's side; the trial's is :mod:`.ray_trial`).

Units travel to trials as Python objects (``tune.with_parameters`` puts the frozen study and the
units in Ray's object store; a trial's config holds only its unit's index); a search's trials are
sampled by Optuna. The driver records every finished trial through a Tune callback. Resume does
not rely on Tune's experiment state: the runner plans only trials without a record, and a trial
that was running restarts from the checkpoint in its own folder ``<output_dir>/trials/<id>/``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ray import tune  # Ray reads the variables ray_trial sets when trials run, not at import

from rcl_study import registry
from rcl_study.config import DRIVER_CPU, StudyFile
from rcl_study.config.study_section import AshaConfig
from rcl_study.store import DiskError, append_bytes
from rcl_study.study import cluster
from rcl_study.study.cluster import ClusterError
from rcl_study.study.execute import Resolver, append_log
from rcl_study.study.executor import SearchRequest, Sink
from rcl_study.study.ray_trial import DEVICE, EVALS, LOG, results_of, run_unit, unit_of
from rcl_study.study.recording import unit_records
from rcl_study.trainer.result import TrialStatus
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.unit import Unit

__all__ = ["ClusterError", "RayExecutor", "StudyInterrupted"]


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the study; finished trials are recorded, the others run on --resume."""


class _NoRestoreHint(logging.Filter):
    """Drop Tune's own stop/resume lines (this tool resumes with --resume) and Ray's auth banner."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(
            s in msg
            for s in (
                "Tuner.restore",
                "Stop signal received",
                "Trials did not complete",
                "Failed to fetch metrics",  # Tune's per-trial logs are off (ray_trial)
                # the private local instance keeps Ray's token authentication, without a banner
                "Token authentication is enabled for this Ray cluster",
            )
        )


def _quiet_tune_logs() -> None:
    """Install :class:`_NoRestoreHint` on Tune's loggers (once)."""
    for name in (
        "ray.tune.tune",
        "ray.tune.analysis.experiment_analysis",
        "ray._private.authentication.authentication_token_setup",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoRestoreHint) for f in logger.filters):
            logger.addFilter(_NoRestoreHint())


#: Ray's loggers whose records (a failed trial's traceback among them) go to the study's logs
RAY_LOGGERS = ("ray.tune", "ray.train", "ray.air")


class _StudyLog(logging.Handler):
    """Ray's log records, tracebacks included, appended to ``<output_dir>/logs/ray.log``."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.INFO)
        self.path = path
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Append the record (its traceback included); a write that fails is dropped."""
        try:
            append_bytes(self.path, (self.format(record) + "\n").encode("utf-8", "replace"))
        except (OSError, ValueError):
            pass


class _Brief(logging.StreamHandler):
    """A warning of Ray's for the terminal as one line; a trial's failure is left to the records."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setLevel(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        """Print the first line of a warning that is not a failed trial's (those are recorded)."""
        if record.exc_info or record.getMessage().startswith("Trial task failed"):
            return
        first = (record.getMessage().strip().splitlines() or [""])[0]
        self.stream.write(f"note: ray: {first}\n")


@contextmanager
def _ray_logs_in(folder: StudyFolder) -> Iterator[None]:
    """While Tune runs: Ray's records go to ``logs/ray.log``, the terminal gets single lines."""
    handlers: list[logging.Handler] = [_StudyLog(folder.root / "logs" / "ray.log"), _Brief()]
    loggers = [logging.getLogger(name) for name in RAY_LOGGERS]
    before = [logger.propagate for logger in loggers]
    for logger in loggers:
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in zip(loggers, before):
            for handler in handlers:
                logger.removeHandler(handler)
            logger.propagate = propagate


@contextmanager
def _without_callback_census() -> Iterator[None]:
    """While Tune runs: no census of the callbacks passed to it (a Ray usage-statistics tag).

    To count them by kind, Tune imports every logger integration it knows (MLflow, W&B, Comet,
    Aim), whatever the run uses: 1.2 s of the driver's time before the first trial where MLflow
    and W&B are installed. Only that tag is skipped; Tune runs the callbacks as before.
    """
    from ray.air._internal import usage

    census = getattr(usage, "tag_callbacks", None)
    if census is None:  # a Ray without the census
        yield
        return
    usage.tag_callbacks = lambda callbacks: False
    try:
        yield
    finally:
        usage.tag_callbacks = census


class _Interrupt:
    """While Tune runs: the first Ctrl-C asks Tune to stop gracefully, a second one at once."""

    def __init__(self) -> None:
        self.set = False
        self._prev: Any = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._prev = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.set or signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt
        self.set = True
        print(
            "interrupted: stopping the running trials (Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop

    def __exit__(self, *exc) -> None:
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)


class _Recorder(tune.Callback):
    """Driver-side: turn each finished, pruned or failed Tune trial into its members' records."""

    def __init__(
        self,
        study: StudyFile,
        units: Sequence[Unit] | None,
        folder: StudyFolder,
        sink: Sink,
        interrupt: _Interrupt | None = None,
    ):
        self.study, self.units, self.folder, self.sink = study, units, folder, sink
        self.resolve = Resolver(study)
        self.interrupt = interrupt
        self.started: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.time()

    def _record(self, trial, status: TrialStatus, reason: str) -> None:
        unit = unit_of(trial.config, self.study, self.units)
        last = trial.last_result or {}
        results = results_of(last)
        restarts = int(getattr(trial, "num_failures", 0) or 0)
        if restarts:  # Tune restarted it (e.g. its node died)
            results = {t: r.placed(restarts=restarts) for t, r in results.items()}
        keep = ("top1", "balanced_acc", "val_top1", "val_balanced_acc", "epoch", "loss")
        partial = {k: v for k, v in last.items() if k in keep}
        device = last.get(DEVICE) if isinstance(last.get(DEVICE), str) else None
        wall = time.time() - self.started.get(trial.trial_id, time.time())
        # stopped by Ctrl-C before finishing: not recorded, it runs again on --resume
        finished_only = bool(self.interrupt and self.interrupt.set)
        for record in unit_records(
            unit, self.resolve, results, status, reason, wall, partial, finished_only, device
        ):
            self.sink.record(record)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if LOG in result:  # the trial's own output, kept on the driver under logs/
            try:
                lines = json.loads(result[LOG])
            except ValueError:
                lines = []
            append_log(self.folder, unit_of(trial.config, self.study, self.units), lines)
        if EVALS not in result:
            return
        try:
            evals = json.loads(result[EVALS])
        except ValueError:
            return
        for trial_id, metrics in evals.items():
            self.sink.evaluation(trial_id, metrics)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial, TrialStatus.OK, "")

    def on_trial_error(self, iteration, trials, trial, **info):
        reason, texts = _error_text(trial)
        unit = unit_of(trial.config, self.study, self.units)
        append_log(self.folder, unit, [*texts[:1], reason])  # the traceback, kept here
        self._record(trial, TrialStatus.FAILED, reason)


def _error_text(trial) -> tuple[str, list[str]]:
    """The last line of a failed trial's traceback (its exception type and message); the texts."""
    texts = []
    try:
        path = trial.error_file
        if path and Path(path).exists():
            texts.append(Path(path).read_text())
    except Exception:  # noqa: BLE001 - best effort: the text is informative only
        pass
    try:
        texts.append(str(trial.get_error() or ""))
    except Exception:  # noqa: BLE001
        pass
    texts = [t for t in texts if t.strip()]
    for text in texts:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if lines:  # the toolkit's disk error is already a line in words
            return lines[-1].removeprefix(f"{DiskError.__module__}.DiskError: ")[:500], texts
    return "trial raised an exception (no traceback was kept)", texts


class RayExecutor:
    """Runs units as Ray Tune trials and searches with Optuna (implements ``Executor``)."""

    name = "ray"

    def __init__(self, stop_in_background: bool = False) -> None:
        self._interrupt = _Interrupt()
        self._stop_in_background = stop_in_background

    def start(self, study: StudyFile) -> None:
        """Join ``resources.address`` or start a private Ray instance (:func:`.cluster.connect`)."""
        _quiet_tune_logs()
        cluster.connect(study)

    def stop(self) -> None:
        """Leave the Ray instance this process started or joined.

        With ``stop_in_background`` the instance stops in a thread while the caller goes on;
        the next start, and the interpreter's exit, wait for it (:func:`.cluster.disconnect`).
        """
        cluster.disconnect(wait=not self._stop_in_background)

    def run(self, study: StudyFile, units: Sequence[Unit], folder: StudyFolder, sink: Sink) -> None:
        """Run every unit as one Tune trial; members' evaluations and records go to ``sink``."""
        units = tuple(units)
        space = {"unit": tune.grid_search(list(range(len(units))))}
        self._fit(study, units, folder, sink, space, {})

    def search(
        self, study: StudyFile, request: SearchRequest, folder: StudyFolder, sink: Sink
    ) -> None:
        """Sample ``request.n_trials`` points with Optuna (optionally under ASHA) and run them."""
        from ray.tune.search import ConcurrencyLimiter

        res = study.resources
        kwargs: dict[str, Any] = {
            "num_samples": request.n_trials,
            "metric": study.selection_metric,  # val_<metric>: chosen on validation
            "mode": study.study.mode,
            "search_alg": _optuna_searcher(study, folder.root, request),
        }
        if res.max_concurrent:
            kwargs["search_alg"] = ConcurrencyLimiter(kwargs["search_alg"], res.max_concurrent)
        if study.study.asha:
            kwargs["scheduler"] = asha_scheduler(study)
        self._fit(study, None, folder, sink, {}, kwargs)

    def _fit(
        self,
        study: StudyFile,
        units: tuple[Unit, ...] | None,
        folder: StudyFolder,
        sink: Sink,
        space: dict[str, Any],
        kwargs: dict[str, Any],
    ) -> None:
        res = study.resources
        out_dir = folder.root.resolve()
        fn = tune.with_parameters(
            run_unit, study=study, units=units, out_dir=str(out_dir), parts=_carried_parts()
        )
        if res.workers > 1:  # the trial only drives a TorchTrainer, whose workers hold resources
            fn = tune.with_resources(fn, {"cpu": DRIVER_CPU})
        else:
            fn = tune.with_resources(fn, {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial})
        if "search_alg" not in kwargs or not res.max_concurrent:
            kwargs = {"max_concurrent_trials": res.max_concurrent, **kwargs}
        # one worker process trains trial after trial: torch and the package imported once
        kwargs = {"reuse_actors": True, **kwargs}
        recorder = _Recorder(study, units, StudyFolder(out_dir), sink, self._interrupt)
        tuner = tune.Tuner(
            fn,
            param_space=space,
            tune_config=tune.TuneConfig(**kwargs),
            run_config=tune.RunConfig(
                name=f"tune-{int(time.time())}",
                storage_path=study.resources.storage or str(out_dir / "ray"),
                verbose=0,
                callbacks=[recorder],
                # a trial whose node died restarts elsewhere from its last checkpoint
                failure_config=tune.FailureConfig(max_failures=res.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        with self._interrupt, _ray_logs_in(folder), _without_callback_census():
            tuner.fit()
        if self._interrupt.set:
            raise StudyInterrupted()


def _carried_parts() -> dict[str, dict[str, Any]]:
    """The registrations of this process, checked to travel to Ray's workers (by value).

    Raises:
        ClusterError: a registered part cannot be pickled (one line naming it).

    """
    from ray import cloudpickle

    parts = registry.local_parts()
    for kind, named in parts.items():
        for name, obj in named.items():
            try:
                cloudpickle.dumps(obj)
            except Exception as err:  # pickling runs arbitrary __reduce__ code
                raise ClusterError(
                    f"{registry.SINGULAR[kind]} '{name}' (registered in this process) cannot be "
                    f"sent to Ray's workers ({type(err).__name__}: {err}); install it as a "
                    "plugin (docs/plugins.md) or set resources.executor: local"
                ) from None
    return parts


def asha_scheduler(study: StudyFile):
    """Ray Tune's ``ASHAScheduler`` on epochs with ``study.asha``'s settings (true: defaults).

    A trial that reaches ``max_t`` is never stopped for it (``stop_last_trials`` off): it
    trains on to its last epoch, so a finished trial is never cut off before its result is
    stored; by default ``max_t`` is one past the last epoch.
    """
    from ray.tune.schedulers import ASHAScheduler

    asha = study.study.asha if isinstance(study.study.asha, AshaConfig) else AshaConfig()
    return ASHAScheduler(
        time_attr="epoch",
        max_t=asha.max_t or study.train.epochs + 1,
        grace_period=asha.grace_period,
        reduction_factor=asha.reduction_factor,
        stop_last_trials=False,
    )


def _optuna_searcher(cfg: StudyFile, out_dir: Path, search: SearchRequest):
    import optuna

    from rcl_study.study.optuna_pruned import PrunedAwareOptunaSearch as OptunaSearch

    # a resumed search continues the stored Optuna study; its sampler gets a fresh seed, or it
    # would draw the points of the first run again
    seed = cfg.study.seeds[0] + search.resumed
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    if cfg.study.sampler == "grid":
        from rcl_study.trials.design import grid_sampler

        sampler = grid_sampler(cfg, seed)
    else:
        sampler = samplers[cfg.study.sampler]()
    from rcl_study.trials.design import optuna_storage

    storage = optuna_storage(cfg, out_dir)
    return OptunaSearch(
        space=search.distributions,
        metric=cfg.selection_metric,  # val_<metric>: Optuna never sees the test score
        mode=cfg.study.mode,
        sampler=sampler,
        storage=storage,
        study_name=cfg.name,
        points_to_evaluate=search.enqueue or None,
    )
