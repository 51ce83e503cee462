"""K networks of one architecture run as one: grouped convolutions, per-member BatchNorm.

:func:`stack` turns the K members' :class:`~rcl_study.trainer.models.BCLNet` modules into one
:class:`StackedNet` whose activations hold the members side by side along the channel axis
(``[B, K * C, ...]``, member-major): a convolution becomes one convolution with ``K`` times its
groups, a BatchNorm one BatchNorm over ``K * C`` channels (a BatchNorm's statistics are per
channel, so per member), a linear layer a batched matrix product over stacked weights. No value
crosses from one member's channels to another's, so each member's outputs and gradients are those
of its own network; only the order of floating-point sums inside a grouped kernel may differ.

:class:`StackedSGD` steps the stacked parameters with the members' SGD settings (SGD acts element
by element, so one step over the stack is K steps). :meth:`StackedNet.write_back` and
:meth:`StackedSGD.write_back` copy weights, BatchNorm statistics and momentum buffers back to the
members, which stay the source of truth for evaluation and checkpoints.

Only convolutions, BatchNorm, linear layers, option-A shortcuts, the parameter-free layers in
``_CHANNELWISE`` and the containers in ``_CONTAINERS`` are stacked (the small CNNs and ResNet-32
with either classifier); :func:`why_not_stackable` names what is not.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rcl_study.trainer.models import (
    BCLNet,
    NormedLinear,
    ResNet32,
    SmallCNN,
    _BasicBlock,
    _ShortcutA,
)

#: modules whose forward only calls their children and channel-agnostic functions
_CONTAINERS = (nn.Sequential, SmallCNN, ResNet32, _BasicBlock)
#: modules without parameters that act on each channel alone
_CHANNELWISE = (nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity)


@dataclass(frozen=True)
class _Tie:
    """A stacked tensor and the members' tensors it stands for.

    ``how``: ``cat`` (joined along dim 0), ``stack`` (a new dim 0) or ``shared`` (one value that
    every member holds, as a BatchNorm's batch counter).
    """

    stacked: Tensor
    members: tuple[Tensor, ...]
    how: str

    def parts(self, t: Tensor) -> tuple[Tensor, ...]:
        """``t`` (shaped like ``stacked``) split into the members' shapes."""
        if self.how == "shared":
            return (t,) * len(self.members)
        return t.chunk(len(self.members)) if self.how == "cat" else t.unbind(0)


class _Ties:
    """Builds the stacked parameters and buffers, remembering the members' tensors of each."""

    def __init__(self, memory_format: torch.memory_format) -> None:
        self.params: list[_Tie] = []
        self.buffers: list[_Tie] = []
        self.memory_format = memory_format

    def join(self, members: list[Tensor], how: str) -> Tensor:
        """The members' tensors joined ``how`` (a new tensor, laid out as :meth:`laid_out`)."""
        parts = [m.detach() for m in members]
        t = (
            parts[0].clone()
            if how == "shared"
            else (torch.cat if how == "cat" else torch.stack)(parts)
        )
        return self.laid_out(t)

    def laid_out(self, t: Tensor) -> Tensor:
        """``t`` in the networks' memory format where it is a 4-d tensor, else contiguous."""
        return t.contiguous(memory_format=self.memory_format) if t.dim() == 4 else t.contiguous()

    def param(self, members: list[Tensor], how: str) -> nn.Parameter:
        """A new parameter joining the members' tensors ``how``."""
        p = nn.Parameter(self.join(members, how))
        self.params.append(_Tie(p, tuple(members), how))
        return p

    def buffer(self, module: nn.Module, name: str, members: list[Tensor], how: str) -> None:
        """Register ``name`` on ``module``: a buffer joining the members' tensors ``how``."""
        module.register_buffer(name, self.join(members, how))
        self.buffers.append(_Tie(getattr(module, name), tuple(members), how))


class _StackedLinear(nn.Module):
    """K linear layers: ``[B, K * in]`` -> ``[B, K * out]`` (member-major)."""

    def __init__(self, layers: list[nn.Linear], ties: _Ties):
        super().__init__()
        self.k = len(layers)
        self.weight = ties.param([m.weight for m in layers], "stack")  # [K, out, in]
        self.bias = (
            None if layers[0].bias is None else ties.param([m.bias for m in layers], "stack")
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, K * in]`` -> ``[B, K * out]``."""
        out = torch.einsum("bki,koi->bko", x.view(len(x), self.k, -1), self.weight)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(len(x), -1)


class _StackedShortcut(nn.Module):
    """K option-A shortcuts: subsample, then zero-pad each member's channels."""

    def __init__(self, first: _ShortcutA, k: int):
        super().__init__()
        self.stride, self.pad, self.k = first.stride, first.pad, k

    def forward(self, x: Tensor) -> Tensor:
        """``[B, K * cin, H, W]`` -> ``[B, K * cout, H', W']``."""
        x = x[:, :, :: self.stride, :: self.stride]
        b, _, h, w = x.shape
        x = F.pad(x.reshape(b, self.k, -1, h, w), (0, 0, 0, 0, self.pad, self.pad))
        return x.reshape(b, -1, h, w)


def _conv(layers: list[nn.Conv2d], ties: _Ties) -> nn.Conv2d:
    c, k = layers[0], len(layers)
    out = nn.Conv2d(
        c.in_channels * k,
        c.out_channels * k,
        c.kernel_size,
        c.stride,
        c.padding,
        c.dilation,
        c.groups * k,
        c.bias is not None,
        c.padding_mode,
        device=c.weight.device,
        dtype=c.weight.dtype,
    )
    out.weight = ties.param([m.weight for m in layers], "cat")
    if c.bias is not None:
        out.bias = ties.param([m.bias for m in layers], "cat")
    return out


def _norm(layers: list[nn.BatchNorm1d | nn.BatchNorm2d], ties: _Ties) -> nn.Module:
    b, k = layers[0], len(layers)
    out = type(b)(
        b.num_features * k,
        b.eps,
        b.momentum,
        b.affine,
        b.track_running_stats,
        device=b.weight.device if b.affine else None,
    )
    if b.affine:
        out.weight = ties.param([m.weight for m in layers], "cat")
        out.bias = ties.param([m.bias for m in layers], "cat")
    if b.track_running_stats:
        ties.buffer(out, "running_mean", [m.running_mean for m in layers], "cat")
        ties.buffer(out, "running_var", [m.running_var for m in layers], "cat")
        ties.buffer(out, "num_batches_tracked", [m.num_batches_tracked for m in layers], "shared")
    return out


def _same_shapes(layers: list[nn.Module]) -> bool:
    first = [(n, t.shape) for n, t in layers[0].state_dict().items()]
    return all([(n, t.shape) for n, t in m.state_dict().items()] == first for m in layers[1:])


def why_not_stackable(module: nn.Module) -> str | None:
    """Why a member's module cannot be stacked (None when every part can)."""
    for name, m in module.named_modules():
        if name == "" and isinstance(m, BCLNet):
            continue
        if isinstance(m, (*_CONTAINERS, *_CHANNELWISE, _ShortcutA, nn.Linear, NormedLinear)):
            continue
        if isinstance(m, nn.Conv2d) and m.padding_mode == "zeros":
            continue
        if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):  # not SyncBatchNorm or subclasses
            continue
        return f"its part '{name}' ({type(m).__name__}) has no stacked form"
    return None


