"""Backbones (small CNN, ResNet-32, torchvision ResNet-50 / ResNeXt-50) and BCL's heads."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def _norm2d(kind: str, channels: int) -> nn.Module:
    """BatchNorm (``batch``, ``sync_batch``: converted to SyncBatchNorm under DDP) or nothing."""
    return nn.Identity() if kind == "none" else nn.BatchNorm2d(channels)


def _norm1d(kind: str, channels: int) -> nn.Module:
    return nn.Identity() if kind == "none" else nn.BatchNorm1d(channels)


class SmallCNN(nn.Module):
    """A small CNN for the 8x8 digits (or any small image): three conv layers, global pooling.

    ``stem_stride`` is the first convolution's stride: 1 (``small_cnn``) keeps the input's size
    until the max-pool; 2 (``small_cnn_s2``) halves it at once, so a 28 px image is convolved at
    14 and 7 px: about a quarter of the multiply-adds (``benchmarks/small_cnn_stem.py``).
    """

    def __init__(
        self, in_channels: int = 1, width: int = 32, norm: str = "batch", stem_stride: int = 1
    ):
        super().__init__()
        if stem_stride < 1:
            raise ValueError(f"stem_stride must be >= 1, got {stem_stride}")
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1),
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


# The CIFAR ResNet-32 follows LDAM-DRW (Cao et al. 2019), github.com/kaidic/LDAM-DRW,
# models/resnet_cifar.py (commit 2536330): option-A shortcut at lines 70-75, Kaiming-normal init of
# every Conv2d and Linear weight at lines 32-35 (applied at line 105), resnet32 = [5, 5, 5] blocks
# at lines 131-132, "ResNet32 | 32 | 0.46M" at line 11. BCL's CIFAR results use this network.


class _ShortcutA(nn.Module):
    """Option-A shortcut (He et al. 2016, Sec. 4.2): subsample by ``stride``, zero-pad channels.

    No parameters. Pads ``(cout - cin) // 2`` zero channels on each side, as LDAM-DRW's
    ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`` (resnet_cifar.py line 75)
    does for ``cout = 2 * cin``.
    """

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        if (cout - cin) % 2 or cout < cin:
            raise ValueError(f"option-A shortcut needs cout - cin even and >= 0, got {cin}->{cout}")
        self.stride, self.pad = stride, (cout - cin) // 2

    def forward(self, x: Tensor) -> Tensor:
        """``[B, cin, H, W]`` -> ``[B, cout, ceil(H / stride), ceil(W / stride)]``."""
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str = "batch"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _norm2d(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _norm2d(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = _ShortcutA(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet32(nn.Module):
    """ResNet-32 for 32x32 inputs (He et al. 2016) as LDAM-DRW defines it, BCL's CIFAR backbone.

    A 3x3 stem conv to 16 channels, then three stages of five basic blocks at widths 16/32/64
    (stride 2 at the first block of stages 2 and 3), global average pooling: output 64-d.
    Option-A shortcuts (parameter-free subsampling plus zero channels) where the shape changes;
    every conv weight Kaiming-normal, ``std = sqrt(2 / fan_in)`` (LDAM-DRW resnet_cifar.py lines
    32-35, ``init.kaiming_normal_`` defaults). 463,504 parameters (with BatchNorm); with LDAM's
    10-class linear layer 464,154, the "0.46M" of resnet_cifar.py line 11.
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
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, 32, 32]`` -> ``[B, 64]``."""
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)


class NormedLinear(nn.Module):
    """Cosine classifier: ``scale * <x / |x|, w_c / |w_c|>`` for every class c, no bias.

    BCL's ``NormedLinear`` (github.com/FlamieZhu/Balanced-Contrastive-Learning, models/resnext.py
    lines 8-18, commit f72d070; used when ``--use_norm``, default True, main.py line 66), scale 30.
    BCL stores the weight as ``[in, out]`` and feeds ``fc.weight.T`` to its prototype head (line
    308); here it is ``[out, in]`` like ``nn.Linear``, so :meth:`BCLNet.prototypes` reads
    ``fc.weight`` for either classifier. Init as BCL's: uniform in [-1, 1], then every class vector
    rescaled to unit L2 norm (``uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)``).
    BCL's code covers ImageNet-LT and iNaturalist only; BCL-derived CIFAR codes keep a plain linear
    classifier by default (ProCo_cifar/main.py line 66), without BCL's per-class prototypes. The
    CIFAR studies choose this classifier (``model.classifier: cosine``, ``docs/recipe.md`` row 6);
    the global default stays ``linear``.

    Shape:
        - input: ``[B, in_features]``; weight: ``[out_features, in_features]``;
          output: ``[B, out_features]``, each entry in ``[-scale, scale]``.
    """

    def __init__(self, in_features: int, out_features: int, scale: float = 30.0):
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0)
            self.weight.div_(self.weight.norm(dim=1, keepdim=True))

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in]`` -> ``[B, out]`` scaled cosine similarities."""
        return self.scale * F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T


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
    - ``fc``: classifier on the backbone features (raw logits ``[B, C]``): ``nn.Linear``
      (``classifier="linear"``) or BCL's cosine :class:`NormedLinear` (``"cosine"``, scale 30);
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
        classifier: str = "linear",
    ):
        super().__init__()
        self.backbone = backbone
        d = backbone.out_dim
        self.head = _mlp(d, proj_hidden, proj_dim, norm)
        if classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier '{classifier}', expected one of {CLASSIFIERS}")
        self.fc = (
            NormedLinear(d, num_classes) if classifier == "cosine" else nn.Linear(d, num_classes)
        )
        self.head_fc = _mlp(d, proj_hidden, proj_dim, norm)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, C, H, W]`` -> (backbone features ``[B, d]``, logits ``[B, C]``, projections)."""
        feats = self.backbone(x)
        return feats, self.fc(feats), F.normalize(self.head(feats), dim=1)

    def prototypes(self) -> Tensor:
        """L2-normalised class prototypes ``[C, proj_dim]`` from the classifier weights."""
        return F.normalize(self.head_fc(self.fc.weight), dim=1)


CLASSIFIERS = ("linear", "cosine")


# The registered backbones (``model.arch``; ``rcl_study.registry``): each is
# ``build(in_channels, image_size, width, norm) -> nn.Module`` with an int ``out_dim``, mapping
# ``[B, in_channels, image_size, image_size]`` to ``[B, out_dim]`` features.


def small_cnn(in_channels: int, image_size: int, width: int = 32, norm: str = "batch") -> nn.Module:
    """The registered ``small_cnn``: :class:`SmallCNN`."""
    return SmallCNN(in_channels, width, norm)


def small_cnn_s2(
    in_channels: int, image_size: int, width: int = 32, norm: str = "batch"
) -> nn.Module:
    """The registered ``small_cnn_s2``: :class:`SmallCNN` with a stride-2 first convolution.

    For 28 px images (Fashion-MNIST) on a CPU: the real-data sweeps use it to afford enough
    steps to train to a plateau. Needs ``image_size >= 4`` (two halvings leave at least 1 px).
    """
    if image_size < 4:
        raise ValueError(f"small_cnn_s2 halves the image twice: needs >= 4 px, got {image_size}")
    return SmallCNN(in_channels, width, norm, stem_stride=2)


def resnet32(in_channels: int, image_size: int, width: int = 32, norm: str = "batch") -> nn.Module:
    """The registered ``resnet32``: :class:`ResNet32` (``width`` unused)."""
    return ResNet32(in_channels, norm=norm)


def _imagenet_net(arch: str, in_channels: int, norm: str) -> nn.Module:
    if in_channels != 3:
        raise ValueError(f"{arch} needs 3-channel images, got {in_channels}")
    if norm == "none":
        raise ValueError(f"{arch}: model.norm 'none' is only for resnet32 and the small CNNs")
    return _torchvision(arch)


def resnet50(in_channels: int, image_size: int, width: int = 32, norm: str = "batch") -> nn.Module:
    """The registered ``resnet50``: torchvision's ResNet-50 without its classifier."""
    return _imagenet_net("resnet50", in_channels, norm)


