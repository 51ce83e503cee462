"""The validation split: class-balanced, disjoint from training and test, seeded, per source."""

from __future__ import annotations

import numpy as np
import pytest

from rcl_study.config.schema import DataConfig
from rcl_study.data import load_data
from rcl_study.data.checks import DataError
from rcl_study.data.longtail import (
    class_counts,
    long_tail_indices,
    long_tail_split,
    stratified_holdout,
)
from tests.data.test_data import REAL_CIFAR, _cifar_dir


@pytest.mark.parametrize("k", [0, 1, 5, 30])
@pytest.mark.parametrize("seed", [0, 3])
def test_long_tail_split_keeps_the_published_split_and_draws_from_the_discarded(k, seed):
    labels = np.repeat(np.arange(5), 40)[np.random.default_rng(1).permutation(200)]
    counts = class_counts(40, 5, 10)  # [40, 22, 12, 6, 4]: the head keeps all 40
    keep, val, moved = long_tail_split(labels, counts, k, seed)
    published = long_tail_indices(labels, counts, seed)
    assert np.bincount(labels[val], minlength=5).tolist() == [k] * 5  # class-balanced
    assert not set(keep) & set(val)  # disjoint
    # every class whose discarded images suffice keeps exactly the published images; the head
    # (no discarded image) gives its k from the end of its kept ones
    for c, n_c in enumerate(counts):
        pub_c = published[labels[published] == c]
        keep_c = keep[labels[keep] == c]
        if 40 - n_c >= k:
            assert keep_c.tolist() == pub_c.tolist()
            assert not set(val[labels[val] == c]) & set(pub_c)  # validation: discarded images
        else:
            assert keep_c.tolist() == pub_c[: 40 - k].tolist()
    assert moved == sum(max(0, k - (40 - n)) for n in counts)
    if k == 0:
        assert keep.tolist() == published.tolist() and len(val) == 0 and moved == 0


def test_long_tail_split_is_seeded():
    labels = np.repeat(np.arange(3), 50)
    counts = [50, 20, 5]
    a = long_tail_split(labels, counts, 10, seed=0)
    b = long_tail_split(labels, counts, 10, seed=0)
    c = long_tail_split(labels, counts, 10, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a[:2], b[:2]))
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("labels,k", [([0, 0, 1, 1, 1], 2), ([0] * 3 + [1] * 9, 3)])
def test_too_small_classes_are_refused_not_emptied(labels, k):
    with pytest.raises(ValueError, match="too few"):
        long_tail_split(np.array(labels), [1, 1], k)
    with pytest.raises(ValueError, match="too few"):
        stratified_holdout(np.array(labels), k)


def test_stratified_holdout_partitions_the_indices():
    labels = np.array([0] * 10 + [1] * 7 + [2] * 4)
    rest, held = stratified_holdout(labels, 3, seed=2)
    assert np.bincount(labels[held]).tolist() == [3, 3, 3]
    assert sorted(rest.tolist() + held.tolist()) == list(range(21))


