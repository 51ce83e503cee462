"""A stacked network equals its members run one by one; a batched pack equals a looped one.

In float64 the stacked forward, gradients and SGD steps agree with the members' own to about
1e-15 (only the order of sums inside grouped kernels differs); the pack tests run in float32
and compare after a few steps with a tolerance that allows for that order.
"""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import rcl_study.trainer.loop as train
import rcl_study.trainer.pack as pack
from rcl_study.trainer.models import BCLNet, build_model
from rcl_study.trainer.result import TrialStatus
from rcl_study.trainer.stacked import StackedSGD, stack, why_not_stackable
from tests.conftest import DROP, TINY_STUDY

NETS = [
    ("small_cnn", 1, 8, "linear"),
    ("small_cnn_s2", 3, 16, "cosine"),
    ("resnet32", 3, 32, "linear"),
    ("resnet32", 3, 32, "cosine"),
]


def _members(arch, channels, size, classifier, k=3):
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(build_model(arch, channels, 10, size, 16, 8, 4, "batch", classifier).double())
    return nets


def _toy_loss(logits, proj, protos, y, k):
    """A loss touching every output, different per member ``k``."""
    b = len(y)
    return F.cross_entropy(logits[:b], y) + (k + 1) * (proj[b:] @ protos.T).square().mean()


