"""The ``resources`` section: how trials share a machine or a cluster, and where they report."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rcl_study.config.base import (
    DRIVER_CPU,
    Strict,
)


class ResourcesConfig(Strict):
    """How trials share the machine or cluster."""

    #: CPUs Ray reserves for each trial (or pack)
    cpus_per_trial: float = Field(1.0, gt=0)
    #: GPUs Ray reserves for each trial; a fraction shares one GPU between trials
    gpus_per_trial: float = Field(0.0, ge=0)
    #: data-parallel workers of a trial (Ray Train; one per GPU)
    workers_per_trial: int | None = Field(None, ge=1)
    #: the most trials running at once (None: as many as the resources allow)
    max_concurrent: int | None = Field(None, ge=1)
    #: a running Ray cluster's address (``auto`` or ``host:port``); None: a new private local
    #: instance
    address: str | None = None
    #: where Ray keeps trial checkpoints and its experiment state: a folder every node mounts
    #: (NFS) or a URI pyarrow understands (``s3://...``); default: ``<output_dir>/ray``
    storage: str | None = None
    #: times Ray Tune restarts a failed trial (e.g. its node died) from its last checkpoint in
    #: ``storage`` before recording it ``failed`` (``--resume`` retries failed trials too)
    max_failures: int = Field(0, ge=0, le=100)
    #: members trained together in one process (``auto``: where ``benchmarks/pack_speed.py``
    #: showed a gain; ``1``: never); see ``rcl_study.study.packing``
    pack: int | Literal["auto"] = "auto"
    #: how a pack's members train: ``loop`` (one after another on each batch), ``batched`` (one
    #: stacked network: grouped convolutions, per-member BatchNorm), ``auto`` (batched only where
    #: ``benchmarks/pack_mechanism.py`` measured it faster: nowhere yet, so the loop); see
    #: ``rcl_study.trainer.pack``
    pack_mechanism: Literal["auto", "loop", "batched"] = "auto"
    #: ``ray`` (Ray Tune, trials in parallel) or ``local`` (this process, one unit at a time,
    #: without importing Ray)
    executor: Literal["ray", "local"] = "ray"
    #: live tracking on the driver, one run per trial (``rcl_study.study.tracking``):
    #: ``tensorboard`` (event files in ``<output_dir>/tensorboard``), ``mlflow`` (runs in
    #: ``mlflow_uri``; ``pip install "rcl_study[mlflow]"``), ``wandb`` (Weights & Biases;
    #: ``pip install "rcl_study[wandb]"``), or ``none``
    tracking: list[Literal["tensorboard", "mlflow", "wandb", "none"]] = Field(
        default_factory=lambda: ["tensorboard"]
    )
    #: the MLflow tracking store (None: ``sqlite:///<output_dir>/mlflow.db``)
    mlflow_uri: str | None = None
    #: the W&B project of the runs (None: the study's name)
    wandb_project: str | None = Field(None, min_length=1, max_length=128)
    #: ``offline`` (runs written under ``<output_dir>/wandb``, nothing sent; ``wandb sync``
    #: uploads them) or ``online`` (sent as they happen, to the account ``wandb login`` set)
    wandb_mode: Literal["offline", "online"] = "offline"

    @field_validator("tracking", mode="before")
    @classmethod
    def _tracking_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("tracking")
    @classmethod
    def _tracking_value(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"names a tracker twice: {v}")
        if "none" in v and len(v) > 1:
            raise ValueError(f"'none' cannot be combined with a tracker: {v}")
        return v

    @model_validator(mode="after")
    def _check_gpus(self) -> ResourcesConfig:
        g = self.gpus_per_trial
        if g > 1 and g != int(g):
            raise ValueError(f"gpus_per_trial above 1 must be a whole number, got {g}")
        if g > 1 and self.workers_per_trial not in (None, int(g)):
            raise ValueError(
                f"workers_per_trial ({self.workers_per_trial}) must equal gpus_per_trial ({g:g}):"
                " one data-parallel worker per GPU"
            )
        if 0 < g <= 1 and (self.workers_per_trial or 1) >= 2:
            raise ValueError(
                f"workers_per_trial ({self.workers_per_trial}) with "
                f"gpus_per_trial {g:g} would put {self.workers_per_trial} data-parallel"
                " ranks on one GPU; give each worker its own GPU (gpus_per_trial ="
                " workers_per_trial) or use one worker"
            )
        return self

    @field_validator("pack", mode="before")
    @classmethod
    def _pack_value(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError("must be 'auto' or a whole number of members >= 1")

    @model_validator(mode="after")
    def _check_pack(self) -> ResourcesConfig:
        if self.workers > 1 and self.executor == "local":
            raise ValueError(
                "executor 'local' runs each trial in this one process; data-parallel trials "
                f"({self.workers} workers) need 'ray'"
            )
        return self

    @property
    def workers(self) -> int:
        """Data-parallel workers of one trial: one per GPU above one GPU, else as set (1)."""
        if self.gpus_per_trial > 1:
            return int(self.gpus_per_trial)
        return self.workers_per_trial or 1

    @property
    def cpus_needed(self) -> float:
        """CPUs one trial holds: its own, plus a data-parallel trial's driver share."""
        return self.cpus_per_trial + (DRIVER_CPU if self.workers > 1 else 0.0)

    def shortfall(self, cpus: float, gpus: float, where: str) -> str | None:
        """Why one trial cannot fit on ``cpus`` and ``gpus`` of ``where`` (None when it fits)."""
        if self.cpus_needed > cpus:
            extra = f" (data-parallel trials hold {DRIVER_CPU:g} more)" if self.workers > 1 else ""
            return (
                f"resources.cpus_per_trial: a trial needs {self.cpus_needed:g} CPUs, but {where} "
                f"has {cpus:g}{extra}"
            )
        if self.gpus_per_trial > gpus:
            return (
                f"resources.gpus_per_trial: {self.gpus_per_trial:g} GPUs per trial, but {where} "
                f"has {gpus:g}"
            )
        return None