def resnext50(in_channels: int, image_size: int, width: int = 32, norm: str = "batch") -> nn.Module:
    """The registered ``resnext50``: torchvision's ResNeXt-50 32x4d without its classifier."""
    return _imagenet_net("resnext50", in_channels, norm)


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
    classifier: str = "linear",
) -> BCLNet:
    """The model of a trial: backbone by name plus BCL heads.

    ``norm``: ``batch`` (BatchNorm, as BCL), ``sync_batch`` (the trainer converts it to
    SyncBatchNorm under multi-GPU DDP), or ``none``. ``classifier``: ``linear`` or ``cosine``
    (:class:`NormedLinear`). With ``resnet32`` a linear classifier's weight is Kaiming-normal
    like the backbone's convs (LDAM-DRW resnet_cifar.py lines 32-35); the projection and
    prototype MLPs keep PyTorch's default init (they are not part of LDAM-DRW's network).
    """
    from rcl_study.registry import RegistryError, get

    arch = pick_arch(arch, image_size)
    try:
        build = get("backbones", arch)
    except RegistryError as err:
        raise ValueError(str(err)) from None
    backbone = build(in_channels=in_channels, image_size=image_size, width=width, norm=norm)
    if not isinstance(getattr(backbone, "out_dim", None), int):
        raise ValueError(f"backbone '{arch}' has no integer out_dim (its feature size)")
    net = BCLNet(backbone, num_classes, proj_hidden, proj_dim, norm, classifier)
    if arch == "resnet32" and isinstance(net.fc, nn.Linear):
        nn.init.kaiming_normal_(net.fc.weight, mode="fan_in", nonlinearity="relu")
    return net


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
