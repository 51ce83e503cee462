"""The test-set handicap, measured: accuracy on CIFAR-10's lossless test images vs JPEG copies.

Our local CIFAR-10 test set has 1,000 lossless images (original test images 0-999) and 9,000
recovered from JPEG quality-75 copies (``../shared/data/README.md``). This script takes a trained
checkpoint and scores the SAME 1,000 lossless images twice: as they are, and re-encoded as JPEG at
``--quality`` (75, PIL's encoder with its default 4:2:0 chroma subsampling). The two scores are
paired (same images, same model), so the gap gets a paired interval:

- ``gap = acc_lossless - acc_jpeg = (b - c) / n``, with ``b`` the images right as lossless and wrong
  as JPEG, ``c`` the reverse;
- 95% confidence interval: Newcombe (1998), "Improved confidence intervals for the difference
  between binomial proportions based on paired data", Statistics in Medicine 17:2635-2650,
  method 10 (Wilson score intervals of the two marginal proportions, combined with the phi
  correlation of the paired 2x2 table);
- exact McNemar test of "no gap": two-sided binomial test of ``b`` out of ``b + c`` at 1/2.

A full-test accuracy can then be read against a published one: the 9,000 JPEG-derived images
carry roughly this gap.

    python scripts/jpeg_gap.py studies/reproduce_bcl.yaml --checkpoint runs/x/checkpoint.pt
        [--set data.path=...] [--quality 75] [--out gap.json]

The model is built by ``rcl_study.trainer.models.build_model`` from the study's ``model`` section
and the
data by ``rcl_study.data.load_data`` from its ``data`` section (which must carry the lossless mask:
``cifar10_lt`` with ``test_lossless.npy`` beside it, or an ``arrays`` file exported from it).
Inputs are normalised as the trainer does (mean and standard deviation of the training images).
Not product code: nothing in ``rcl_study`` imports it.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

Predict = Callable[[np.ndarray], np.ndarray]


def jpeg_roundtrip(images: np.ndarray, quality: int = 75) -> np.ndarray:
    """Each image encoded as JPEG at ``quality`` with PIL and decoded again.

    Shape: uint8 ``[N, H, W, C]`` (C = 1 or 3) -> uint8 ``[N, H, W, C]``.
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


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a single proportion ``successes / n``."""
    p = successes / n
    centre = (2 * n * p + z * z) / (2 * (n + z * z))
    half = z * math.sqrt(z * z + 4 * n * p * (1 - p)) / (2 * (n + z * z))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired_interval(
    both: int, only_a: int, only_b: int, neither: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's (1998) method 10 interval for ``p_a - p_b`` from a paired 2x2 table.

    Args:
        both: pairs a success under both conditions (``a`` in Newcombe's table).
        only_a: success under condition a only (``b``).
        only_b: success under condition b only (``c``).
        neither: failure under both (``d``).
        confidence: two-sided level.

    Returns:
        (lower, upper) for ``p_a - p_b = (only_a - only_b) / n``.

    """
    n = both + only_a + only_b + neither
    if n == 0:
        raise ValueError("an empty table has no interval")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = _wilson(both + only_a, n, z)
    l2, u2 = _wilson(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    if margins == 0:
        phi = 0.0
    else:
        num = both * neither - only_a * only_b
        if num > 0:  # Newcombe's continuity adjustment of phi toward zero
            num = max(num - n / 2, 0.0)
        phi = num / math.sqrt(margins)
    d = p1 - p2
    lo = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, lo), min(1.0, hi)


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p: binomial test of ``only_a`` of ``only_a + only_b`` at 1/2."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2**m
    return min(1.0, 2 * tail)


