"""Batched augmentation: shapes, ranges, distributions of its random choices, reproducibility."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats

from rcl_study.data import autoaugment as aa
from rcl_study.data import randaugment as ra
from rcl_study.data import uint8_ops as u8
from rcl_study.data.augment import make_views
from rcl_study.data.float_ops import (
    colour_jitter,
    crop_flip,
    random_greyscale,
    random_resized_crop,
    simclr_view,
    to_float,
)
from rcl_study.data.randaugment import randaugment
from rcl_study.trainer.setup import _augment_recipe
from tests.helpers.syncs import SyncCounter


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


# ---------------------------------------------------------------- exact uint8 ops vs torchvision

tvf = pytest.importorskip("torchvision.transforms.functional")
tv_aa = pytest.importorskip("torchvision.transforms.autoaugment")


def _images(b=24, h=32, w=32, c=3, seed=0):
    """Random uint8 images of varied statistics: full range, narrow ranges, few levels, constant."""
    g = _gen(seed)
    full = torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g)
    lo = torch.randint(0, 200, (b, 1, 1, 1), generator=g)
    span = torch.randint(1, 56, (b, 1, 1, 1), generator=g)
    narrow = (lo + torch.randint(0, 256, (b, c, h, w), generator=g) % span).to(torch.uint8)
    levels = (torch.randint(0, 3, (b, c, h, w), generator=g) * 60 + 40).to(torch.uint8)
    coarse = full[:, :, ::8, ::8].float()
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")
    const = torch.full((2, c, h, w), 77, dtype=torch.uint8)
    sparse = const.clone()
    sparse[:, :, 0, 0] = 10  # one darker pixel: equalize's step is 0 (identity)
    return torch.cat([full, narrow, levels, smooth.round().to(torch.uint8), const, sparse])


def _tv_space(h=32, w=32):
    return tv_aa.AutoAugment(tv_aa.AutoAugmentPolicy.CIFAR10)._augmentation_space(10, (h, w))


def _per_image(fn, imgs, params):
    return torch.stack([fn(im, p) for im, p in zip(imgs, params)])


@pytest.mark.parametrize("c", [3, 1])
@pytest.mark.parametrize(
    "ours,theirs",
    [
        (u8.brightness, tvf.adjust_brightness),
        (u8.color, tvf.adjust_saturation),
        (u8.contrast, tvf.adjust_contrast),
        (u8.sharpness, tvf.adjust_sharpness),
    ],
)
def test_enhance_ops_equal_torchvision(ours, theirs, c):
    imgs = _images(c=c)
    mags = [float(m) for m in _tv_space()["Brightness"][0]]
    factors = [1.0 + m for m in mags] + [1.0 - m for m in mags] + [0.0, 2.0]
    for k in range(len(factors)):  # a different factor per image, every factor on every image
        f = [factors[(i + k) % len(factors)] for i in range(len(imgs))]
        got = ours(imgs.float(), torch.tensor(f, dtype=torch.float64))
        assert torch.equal(got, _per_image(theirs, imgs, f).float()), (ours.__name__, k)


@pytest.mark.parametrize("c", [3, 1])
def test_histogram_and_pointwise_ops_equal_torchvision(c):
    imgs = _images(c=c, h=20, w=28)
    n = len(imgs)
    x = u8.levels(imgs)
    assert torch.equal(u8.autocontrast(x), tvf.autocontrast(imgs).float())
    want = _per_image(lambda im, _: tvf.equalize(im), imgs, [0] * n)
    assert torch.equal(u8.equalize(x), want.float())
    assert torch.equal(u8.invert(x), tvf.invert(imgs).float())
    bits = [(i % 9) for i in range(n)]
    want = _per_image(tvf.posterize, imgs, bits)
    assert torch.equal(u8.posterize(x, torch.tensor(bits)), want.float())
    thresholds = [float(t) for t in _tv_space()["Solarize"][0]] + [0.5, 127.5, 200.0]
    th = [thresholds[i % len(thresholds)] for i in range(n)]
    got = u8.solarize(x, torch.tensor(th, dtype=torch.float64).float())
    assert torch.equal(got, _per_image(tvf.solarize, imgs, th).float())


def test_equalize_changes_what_it_should():
    """Equalize is not the identity on spread images, and is on images torchvision leaves alone."""
    imgs = _images(c=3).float()
    out = u8.equalize(imgs)
    assert not torch.equal(out[:24], imgs[:24])
    assert torch.equal(out[-4:], imgs[-4:])  # constant and one-odd-pixel images


@pytest.mark.parametrize("hw", [(32, 32), (24, 40)])
@pytest.mark.parametrize("name", ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"])
def test_geometric_ops_equal_torchvision(name, hw):
    h, w = hw
    imgs = _images(b=4, h=h, w=w)
    space = _tv_space(h, w)
    for m in [float(v) for v in space[name][0]] + [0.17, -13.0]:
        for mag in (m, -m):
            want = torch.stack(
                [tv_aa._apply_op(im, name, mag, tvf.InterpolationMode.NEAREST, None) for im in imgs]
            )
            assert torch.equal(u8.affine_op(imgs.float(), name, mag), want.float()), (name, mag)


def _torchvision_policy(img, sub, u, negative):
    """torchvision's AutoAugment.forward for one image with the decisions given (reference)."""
    t = tv_aa.AutoAugment(tv_aa.AutoAugmentPolicy.CIFAR10)
    space = t._augmentation_space(10, (img.shape[-2], img.shape[-1]))
    for j, (name, p, level) in enumerate(t.policies[sub]):
        if u[j] <= p:
            mags, signed = space[name]
            mag = float(mags[level].item()) if level is not None else 0.0
            if signed and negative[j]:
                mag *= -1.0
            img = tv_aa._apply_op(img, name, mag, tvf.InterpolationMode.NEAREST, None)
    return img