def _ids(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_cifar_validation_is_disjoint_balanced_and_recorded(tmp_path):
    _cifar_dir(tmp_path, 10, 50)
    cfg = DataConfig(dataset="cifar10_lt", root=str(tmp_path), imbalance_ratio=10, val_per_class=8)
    d = load_data(cfg)
    assert np.bincount(d.val_y).tolist() == [8] * 10
    assert d.train_counts.tolist() == [42] + class_counts(50, 10, 10)[1:]  # head: 50 - 8
    assert not _ids(d.val_x) & _ids(d.train_x) and not _ids(d.val_x) & _ids(d.test_x)
    assert "discarded" in d.val_source and "8 from the head" in d.val_source
    again = load_data(cfg)
    assert np.array_equal(again.val_x, d.val_x)  # seeded
    other = load_data(cfg.model_copy(update={"split_seed": 1}))
    assert not np.array_equal(other.val_x, d.val_x)
    assert load_data(cfg.model_copy(update={"val_per_class": 0})).val_x is None


def test_digits_validation_is_held_out_before_the_long_tail():
    d = load_data(DataConfig(imbalance_ratio=10, val_per_class=15))
    assert np.bincount(d.val_y).tolist() == [15] * 10
    counts = d.train_counts.tolist()
    assert counts == class_counts(counts[0], 10, 10)  # the imbalance ratio stays exact
    assert not _ids(d.val_x) & _ids(d.train_x) and "held out" in d.val_source


def test_head_images_shrinks_the_head_and_keeps_the_profile(tmp_path):
    _cifar_dir(tmp_path, 10, 50)
    cfg = DataConfig(dataset="cifar10_lt", root=str(tmp_path), imbalance_ratio=10, head_images=30)
    d = load_data(cfg.model_copy(update={"val_per_class": 10}))
    assert d.train_counts.tolist() == class_counts(30, 10, 10)
    assert np.bincount(d.val_y).tolist() == [10] * 10 and "head" not in d.val_source
    with pytest.raises(DataError, match="head_images"):
        load_data(cfg.model_copy(update={"head_images": 51}))


def _npz(path, n_train=30, val=True, val_labels=None):
    rng = np.random.default_rng(0)
    arrays = dict(
        train_x=rng.integers(0, 255, (n_train, 8, 8, 1), dtype=np.uint8),
        train_y=np.arange(n_train) % 3,
        test_x=rng.integers(0, 255, (9, 8, 8, 1), dtype=np.uint8),
        test_y=np.arange(9) % 3,
    )
    if val:
        arrays["val_x"] = rng.integers(0, 255, (6, 8, 8, 1), dtype=np.uint8)
        arrays["val_y"] = np.asarray(val_labels if val_labels is not None else np.arange(6) % 3)
    np.savez(path, **arrays)
    return path


def test_arrays_take_their_own_validation_set(tmp_path):
    path = _npz(tmp_path / "a.npz")
    d = load_data(DataConfig(dataset="arrays", path=str(path), imbalance_ratio=1))
    assert len(d.val_y) == 6 and len(d.train_y) == 30 and "shipped" in d.val_source
    # without one, a file used as it is gives a stratified held-out part of its training set
    bare = _npz(tmp_path / "b.npz", val=False)
    d = load_data(DataConfig(dataset="arrays", path=str(bare), imbalance_ratio=1, val_per_class=2))
    assert np.bincount(d.val_y).tolist() == [2, 2, 2] and len(d.train_y) == 24


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"val_labels": [0, 1, 2, 3, 0, 1]}, "validation labels outside"),
        ({"val_labels": [[0], [1], [2], [0], [1], [2]]}, "1-D"),
    ],
)
def test_bad_validation_arrays_are_one_line_errors(tmp_path, change, needle):
    path = _npz(tmp_path / "a.npz", **change)
    with pytest.raises(DataError, match=needle):
        load_data(DataConfig(dataset="arrays", path=str(path), imbalance_ratio=1))


def test_val_x_without_val_y_is_refused(tmp_path):
    path = tmp_path / "a.npz"
    z = dict(np.load(_npz(path)))
    del z["val_y"]
    np.savez(path, **z)
    with pytest.raises(DataError, match="come together"):
        load_data(DataConfig(dataset="arrays", path=str(path), imbalance_ratio=1))


def test_a_validation_list_sharing_an_image_with_training_is_refused(tmp_path):
    from tests.data.test_data import _list_tree

    _list_tree(tmp_path, ["imgs/0.jpg 0", "imgs/1.jpg 1"], ["imgs/3.jpg 1", "imgs/2.jpg 0"])
    (tmp_path / "val.txt").write_text("imgs/1.jpg 1\n")
    cfg = DataConfig(
        dataset="imagenet_lt",
        root=str(tmp_path),
        train_list="train.txt",
        test_list="test.txt",
        val_list="val.txt",
        image_size=16,
    )
    with pytest.raises(DataError, match="disjoint"):
        load_data(cfg)


@pytest.mark.skipif(
    not (REAL_CIFAR / "cifar-10-batches-py").exists(),
    reason="the real CIFAR-10 copy (../shared/data/cifar10) is not on this machine",
)
def test_real_cifar10_default_validation():
    d = load_data(DataConfig(dataset="cifar10_lt", root=str(REAL_CIFAR), imbalance_ratio=100))
    # the published LDAM-DRW counts, less the default 20 validation images of the head class
    assert d.train_counts.tolist() == [4980, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert np.bincount(d.val_y).tolist() == [20] * 10
