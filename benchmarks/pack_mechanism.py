"""Which mechanism packs K copies of a network: a loop, ``torch.func`` stacking, grouped convs.

    python benchmarks/pack_mechanism.py [--k 1 2 4 8] [--repeats 5] [--device cpu|cuda]
    python benchmarks/pack_mechanism.py --tiny   # K 1 and 2, one repeat, 4 images (tests)

For the quickstart's SmallCNN+BCL heads (digits, 8x8, batch 3 x 64 views) and a reduced ResNet-32
(32x32, batch 3 x 32 views) it times one training step (forward, loss, backward, SGD) of K members:

- ``loop``: K separate modules called one after another on the same batch (exact by construction);
- ``vmap``: ``torch.func.stack_module_state`` + ``functional_call`` under ``vmap`` (BatchNorm in
  train mode, running statistics stacked per member);
- ``grouped`` (SmallCNN only): one network whose convolutions have ``groups=K``.

and checks each against the loop (max abs difference of the K losses and of the first conv's
gradients). Output: one JSON line per (model, K, mechanism) with ms per step and per member-step.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from rcl_study.trainer.models import build_model


def _models(arch: str, k: int, device) -> list[nn.Module]:
    torch.manual_seed(0)
    if arch == "small_cnn":
        m = build_model("small_cnn", 1, 10, 8, 64, 32, 16)
    else:
        m = build_model("resnet32", 3, 10, 32, 128, 32)
    return [copy.deepcopy(m).to(device) for _ in range(k)]


def _loss(out, y):
    feats, logits, proj = out
    b = len(y)
    return F.cross_entropy(logits[:b], y) + proj[b:].square().mean()


def _loop_step(models, opts, x, y):
    losses = []
    for m, o in zip(models, opts):
        loss = _loss(m(x), y)
        o.zero_grad(set_to_none=True)
        loss.backward()
        o.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def _vmap_setup(models):
    from torch.func import stack_module_state

    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.SGD(params.values(), lr=0.01, momentum=0.9)
    return base, params, buffers, opt


def _vmap_step(state, x, y):
    from torch.func import functional_call, vmap

    base, params, buffers, opt = state

    def one(p, b):
        return _loss(functional_call(base, (p, b), (x,)), y)

    losses = vmap(one, in_dims=(0, 0), randomness="same")(params, buffers)
    opt.zero_grad(set_to_none=True)
    losses.sum().backward()
    opt.step()
    return losses.detach()


class _GroupedSmallCNN(nn.Module):
    """K SmallCNN backbones as one network with grouped convolutions (backbone only)."""

    def __init__(self, models):
        super().__init__()
        k = len(models)
        self.k = k
        convs = [[m for m in mm.backbone.net if isinstance(m, nn.Conv2d)] for mm in models]
        layers = []
        for i in range(3):
            c0 = convs[0][i]
            cin = c0.in_channels * k if i else c0.in_channels * k
            conv = nn.Conv2d(cin, c0.out_channels * k, 3, padding=1, groups=k)
            with torch.no_grad():
                conv.weight.copy_(torch.cat([c[i].weight for c in convs]))
                conv.bias.copy_(torch.cat([c[i].bias for c in convs]))
            layers += [conv, nn.BatchNorm2d(c0.out_channels * k), nn.ReLU()]
            if i == 1:
                layers.append(nn.MaxPool2d(2))
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc_w = nn.Parameter(torch.stack([m.fc.weight.detach() for m in models]))
        self.fc_b = nn.Parameter(torch.stack([m.fc.bias.detach() for m in models]))

    def forward(self, x):
        f = self.net(x.repeat(1, self.k, 1, 1)).view(len(x), self.k, -1)  # [B, K, d]
        return torch.einsum("bkd,kcd->kbc", f, self.fc_w) + self.fc_b[:, None], f


def _grouped_step(state, x, y):
    net, opt = state
    logits, f = net(x)
    b = len(y)
    losses = torch.stack(
        [F.cross_entropy(logits[i, :b], y) + f[b:, i].square().mean() * 0 for i in range(net.k)]
    )
    opt.zero_grad(set_to_none=True)
    losses.sum().backward()
    opt.step()
    return losses.detach()


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tiny", action="store_true", help="K 1 and 2, one repeat, 4 images (tests)")
    a = p.parse_args()
    if a.tiny:
        a.k, a.repeats = [1, 2], 1
    dev = torch.device(a.device)
    sizes = (64, 32) if not a.tiny else (4, 4)
    archs = (("small_cnn", (1, 8, 8), sizes[0]), ("resnet32", (3, 32, 32), sizes[1]))
    for arch, shape, batch in archs:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(3 * batch, *shape, generator=g).to(dev)
        y = torch.randint(0, 10, (batch,), generator=g).to(dev)
        for k in a.k:
            # exactness: one step from the same weights, compared with the loop
            ref = _models(arch, k, dev)
            ref_opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in ref]
            ref_loss = _loop_step(ref, ref_opts, x, y)
            vm = _vmap_setup(_models(arch, k, dev))
            vm_loss = _vmap_step(vm, x, y)
            first = next(iter(vm[1]))
            rows = {
                "vmap": {
                    "max_loss_diff": float((vm_loss - ref_loss).abs().max()),
                    "max_param_diff": float(
                        (vm[1][first].detach()[0] - dict(ref[0].named_parameters())[first].detach())
                        .abs()
                        .max()
                    ),
                }
            }
            models = _models(arch, k, dev)
            opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in models]
            rows["loop"] = {"ms": 1e3 * _time(partial(_loop_step, models, opts, x, y), a.repeats)}
            rows["vmap"]["ms"] = 1e3 * _time(partial(_vmap_step, vm, x, y), a.repeats)
            if arch == "small_cnn":
                net = _GroupedSmallCNN(_models(arch, k, dev)).to(dev)
                st = (net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
                rows["grouped (backbone+fc only)"] = {
                    "ms": 1e3 * _time(partial(_grouped_step, st, x, y), a.repeats)
                }
            for mech, r in rows.items():
                r.update(arch=arch, k=k, mechanism=mech, ms_per_member=r["ms"] / k)
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
