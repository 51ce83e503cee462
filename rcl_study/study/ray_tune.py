"""The Ray Tune adapter, :class:`RayExecutor`: with :mod:`.cluster`, the only modules importing Ray.

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
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rcl_study.config import DRIVER_CPU, ResourcesConfig, StudyFile
from rcl_study.study import cluster
from rcl_study.study.cluster import ClusterError
from rcl_study.study.execute import (
    Resolver,
    append_log,
    evaluations,
    scalars,
    stored_result,
    train_and_save,
    train_unit,
    unit_records,
)
from rcl_study.study.executor import OnEval, OnRecord, SearchRequest
from rcl_study.trials.design import params_id
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialPlan, TrialStatus
from rcl_study.trials.unit import Unit

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then prints nothing
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials keep the study's working directory
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000")
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # ours asks Tune to stop (SIGUSR1)

from ray import tune  # noqa: E402

__all__ = ["ClusterError", "RayExecutor", "StudyInterrupted"]


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the study; finished trials are recorded, the others run on --resume."""


class _NoRestoreHint(logging.Filter):
    """Drop Tune's own stop/resume lines: this tool resumes with --resume, not Tuner.restore."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(
            s in msg
            for s in (
                "Tuner.restore",
                "Stop signal received",
                "Trials did not complete",
                "Failed to fetch metrics",  # of the trials Ctrl-C stopped
            )
        )


def _quiet_tune_logs() -> None:
    """Install :class:`_NoRestoreHint` on Tune's loggers (once)."""
    for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoRestoreHint) for f in logger.filters):
            logger.addFilter(_NoRestoreHint())


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


def _search_unit(config: dict[str, Any], study: StudyFile) -> Unit:
    """The unit of an Optuna-sampled search trial (its config: flat dotted keys)."""
    params = {k: v for k, v in config.items() if "." in k}
    plan = TrialPlan(f"search-{params_id(params)}", "search", study.study.seeds[0], params)
    return Unit.single(plan)


def _unit_of(config: dict[str, Any], study: StudyFile, units: Sequence[Unit] | None) -> Unit:
    """A trial's unit: ``units[config["unit"]]``, or the sampled point of a search."""
    return _search_unit(config, study) if units is None else units[config["unit"]]


#: key of a Tune result that holds one evaluation of each member (JSON {trial id: scalars})
EVALS = "rcl_evaluations"
#: key of the last Tune result of a unit: every member's result (JSON {trial id: result})
RESULTS = "rcl_results"
#: the trainer's checkpoint file in a trial's (or pack's) folder
CHECKPOINT = "checkpoint.pt"
#: key of a Tune result that holds the trainer's output lines since the last one (JSON list)
LOG = "rcl_log"


class _LogBuffer:
    """The trainer's output lines, printed here and sent to the driver with the next report."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def take(self) -> dict[str, str]:
        """``{LOG: json lines}`` of the lines since the last call (empty when none)."""
        lines, self.lines = self.lines, []
        return {LOG: json.dumps(lines)} if lines else {}


def _tune_report(
    unit: Unit,
    send: Callable[..., None],
    checkpoint: Path | None = None,
    log: _LogBuffer | None = None,
) -> Callable:
    """The trainer's ``report``: each evaluation through Ray's reporting channel (``send``).

    A single trial's scalars also stand at the top level of the result, where ASHA and Optuna
    read the study's metric; a pack's top level holds its epoch. When the trainer's
    ``checkpoint`` file changed since the last report, a copy goes with the result, and Ray
    persists it in ``resources.storage`` (what a restarted trial resumes from).
    """
    evals: dict[str, dict[str, float]] = {}
    sent = {"stamp": None}

    def collect(trial_id: str, metrics: dict[str, float]) -> None:
        evals[trial_id] = metrics

    forward = evaluations(unit, collect)

    def report(metrics: dict[str, Any]) -> None:
        evals.clear()
        forward(metrics)
        if not evals:  # another process of a data-parallel trial (Ray Train's report is collective)
            send({"epoch": float(metrics.get("epoch", 0))})
            return
        top = scalars(metrics) if not unit.is_pack else {"epoch": float(metrics["epoch"])}
        payload = {**top, EVALS: json.dumps(evals), **(log.take() if log else {})}
        stamp = _stamp(checkpoint)
        if stamp is None or stamp == sent["stamp"]:
            send(payload)
            return
        with tempfile.TemporaryDirectory(prefix="rcl-ckpt-") as tmp:
            shutil.copy2(checkpoint, Path(tmp) / CHECKPOINT)
            send(payload, checkpoint=tune.Checkpoint.from_directory(tmp))
        sent["stamp"] = stamp

    return report


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """(mtime, size) of a checkpoint file, None when there is none."""
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st else None


def _workdir(unit: Unit, folder: StudyFolder) -> Path:
    """The folder of the unit's ``checkpoint.pt``: the trial's, or the pack's."""
    return folder.trial_dir(unit.pack_id or unit.members[0].trial_id)


