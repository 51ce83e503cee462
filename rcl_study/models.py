"""Backbones (small CNN, ResNet-32, torchvision ResNet-50 / ResNeXt-50) and BCL's heads."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def _norm2d(kind: str, channels: int) -> nn.Module:
    """BatchNorm (``batch``, ``sync_batch``: converted to SyncBatchNorm under DDP) or nothing."""
    return nn.Identity() if kind == "none" else nn.BatchNorm2d(channels)


def _norm1d(kind: str, channels: int) -> nn.Module:
    return nn.Identity() if kind == "none" else nn.BatchNorm1d(channels)


class SmallCNN(nn.Module):
    """A small CNN for the 8x8 digits (or any small image): three conv layers, global pooling."""

    def __init__(self, in_channels: int = 1, width: int = 32, norm: str = "batch"):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            _norm2d(norm, width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            _norm2d(norm, 2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            _norm2d(norm, 2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = 2 * width

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> ``[B, 2 * width]``."""
        return self.net(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str = "batch"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _norm2d(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _norm2d(norm, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), _norm2d(norm, cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet32(nn.Module):
    """ResNet-32 for 32x32 inputs (He et al. 2016), the LDAM-DRW / BCL CIFAR backbone.

    Three stages of five basic blocks at widths 16/32/64 (BCL's code uses these widths; output
    64-d). Projection shortcuts where the shape changes.
    """

    def __init__(
        self, in_channels: int = 3, blocks: int = 5, widths=(16, 32, 64), norm: str = "batch"
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            _norm2d(norm, widths[0]),
            nn.ReLU(),
        )
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                layers.append(_BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1, norm))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.out_dim = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, 32, 32]`` -> ``[B, 64]``."""
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)


def _torchvision(arch: str) -> nn.Module:
    import torchvision

    net = (
        torchvision.models.resnet50()
        if arch == "resnet50"
        else torchvision.models.resnext50_32x4d()
    )
    net.out_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net


def _mlp(din: int, hidden: int, dout: int, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(din, hidden), _norm1d(norm, hidden), nn.ReLU(), nn.Linear(hidden, dout)
    )


class BCLNet(nn.Module):
    """Backbone plus BCL's three heads (Zhu et al. 2022).

    - ``head``: projection MLP for the contrastive views, output L2-normalised ``[B, proj_dim]``;
    - ``fc``: linear classifier on the backbone features (raw logits ``[B, C]``);
    - ``head_fc``: MLP that turns the classifier weights into class prototypes, L2-normalised
      ``[C, proj_dim]`` (BCL's class-complement).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        proj_hidden: int = 512,
        proj_dim: int = 128,
        norm: str = "batch",
    ):
        super().__init__()
        self.backbone = backbone
        d = backbone.out_dim
        self.head = _mlp(d, proj_hidden, proj_dim, norm)
        self.fc = nn.Linear(d, num_classes)
        self.head_fc = _mlp(d, proj_hidden, proj_dim, norm)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, C, H, W]`` -> (backbone features ``[B, d]``, logits ``[B, C]``, projections)."""
        feats = self.backbone(x)
        return feats, self.fc(feats), F.normalize(self.head(feats), dim=1)

    def prototypes(self) -> Tensor:
        """L2-normalised class prototypes ``[C, proj_dim]`` from the classifier weights."""
        return F.normalize(self.head_fc(self.fc.weight), dim=1)


def pick_arch(arch: str, image_size: int) -> str:
    """Resolve ``auto``: small CNN below 32 px, ResNet-32 at 32 px, ResNet-50 above."""
    if arch != "auto":
        return arch
    if image_size < 32:
        return "small_cnn"
    return "resnet32" if image_size <= 32 else "resnet50"


def build_model(
    arch: str,
    in_channels: int,
    num_classes: int,
    image_size: int,
    proj_hidden: int = 512,
    proj_dim: int = 128,
    width: int = 32,
    norm: str = "batch",
) -> BCLNet:
    """The model of a trial: backbone by name plus BCL heads.

    ``norm``: ``batch`` (BatchNorm, as BCL), ``sync_batch`` (the trainer converts it to
    SyncBatchNorm under multi-GPU DDP), or ``none``.
    """
    arch = pick_arch(arch, image_size)
    if arch == "small_cnn":
        backbone: nn.Module = SmallCNN(in_channels, width, norm)
    elif arch == "resnet32":
        backbone = ResNet32(in_channels, norm=norm)
    elif arch in ("resnet50", "resnext50"):
        if in_channels != 3:
            raise ValueError(f"{arch} needs 3-channel images, got {in_channels}")
        if norm == "none":
            raise ValueError(f"{arch}: model.norm 'none' is only for resnet32 and small_cnn")
        backbone = _torchvision(arch)
    else:
        raise ValueError(f"unknown arch '{arch}'")
    return BCLNet(backbone, num_classes, proj_hidden, proj_dim, norm)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
