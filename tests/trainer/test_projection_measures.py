"""The projection-space measures (``proj_*``) against hand geometry and a naive reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rcl_study.trainer.evaluation as evaluation
import rcl_study.trainer.setup as trial_setup
from rcl_study.trainer.evaluation import ncm_rows
from rcl_study.trainer.metrics import projection_measures, train_class_means
from tests.trainer.test_train import _cfg


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_compactness_and_angles_on_hand_geometry():
    theta = 30.0
    # class 0 at +-30 degrees around 0 degrees; class 1 exactly at 90; class 2 at 200 and 220
    z = torch.tensor(
        [_unit(theta), _unit(-theta), _unit(90), _unit(90), _unit(200), _unit(220)],
        dtype=torch.float64,
    )
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    counts = np.array([150, 50, 5])  # many, medium, few: one class each
    m = projection_measures(z, y, counts)
    c0, c1, c2 = math.cos(math.radians(30)), 1.0, math.cos(math.radians(10))
    assert m["proj_compactness_many"] == pytest.approx(c0)
    assert m["proj_compactness_medium"] == pytest.approx(c1)
    assert m["proj_compactness_few"] == pytest.approx(c2)
    assert m["proj_compactness"] == pytest.approx((c0 + c1 + c2) / 3)
    # class means at 0, 90 and 210 degrees: angles 90, 120 (90 to 210), 150 (0 to 210)
    assert m["proj_min_angle_deg"] == pytest.approx(90)
    assert m["proj_mean_angle_deg"] == pytest.approx((90 + 120 + 150) / 3)
    assert m["proj_ncm_balanced_acc"] is None


def test_a_regular_simplex_has_every_angle_at_arccos_minus_one_over_c_minus_one():
    z = torch.tensor([_unit(0), _unit(120), _unit(240)], dtype=torch.float64)
    m = projection_measures(z, torch.tensor([0, 1, 2]), np.array([10, 10, 10]))
    expected = math.degrees(math.acos(-1 / 2))
    assert m["proj_min_angle_deg"] == pytest.approx(expected)
    assert m["proj_mean_angle_deg"] == pytest.approx(expected)
    assert m["proj_compactness"] == pytest.approx(1.0)


def test_nearest_class_mean_accuracy_by_hand():
    train = torch.tensor([_unit(0), _unit(10), _unit(90), _unit(100)], dtype=torch.float64)
    means = train_class_means(train, torch.tensor([0, 0, 1, 1]), 3)  # class 2: no images
    assert torch.isnan(means[2]).all()
    assert means[0].tolist() == pytest.approx(_unit(5))
    # test: class 0 at 40 (nearest mean 5: right) and 60 (nearest 95: wrong); class 1 at 80
    z = torch.tensor([_unit(40), _unit(60), _unit(80)], dtype=torch.float64)
    m = projection_measures(z, torch.tensor([0, 0, 1]), np.array([2, 2, 0]), means)
    assert m["proj_ncm_balanced_acc"] == pytest.approx((0.5 + 1.0) / 2)


def test_against_a_naive_loop_on_random_projections():
    gen = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(60, 5, generator=gen, dtype=torch.float64), dim=1)
    y = torch.arange(60) % 4
    counts = np.array([200, 60, 30, 4])
    m = projection_measures(z, y, counts)
    per_class, means = [], []
    for c in range(4):
        rows = [z[i] for i in range(60) if int(y[i]) == c]
        mean = sum(rows) / len(rows)
        mean = mean / mean.norm()
        means.append(mean)
        per_class.append(sum(float(r @ mean) for r in rows) / len(rows))
    angles = [
        math.degrees(math.acos(max(-1.0, min(1.0, float(means[a] @ means[b])))))
        for a in range(4)
        for b in range(a + 1, 4)
    ]
    assert m["proj_compactness"] == pytest.approx(sum(per_class) / 4)
    assert m["proj_compactness_many"] == pytest.approx(per_class[0])
    assert m["proj_compactness_medium"] == pytest.approx((per_class[1] + per_class[2]) / 2)
    assert m["proj_compactness_few"] == pytest.approx(per_class[3])
    assert m["proj_min_angle_deg"] == pytest.approx(min(angles))
    assert m["proj_mean_angle_deg"] == pytest.approx(sum(angles) / len(angles))


def test_ncm_rows_take_at_most_the_cap_per_class_and_the_same_rows_every_time():
    labels = np.array([0] * 250 + [1] * 30 + [3] * 100 + [0] * 7)  # class 2 absent
    rows = ncm_rows(labels, 100)
    counts = np.bincount(labels[rows], minlength=4)
    assert counts.tolist() == [100, 30, 0, 100]
    assert len(np.unique(rows)) == len(rows) and (np.diff(rows) > 0).all()
    assert np.array_equal(rows, ncm_rows(labels.copy(), 100))
    assert set(np.flatnonzero(labels == 1)) <= set(rows.tolist())  # a small class: every image


def _naive_means(trial, rows):
    """The class means from a plain forward of ``rows``, written from the definition."""
    d, core = trial.data, trial.net.core
    core.eval()
    with torch.no_grad():
        x = d.train_x[torch.as_tensor(rows)].permute(0, 3, 1, 2).float() / 255
        _, _, z = core((x - d.mean) / d.std)
    core.train()
    y = d.train_y[torch.as_tensor(rows)]
    z = torch.nn.functional.normalize(z.double(), dim=1)
    out = torch.full((len(d.counts_np), z.shape[1]), float("nan"), dtype=torch.float64)
    for c in y.unique().tolist():
        out[c] = torch.nn.functional.normalize(z[y == c].mean(0), dim=0)
    return out


@pytest.mark.parametrize("cap", [3, 10_000])
def test_training_means_forward_only_the_capped_rows(monkeypatch, cap):
    trial = trial_setup.setup(_cfg(loss={"preset": "bcl"}))
    monkeypatch.setattr(evaluation, "NCM_IMAGES_PER_CLASS", cap)
    seen = []
    trial.net.core.register_forward_hook(lambda mod, inp, out: seen.append(len(inp[0])))
    means = evaluation.training_means(trial)
    labels = trial.data.train_y.cpu().numpy()
    expected = np.minimum(np.bincount(labels), cap).sum()
    assert sum(seen) == expected  # never the whole training set when its classes are larger
    rows = ncm_rows(labels, cap) if cap < 10_000 else np.arange(len(labels))
    naive = _naive_means(trial, rows)
    assert torch.allclose(means, naive, atol=1e-5, equal_nan=True)
