"""The Ray Tune adapter: the only module that imports Ray.

Trials run as Tune function trainables; the driver records every finished trial through a Tune
callback (one writer, atomic writes). Resume does not rely on Tune's experiment state: the driver
plans only trials without a record, and a trial that was running restarts from the checkpoint in
its own folder ``<output_dir>/trials/<trial_id>/``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import DRIVER_CPU, ConfigError, StudyFile, parse_study, to_dict
from ..records import TrialPlan, TrialRecord, TrialStatus
from ..space import params_id
from ..study_folder import StudyFolder
from .execute import train_and_save as _train_and_save
from .execute import train_unit, unit_records

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then prints nothing
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials keep the study's working directory
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000")
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # ours asks Tune to stop (SIGUSR1)

import ray  # noqa: E402
from ray import tune  # noqa: E402


class ClusterError(RuntimeError):
    """The Ray cluster cannot be reached or lacks the resources a trial needs."""


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


for _name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
    logging.getLogger(_name).addFilter(_NoRestoreHint())


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


_INTERRUPT = _Interrupt()


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _check_address(address: str, timeout: float = 10.0) -> None:
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=timeout):
            pass
    except (OSError, ValueError) as err:
        raise ClusterError(
            f"resources.address: Ray cluster at '{address}' does not answer "
            f"({err}); start it with 'ray start --head' or remove the key"
        ) from None


def _resolve_address(address: str) -> str:
    """``host:port`` of ``resources.address``.

    ``auto``: ``RAY_ADDRESS``, else the cluster that ``ray start`` last started on this machine
    (never another driver's private instance).
    """
    if address != "auto":
        return address.split("://", 1)[-1]
    env = os.environ.get("RAY_ADDRESS")
    if env and env not in ("auto", "local"):
        return env.split("://", 1)[-1]
    from ray._private import services

    found = services.find_bootstrap_address(None)
    if not found or found not in services.find_gcs_addresses():
        raise ClusterError(
            "resources.address: 'auto' found no Ray cluster started with 'ray start' on this "
            "machine; start one with 'ray start --head' or remove the key"
        )
    return found


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return os.path.isfile(path)


def _use_cluster_token() -> None:
    """Send Ray's auth token when joining a cluster, as ``ray start`` does when one exists.

    Ray 2.60 turns token authentication on for ``ray start`` clusters when a token is found
    (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), but a driver that
    names an explicit address does not send it unless ``RAY_AUTH_MODE=token``. With the mode
    unset and a token present, this sets it (an explicit ``RAY_AUTH_MODE`` is respected).
    """
    if "RAY_AUTH_MODE" in os.environ or not _token_available():
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._raylet import Config

        Config.initialize("")  # this process reads the mode again
    except Exception:  # noqa: BLE001 - older Ray: the variable alone is read at connect
        pass


_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"rcl_study_probe", None, timeout=5)
except Exception as err:
    print(f"{type(err).__name__}: {err}".splitlines()[0][:300])
    sys.exit(1)
"""


def _probe_cluster(hostport: str, timeout: float = 10.0) -> None:
    """Check in a child process, within ``timeout`` seconds, that a Ray GCS answers there."""
    env = {**os.environ, "RAY_gcs_rpc_server_connect_timeout_s": "5"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, hostport],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise ClusterError(
            f"resources.address: '{hostport}' accepts connections but no Ray cluster answered "
            f"within {timeout:g}s; check the address (ray start prints it)"
        ) from None
    if proc.returncode != 0:
        why = (proc.stdout.strip() or proc.stderr.strip().splitlines()[-1:] or ["no answer"])
        why = why if isinstance(why, str) else why[0]
        raise ClusterError(
            f"resources.address: the Ray cluster at '{hostport}' refused this driver ({why}); "
            "for a token-authenticated cluster set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to its "
            "token (ray get-auth-token on the head prints it)"
        )


def init_ray(cfg: StudyFile) -> None:
    """Join ``resources.address`` or start a private local Ray instance; check resources.

    A local run always starts its own instance (``address="local"``), so it never joins a
    cluster that happens to run on this machine. Joining passes Ray's auth token through
    (:func:`_use_cluster_token`) and is checked within 10 seconds first, so a wrong address is
    a one-line :class:`ClusterError`, never a hang.
    """
    res = cfg.resources
    if ray.is_initialized():
        return
    if res.address and res.address != "local":
        _check_address(res.address)
        hostport = _resolve_address(res.address)
        _use_cluster_token()
        _probe_cluster(hostport)
        try:
            ray.init(address=hostport, log_to_driver=False)
        except (ConnectionError, RuntimeError, ray.exceptions.RayError) as err:
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ClusterError(f"resources.address: cannot join '{hostport}': {msg}") from None
    else:
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    cluster = ray.cluster_resources()
    why = res.shortfall(cluster.get("CPU", 0), cluster.get("GPU", 0), "the Ray cluster")
    if why:
        ray.shutdown()
        raise ConfigError(f"{cfg.name}: {why}")


def _plan_of(config: dict[str, Any], base: dict[str, Any]) -> TrialPlan:
    """The trial plan of a Tune config: given (ablation, grid, best) or sampled (search)."""
    plan = config.get("plan")
    if plan is None:  # an Optuna-sampled search trial: flat dotted keys
        params = {k: v for k, v in config.items() if "." in k}
        return TrialPlan(f"search-{params_id(params)}", "search", base["study"]["seeds"][0], params)
    return TrialPlan.from_json(plan)


def _run_one(config: dict[str, Any], base: dict[str, Any], out_dir: str) -> None:
    """Tune function trainable: one trial (here or on data-parallel workers) or one pack."""
    if "members" in config.get("plan", {}):  # a pack (or a unit of one plan)
        res = parse_study(base, base["name"]).resources
        train_unit(
            config["plan"],
            base,
            out_dir,
            lambda m: tune.report(_scalars(m)),
            int(res.cpus_per_trial),
        )
        tune.report({"trial_finished": 1.0})
        return
    plan = _plan_of(config, base)
    done = StudyFolder(out_dir).trial_dir(plan.trial_id) / "result.json"
    if done.exists():  # the same point again (e.g. a resampled search point): never retrain
        tune.report({**_scalars(json.loads(done.read_text())), "trial_finished": 1.0})
        return
    res = parse_study(base, base["name"]).resources
    if res.workers > 1:
        _run_data_parallel(plan, base, out_dir, res)
        return
    result = _train_and_save(
        plan, base, out_dir, lambda m: tune.report(_scalars(m)), int(res.cpus_per_trial)
    )
    tune.report({**_scalars(result), "trial_finished": 1.0})


def _data_parallel_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: Accelerate inside picks up the process group Ray Train set up."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    result = _train_and_save(
        TrialPlan.from_json(config["plan"]),
        config["base"],
        config["out_dir"],
        lambda m: ray.train.report(_scalars(m)),
        config["threads"],
        rank0=rank == 0,
    )
    ray.train.report({**_scalars(result), "trial_finished": 1.0})


