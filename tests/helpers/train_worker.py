"""Run one training step of the real trainer, alone or under torchrun (2 CPU processes, gloo).

    train_worker.py STUDY.yaml OUT.json

Trains the study file's trial (``WORKER`` of ``tests/trainer/test_train.py``) and writes the
first step's total loss (averaged over processes) to OUT.json.
"""

import json
import sys

import torch.distributed as dist

import rcl_study.trainer.loop as train
from rcl_study.config import load_study


def main(study_path, out_path):
    seen = []
    original = train.total_loss

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out["loss"].detach().clone())
        return out

    train.total_loss = spy
    train.train_trial(load_study(study_path), log=lambda s: None)
    loss = seen[0]
    world = 1
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        dist.all_reduce(loss)
        loss /= world
    if not dist.is_initialized() or dist.get_rank() == 0:
        with open(out_path, "w") as f:
            json.dump({"loss": loss.item(), "world": world}, f)
    if dist.is_initialized():  # leave together: a rank exiting mid-teardown aborts gloo
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
