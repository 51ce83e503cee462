"""Batched augmentation: shapes, ranges, distributions of its random choices, reproducibility."""

import numpy as np
import pytest
import torch
from scipy import stats

from rcl_study.data.augment import (
    colour_jitter,
    crop_flip,
    make_views,
    randaugment,
    random_greyscale,
    random_resized_crop,
    simclr_view,
    to_float,
)


def _gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def _position_image(b, h=32, w=32):
    """Channel 0 holds each pixel's (1-based) position, so crops reveal their offsets."""
    pos = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, 1, h, w) / (h * w)
    return pos.expand(b, 3, h, w).clone()


def test_crop_offsets_uniform_and_flip_rate():
    b, pad, h = 4000, 4, 32
    x = _position_image(b)
    out = crop_flip(x, _gen(1), pad=pad, flip=False)
    centre = (out[:, 0, h // 2, h // 2] * h * h).round().long() - 1
    off_y = centre // h - h // 2 + pad
    off_x = centre % h - h // 2 + pad
    for off in (off_y, off_x):
        counts = np.bincount(off.numpy(), minlength=2 * pad + 1)
        assert len(counts) == 2 * pad + 1
        assert stats.chisquare(counts).pvalue > 1e-3
    flipped = crop_flip(x, _gen(2), pad=0, flip=True)
    rate = (flipped[:, 0, 0, 0] != x[:, 0, 0, 0]).float().mean().item()
    assert abs(rate - 0.5) < 4 * (0.25 / b) ** 0.5  # binomial, 4 sigma


def test_crop_keeps_content_and_zero_pads():
    x = torch.ones(200, 3, 8, 8)
    out = crop_flip(x, _gen(0), pad=2)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert (out == 0).any() and (out == 1).any()


@pytest.mark.parametrize(
    "fn", [random_resized_crop, colour_jitter, random_greyscale, simclr_view, randaugment]
)
def test_shapes_ranges_and_reproducibility(fn):
    x = torch.rand(64, 3, 32, 32, generator=_gen(9))
    a = fn(x, _gen(3))
    b = fn(x, _gen(3))
    c = fn(x, _gen(4))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert a.min() >= -1e-6 and a.max() <= 1 + 1e-6
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_greyscale_probability():
    x = torch.rand(5000, 3, 4, 4, generator=_gen(5))
    out = random_greyscale(x, _gen(6), p=0.2)
    grey = ((out[:, 0] == out[:, 1]) & (out[:, 1] == out[:, 2])).flatten(1).all(1)
    rate = grey.float().mean().item()
    assert abs(rate - 0.2) < 4 * (0.16 / 5000) ** 0.5


def test_jitter_applied_with_p():
    x = torch.rand(4000, 3, 4, 4, generator=_gen(7))
    out = colour_jitter(x, _gen(8), p=0.8)
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert abs(changed - 0.8) < 4 * (0.16 / 4000) ** 0.5


def test_three_views_from_one_call():
    xb = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8, generator=_gen(0))
    views = make_views(xb, _gen(1), "bcl")
    assert len(views) == 3
    for v in views:
        assert v.shape == (16, 3, 32, 32) and v.dtype == torch.float32
    assert not torch.equal(views[1], views[2])
    again = make_views(xb, _gen(1), "bcl")
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    assert torch.equal(to_float(xb)[0, :, 0, 0], xb[0, 0, 0].float() / 255)
    grey = torch.randint(0, 256, (4, 8, 8, 1), dtype=torch.uint8)
    assert make_views(grey, _gen(0), "crop")[0].shape == (4, 1, 8, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU to compare devices")
def test_cpu_and_gpu_agree_in_distribution():
    x = _position_image(4000)
    cpu = crop_flip(x, _gen(1), pad=4)
    gpu = crop_flip(x.cuda(), _gen(1, "cuda"), pad=4).cpu()
    for out in (cpu, gpu):
        assert out.shape == x.shape
    a = cpu[:, 0, 16, 16].numpy()
    b = gpu[:, 0, 16, 16].numpy()
    assert stats.ks_2samp(a, b).pvalue > 1e-3
    sa = simclr_view(x, _gen(2)).mean(dim=(1, 2, 3)).numpy()
    sb = simclr_view(x.cuda(), _gen(2, "cuda")).mean(dim=(1, 2, 3)).cpu().numpy()
    assert stats.ks_2samp(sa, sb).pvalue > 1e-3