def _restore(unit: Unit, folder: StudyFolder) -> int | None:
    """Put the trial's last checkpoint from Ray's storage in its folder, on a restarted trial.

    Tune hands a restarted trial (its node died, or it raised and ``resources.max_failures``
    allows another try) the last checkpoint it reported. When this node's folder has none (a new
    node), that copy is restored, so the trainer resumes from it. Returns the epoch restored,
    None when nothing was restored.
    """
    from rcl_study.trainer.checkpoint import CheckpointError, read_checkpoint

    ckpt = tune.get_checkpoint()
    target = _workdir(unit, folder) / CHECKPOINT
    if ckpt is None or target.exists():
        return None
    with ckpt.as_directory() as src:
        source = Path(src) / CHECKPOINT
        if not source.is_file():
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    try:
        return int(read_checkpoint(target).get("epoch", 0))
    except CheckpointError:
        target.unlink(missing_ok=True)  # unreadable: start over rather than fail
        return None


def _final(unit: Unit, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The last Tune result of a unit: every member's result, and a single trial's scalars."""
    top = scalars(next(iter(results.values()))) if not unit.is_pack and results else {}
    return {**top, "trial_finished": 1.0, RESULTS: json.dumps(results, default=float)}


def _run_unit(
    config: dict[str, Any], study: StudyFile, units: Sequence[Unit] | None, out_dir: str
) -> None:
    """Tune function trainable: one trial (here or on data-parallel workers) or one pack.

    Everything the driver needs travels back through ``tune.report``; the trial's folder on this
    node only serves its own checkpoints and resume.
    """
    unit = _unit_of(config, study, units)
    folder = StudyFolder(out_dir)
    res = study.resources
    plan = unit.members[0]
    if res.workers > 1 and not unit.is_pack and stored_result(folder, plan) is None:
        _run_data_parallel(plan, study, out_dir, res)
        return
    restored = _restore(unit, folder)
    log = _LogBuffer()
    if restored is not None:
        log(f"[{unit.name}] restarted by Ray Tune; resumed from its checkpoint at epoch {restored}")
    # checkpoints go to Ray only with a storage every node reaches (resources.storage)
    checkpoint = _workdir(unit, folder) / CHECKPOINT if res.storage else None
    report = _tune_report(unit, tune.report, checkpoint, log)
    results = train_unit(unit, Resolver(study), folder, report, int(res.cpus_per_trial), log)
    if restored is not None:  # the record says the trial restarted from Ray's storage
        for result in results.values():
            result["resumed_from_epoch"] = restored
    tune.report({**_final(unit, results), **log.take()})


def _data_parallel_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: Accelerate inside picks up the process group Ray Train set up."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    unit = Unit.single(config["plan"])
    result = train_and_save(
        config["plan"],
        Resolver(config["study"]),
        StudyFolder(config["out_dir"]),
        _tune_report(unit, ray.train.report),
        config["threads"],
        rank0=rank == 0,
    )
    final = _final(unit, {config["plan"].trial_id: result}) if rank == 0 else {"epoch": 0.0}
    ray.train.report(final)


def _run_data_parallel(
    plan: TrialPlan, study: StudyFile, out_dir: str, res: ResourcesConfig
) -> None:
    """Run one trial as a Ray Train ``TorchTrainer`` (DDP over ``res.workers`` workers)."""
    from ray.train import RunConfig as TrainRunConfig
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    n = res.workers
    per_worker = {"CPU": res.cpus_per_trial / n}
    if res.gpus_per_trial:
        per_worker["GPU"] = res.gpus_per_trial / n
    trainer = TorchTrainer(
        _data_parallel_worker,
        train_loop_config={
            "plan": plan,
            "study": study,
            "out_dir": out_dir,
            "threads": max(1, int(res.cpus_per_trial / n)),
        },
        scaling_config=ScalingConfig(
            num_workers=n, use_gpu=res.gpus_per_trial > 0, resources_per_worker=per_worker
        ),
        run_config=TrainRunConfig(
            name=f"train-{plan.trial_id}-{int(time.time())}",
            storage_path=str(Path(out_dir) / "ray-train"),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()


class _Recorder(tune.Callback):
    """Driver-side: turn each finished, pruned or failed Tune trial into its members' records."""

    def __init__(
        self,
        study: StudyFile,
        units: Sequence[Unit] | None,
        folder: StudyFolder,
        on_record: OnRecord,
        interrupt: _Interrupt | None = None,
        on_eval: OnEval | None = None,
    ):
        self.study, self.units, self.folder, self.on_record = study, units, folder, on_record
        self.on_eval = on_eval
        self.resolve = Resolver(study)
        self.interrupt = interrupt
        self.started: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.time()

    def _record(self, trial, status: TrialStatus, reason: str) -> None:
        unit = _unit_of(trial.config, self.study, self.units)
        last = trial.last_result or {}
        try:
            results = json.loads(last.get(RESULTS) or "{}")
        except ValueError:
            results = {}
        restarts = int(getattr(trial, "num_failures", 0) or 0)
        for result in results.values() if restarts else ():
            result["restarts"] = restarts  # Tune restarted it (e.g. its node died)
        partial = {k: v for k, v in last.items() if k in ("top1", "balanced_acc", "epoch", "loss")}
        wall = time.time() - self.started.get(trial.trial_id, time.time())
        # stopped by Ctrl-C before finishing: not recorded, it runs again on --resume
        finished_only = bool(self.interrupt and self.interrupt.set)
        for record in unit_records(
            unit, self.resolve, results, status, reason, wall, partial, finished_only
        ):
            self.on_record(record)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if LOG in result:  # the trial's own output, kept on the driver under logs/
            try:
                lines = json.loads(result[LOG])
            except ValueError:
                lines = []
            append_log(self.folder, _unit_of(trial.config, self.study, self.units), lines)
        if self.on_eval is None or EVALS not in result:
            return
        try:
            evals = json.loads(result[EVALS])
        except ValueError:
            return
        for trial_id, metrics in evals.items():
            self.on_eval(trial_id, metrics)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial, TrialStatus.OK, "")

    def on_trial_error(self, iteration, trials, trial, **info):
        reason = _error_text(trial)
        append_log(self.folder, _unit_of(trial.config, self.study, self.units), [reason])
        self._record(trial, TrialStatus.FAILED, reason)


