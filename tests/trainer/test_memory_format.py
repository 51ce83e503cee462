"""The memory-format rule, and a channels-last step equal to the contiguous one within tolerance."""

import dataclasses

import pytest
import torch

import rcl_study.trainer.loop as loop
from rcl_study.trainer.batches import epoch_order, gather_batch
from rcl_study.trainer.setup import memory_format, setup
from tests.conftest import TINY_STUDY

CL, NCHW = torch.channels_last, torch.contiguous_format
CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device name: no GPU needed
#: a channels-last step against a contiguous one, float32: the convolutions and BatchNorm sum the
#: same products in another order (other kernels, other blocking), so values agree to rounding,
#: not bit for bit; the float32 epsilon is 1.2e-7, and sums of a few thousand terms drift ~1e-5
RTOL, ATOL = 1e-4, 1e-5


@pytest.mark.parametrize(
    ("arch", "size", "device", "expected"),
    [
        ("resnet32", 32, CPU, CL),
        ("auto", 32, CPU, CL),  # auto at 32 px is ResNet-32
        ("small_cnn", 8, CPU, CL),
        ("auto", 8, CPU, CL),  # auto below 32 px is the small CNN
        ("small_cnn_s2", 32, CPU, CL),
        ("resnext50", 224, CPU, NCHW),
        ("resnet50", 224, CPU, NCHW),
        ("small_cnn", 8, CUDA, CL),
        ("resnet50", 224, CUDA, CL),
    ],
)
def test_the_rule_picks_the_measured_memory_format(arch, size, device, expected):
    assert memory_format(arch, size, device) == expected


def _trial(arch, fmt=None, dtype=torch.float32):
    """A tiny digits trial of ``arch``; ``fmt``: its network forced to that memory format."""
    cfg = TINY_STUDY.parse(model={"arch": arch}, train={"progress": False, "threads": 1})
    trial = setup(cfg)
    fmt = fmt or trial.net.memory_format
    trial.net.core.to(dtype=dtype, memory_format=fmt)
    trial.net = dataclasses.replace(trial.net, memory_format=fmt)
    return trial


def test_the_network_is_built_in_the_rules_format(monkeypatch):
    import rcl_study.trainer.setup as trial_setup

    for arch, fmt in (("resnet32", CL), ("small_cnn_s2", CL), ("small_cnn", NCHW)):
        if fmt is NCHW:  # an architecture the rule keeps contiguous on the CPU
            monkeypatch.setattr(trial_setup, "CPU_CHANNELS_LAST", frozenset({"resnet32"}))
        net = _trial(arch).net
        assert net.memory_format == fmt
        convs = [m for m in net.core.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(c.weight.is_contiguous(memory_format=fmt) for c in convs), arch


def _first_step(fmt, dtype):
    """The losses and the gradients (float64 copies) of a ResNet-32 trial's first step."""
    trial = _trial("resnet32", fmt, dtype)
    order = epoch_order(trial.data, trial.sched, trial.gens.perm, 0)
    xb, yb = gather_batch(trial.data, order, 0)
    inp = loop.batch_inputs(xb, trial.gens.aug, trial.data).to(dtype)
    losses = loop.forward_loss(trial.net, trial.spec, inp, yb, trial.data.counts)
    losses["loss"].backward()
    params = dict(trial.net.core.named_parameters())
    if fmt == CL:  # the layouts really differ
        assert params["backbone.layers.0.conv1.weight"].is_contiguous(memory_format=CL)
        assert not params["backbone.layers.0.conv1.weight"].is_contiguous()
    # the projection MLPs' first biases feed a BatchNorm: their true gradient is 0, left out
    grads = {k: p.grad.double() for k, p in params.items() if not k.endswith(".0.bias")}
    return {k: losses[k].double() for k in loop.LOSS_KEYS}, grads


def _relative_error(a: dict, b: dict) -> float:
    diff = torch.cat([(a[k] - b[k]).flatten() for k in b]).norm()
    return float(diff / torch.cat([v.flatten() for v in b.values()]).norm())


def test_a_channels_last_step_equals_the_contiguous_step_within_float_tolerance():
    """Same losses and gradients in either layout, up to the order of the float sums.

    Channels-last runs other convolution and BatchNorm kernels, which sum the same products in
    another order: in float64 the two steps agree to 1e-10. In float32 the losses agree to
    1e-6, but the gradients of the untrained network's early layers are ill-conditioned:
    float32 rounding alone moves them by about 1% whatever the layout (the contiguous float32
    step is that far from the float64 one), so each float32 step is held to 5% (all gradients
    together, relative L2 error) of the float64 step.
    """
    ref_loss, ref_grad = _first_step(NCHW, torch.float64)
    cl_loss, cl_grad = _first_step(CL, torch.float64)
    for k in ref_loss:
        torch.testing.assert_close(cl_loss[k], ref_loss[k], rtol=1e-10, atol=0)
    assert _relative_error(cl_grad, ref_grad) < 1e-10
    for fmt in (NCHW, CL):
        loss32, grad32 = _first_step(fmt, torch.float32)
        for k in ref_loss:
            torch.testing.assert_close(loss32[k], ref_loss[k], rtol=1e-6, atol=0)
        err = _relative_error(grad32, ref_grad)
        assert err < 0.05, (fmt, err)
