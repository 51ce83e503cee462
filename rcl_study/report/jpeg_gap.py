"""The test-set handicap of a trained network: accuracy on lossless images vs their JPEG copies.

Our local CIFAR-10 test set has 1,000 lossless images (original test images 0-999) and 9,000
recovered from JPEG quality-75 copies (``../shared/data/README.md``). :func:`measure` scores the
SAME lossless images twice, as they are and re-encoded as JPEG (:func:`jpeg_roundtrip`, PIL's
encoder with its default 4:2:0 chroma subsampling), and compares the two paired scorings with
:func:`rcl_study.report.paired.paired_gap` (Newcombe's paired interval, exact McNemar test).

The network comes from the study's ``model`` section (:func:`build_for`), its inputs are
normalised as the trainer normalises them (:func:`input_normalisation`). Used by
``scripts/jpeg_gap.py`` (one checkpoint) and ``scripts/gpu/ablation.py gap`` (every member of a
study's checkpoints).
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rcl_study.config import StudyFile
from rcl_study.data.types import LTData
from rcl_study.report.paired import paired_gap
from rcl_study.trainer.models import build_model

#: uint8 ``[B, H, W, C]`` images -> predicted class ``[B]``
Predict = Callable[[np.ndarray], np.ndarray]


def jpeg_roundtrip(images: np.ndarray, quality: int = 75) -> np.ndarray:
    """Each image encoded as JPEG at ``quality`` with PIL and decoded again.

    Shape: uint8 ``[N, H, W, C]`` (C = 1 or 3) -> uint8 ``[N, H, W, C]``.

    Raises:
        ValueError: the images are not uint8 ``[N, H, W, 1|3]``.

    """
    from PIL import Image

    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected uint8 [N, H, W, 1|3] images, got {images.dtype} {images.shape}")
    out = np.empty_like(images)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        back = np.asarray(Image.open(buf).convert(pil.mode))
        out[i] = back[..., None] if back.ndim == 2 else back
    return out


def measure(
    predict: Predict, images: np.ndarray, labels: np.ndarray, quality: int = 75
) -> dict[str, Any]:
    """Score ``images`` as they are and as JPEG at ``quality``; the paired gap (lossless - JPEG).

    Args:
        predict: uint8 ``[B, H, W, C]`` -> predicted class ``[B]``.
        images: uint8 ``[N, H, W, C]`` lossless images.
        labels: ``[N]`` true classes.
        quality: JPEG quality of the re-encoding.

    Returns:
        ``images``, ``quality``, ``acc_lossless``, ``acc_jpeg``, ``pixel_mean_abs_error`` (in
        [0, 1]) and :func:`~rcl_study.report.paired.paired_gap`'s ``gap``, ``gap_ci``,
        ``confidence``, ``ci_method``, ``table`` and ``mcnemar_exact_p``.

    """
    right_lossless = np.asarray(predict(images)) == labels
    jpeg = jpeg_roundtrip(images, quality)
    right_jpeg = np.asarray(predict(jpeg)) == labels
    gap = paired_gap(right_lossless, right_jpeg)
    out = {
        "images": int(len(labels)),
        "quality": quality,
        "acc_lossless": gap.pop("acc_a"),
        "acc_jpeg": gap.pop("acc_b"),
        "pixel_mean_abs_error": float(np.mean(np.abs(jpeg.astype(np.int16) - images))) / 255,
    }
    out.update(gap)
    out.pop("n")
    return out


def model_predictor(model: torch.nn.Module, mean, std, device, batch_size: int = 500) -> Predict:
    """``predict`` of a BCL network (``model(x)[1]`` are logits) on normalised float32 inputs."""

    @torch.no_grad()
    def predict(x_uint8: np.ndarray) -> np.ndarray:
        model.eval()
        preds = []
        for lo in range(0, len(x_uint8), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x_uint8[lo : lo + batch_size])).to(device)
            x = xb.permute(0, 3, 1, 2).float().div(255)
            out = model((x - mean) / std)
            logits = out[1] if isinstance(out, (tuple, list)) else out
            preds.append(logits.float().argmax(1).cpu())
        return torch.cat(preds).numpy()

    return predict


def build_for(cfg: StudyFile, data: LTData) -> torch.nn.Module:
    """The study's network for ``data``, passing every ``model`` key ``build_model`` takes by name.

    Untrained: load a checkpoint's ``model`` state into it.
    """
    params = inspect.signature(build_model).parameters
    extra = {k: getattr(cfg.model, k) for k in type(cfg.model).model_fields if k in params}
    return build_model(
        in_channels=data.channels,
        num_classes=data.num_classes,
        image_size=data.image_size,
        **extra,
    )


def input_normalisation(data: LTData, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) ``[1, C, 1, 1]`` on ``device`` in [0, 1] units, as the trainer computes them.

    Mean and standard deviation of the training images per channel (the standard deviation at
    least 1e-3), as in :func:`rcl_study.trainer.setup.prepare_data` for array datasets.
    """
    train = torch.from_numpy(np.asarray(data.train_x)).float()
    mean = train.mean(dim=(0, 1, 2)).div(255).view(1, -1, 1, 1).to(device)
    std = train.std(dim=(0, 1, 2)).div(255).clamp_min(1e-3).view(1, -1, 1, 1).to(device)
    return mean, std


def lossless_indices(test_mask: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Indices of the lossless test images; ``limit`` of them spread over the (class-sorted) set."""
    idx = np.flatnonzero(test_mask)
    if limit is not None and limit < len(idx):
        idx = idx[np.linspace(0, len(idx) - 1, limit).astype(int)]
    return idx
