"""Torchvision-exact image ops on batches of uint8 levels held in float32, and affine warps.

Each op here takes a ``[B, C, H, W]`` batch of uint8 levels held in float32 (integers in
[0, 255], C in {1, 3}; see :func:`levels`) and per-image parameters as ``[B]`` tensors, and
returns levels again, equal to what ``torchvision.transforms.functional`` returns on the uint8
tensor bit for bit (the same float32 arithmetic; its truncation back to uint8 is ``floor`` here
since values are clamped non-negative first). Holding levels in float32 saves a conversion per
op; every value stays an exact integer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def levels(x_uint8: Tensor) -> Tensor:
    """uint8 -> float32 holding the same integers (exact)."""
    return x_uint8.float()


def _col(t: Tensor) -> Tensor:
    return t[:, None, None, None]


def _blend(img: Tensor, other: Tensor, ratio: Tensor) -> Tensor:
    """Torchvision's ``_blend``: ``ratio * img + (1 - ratio) * other`` in float32, clamp, truncate.

    ``ratio`` is ``[B]`` float64 (torchvision's Python float); both weights round to float32 as a
    Python scalar does in a float32 tensor product.
    """
    r = _col(ratio.float())
    q = _col((1.0 - ratio).float())
    return (r * img + q * other).clamp_(0, 255).floor_()


def _grey_levels(img: Tensor) -> Tensor:
    """Torchvision's ``rgb_to_grayscale`` on uint8 levels: ``[B, 3, H, W]`` -> ``[B, 1, H, W]``."""
    r, g, b = img.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).floor_()[:, None]


def brightness(img: Tensor, factor: Tensor) -> Tensor:
    """``F.adjust_brightness(img, factor)`` per image; ``factor`` ``[B]`` float64 >= 0."""
    return (_col(factor.float()) * img).clamp_(0, 255).floor_()


def color(img: Tensor, factor: Tensor) -> Tensor:
    """``F.adjust_saturation(img, factor)`` per image (identity on one channel)."""
    if img.shape[1] == 1:
        return img
    return _blend(img, _grey_levels(img), factor)


def contrast(img: Tensor, factor: Tensor) -> Tensor:
    """``F.adjust_contrast(img, factor)`` per image: blend with the mean grey level."""
    grey = _grey_levels(img) if img.shape[1] == 3 else img
    return _blend(img, grey.mean(dim=(-3, -2, -1), keepdim=True), factor)


def sharpness(img: Tensor, factor: Tensor) -> Tensor:
    """``F.adjust_sharpness(img, factor)`` per image: blend with the 3x3 smoothed image.

    The smoothing kernel is ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`` rounded to an integer (the
    weighted sum is exact here; torchvision's float32 convolution is within 1e-4 of it and an
    integer sum / 13 is never within 1/26 of a half, so both round alike); the one-pixel border
    keeps the original values.
    """
    if img.shape[-1] <= 2 or img.shape[-2] <= 2:
        return img
    rows = img[..., :-2] + img[..., 1:-1] + img[..., 2:]
    box = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]
    inner = img[..., 1:-1, 1:-1]
    blurred = img.clone()
    blurred[..., 1:-1, 1:-1] = ((box + 4 * inner) / 13).round_()
    return _blend(img, blurred, factor)


def posterize(img: Tensor, bits: Tensor) -> Tensor:
    """``F.posterize(img, bits)`` per image: keep the ``bits`` ([B] int, 0..8) high bits."""
    q = _col(torch.pow(2.0, 8 - bits.float()))
    return (img / q).floor_().mul_(q)  # exact: q is a power of two


def solarize(img: Tensor, threshold: Tensor) -> Tensor:
    """``F.solarize(img, threshold)`` per image: invert pixels ``>= threshold`` ([B] float32)."""
    return torch.where(img >= _col(threshold.float()), 255 - img, img)


def invert(img: Tensor) -> Tensor:
    """``F.invert(img)``: ``255 - img``."""
    return 255 - img


def autocontrast(img: Tensor) -> Tensor:
    """``F.autocontrast(img)``: stretch each channel of each image to [0, 255] (truncating)."""
    lo = img.amin(dim=(-2, -1), keepdim=True)
    hi = img.amax(dim=(-2, -1), keepdim=True)
    scale = 255 / (hi - lo)
    flat = ~torch.isfinite(scale)
    lo = torch.where(flat, 0.0, lo)
    scale = torch.where(flat, 1.0, scale)
    return ((img - lo) * scale).clamp_(0, 255).floor_()


