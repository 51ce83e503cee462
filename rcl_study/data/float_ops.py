"""Augmentation ops on float batches in [0, 1]: crop and flip, resized crop, colour, SimCLR view.

Each takes ``x`` as ``[B, C, H, W]`` float in ``[0, 1]`` (see :func:`to_float`) and a
``torch.Generator`` on the same device; nothing reads the device from the host.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def to_float(x_uint8: Tensor) -> Tensor:
    """``[B, H, W, C]`` uint8 -> ``[B, C, H, W]`` float32 in [0, 1]."""
    return x_uint8.permute(0, 3, 1, 2).float().div_(255.0)


def _rand(gen: torch.Generator, *shape: int, device) -> Tensor:
    return torch.rand(shape, generator=gen, device=device)


def crop_flip(x: Tensor, gen: torch.Generator, pad: int = 4, flip: bool = True) -> Tensor:
    """Random crop after zero padding by ``pad`` pixels, then a horizontal flip with p = 0.5.

    Shape: ``[B, C, H, W]`` -> ``[B, C, H, W]``.
    """
    b, _, h, w = x.shape
    dev = x.device
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        off_y = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=dev)
        off_x = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=dev)
        c = x.shape[1]
        rows = (off_y[:, None] + torch.arange(h, device=dev))[:, None, :, None]
        cols = (off_x[:, None] + torch.arange(w, device=dev))[:, None, None, :]
        x = padded.gather(2, rows.expand(b, c, h, w + 2 * pad)).gather(3, cols.expand(b, c, h, w))
    if flip:
        do = _rand(gen, b, device=dev) < 0.5
        x = torch.where(do[:, None, None, None], x.flip(-1), x)
    return x


def _affine(x: Tensor, theta: Tensor) -> Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_resized_crop(
    x: Tensor, gen: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> Tensor:
    """Random resized crop (area fraction in ``scale``, aspect ratio in ``ratio``), bilinear."""
    b = x.shape[0]
    dev = x.device
    area = scale[0] + (scale[1] - scale[0]) * _rand(gen, b, device=dev)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(
        gen, b, device=dev
    )
    r = torch.exp(log_r)
    cw = torch.sqrt(area * r).clamp(max=1.0)  # crop width / image width
    ch = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1 - cw) * (2 * _rand(gen, b, device=dev) - 1)  # centre in normalised coords
    cy = (1 - ch) * (2 * _rand(gen, b, device=dev) - 1)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = cw, cx
    theta[:, 1, 1], theta[:, 1, 2] = ch, cy
    return _affine(x, theta)


def _grey(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)[None, :, None, None]
    return (x * w).sum(1, keepdim=True).expand_as(x)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    v = maxc
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-8), torch.zeros_like(maxc))
    dc = delta.clamp_min(1e-8)
    h = torch.where(
        maxc == r, (g - b) / dc, torch.where(maxc == g, 2 + (b - r) / dc, 4 + (r - g) / dc)
    )
    h = torch.where(delta > 0, (h / 6) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, v], 1)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x.unbind(1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], 1)
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def colour_jitter(
    x: Tensor,
    gen: torch.Generator,
    brightness=0.4,
    contrast=0.4,
    saturation=0.4,
    hue=0.1,
    p: float = 0.8,
) -> Tensor:
    """SimCLR colour jitter applied to each image with probability ``p`` (fixed op order)."""
    b = x.shape[0]
    dev = x.device

    def factor(amount):
        return (1 - amount + 2 * amount * _rand(gen, b, device=dev))[:, None, None, None]

    out = (x * factor(brightness)).clamp(0, 1)
    mean = _grey(out).mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * factor(contrast) + mean).clamp(0, 1)
    if x.shape[1] == 3:
        grey = _grey(out)
        out = ((out - grey) * factor(saturation) + grey).clamp(0, 1)
        hsv = _rgb_to_hsv(out)
        shift = (hue * (2 * _rand(gen, b, device=dev) - 1))[:, None, None]
        hsv = torch.stack([(hsv[:, 0] + shift) % 1.0, hsv[:, 1], hsv[:, 2]], 1)
        out = _hsv_to_rgb(hsv).clamp(0, 1)
    apply = (_rand(gen, b, device=dev) < p)[:, None, None, None]
    return torch.where(apply, out, x)


def random_greyscale(x: Tensor, gen: torch.Generator, p: float = 0.2) -> Tensor:
    """Greyscale with probability ``p``."""
    apply = (_rand(gen, x.shape[0], device=x.device) < p)[:, None, None, None]
    return torch.where(apply, _grey(x), x)


def simclr_view(x: Tensor, gen: torch.Generator) -> Tensor:
    """SimCLR-style view (BCL's contrastive views): resized crop, flip, jitter p=0.8, grey p=0.2."""
    x = random_resized_crop(x, gen)
    x = crop_flip(x, gen, pad=0, flip=True)
    x = colour_jitter(x, gen)
    return random_greyscale(x, gen)