def paired_gap(correct_a: np.ndarray, correct_b: np.ndarray, confidence: float = 0.95) -> dict:
    """Accuracies of two paired scorings of the same images, their gap, its interval and test.

    Shape: bool ``[N]`` and bool ``[N]`` (image i right under a / under b) -> dict of numbers.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal, non-empty 1-d masks, got {a.shape} and {b.shape}")
    both, only_a = int(np.sum(a & b)), int(np.sum(a & ~b))
    only_b, neither = int(np.sum(~a & b)), int(np.sum(~a & ~b))
    lo, hi = newcombe_paired_interval(both, only_a, only_b, neither, confidence)
    n = a.size
    return {
        "n": n,
        "acc_a": (both + only_a) / n,
        "acc_b": (both + only_b) / n,
        "gap": (only_a - only_b) / n,
        "gap_ci": [lo, hi],
        "confidence": confidence,
        "ci_method": "Newcombe (1998) paired method 10 (Wilson score, phi-corrected)",
        "table": {"both": both, "only_a": only_a, "only_b": only_b, "neither": neither},
        "mcnemar_exact_p": mcnemar_exact_p(only_a, only_b),
    }


def measure(
    predict: Predict, images: np.ndarray, labels: np.ndarray, quality: int = 75
) -> dict[str, Any]:
    """Score ``images`` as they are and as JPEG at ``quality``; the paired gap (lossless - JPEG).

    Args:
        predict: uint8 ``[B, H, W, C]`` -> predicted class ``[B]``.
        images: uint8 ``[N, H, W, C]`` lossless images.
        labels: ``[N]`` true classes.
        quality: JPEG quality of the re-encoding.

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


def _build(cfg, data) -> torch.nn.Module:
    """The study's network, passing every ``model`` key that ``build_model`` takes by name."""
    from rcl_study.trainer.models import build_model

    params = inspect.signature(build_model).parameters
    extra = {k: getattr(cfg.model, k) for k in type(cfg.model).model_fields if k in params}
    return build_model(
        in_channels=data.channels,
        num_classes=data.num_classes,
        image_size=data.image_size,
        **extra,
    )


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python scripts/jpeg_gap.py STUDY --checkpoint F [--set k=v] [--out F.json]``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study")
    p.add_argument("--checkpoint", required=True, help="a trainer checkpoint.pt ('model' key)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quality", type=int, default=75)
    p.add_argument("--limit", type=int, default=None, help="score N lossless images, spread out")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="write the JSON here as well (atomically)")
    a = p.parse_args(argv)
    if not 1 <= a.quality <= 95:
        return _fail(f"--quality must be in 1..95, got {a.quality}")
    from rcl_study.config import ConfigError, load_study
    from rcl_study.data import DataError, load_data
    from rcl_study.data.types import ListImages

    try:
        cfg = load_study(a.study, a.overrides)
        data = load_data(cfg.data)
    except (ConfigError, DataError) as err:
        return _fail(str(err))
    if data.test_mask is None or not np.any(data.test_mask):
        return _fail(f"{a.study}: data has no lossless test mask (data.dataset {cfg.data.dataset})")
    if isinstance(data.train_x, ListImages):
        return _fail(f"{a.study}: list-file datasets have no lossless/JPEG split")
    ckpt = Path(a.checkpoint)
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model = _build(cfg, data)
        model.load_state_dict(state["model"])
    except Exception as err:  # noqa: BLE001 - any unloadable checkpoint gets one clear line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        return _fail(f"{ckpt}: cannot load the model ({first})")
    device = torch.device(a.device)
    model.to(device)
    train = torch.from_numpy(np.asarray(data.train_x)).float()
    mean = train.mean(dim=(0, 1, 2)).div(255).view(1, -1, 1, 1).to(device)
    std = train.std(dim=(0, 1, 2)).div(255).clamp_min(1e-3).view(1, -1, 1, 1).to(device)
    idx = np.flatnonzero(data.test_mask)
    if a.limit is not None and a.limit < len(idx):  # spread over the (class-sorted) test set
        idx = idx[np.linspace(0, len(idx) - 1, a.limit).astype(int)]
    result = measure(
        model_predictor(model, mean, std, device), data.test_x[idx], data.test_y[idx], a.quality
    )
    result.update(checkpoint=str(ckpt), epoch=state.get("epoch"), device=str(device))
    text = json.dumps(result, indent=2)
    if a.out:
        tmp = Path(a.out + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, a.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
