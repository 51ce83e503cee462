"""RandAugment (Cubuk et al. 2020) on float batches in [0, 1]: every op on the whole batch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rcl_study.data.float_ops import _affine, _grey, _rand
from rcl_study.data.uint8_ops import equalize

_RA_GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _ra_theta(kind: str, mag: Tensor) -> Tensor:
    """RandAugment's affine matrix (normalised coordinates) per image: ``[B]`` -> ``[B, 2, 3]``."""
    theta = torch.zeros(mag.shape[0], 2, 3, device=mag.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if kind == "rotate":
        ang = mag * math.radians(30)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(ang), -torch.sin(ang)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(ang), torch.cos(ang)
    elif kind == "shear_x":
        theta[:, 0, 1] = mag * 0.3
    elif kind == "shear_y":
        theta[:, 1, 0] = mag * 0.3
    elif kind == "translate_x":
        theta[:, 0, 2] = mag * 0.45 * 2
    elif kind == "translate_y":
        theta[:, 1, 2] = mag * 0.45 * 2
    return theta


def _shear_translate_rotate(x: Tensor, kind: str, mag: Tensor) -> Tensor:
    return _affine(x, _ra_theta(kind, mag))


def _autocontrast(x: Tensor) -> Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-8), x)


def _sharpness(x: Tensor, mag: Tensor) -> Tensor:
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")  # blur: [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13
    rows = p[..., :-2] + p[..., 1:-1] + p[..., 2:]
    blur = (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :] + 4 * x) / 13
    f = (1 + 0.9 * mag)[:, None, None, None]
    return (blur + f * (x - blur)).clamp(0, 1)


def _op(x: Tensor, name: str, mag: Tensor) -> Tensor:
    """One RandAugment op on the whole batch; ``mag`` ``[B]`` in [-1, 1] (signed magnitude)."""
    m4 = mag[:, None, None, None]
    if name == "identity":
        return x
    if name in _RA_GEOMETRIC:
        return _shear_translate_rotate(x, name, mag)
    if name == "brightness":
        return (x * (1 + 0.9 * m4)).clamp(0, 1)
    if name == "contrast":
        mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * (1 + 0.9 * m4) + mean).clamp(0, 1)
    if name == "color":
        g = _grey(x)
        return ((x - g) * (1 + 0.9 * m4) + g).clamp(0, 1)
    if name == "sharpness":
        return _sharpness(x, mag)
    if name == "posterize":
        bits = (8 - (m4.abs() * 4).round()).clamp(4, 8)
        q = 2 ** (8 - bits)
        return torch.floor(x * 255 / q) * q / 255
    if name == "solarize":
        thr = 1 - m4.abs()
        return torch.where(x >= thr, 1 - x, x)
    if name == "autocontrast":
        return _autocontrast(x)
    if name == "equalize":  # exact histogram equalisation of the image quantised to uint8
        return equalize((x.clamp(0, 1) * 255).round()) / 255
    raise ValueError(f"unknown RandAugment op '{name}'")


RANDAUGMENT_OPS = (
    "identity",
    "autocontrast",
    "equalize",
    "rotate",
    "solarize",
    "color",
    "posterize",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)


def randaugment(x: Tensor, gen: torch.Generator, num_ops: int = 2, magnitude: float = 10) -> Tensor:
    """RandAugment (Cubuk et al. 2020) over a whole batch: ``num_ops`` ops drawn per image.

    Each op runs once on the whole batch and each image keeps the output of the op it drew
    (``torch.where``; a loop over the 14 ops, never over images, and no data-dependent shapes).
    ``magnitude`` in [0, 30] as torchvision (sign drawn per image).
    """
    b = x.shape[0]
    dev = x.device
    for _ in range(num_ops):
        choice = torch.randint(0, len(RANDAUGMENT_OPS), (b,), generator=gen, device=dev)
        sign = torch.where(_rand(gen, b, device=dev) < 0.5, -1.0, 1.0)
        mag = sign * (magnitude / 30.0)
        out = x
        theta = _ra_theta("identity", mag)
        geometric = torch.zeros_like(choice, dtype=torch.bool)
        for i, name in enumerate(RANDAUGMENT_OPS):
            chosen = choice == i
            if name == "identity":
                continue
            if name in _RA_GEOMETRIC:  # one resampling for all five, a matrix per image
                theta = torch.where(chosen[:, None, None], _ra_theta(name, mag), theta)
                geometric = geometric | chosen
                continue
            out = torch.where(chosen[:, None, None, None], _op(x, name, mag), out)
        x = torch.where(geometric[:, None, None, None], _affine(x, theta), out)
    return x