def _error_text(trial) -> str:
    """The last line of a failed trial's traceback (its exception type and message)."""
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
    for text in texts:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if lines:
            return lines[-1][:500]
    return "trial raised an exception (no traceback was kept)"


class RayExecutor:
    """Runs units as Ray Tune trials and searches with Optuna (implements ``Executor``)."""

    name = "ray"

    def __init__(self) -> None:
        self._interrupt = _Interrupt()

    def start(self, study: StudyFile) -> None:
        """Join ``resources.address`` or start a private Ray instance (:func:`.cluster.connect`)."""
        _quiet_tune_logs()
        cluster.connect(study)

    def stop(self) -> None:
        """Leave the Ray instance this process started or joined."""
        cluster.disconnect()

    def run(
        self,
        study: StudyFile,
        units: Sequence[Unit],
        folder: StudyFolder,
        on_record: OnRecord,
        on_eval: OnEval | None = None,
    ) -> None:
        """Run every unit as one Tune trial; members' records go to ``on_record``."""
        units = tuple(units)
        space = {"unit": tune.grid_search(list(range(len(units))))}
        self._fit(study, units, folder, (on_record, on_eval), space, {})

    def search(
        self,
        study: StudyFile,
        request: SearchRequest,
        folder: StudyFolder,
        on_record: OnRecord,
        on_eval: OnEval | None = None,
    ) -> None:
        """Sample ``request.n_trials`` points with Optuna (optionally under ASHA) and run them."""
        from ray.tune.search import ConcurrencyLimiter

        res = study.resources
        kwargs: dict[str, Any] = {
            "num_samples": request.n_trials,
            "metric": study.study.metric,
            "mode": study.study.mode,
            "search_alg": _optuna_searcher(study, folder.root, request),
        }
        if res.max_concurrent:
            kwargs["search_alg"] = ConcurrencyLimiter(kwargs["search_alg"], res.max_concurrent)
        if study.study.asha:
            from ray.tune.schedulers import ASHAScheduler

            # max_t one past the last epoch: ASHA stops any trial that reaches max_t, which
            # would cut a finished trial off before its result is stored
            kwargs["scheduler"] = ASHAScheduler(
                time_attr="epoch", max_t=study.train.epochs + 1, grace_period=1, reduction_factor=3
            )
        self._fit(study, None, folder, (on_record, on_eval), {}, kwargs)

    def _fit(
        self,
        study: StudyFile,
        units: tuple[Unit, ...] | None,
        folder: StudyFolder,
        sinks: tuple[OnRecord, OnEval | None],
        space: dict[str, Any],
        kwargs: dict[str, Any],
    ) -> None:
        res = study.resources
        out_dir = folder.root.resolve()
        fn = tune.with_parameters(_run_unit, study=study, units=units, out_dir=str(out_dir))
        if res.workers > 1:  # the trial only drives a TorchTrainer, whose workers hold resources
            fn = tune.with_resources(fn, {"cpu": DRIVER_CPU})
        else:
            fn = tune.with_resources(fn, {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial})
        if "search_alg" not in kwargs or not res.max_concurrent:
            kwargs = {"max_concurrent_trials": res.max_concurrent, **kwargs}
        on_record, on_eval = sinks
        recorder = _Recorder(
            study, units, StudyFolder(out_dir), on_record, self._interrupt, on_eval
        )
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
        with self._interrupt:
            tuner.fit()
        if self._interrupt.set:
            raise StudyInterrupted()


def _optuna_searcher(cfg: StudyFile, out_dir: Path, search: SearchRequest):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

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
        metric=cfg.study.metric,
        mode=cfg.study.mode,
        sampler=sampler,
        storage=storage,
        study_name=cfg.name,
        points_to_evaluate=search.enqueue or None,
    )
