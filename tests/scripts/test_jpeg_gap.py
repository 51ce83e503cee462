"""The paired lossless-vs-JPEG gap (rcl_study.report.paired, rcl_study.report.jpeg_gap), its
interval, and the CLI scripts/jpeg_gap.py on a tiny model."""

import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from rcl_study.report import jpeg_gap, paired
from tests.conftest import DROP, TINY_STUDY, Only

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("jpeg_gap_cli", ROOT / "scripts" / "jpeg_gap.py")
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)


def _newcombe_reference(a, b, c, d, conf=0.95):
    """Newcombe (1998) method 10 transcribed from the paper, Wilson limits from statsmodels."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = proportion_confint(a + b, n, alpha=1 - conf, method="wilson")
    l2, u2 = proportion_confint(a + c, n, alpha=1 - conf, method="wilson")
    den = (a + b) * (c + d) * (a + c) * (b + d)
    num = a * d - b * c
    num = max(num - n / 2, 0) if num > 0 else num
    phi = 0.0 if den == 0 else num / math.sqrt(den)
    delta = math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    eps = math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    return (p1 - p2) - delta, (p1 - p2) + eps


def test_paired_gap_counts_a_hand_made_case():
    # 10 images: right as lossless 7, right as JPEG 6; lossless-only 2 (5, 6), JPEG-only 1 (7)
    lossless = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0], bool)
    jpeg = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 0], bool)
    out = paired.paired_gap(lossless, jpeg)
    assert out["acc_a"] == 0.7 and out["acc_b"] == 0.6
    assert out["gap"] == pytest.approx(0.1)
    assert out["table"] == {"both": 5, "only_a": 2, "only_b": 1, "neither": 2}
    # exact McNemar: 2 * P(X <= 1), X ~ Bin(3, 1/2) = 2 * 4/8 -> capped at 1
    assert out["mcnemar_exact_p"] == 1.0
    lo, hi = out["gap_ci"]
    assert (lo, hi) == pytest.approx(_newcombe_reference(5, 2, 1, 2), abs=1e-12)
    assert lo < 0.1 < hi


@pytest.mark.parametrize(
    "table", [(850, 40, 12, 98), (10, 15, 5, 20), (0, 3, 0, 7), (500, 0, 0, 500), (30, 0, 9, 61)]
)
def test_newcombe_interval_matches_the_papers_formula(table):
    lo, hi = paired.newcombe_paired_interval(*table)
    ref = _newcombe_reference(*table)
    assert (lo, hi) == pytest.approx(ref, abs=1e-12)
    a, b, c, d = table
    assert lo <= (b - c) / sum(table) <= hi
    # swapping the two conditions mirrors the interval
    lo2, hi2 = paired.newcombe_paired_interval(a, c, b, d)
    assert (lo2, hi2) == pytest.approx((-hi, -lo), abs=1e-12)


@pytest.mark.parametrize("b,c", [(40, 12), (0, 0), (3, 0), (17, 25), (1, 1)])
def test_mcnemar_exact_p_is_scipys_binomial_test(b, c):
    expected = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5).pvalue
    assert paired.mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-12)


def test_jpeg_roundtrip_is_pils_quality_75_and_lossy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    out = jpeg_gap.jpeg_roundtrip(x, 75)
    assert out.shape == x.shape and out.dtype == np.uint8
    buf = io.BytesIO()
    Image.fromarray(x[1]).save(buf, format="JPEG", quality=75)
    assert np.array_equal(out[1], np.asarray(Image.open(io.BytesIO(buf.getvalue()))))
    assert not np.array_equal(out, x)
    grey = jpeg_gap.jpeg_roundtrip(x[..., :1], 75)
    assert grey.shape == (3, 32, 32, 1)


def test_measure_with_a_model_whose_predictions_we_control():
    # the fake model says class 1 for an image it has seen exactly, class 0 otherwise: every
    # lossless image is called 1, every JPEG copy (noise images always change) 0
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    labels = np.array([1] * 14 + [0] * 6)
    seen = {im.tobytes() for im in images}

    def predict(x):
        return np.array([1 if im.tobytes() in seen else 0 for im in x])

    out = jpeg_gap.measure(predict, images, labels, quality=75)
    assert out["acc_lossless"] == 0.7 and out["acc_jpeg"] == 0.3
    assert out["gap"] == pytest.approx(0.4)
    assert out["table"] == {"both": 0, "only_a": 14, "only_b": 6, "neither": 0}
    assert out["mcnemar_exact_p"] == pytest.approx(stats.binomtest(14, 20, 0.5).pvalue)
    assert out["images"] == 20 and out["pixel_mean_abs_error"] > 0


def _tiny_study(tmp_path):
    rng = np.random.default_rng(2)
    n_test = 40
    np.savez(
        tmp_path / "d.npz",
        train_x=rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8),
        train_y=np.repeat(np.arange(4), 15),
        test_x=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        test_y=np.repeat(np.arange(4), 10),
        test_mask=np.arange(n_test) % 2 == 0,
    )
    return TINY_STUDY.write(
        tmp_path,
        filename="s.yaml",
        name="gap",
        data=Only(
            dataset="arrays", path=str(tmp_path / "d.npz"), imbalance_ratio=1, val_per_class=3
        ),
        model={"width": 4, "proj_hidden": 8, "proj_dim": 4},
        train=DROP,
        loss=DROP,
        study=DROP,
        resources=DROP,
    )


def test_cli_scores_the_lossless_images_of_an_untrained_checkpoint(tmp_path, capsys):
    from rcl_study.config import load_study
    from rcl_study.data import load_data

    path = _tiny_study(tmp_path)
    cfg = load_study(path)
    torch.manual_seed(0)
    model = jpeg_gap.build_for(cfg, load_data(cfg.data))
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")
    out = tmp_path / "gap.json"
    rc = cli.main(
        [
            str(path),
            "--checkpoint",
            str(tmp_path / "checkpoint.pt"),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["images"] == 20 and res["epoch"] == 3 and res["quality"] == 75
    t = res["table"]
    assert sum(t.values()) == 20
    assert res["acc_lossless"] == pytest.approx((t["both"] + t["only_a"]) / 20)
    assert res["gap"] == pytest.approx(res["acc_lossless"] - res["acc_jpeg"])
    assert res["gap_ci"][0] <= res["gap"] <= res["gap_ci"][1]
    assert json.loads(capsys.readouterr().out) == res
    ckpt = str(tmp_path / "checkpoint.pt")
    assert cli.main([str(path), "--checkpoint", ckpt, "--limit", "7", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 7


def test_cli_refuses_bad_input_with_one_line(tmp_path, capsys):
    path = _tiny_study(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    rc = cli.main([str(path), "--checkpoint", str(tmp_path / "bad.pt"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "bad.pt" in err
    rc = cli.main([str(path), "--checkpoint", "x.pt", "--set", "data.nope=1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "data.nope" in err
