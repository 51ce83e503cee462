"""What runs inside a Ray Tune trial: one unit trained, everything the driver needs reported.

A trial's config holds only its unit's index (or, in a search, Optuna's sampled point); the frozen
study and the units come through Ray's object store (``tune.with_parameters``). Each evaluation,
each batch of output lines and, with ``resources.storage``, each new checkpoint go to the driver
through ``tune.report``; the last report holds every member's result (:func:`final`, read back
by :func:`results_of`). Nothing the driver records
is read from this node's disk. A trial that Tune restarts (its node died) resumes from the last
checkpoint it reported. The driver's side is :mod:`.ray_tune`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rcl_study import registry
from rcl_study.config import ResourcesConfig, StudyFile
from rcl_study.study.execute import (
    Resolver,
    evaluations,
    scalars,
    stored_result,
    train_and_save,
    train_unit,
)
from rcl_study.trainer.result import Evaluation, TrialResult
from rcl_study.trials.design import params_id
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialPlan, config_hash
from rcl_study.trials.unit import Unit

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then prints nothing
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials keep the study's working directory
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000")
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # ours asks Tune to stop (SIGUSR1)
# Tune's own per-trial CSV, JSON and TensorBoard logs repeat the study's records and tracking;
# its TensorBoard logger would also import torch into the driver, which trains nothing
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

from ray import tune  # noqa: E402


def search_unit(config: dict[str, Any], study: StudyFile) -> Unit:
    """The unit of an Optuna-sampled search trial (its config: flat dotted keys)."""
    params = {k: v for k, v in config.items() if "." in k}
    plan = TrialPlan(f"search-{params_id(params)}", "search", study.study.seeds[0], params)
    return Unit.single(plan)


def unit_of(config: dict[str, Any], study: StudyFile, units: Sequence[Unit] | None) -> Unit:
    """A trial's unit: ``units[config["unit"]]``, or the sampled point of a search."""
    return search_unit(config, study) if units is None else units[config["unit"]]


#: key of a Tune result that holds one evaluation of each member (JSON {trial id: scalars})
EVALS = "rcl_evaluations"
#: key of a Tune result that names the device the unit trains on
DEVICE = "rcl_device"
#: key of the last Tune result of a unit: every member's result (JSON {trial id: result})
RESULTS = "rcl_results"
#: the trainer's checkpoint file in a trial's (or pack's) folder
CHECKPOINT = "checkpoint.pt"
#: key of a Tune result that holds the trainer's output lines since the last one (JSON list)
LOG = "rcl_log"


class LogBuffer:
    """The trainer's output lines, printed here and sent to the driver with the next report."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        """Print ``line`` and keep it for the next report."""
        print(line, flush=True)
        self.lines.append(line)

    def take(self) -> dict[str, str]:
        """``{LOG: json lines}`` of the lines since the last call (empty when none)."""
        lines, self.lines = self.lines, []
        return {LOG: json.dumps(lines)} if lines else {}


def tune_report(
    unit: Unit,
    send: Callable[..., None],
    checkpoint: Path | None = None,
    log: LogBuffer | None = None,
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

    forward = evaluations(collect)

    def report(evaluation: Evaluation) -> None:
        evals.clear()
        forward(evaluation)
        if not evals:  # another process of a data-parallel trial (Ray Train's report is collective)
            send({"epoch": float(evaluation.epoch)})
            return
        single = next(iter(evals.values()))
        top = dict(single) if not unit.is_pack else {"epoch": float(evaluation.epoch)}
        payload = {**top, EVALS: json.dumps(evals), **(log.take() if log else {})}
        if evaluation.device:
            payload[DEVICE] = evaluation.device
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


def workdir(unit: Unit, folder: StudyFolder) -> Path:
    """The folder of the unit's ``checkpoint.pt``: the trial's, or the pack's."""
    return folder.trial_dir(unit.pack_id or unit.members[0].trial_id)