def _run_data_parallel(plan, base, out_dir, res) -> None:
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
            "plan": plan.to_json(),
            "base": base,
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
    """Driver-side: turn each finished, pruned or failed Tune trial into one record."""

    def __init__(
        self, out_dir: Path, base: dict[str, Any], on_record: Callable[[TrialRecord], None]
    ):
        self.out_dir, self.base, self.on_record = out_dir, base, on_record
        self.started: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.time()

    def _record(self, trial, status: TrialStatus, reason: str) -> None:
        unit = trial.config.get("plan") or {}
        if "members" not in unit:
            unit = _plan_of(trial.config, self.base).to_json()
        partial = {
            k: v
            for k, v in (trial.last_result or {}).items()
            if k in ("top1", "balanced_acc", "epoch", "loss")
        }
        wall = time.time() - self.started.get(trial.trial_id, time.time())
        # stopped by Ctrl-C before finishing: not recorded, it runs again on --resume
        finished_only = _INTERRUPT.set
        for record in unit_records(
            unit, self.base, self.out_dir, status, reason, wall, partial, finished_only
        ):
            StudyFolder(self.out_dir).append(record)
            self.on_record(record)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial, TrialStatus.OK, "")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, TrialStatus.FAILED, _error_text(trial))


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


def run_trials(
    cfg: StudyFile,
    plans: list[dict[str, Any]] | None,
    out_dir: Path,
    on_record: Callable[[TrialRecord], None],
    search: dict[str, Any] | None = None,
) -> None:
    """Run trials through Ray Tune, recording each as it finishes.

    Args:
        cfg: the study (its ``resources`` decide concurrency and per-trial CPUs/GPUs).
        plans: trial plan dicts (ablation, grid, best-config re-runs); None for a search.
        out_dir: the study's output folder.
        on_record: called in the driver with each new record (progress display).
        search: for a search, ``{"distributions", "n_trials", "enqueue"}`` (Optuna distributions,
            how many new trials to sample, parameter dicts to run first).

    """
    from ray.tune.search import ConcurrencyLimiter

    init_ray(cfg)
    res = cfg.resources
    out_dir = Path(out_dir).resolve()
    base = to_dict(cfg)
    fn = tune.with_parameters(_run_one, base=base, out_dir=str(out_dir))
    if res.workers > 1:  # the trial only drives a TorchTrainer, whose workers hold the resources
        fn = tune.with_resources(fn, {"cpu": DRIVER_CPU})
    else:
        fn = tune.with_resources(fn, {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial})
    tune_kwargs: dict[str, Any] = {"max_concurrent_trials": res.max_concurrent}
    if search is None:
        param_space: dict[str, Any] = {"plan": tune.grid_search(plans)}
    else:
        param_space = {}
        tune_kwargs.update(
            num_samples=search["n_trials"], metric=cfg.study.metric, mode=cfg.study.mode
        )
        tune_kwargs["search_alg"] = _optuna_searcher(cfg, out_dir, search)
        if res.max_concurrent:
            tune_kwargs["search_alg"] = ConcurrencyLimiter(
                tune_kwargs["search_alg"], res.max_concurrent
            )
            tune_kwargs.pop("max_concurrent_trials")
        if cfg.study.asha:
            from ray.tune.schedulers import ASHAScheduler

            # max_t one past the last epoch: ASHA stops any trial that reaches max_t, which
            # would cut a finished trial off before its result is stored
            tune_kwargs["scheduler"] = ASHAScheduler(
                time_attr="epoch", max_t=cfg.train.epochs + 1, grace_period=1, reduction_factor=3
            )
    tuner = tune.Tuner(
        fn,
        param_space=param_space,
        tune_config=tune.TuneConfig(**tune_kwargs),
        run_config=tune.RunConfig(
            name=f"tune-{int(time.time())}",
            storage_path=str(out_dir / "ray"),
            verbose=0,
            callbacks=[_Recorder(out_dir, base, on_record)],
            failure_config=tune.FailureConfig(max_failures=0),  # retried by --resume
        ),
    )
    with _INTERRUPT:
        tuner.fit()
    if _INTERRUPT.set:
        raise StudyInterrupted()


def _optuna_searcher(cfg: StudyFile, out_dir: Path, search: dict[str, Any]):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    # a resumed search continues the stored Optuna study; its sampler gets a fresh seed, or it
    # would draw the points of the first run again
    seed = cfg.study.seeds[0] + search.get("resumed", 0)
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    if cfg.study.sampler == "grid":
        grid = {
            k: (v.choices if v.type == "categorical" else [v.low, v.high])
            for k, v in cfg.study.space.items()
        }
        sampler = optuna.samplers.GridSampler(grid, seed=seed)
    else:
        sampler = samplers[cfg.study.sampler]()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out_dir / "optuna.journal"))
    )
    return OptunaSearch(
        space=search["distributions"],
        metric=cfg.study.metric,
        mode=cfg.study.mode,
        sampler=sampler,
        storage=storage,
        study_name=cfg.name,
        points_to_evaluate=search.get("enqueue") or None,
    )


def shutdown() -> None:
    """Stop the Ray instance this process started or joined."""
    if ray.is_initialized():
        ray.shutdown()