@pytest.mark.parametrize("arch,channels,size,classifier", NETS)
def test_stacked_forward_equals_each_member(arch, channels, size, classifier):
    nets = _members(arch, channels, size, classifier)
    alone = copy.deepcopy(nets)
    x = torch.randn(12, channels, size, size, dtype=torch.float64)
    feats, logits, proj = stack(nets)(x)
    protos = stack(nets).prototypes()
    for k, net in enumerate(alone):
        f, lg, p = net(x)
        for got, want in ((feats[:, k], f), (logits[:, k], lg), (proj[:, k], p)):
            assert torch.allclose(got, want, atol=1e-12, rtol=0)
        assert torch.allclose(protos[k], net.prototypes(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("arch,channels,size,classifier", NETS)
def test_stacked_sgd_steps_equal_each_member_trained_alone(arch, channels, size, classifier):
    nets = _members(arch, channels, size, classifier)
    alone = copy.deepcopy(nets)
    sgd = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
    opts = [torch.optim.SGD(n.parameters(), **sgd) for n in nets]
    alone_opts = [torch.optim.SGD(n.parameters(), **sgd) for n in alone]
    g = torch.Generator().manual_seed(0)
    for step in range(3):
        x = torch.randn(12, channels, size, size, generator=g, dtype=torch.float64)
        y = torch.randint(0, 10, (4,), generator=g)
        lr = 0.1 / (step + 1)
        net = stack(nets)  # restacked every step: writing back and joining again is exact
        opt = StackedSGD(net, opts)
        _, logits, proj = net(x)
        protos = net.prototypes()
        total = sum(_toy_loss(logits[:, k], proj[:, k], protos[k], y, k) for k in range(3))
        opt.zero_grad()
        total.backward()
        opt.step(lr)
        net.write_back()
        opt.write_back()
        for k, (m, o) in enumerate(zip(alone, alone_opts)):
            for group in o.param_groups:
                group["lr"] = lr
            _, lg, p = m(x)
            o.zero_grad()
            _toy_loss(lg, p, m.prototypes(), y, k).backward()
            o.step()
    for net, opt, ref, ref_opt in zip(nets, opts, alone, alone_opts):
        got, want = net.state_dict(), ref.state_dict()
        for key in want:  # weights, BatchNorm statistics and batch counters
            assert torch.allclose(got[key].double(), want[key].double(), atol=1e-10), key
        for p, q in zip(net.parameters(), ref.parameters()):
            a, b = opt.state[p]["momentum_buffer"], ref_opt.state[q]["momentum_buffer"]
            assert torch.allclose(a, b, atol=1e-10)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 3)


def test_a_part_without_a_stacked_form_is_named_and_refused():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.norm = nn.GroupNorm(2, 4)
            self.out_dim = 4

        def forward(self, x):
            return self.norm(self.conv(x)).mean((2, 3))

    net = BCLNet(Odd(), 10, 8, 4)
    assert why_not_stackable(net) == "its part 'backbone' (Odd) has no stacked form"
    with pytest.raises(ValueError, match="cannot stack this network: its part 'backbone'"):
        stack([net, copy.deepcopy(net)])


# ------------------------------------------------------------------------------------------------
# packs

TINY_HERE = {
    "name": "p",
    "data": {"imbalance_ratio": DROP},
    "train": {"epochs": 2, "max_steps_per_epoch": 3, "progress": False},
    "loss": DROP,
    "study": DROP,
    "resources": DROP,
}
#: members that use the same heads (the prototypes), so they can be stacked
KNOBS = [
    {"balance": 0.0, "scale": 1.0, "margin": 0.0},
    {"balance": 1.0, "scale": 1.2, "margin": 0.5},
    {"balance": 1.0, "scale": 1.0, "margin": 2.0, "class_averaging": False},
]
#: six float32 steps: the grouped kernels sum in another order (float64 above: 1e-10)
TOL = 1e-4


def _cfg(knobs, mechanism="batched", **train_cfg):
    return TINY_STUDY.parse(
        TINY_HERE, loss=knobs, train=train_cfg, resources={"pack_mechanism": mechanism}
    )


def _quiet(msg):
    pass


def _close(a, b):
    for key in ("top1", "balanced_acc", "loss", "loss_cls", "loss_con", "compactness"):
        assert a.metrics[key] == pytest.approx(b.metrics[key], abs=TOL), key
    assert [h["loss"] for h in a.history] == pytest.approx([h["loss"] for h in b.history], abs=TOL)


def test_batched_pack_equals_looped_pack_and_separate_runs():
    names = ["a", "b", "c"]
    batched = pack.train_pack([_cfg(k) for k in KNOBS], names, log=_quiet)
    looped = pack.train_pack([_cfg(k, "loop") for k in KNOBS], names, log=_quiet)
    separate = [train.train_trial(_cfg(k), log=_quiet) for k in KNOBS]
    for b, lo, s in zip(batched, looped, separate):
        assert b.status is lo.status is TrialStatus.OK
        _close(b, lo)
        _close(b, s)
    assert batched[0].metrics["loss"] != batched[1].metrics["loss"]


def test_batched_member_diverges_the_others_go_on(monkeypatch):
    real = pack.total_loss

    def nan_for_scale_12(spec, *args, **kwargs):
        out = real(spec, *args, **kwargs)
        if spec.scale == 1.2:  # member "b" only
            out["loss"] = out["loss"] * float("nan")
        return out

    looped = pack.train_pack([_cfg(k, "loop") for k in KNOBS], ["a", "b", "c"], log=_quiet)
    monkeypatch.setattr(pack, "total_loss", nan_for_scale_12)
    batched = pack.train_pack([_cfg(k) for k in KNOBS], ["a", "b", "c"], log=_quiet)
    assert batched[1].status is TrialStatus.DIVERGED
    assert batched[1].reason == "non-finite loss at epoch 1, step 1"
    for b, lo in zip((batched[0], batched[2]), (looped[0], looped[2])):
        assert b.status is TrialStatus.OK  # a NaN in one member's slices stays there
        _close(b, lo)


def test_mechanism_choice_and_refusal():
    said = []
    members = pack.setup_pack([_cfg(k) for k in KNOBS], ["a", "b", "c"])
    assert pack.pack_mechanism("batched", members, said.append) == "batched"
    assert pack.pack_mechanism("loop", members, said.append) == "loop"
    assert pack.pack_mechanism("batched", members[:1], said.append) == "loop"  # K = 1
    assert said == []
    # a member without the prototype head: the stack would decay weights it leaves alone
    mixed = pack.setup_pack([_cfg(k) for k in (KNOBS[0], {"prototypes": False})], ["a", "b"])
    assert pack.batching_refusal(mixed) == "members differ in which heads their losses train"
    assert pack.pack_mechanism("auto", mixed, said.append) == "loop"
    pack.pack_mechanism("batched", mixed, said.append)
    assert said == [
        "[pack] trained in a loop, not batched: members differ in which heads their losses train"
    ]