def test_autoaugment_equals_torchvision_image_by_image():
    imgs = _images(b=150)
    b = len(imgs)
    sub, u, neg = aa.autoaugment_decisions(b, _gen(11), "cpu")
    got = aa.apply_autoaugment(imgs.float(), sub, u, neg)
    for i in range(b):
        want = _torchvision_policy(imgs[i], int(sub[i]), u[i], neg[i]).float()
        assert torch.equal(got[i], want), (i, int(sub[i]), u[i].tolist(), neg[i].tolist())
    assert torch.equal(aa.autoaugment(imgs.float(), _gen(11)), got)
    assert not torch.equal(got, imgs.float())
    assert set(sub.tolist()) == set(range(25))  # every sub-policy was compared
    fired = {
        aa.AUTOAUGMENT_CIFAR10[int(k)][j][0]
        for k, uu in zip(sub, u)
        for j in range(2)
        if uu[j] <= aa.AUTOAUGMENT_CIFAR10[int(k)][j][1]
    }
    assert fired == {op for pair in aa.AUTOAUGMENT_CIFAR10 for op, p, _ in pair if p > 0}


def test_randaugment_equalize_is_exact():
    """RandAugment's equalize (float views) is torchvision's on the image's uint8 values."""
    imgs = _images(c=3)
    got = ra._op(imgs.float() / 255, "equalize", torch.ones(len(imgs)))
    want = _per_image(lambda im, _: tvf.equalize(im), imgs, [0] * len(imgs))
    assert torch.equal((got * 255).round().to(torch.uint8), want)


def test_policy_table_is_torchvisions():
    t = tv_aa.AutoAugment(tv_aa.AutoAugmentPolicy.CIFAR10)
    assert [tuple(s) for s in t.policies] == list(aa.AUTOAUGMENT_CIFAR10)


def test_autoaugment_decision_frequencies():
    """Sub-policy uniform over 25 (chi-square), each op fires with its probability and each sign
    is negative with 1/2 (exact binomial tests, Bonferroni over the 50 + 1 tests), fixed seed."""
    n = 50_000
    sub, u, neg = aa.autoaugment_decisions(n, _gen(21), "cpu")
    counts = np.bincount(sub.numpy(), minlength=25)
    assert len(counts) == 25 and stats.chisquare(counts).pvalue > 1e-3
    alpha = 1e-3 / 51
    for k, pair in enumerate(aa.AUTOAUGMENT_CIFAR10):
        picked = sub == k
        for j, (_, p, _) in enumerate(pair):
            fired = int((picked & (u[:, j] <= p)).sum())
            if p == 0.0:
                assert fired == 0
            else:
                assert stats.binomtest(fired, int(picked.sum()), p).pvalue > alpha, (k, j)
    assert stats.binomtest(int(neg.sum()), 2 * n, 0.5).pvalue > alpha


