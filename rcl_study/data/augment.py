"""Batched augmentation on the device: whole uint8 batches in, float views out, no per-image loop.

Every function takes ``x`` as ``[B, C, H, W]`` float in ``[0, 1]`` (see :func:`to_float`), except
the torchvision-exact ops and AutoAugment, which take uint8 levels held in float32 (integers in
[0, 255], see :func:`levels`), and a ``torch.Generator`` on the same device, so a seed reproduces
a batch on CPU or GPU. No recipe synchronises the host with the device: no data-dependent shapes
(``nonzero``, boolean indexing, ``bincount``), no host reads; each image's choice is applied with
``torch.where``.
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


# ------------------------------------------------------------------ RandAugment (batched)


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


# ------------------------------------------------------------------ exact uint8 ops (torchvision)
#
# Each op below takes a ``[B, C, H, W]`` batch of uint8 levels held in float32 (integers in
# [0, 255], C in {1, 3}; see :func:`levels`) and per-image parameters as ``[B]`` tensors, and
# returns levels again, equal to what ``torchvision.transforms.functional`` returns on the uint8
# tensor bit for bit (the same float32 arithmetic; its truncation back to uint8 is ``floor`` here
# since values are clamped non-negative first). Holding levels in float32 saves a conversion per
# op; every value stays an exact integer.


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


# ------------------------------------------------------------------ AutoAugment (batched)

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


def make_views(x_uint8: Tensor, gen: torch.Generator, recipe: str) -> tuple[Tensor, Tensor, Tensor]:
    """The three views of BCL's recipe from one uint8 batch: (classifier, contrastive 1, 2).

    Recipes: ``autoaugment`` (BCL's CIFAR recipe; classifier: crop+flip+AutoAugment CIFAR-10
    policy+Cutout, contrastive: SimCLR views), ``bcl`` (classifier: crop+flip+RandAugment;
    contrastive: SimCLR views), ``crop_flip`` (all three crop+flip), ``crop`` (crop only, for
    digits), ``none``.

    Shape: ``[B, H, W, C]`` uint8 -> three ``[B, C, H, W]`` float32 in [0, 1].
    """
    x = to_float(x_uint8)
    pad = max(1, x.shape[-1] // 8)
    if recipe == "autoaugment":
        cls = autoaugment_view(x_uint8.permute(0, 3, 1, 2), gen, pad=pad)
        return cls, simclr_view(x, gen), simclr_view(x, gen)
    if recipe == "bcl":
        cls = randaugment(crop_flip(x, gen, pad=pad), gen)
        return cls, simclr_view(x, gen), simclr_view(x, gen)
    if recipe == "crop_flip":
        return tuple(crop_flip(x, gen, pad=pad) for _ in range(3))  # type: ignore[return-value]
    if recipe == "crop":
        return tuple(crop_flip(x, gen, pad=pad, flip=False) for _ in range(3))  # type: ignore
    if recipe == "none":
        return x, x, x
    raise ValueError(f"unknown augmentation recipe '{recipe}'")