def _stack_module(layers: list[nn.Module], ties: _Ties) -> nn.Module:
    """The stacked form of the members' corresponding modules."""
    first, k = layers[0], len(layers)
    if isinstance(first, nn.Conv2d):
        return _conv(layers, ties)  # type: ignore[arg-type]
    if isinstance(first, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _norm(layers, ties)  # type: ignore[arg-type]
    if isinstance(first, nn.Linear):
        return _StackedLinear(layers, ties)  # type: ignore[arg-type]
    if isinstance(first, _ShortcutA):
        return _StackedShortcut(first, k)
    if isinstance(first, _CHANNELWISE):
        return copy.deepcopy(first)
    if isinstance(first, _CONTAINERS):
        shell = copy.copy(first)  # the container's attributes and forward, new children
        shell._modules = {
            name: _stack_module([getattr(m, name) for m in layers], ties) for name in first._modules
        }
        shell._parameters, shell._buffers = {}, {}
        return shell
    raise TypeError(f"{type(first).__name__} has no stacked form")


class StackedNet(nn.Module):
    """K :class:`BCLNet` members as one network (module docstring).

    Shape:
        - input: ``[B, C, H, W]``, the same images for every member;
        - output: features ``[B, K, d]``, logits ``[B, K, classes]``, normalised projections
          ``[B, K, proj_dim]``; :meth:`prototypes`: ``[K, classes, proj_dim]``.
    """

    def __init__(self, members: list[BCLNet], memory_format=torch.contiguous_format):
        super().__init__()
        self.k = len(members)
        self.memory_format = memory_format
        self.ties = _Ties(memory_format)
        ties = self.ties
        self.backbone = _stack_module([m.backbone for m in members], ties)
        self.head = _stack_module([m.head for m in members], ties)
        self.head_fc = _stack_module([m.head_fc for m in members], ties)
        self.cosine = isinstance(members[0].fc, NormedLinear)
        self.fc_scale = members[0].fc.scale if self.cosine else 1.0
        self.fc_weight = ties.param([m.fc.weight for m in members], "stack")  # [K, classes, d]
        bias = None if self.cosine else members[0].fc.bias
        self.fc_bias = None if bias is None else ties.param([m.fc.bias for m in members], "stack")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, C, H, W]`` -> features, logits and projections, each ``[B, K, ...]``."""
        b = len(x)
        x = x.repeat(1, self.k, 1, 1).contiguous(memory_format=self.memory_format)
        flat = self.backbone(x)  # [B, K * d]
        feats = flat.view(b, self.k, -1)
        w = self.fc_weight
        if self.cosine:
            logits = self.fc_scale * torch.einsum(
                "bkd,kcd->bkc", F.normalize(feats, dim=2), F.normalize(w, dim=2)
            )
        else:
            logits = torch.einsum("bkd,kcd->bkc", feats, w)
            if self.fc_bias is not None:
                logits = logits + self.fc_bias
        proj = F.normalize(self.head(flat).view(b, self.k, -1), dim=2)
        return feats, logits, proj

    def prototypes(self) -> Tensor:
        """Each member's L2-normalised class prototypes ``[K, classes, proj_dim]``."""
        k, classes, d = self.fc_weight.shape
        rows = self.fc_weight.permute(1, 0, 2).reshape(classes, k * d)
        return F.normalize(self.head_fc(rows).view(classes, k, -1), dim=2).permute(1, 0, 2)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the stacked weights and BatchNorm statistics into the members' modules."""
        for tie in self.ties.params + self.ties.buffers:
            for member, part in zip(tie.members, tie.parts(tie.stacked)):
                member.copy_(part)


