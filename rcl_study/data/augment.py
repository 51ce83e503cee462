"""Batched augmentation on the device: whole uint8 batches in, float views out, no per-image loop.

Every op takes ``x`` as ``[B, C, H, W]`` float in ``[0, 1]`` (see :func:`to_float`), except
the torchvision-exact ops and AutoAugment, which take uint8 levels held in float32 (integers in
[0, 255], see :func:`levels`), and a ``torch.Generator`` on the same device, so a seed reproduces
a batch on CPU or GPU. No recipe synchronises the host with the device: no data-dependent shapes
(``nonzero``, boolean indexing, ``bincount``), no host reads; each image's choice is applied with
``torch.where``.

Ops live in :mod:`.float_ops` (crop, flip, colour, SimCLR view), :mod:`.uint8_ops`
(torchvision-exact ops), :mod:`.randaugment` and :mod:`.autoaugment`; this module composes them
into the views of each recipe (:func:`make_views`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rcl_study.data.autoaugment import autoaugment_view
from rcl_study.data.float_ops import crop_flip, simclr_view, to_float
from rcl_study.data.randaugment import randaugment


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