def restore(unit: Unit, folder: StudyFolder) -> int | None:
    """Put the trial's last checkpoint from Ray's storage in its folder, on a restarted trial.

    Tune hands a restarted trial (its node died, or it raised and ``resources.max_failures``
    allows another try) the last checkpoint it reported. When this node's folder has none (a new
    node), that copy is restored, so the trainer resumes from it. Returns the epoch restored,
    None when nothing was restored.
    """
    from rcl_study.store import atomic_write, remove_file
    from rcl_study.trainer.checkpoint import CheckpointError, read_checkpoint

    ckpt = tune.get_checkpoint()
    target = workdir(unit, folder) / CHECKPOINT
    if ckpt is None or target.exists():
        return None
    with ckpt.as_directory() as src:
        source = Path(src) / CHECKPOINT
        if not source.is_file():
            return None
        with source.open("rb") as stored:  # written through no link
            atomic_write(target, lambda f: shutil.copyfileobj(stored, f))
    try:
        return int(read_checkpoint(target).get("epoch", 0))
    except CheckpointError:
        remove_file(target)  # unreadable: start over rather than fail
        return None


def final(unit: Unit, results: dict[str, TrialResult]) -> dict[str, Any]:
    """The last Tune result of a unit: every member's result, and a single trial's scalars."""
    rows = {trial_id: r.to_json() for trial_id, r in results.items()}
    top = scalars(next(iter(rows.values()))) if not unit.is_pack and rows else {}
    return {**top, "trial_finished": 1.0, RESULTS: json.dumps(rows, default=float)}


def results_of(last: dict[str, Any]) -> dict[str, TrialResult]:
    """Every member's result in a unit's last Tune result (:func:`final`), by trial id.

    A damaged or missing part counts as no result: its member is recorded by how its unit
    ended (:func:`rcl_study.study.recording.unit_records`).
    """
    try:
        rows = json.loads(last.get(RESULTS) or "{}")
    except ValueError:
        return {}
    out = {}
    for trial_id, row in rows.items() if isinstance(rows, dict) else ():
        try:
            out[trial_id] = TrialResult.from_json(row)
        except ValueError:
            continue
    return out


def run_unit(
    config: dict[str, Any],
    study: StudyFile,
    units: Sequence[Unit] | None,
    out_dir: str,
    parts: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Tune function trainable: one trial (here or on data-parallel workers) or one pack.

    ``parts`` are the driver's own registrations (``registry.local_parts``), registered here
    first. Everything the driver needs travels back through ``tune.report``; the trial's folder
    on this node only serves its own checkpoints and resume.
    """
    registry.adopt(parts)
    unit = unit_of(config, study, units)
    folder = StudyFolder(out_dir)
    res = study.resources
    resolve = Resolver(study)  # each member's config validated once in this process
    plan = unit.members[0]
    if res.workers > 1 and not unit.is_pack:
        if stored_result(folder, plan, config_hash(resolve(plan)[1])) is None:
            _run_data_parallel(plan, study, out_dir, res, parts)
            return
    restored = restore(unit, folder)
    log = LogBuffer()
    if restored is not None:
        log(f"[{unit.name}] restarted by Ray Tune; resumed from its checkpoint at epoch {restored}")
    # checkpoints go to Ray only with a storage every node reaches (resources.storage)
    checkpoint = workdir(unit, folder) / CHECKPOINT if res.storage else None
    report = tune_report(unit, tune.report, checkpoint, log)
    results = train_unit(unit, resolve, folder, report, int(res.cpus_per_trial), log)
    if restored is not None:  # the record says the trial restarted from Ray's storage
        results = {t: r.placed(resumed_from_epoch=restored) for t, r in results.items()}
    tune.report({**final(unit, results), **log.take()})


def _data_parallel_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: Accelerate inside picks up the process group Ray Train set up."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    registry.adopt(config["parts"])
    unit = Unit.single(config["plan"])
    result = train_and_save(
        config["plan"],
        Resolver(config["study"]),
        StudyFolder(config["out_dir"]),
        tune_report(unit, ray.train.report),
        config["threads"],
        rank0=rank == 0,
    )
    last = final(unit, {config["plan"].trial_id: result}) if rank == 0 else {"epoch": 0.0}
    ray.train.report(last)


def _run_data_parallel(
    plan: TrialPlan,
    study: StudyFile,
    out_dir: str,
    res: ResourcesConfig,
    parts: dict[str, dict[str, Any]] | None,
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
            "parts": parts,
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
