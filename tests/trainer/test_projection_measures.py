"""The projection-space measures (``proj_*``) against hand geometry and a naive reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rcl_study.trainer.metrics import projection_measures, train_class_means


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