def stack(
    members: list[BCLNet], memory_format: torch.memory_format = torch.contiguous_format
) -> StackedNet:
    """One :class:`StackedNet` of ``members`` (equal architectures), on their device.

    ``memory_format``: the members' (``Net.memory_format``); the stacked weights and inputs use it.

    Raises:
        ValueError: a member has a part without a stacked form, or the members' shapes differ.

    """
    for m in members:
        why = why_not_stackable(m)
        if why:
            raise ValueError(f"cannot stack this network: {why}")
    if not _same_shapes(members):
        raise ValueError("cannot stack networks of different shapes")
    return StackedNet(members, memory_format)


class StackedSGD:
    """SGD over a :class:`StackedNet`'s parameters with the members' settings and momentum.

    ``members``: the members' optimisers (``torch.optim.SGD``, or Accelerate's wrapper of one),
    all with the same settings. Their momentum buffers are joined into the stacked optimiser's
    state; :meth:`write_back` splits them back.
    """

    def __init__(self, net: StackedNet, members: list[torch.optim.Optimizer]):
        self.net = net
        self.members = [getattr(o, "optimizer", o) for o in members]
        groups = [o.param_groups for o in self.members]
        settings = [[_settings(g) for g in gs] for gs in groups]
        if any(s != settings[0] for s in settings[1:]) or len(settings[0]) != 1:
            raise ValueError("stacked members need one SGD parameter group with equal settings")
        self.opt = torch.optim.SGD([t.stacked for t in net.ties.params], **settings[0][0])
        for tie in net.ties.params:
            bufs = [self._buffer(o, p) for o, p in zip(self.members, tie.members)]
            if all(b is not None for b in bufs):
                joined = net.ties.join(bufs, tie.how)  # type: ignore[arg-type]
                self.opt.state[tie.stacked]["momentum_buffer"] = joined

    @staticmethod
    def _buffer(opt: torch.optim.Optimizer, p: Tensor) -> Tensor | None:
        return opt.state.get(p, {}).get("momentum_buffer")

    def step(self, lr: float) -> None:
        """One SGD step of every member at ``lr`` (gradients already computed)."""
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()

    def zero_grad(self) -> None:
        """Drop the stacked gradients."""
        self.opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the momentum buffers and the last rate into the members' optimisers."""
        lr = self.opt.param_groups[0]["lr"]
        for o in self.members:
            for group in o.param_groups:
                group["lr"] = lr
        for tie in self.net.ties.params:
            buf = self.opt.state.get(tie.stacked, {}).get("momentum_buffer")
            if buf is None:
                continue
            for o, p, part in zip(self.members, tie.members, tie.parts(buf)):
                o.state[p]["momentum_buffer"] = self.net.ties.laid_out(part.clone())


def _settings(group: dict) -> dict:
    keys = ("momentum", "dampening", "weight_decay", "nesterov", "maximize")
    return {k: group[k] for k in keys if k in group}
