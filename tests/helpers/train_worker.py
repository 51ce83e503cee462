"""Run one training step of the real trainer, alone or under torchrun (2 CPU processes, gloo).

Writes the first step's total loss (averaged over processes) to the JSON file named by argv[1].
"""

import json
import sys

import torch.distributed as dist

import rcl_study.trainer.loop as train
from rcl_study.config import parse_study

CFG = {
    "name": "dist",
    "data": {"dataset": "digits_lt", "augment": "none", "test_limit": 50},
    "model": {"arch": "small_cnn", "width": 8, "proj_hidden": 16, "proj_dim": 8, "norm": "none"},
    "train": {
        "epochs": 1,
        "batch_size": 32,
        "max_steps_per_epoch": 1,
        "warmup_epochs": 0,
        "progress": False,
    },
    "loss": {"preset": "bcl+rcl", "scale": 1.3, "margin": 0.4},
}


def main(out_path):
    seen = []
    original = train.total_loss

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out["loss"].detach().clone())
        return out

    train.total_loss = spy
    train.train_trial(parse_study(CFG), log=lambda s: None)
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
    main(sys.argv[1])
