"""Run under torchrun with 2 CPU processes (gloo): the loss over the global batch.

Each rank compares its data-parallel loss and gradients with one process holding the whole batch,
and rank 0 writes the comparison to the JSON file named by argv[1].
"""

import json
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from rcl_study.losses import contrastive_loss


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(6, 4)
        self.protos = torch.nn.Parameter(torch.randn(3, 4))

    def forward(self, x):
        return F.normalize(self.body(x), dim=1), F.normalize(self.protos, dim=1)


def loss_of(model, x, y, counts, gather):
    feats, protos = model(x)
    return contrastive_loss(
        feats,
        y,
        counts,
        protos,
        temperature=0.2,
        scale=1.3,
        balance=1.0,
        margin=0.4,
        class_averaging=True,
        gather=gather,
    )


def main(out_path):
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    x = torch.randn(8, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 2, 0, 0, 2, 1])
    counts = torch.tensor([50, 20, 5])
    ref_model = Net().double()
    model = Net().double()
    model.load_state_dict(ref_model.state_dict())

    ref = loss_of(ref_model, x, y, counts, gather=False)  # one process, whole batch
    ref.backward()

    ddp = DDP(model)
    n = len(y) // world
    sl = slice(rank * n, (rank + 1) * n)
    loss = loss_of(ddp, x[sl], y[sl], counts, gather=True)
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= world
    grad_err = max(
        float((p.grad - q.grad).abs().max())
        for p, q in zip(model.parameters(), ref_model.parameters())
    )
    if rank == 0:
        with open(out_path, "w") as f:
            json.dump({"ref": ref.item(), "dist": mean_loss.item(), "grad_err": grad_err}, f)
    dist.barrier()  # leave together: a rank exiting mid-teardown aborts gloo
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
