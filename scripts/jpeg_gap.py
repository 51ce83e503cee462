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

The model is built by ``rcl_study.report.jpeg_gap.build_for`` from the study's ``model`` section
and the data by ``rcl_study.data.load_data`` from its ``data`` section (which must carry the
lossless mask: ``cifar10_lt`` with ``test_lossless.npy`` beside it, or an ``arrays`` file exported
from it). Inputs are normalised as the trainer does (mean and standard deviation of the training
images). The checkpoint is read with ``weights_only=True``
(``rcl_study.trainer.checkpoint.read_checkpoint``). The measure itself lives in
``rcl_study.report.jpeg_gap``, the paired statistics in ``rcl_study.report.paired``; this file is
only the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rcl_study.config import ConfigError, load_study  # noqa: E402
from rcl_study.data import DataError, load_data  # noqa: E402
from rcl_study.data.types import ListImages  # noqa: E402
from rcl_study.report.jpeg_gap import (  # noqa: E402
    build_for,
    input_normalisation,
    lossless_indices,
    measure,
    model_predictor,
)
from rcl_study.store import atomic_write_text  # noqa: E402
from rcl_study.trainer.checkpoint import CheckpointError, read_checkpoint  # noqa: E402


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
    try:
        cfg = load_study(a.study, a.overrides)
        data = load_data(cfg.data, cfg.train.seed)
    except (ConfigError, DataError) as err:
        return _fail(str(err))
    if data.test_mask is None or not np.any(data.test_mask):
        return _fail(f"{a.study}: data has no lossless test mask (data.dataset {cfg.data.dataset})")
    if isinstance(data.train_x, ListImages):
        return _fail(f"{a.study}: list-file datasets have no lossless/JPEG split")
    ckpt = Path(a.checkpoint)
    try:
        state = read_checkpoint(ckpt)
    except CheckpointError as err:
        return _fail(str(err))
    try:
        model = build_for(cfg, data)
        model.load_state_dict(state["model"])
    except Exception as err:  # noqa: BLE001 - any unloadable checkpoint gets one clear line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        return _fail(f"{ckpt}: cannot load the model ({first})")
    device = torch.device(a.device)
    model.to(device)
    mean, std = input_normalisation(data, device)
    idx = lossless_indices(data.test_mask, a.limit)
    result = measure(
        model_predictor(model, mean, std, device), data.test_x[idx], data.test_y[idx], a.quality
    )
    result.update(checkpoint=str(ckpt), epoch=state.get("epoch"), device=str(device))
    text = json.dumps(result, indent=2)
    if a.out:
        atomic_write_text(a.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