def test_cutout_hole_is_16_square_clipped_with_uniform_centre():
    b, h, w = 6400, 32, 32
    imgs = torch.full((b, 3, h, w), 255, dtype=torch.uint8)
    out = aa.cutout(imgs, _gen(31))
    hole = out[:, 0] == 0
    assert torch.equal(hole[:, None].expand_as(out), out == 0)  # same hole in every channel
    centres = []
    for axis in (2, 1):  # rows (any over columns), then columns
        span = hole.any(axis)
        first = span.float().argmax(1)
        last = h - span.flip(1).float().argmax(1)  # exclusive
        centre = torch.where(last < h, last - 8, first + 8)
        assert torch.equal(first, (centre - 8).clamp(min=0))
        assert torch.equal(last, (centre + 8).clamp(max=h))
        centres.append(centre)
    cy, cx = centres

    def band(c, n):
        return (torch.arange(n) >= (c - 8)[:, None]) & (torch.arange(n) < (c + 8)[:, None])

    rect = band(cy, h)[:, :, None] & band(cx, w)[:, None, :]
    assert torch.equal(hole, rect)
    assert int(hole.sum(dim=(1, 2)).max()) == 256
    for c in (cy, cx):
        counts = np.bincount(c.numpy(), minlength=h)
        assert len(counts) == h and stats.chisquare(counts).pvalue > 1e-3


RECIPES = ["autoaugment", "bcl", "crop_flip", "crop", "none"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_make_views_has_no_host_device_sync(recipe):
    xb = torch.randint(0, 256, (32, 32, 32, 3), dtype=torch.uint8, generator=_gen(0))
    make_views(xb, _gen(1), recipe)  # warm-up: builds the cached policy tables
    with SyncCounter() as syncs:
        views = make_views(xb, _gen(2), recipe)
    assert not syncs.calls, dict(syncs.calls)
    assert len(views) == 3


def test_autoaugment_recipe_views_and_auto_mapping():
    xb = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8, generator=_gen(0))
    views = make_views(xb, _gen(1), "autoaugment")
    for v in views:
        assert v.shape == (16, 3, 32, 32) and v.dtype == torch.float32
        assert v.min() >= 0 and v.max() <= 1
    cls = views[0] * 255
    assert torch.equal(cls, cls.round())  # the classifier view is still on the uint8 grid
    assert all(torch.equal(a, b) for a, b in zip(views, make_views(xb, _gen(1), "autoaugment")))

    def recipe(augment, channels, size):
        cfg = SimpleNamespace(data=SimpleNamespace(augment=augment))
        return _augment_recipe(cfg, channels, size)  # type: ignore[arg-type]

    assert recipe("auto", 3, 32) == "autoaugment"
    assert recipe("auto", 3, 224) == "bcl"
    assert recipe("auto", 1, 28) == "crop"
    assert recipe("bcl", 3, 32) == "bcl"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU to compare devices")
def test_autoaugment_on_cuda_equals_cpu():
    """Same decisions, same images: the CUDA result equals the CPU one (exact for pointwise and
    histogram ops; nearest resampling may round a coordinate within one ulp of a half differently,
    so the whole policy allows 1e-4 of the pixels to differ)."""
    imgs = u8.levels(_images(b=64))
    cuda = imgs.cuda()
    f = torch.linspace(0.1, 1.9, len(imgs), dtype=torch.float64)
    for fn in (u8.brightness, u8.color, u8.contrast, u8.sharpness):
        assert torch.equal(fn(cuda, f.cuda()).cpu(), fn(imgs, f)), fn.__name__
    for fn in (u8.autocontrast, u8.equalize, u8.invert):
        assert torch.equal(fn(cuda).cpu(), fn(imgs)), fn.__name__
    sub, u, neg = aa.autoaugment_decisions(len(imgs), _gen(5), "cpu")
    want = aa.apply_autoaugment(imgs, sub, u, neg)
    got = aa.apply_autoaugment(cuda, sub.cuda(), u.cuda(), neg.cuda()).cpu()
    assert (got != want).float().mean() <= 1e-4
    views = make_views(
        _images(b=8).permute(0, 2, 3, 1).contiguous().cuda(), _gen(1, "cuda"), "autoaugment"
    )
    assert all(v.is_cuda and v.shape == (36, 3, 32, 32) for v in views)