def equalize(img: Tensor) -> Tensor:
    """``F.equalize(img)``: histogram equalisation of each channel of each image, batched.

    Per channel (as PIL and torchvision): ``step = (N - count of the brightest level) // 255``;
    unchanged when ``step == 0``, else ``lut[v] = (cdf[v - 1] + step // 2) // step`` (lut[0] = 0).
    The histogram is a fixed-size scatter-add, so nothing depends on the data's shape.
    """
    b, c, h, w = img.shape
    flat = img.reshape(b * c, h * w).long()
    hist = torch.zeros(b * c, 256, dtype=torch.long, device=img.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    top = hist.gather(1, flat.amax(1, keepdim=True))
    step = (h * w - top) // 255
    safe = step.clamp_min(1)
    cdf = (hist.cumsum(1) + safe // 2) // safe
    lut = torch.cat([torch.zeros_like(cdf[:, :1]), cdf[:, :-1]], 1).clamp(0, 255)
    lut = torch.where(step == 0, torch.arange(256, device=img.device), lut).to(img.dtype)
    return lut.gather(1, flat).view(b, c, h, w)


def _inverse_affine(
    center: tuple[float, float],
    angle: float,
    translate: tuple[float, float],
    shear: tuple[float, float],
) -> list[float]:
    """The inverse affine matrix torchvision samples with (scale 1), as 6 Python floats."""
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [d, -b, 0.0, -c, a, 0.0]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx
    m[5] += cy
    return m


def _geometric_matrix(name: str, magnitude: float, h: int, w: int) -> list[float]:
    """Torchvision AutoAugment's inverse matrix for one geometric op.

    ShearX/Y shear about the top-left corner, TranslateX/Y move by whole pixels (truncated
    toward zero), Rotate turns about the centre (degrees).
    """
    corner = (-w * 0.5, -h * 0.5)
    if name == "ShearX":
        return _inverse_affine(corner, 0.0, (0.0, 0.0), (math.degrees(math.atan(magnitude)), 0.0))
    if name == "ShearY":
        return _inverse_affine(corner, 0.0, (0.0, 0.0), (0.0, math.degrees(math.atan(magnitude))))
    if name == "TranslateX":
        return _inverse_affine((0.0, 0.0), 0.0, (float(int(magnitude)), 0.0), (0.0, 0.0))
    if name == "TranslateY":
        return _inverse_affine((0.0, 0.0), 0.0, (0.0, float(int(magnitude))), (0.0, 0.0))
    if name == "Rotate":
        return _inverse_affine((0.0, 0.0), -magnitude, (0.0, 0.0), (0.0, 0.0))
    raise ValueError(f"not a geometric op '{name}'")


def _sampling_grid(matrix: list[float], h: int, w: int, device) -> Tensor:
    """Torchvision's ``_gen_affine_grid`` for one matrix: ``[1, H, W, 2]`` float32."""
    theta = torch.tensor(matrix, dtype=torch.float32, device=device).reshape(1, 2, 3)
    base = torch.empty(1, h, w, 3, dtype=torch.float32, device=device)
    base[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w, device=device))
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h, device=device)
    base[..., 1].copy_(ys.unsqueeze(-1))
    base[..., 2].fill_(1)
    half = torch.tensor([0.5 * w, 0.5 * h], dtype=torch.float32, device=device)
    return base.view(1, h * w, 3).bmm(theta.transpose(1, 2) / half).view(1, h, w, 2)


def warp(img: Tensor, grid: Tensor) -> Tensor:
    """Nearest-neighbour resampling with zero fill (values are copied, so levels stay exact).

    Shape: ``[B, C, H, W]`` and ``grid`` ``[B, H, W, 2]`` -> ``[B, C, H, W]``.
    """
    return F.grid_sample(img, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def affine_op(img: Tensor, name: str, magnitude: float) -> Tensor:
    """One geometric AutoAugment op with one signed ``magnitude`` for the whole batch."""
    h, w = img.shape[-2:]
    grid = _sampling_grid(_geometric_matrix(name, magnitude, h, w), h, w, "cpu").to(img.device)
    return warp(img, grid.expand(img.shape[0], h, w, 2))
