"""Which images each step trains on: the epoch's order and the batches gathered by it.

Images on the device are indexed there; images decoded from files (:class:`ListImages`) are
decoded one batch ahead in a thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from rcl_study.trainer.setup import Schedule, TrialData


class _Prefetch:
    """Decode the batches of an epoch from image files one batch ahead, in a thread.

    With ``pin``, batches land in pinned memory, so that their copy to the GPU is asynchronous
    (a copy from pageable memory waits for the GPU's stream).
    """

    def __init__(
        self, images, perm, global_batch: int, offset: int, size: int, steps: int, pin: bool
    ):
        self.images, self.perm, self.steps, self.pin = images, perm, steps, pin
        self.global_batch, self.offset, self.size = global_batch, offset, size
        self.pool = ThreadPoolExecutor(1)
        self.next = self.pool.submit(self._load, 0)

    def _load(self, step: int) -> torch.Tensor:
        lo = step * self.global_batch + self.offset
        batch = torch.from_numpy(
            np.ascontiguousarray(self.images[self.perm[lo : lo + self.size].numpy()])
        )
        return batch.pin_memory() if self.pin else batch

    def take(self, step: int) -> torch.Tensor:
        """The batch of ``step`` (steps are taken in order); starts decoding the next one."""
        batch = self.next.result()
        if step + 1 < self.steps:
            self.next = self.pool.submit(self._load, step + 1)
        else:
            self.pool.shutdown(wait=False)
        return batch


@dataclass
class EpochOrder:
    """The order of one epoch: a permutation, this process's offset, and decoded batches."""

    perm: torch.Tensor
    perm_dev: torch.Tensor
    offset: int
    global_batch: int
    local_batch: int
    decoded: _Prefetch | None = None

    def rows(self, step: int) -> torch.Tensor:
        """Indices (on the device) of this process's images in ``step``."""
        lo = step * self.global_batch + self.offset
        return self.perm_dev[lo : lo + self.local_batch]


def epoch_order(
    data: TrialData, sched: Schedule, perm_gen: torch.Generator, process_index: int
) -> EpochOrder:
    """Draw the next epoch's permutation; start decoding its first batch for file images."""
    perm = torch.randperm(sched.n, generator=perm_gen)
    offset = process_index * sched.local_batch
    decoded = None
    if not data.on_device:
        pin = data.train_y.device.type == "cuda"
        decoded = _Prefetch(
            data.train_x, perm, sched.global_batch, offset, sched.local_batch, sched.steps, pin
        )
    return EpochOrder(
        perm, perm.to(data.train_y.device), offset, sched.global_batch, sched.local_batch, decoded
    )


def gather_batch(
    data: TrialData, order: EpochOrder, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The uint8 images ``[B, H, W, C]`` and labels ``[B]`` of ``step``, on the device."""
    rows = order.rows(step)
    if order.decoded is None:
        xb = data.train_x[rows]
    else:  # decoded from files, one batch ahead in a thread
        xb = order.decoded.take(step).to(data.train_y.device, non_blocking=True)
    return xb, data.train_y[rows]
