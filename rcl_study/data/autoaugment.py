"""AutoAugment (Cubuk et al. 2019), CIFAR-10 policy, and Cutout: BCL's CIFAR classifier view.

Batched on uint8 levels held in float32 (:func:`~rcl_study.data.uint8_ops.levels`), each op
equal to torchvision's bit for bit; every op type runs once per step on the whole batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rcl_study.data.float_ops import crop_flip
from rcl_study.data.uint8_ops import (
    _col,
    _geometric_matrix,
    _sampling_grid,
    autocontrast,
    brightness,
    color,
    contrast,
    equalize,
    invert,
    levels,
    posterize,
    sharpness,
    solarize,
    warp,
)

GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")

# Cubuk et al. 2019, CIFAR-10 policy: 25 sub-policies of two (op, probability, magnitude bin).
AUTOAUGMENT_CIFAR10 = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)

_SIGNED = GEOMETRIC_OPS + ("Brightness", "Color", "Contrast", "Sharpness")


def autoaugment_magnitude(name: str, level: int | None, h: int, w: int) -> float:
    """Unsigned magnitude of ``name`` at bin ``level`` (of 10) for ``h x w`` images.

    As torchvision's float32 tables: translation 0..150/331 of the side, shear 0..0.3, rotation
    0..30 degrees, enhancements 0..0.9, posterize 8..4 bits, solarize threshold 255..0.
    """
    if level is None:
        return 0.0
    lin = {
        "ShearX": (0.0, 0.3),
        "ShearY": (0.0, 0.3),
        "TranslateX": (0.0, 150.0 / 331.0 * w),
        "TranslateY": (0.0, 150.0 / 331.0 * h),
        "Rotate": (0.0, 30.0),
        "Brightness": (0.0, 0.9),
        "Color": (0.0, 0.9),
        "Contrast": (0.0, 0.9),
        "Sharpness": (0.0, 0.9),
        "Solarize": (255.0, 0.0),
    }
    if name == "Posterize":
        return float((8 - (torch.arange(10) / (9 / 4)).round().int())[level].item())
    lo, hi = lin[name]
    return float(torch.linspace(lo, hi, 10)[level].item())


class _PolicyTables:
    """Device tables of one policy for one image size, built once.

    Building them reads host values (``.item()``); applying them never does.
    """

    def __init__(self, policy, h: int, w: int, device) -> None:
        n = len(policy)
        self.names = sorted({op for sub in policy for op, _, _ in sub})
        self.prob = torch.tensor([[p for _, p, _ in sub] for sub in policy], device=device)
        op_id = [[self.names.index(op) for op, _, _ in sub] for sub in policy]
        self.op_id = torch.tensor(op_id, dtype=torch.long, device=device)
        mags = [[autoaugment_magnitude(op, lv, h, w) for op, _, lv in sub] for sub in policy]
        self.mag = torch.tensor(mags, dtype=torch.float64, device=device)
        signed = [[op in _SIGNED for op, _, _ in sub] for sub in policy]
        self.signed = torch.tensor(signed, dtype=torch.bool, device=device)
        # grids are computed on the CPU, as torchvision does there (a device matmul may round
        # differently, or in TF32), then copied
        grids = [_sampling_grid(_geometric_matrix("Rotate", 0.0, h, w), h, w, "cpu")]
        grid_id = torch.zeros(n, 2, 2, dtype=torch.long)
        for k, sub in enumerate(policy):
            for j, (op, _, _) in enumerate(sub):
                if op in GEOMETRIC_OPS:
                    for neg in (0, 1):
                        m = mags[k][j] * (-1.0 if neg else 1.0)
                        grid_id[k, j, neg] = len(grids)
                        grids.append(_sampling_grid(_geometric_matrix(op, m, h, w), h, w, "cpu"))
        self.grids = torch.cat(grids).to(device)
        self.grid_id = grid_id.to(device)


_TABLES: dict[tuple, _PolicyTables] = {}


def _tables(h: int, w: int, device) -> _PolicyTables:
    key = (h, w, str(device))
    if key not in _TABLES:
        _TABLES[key] = _PolicyTables(AUTOAUGMENT_CIFAR10, h, w, device)
    return _TABLES[key]


def autoaugment_decisions(
    b: int, gen: torch.Generator, device, n_policies: int = len(AUTOAUGMENT_CIFAR10)
) -> tuple[Tensor, Tensor, Tensor]:
    """Random choices of AutoAugment for ``b`` images, as torchvision draws them per image.

    Returns ``(sub [B] long, u [B, 2] float, negative [B, 2] bool)``: the sub-policy, the uniform
    draw that op ``j`` fires on (``u <= p``) and whether its magnitude is negated.
    """
    sub = torch.randint(0, n_policies, (b,), generator=gen, device=device)
    u = torch.rand(b, 2, generator=gen, device=device)
    negative = torch.randint(0, 2, (b, 2), generator=gen, device=device) == 0
    return sub, u, negative


def apply_autoaugment(img: Tensor, sub: Tensor, u: Tensor, negative: Tensor) -> Tensor:
    """AutoAugment's CIFAR-10 policy on a batch of uint8 levels for given decisions.

    ``sub``, ``u``, ``negative`` as :func:`autoaugment_decisions` returns them. For each of the
    two steps, every op type runs once on the whole batch (geometric ops: one resampling with a
    per-image grid) and each image keeps the output of the op its sub-policy names, if it fires.

    Shape: ``[B, C, H, W]`` levels (float32 integers, :func:`levels`) -> the same.
    """
    t = _tables(img.shape[-2], img.shape[-1], img.device)
    for j in range(2):
        fires = u[:, j] <= t.prob[sub, j]
        op_id = t.op_id[sub, j]
        mag = t.mag[sub, j]
        mag = torch.where(t.signed[sub, j] & negative[:, j], -mag, mag)
        out = img
        geometric = torch.zeros_like(fires)
        for k, name in enumerate(t.names):
            chosen = fires & (op_id == k)
            if name in GEOMETRIC_OPS:
                geometric = geometric | chosen
                continue
            if name in ("Brightness", "Color", "Contrast", "Sharpness"):
                fn = {"Brightness": brightness, "Color": color, "Contrast": contrast}
                res = fn.get(name, sharpness)(img, 1.0 + mag)
            elif name == "Posterize":
                res = posterize(img, mag)
            elif name == "Solarize":
                res = solarize(img, mag.float())
            elif name == "AutoContrast":
                res = autocontrast(img)
            elif name == "Equalize":
                res = equalize(img)
            elif name == "Invert":
                res = invert(img)
            else:
                raise ValueError(f"unknown AutoAugment op '{name}'")
            out = torch.where(_col(chosen), res, out)
        grid = t.grids[t.grid_id[sub, j, negative[:, j].long()]]
        img = torch.where(_col(geometric), warp(img, grid), out)
    return img


def autoaugment(img: Tensor, gen: torch.Generator) -> Tensor:
    """AutoAugment (Cubuk et al. 2019), CIFAR-10 policy, batched.

    As ``torchvision.transforms.AutoAugment(AutoAugmentPolicy.CIFAR10)`` (nearest interpolation,
    zero fill), image by image. Shape: ``[B, C, H, W]`` levels (:func:`levels`) -> the same.
    """
    return apply_autoaugment(img, *autoaugment_decisions(img.shape[0], gen, img.device))


def cutout(img: Tensor, gen: torch.Generator, length: int = 16) -> Tensor:
    """Cutout (DeVries & Taylor 2017): one ``length`` x ``length`` square zeroed per image.

    Its centre pixel ``(cy, cx)`` is uniform over the image; rows ``cy - length // 2`` to
    ``cy + length // 2 - 1`` (columns alike), clipped at the borders. Any dtype, ``[B, C, H, W]``.
    """
    b, _, h, w = img.shape
    dev = img.device
    cy = torch.randint(0, h, (b, 1), generator=gen, device=dev)
    cx = torch.randint(0, w, (b, 1), generator=gen, device=dev)
    half = length // 2
    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)
    in_rows = (rows >= cy - half) & (rows < cy + half)  # [B, H]
    in_cols = (cols >= cx - half) & (cols < cx + half)  # [B, W]
    hole = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
    return torch.where(hole, torch.zeros((), dtype=img.dtype, device=dev), img)


def autoaugment_view(x_uint8: Tensor, gen: torch.Generator, pad: int = 4) -> Tensor:
    """BCL's CIFAR classifier view: zero-padded crop, flip, AutoAugment (CIFAR-10), Cutout 16x16.

    Shape: ``[B, C, H, W]`` uint8 -> ``[B, C, H, W]`` float32 in [0, 1].
    """
    x = crop_flip(levels(x_uint8), gen, pad=pad)
    return cutout(autoaugment(x, gen), gen).div_(255.0)
