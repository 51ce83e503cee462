"""A data draw per trial (`data.split_seed: trial`) and random head and tail classes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pydantic import ValidationError

from rcl_study.config.schema import DataConfig
from rcl_study.data import load_data
from rcl_study.data.checks import DataError
from rcl_study.data.load import head_to_tail, split_seed_of
from rcl_study.data.longtail import class_counts

DIGITS = {"dataset": "digits_lt", "imbalance_ratio": 10, "val_per_class": 5}


def test_a_trial_draw_is_the_split_a_fixed_seed_of_the_same_value_gives():
    per_trial = DataConfig(**DIGITS, split_seed="trial")
    for seed in (0, 7):
        a = load_data(per_trial, trial_seed=seed)
        b = load_data(DataConfig(**DIGITS, split_seed=seed))
        assert np.array_equal(a.train_index, b.train_index)
        assert np.array_equal(a.val_y, b.val_y)
        assert a.split_seed == seed and a.train_split() == b.train_split()


def test_trial_draws_differ_across_seeds_and_repeat_within_one():
    cfg = DataConfig(**DIGITS, split_seed="trial")
    digests = {s: load_data(cfg, trial_seed=s).train_split().digest for s in range(4)}
    assert len(set(digests.values())) == 4
    assert load_data(cfg, trial_seed=2).train_split().digest == digests[2]


def test_a_fixed_split_seed_ignores_the_trial_seed():
    cfg = DataConfig(**DIGITS, split_seed=3)
    assert np.array_equal(load_data(cfg, 0).train_index, load_data(cfg, 9).train_index)
    assert split_seed_of(DataConfig(**DIGITS)) == 0  # None: the published split


def test_trial_without_a_trial_seed_is_one_line():
    with pytest.raises(DataError, match="split_seed: trial"):
        load_data(DataConfig(**DIGITS, split_seed="trial"))


@pytest.mark.parametrize("bad", [True, "trail", -1, 2**32])
def test_bad_split_seeds_are_refused(bad):
    with pytest.raises(ValidationError):
        DataConfig(**DIGITS, split_seed=bad)


def test_fixed_order_keeps_class_zero_the_head_as_before():
    d = load_data(DataConfig(**DIGITS))
    assert d.class_order == list(range(10))
    counts = d.train_counts.tolist()
    assert counts == class_counts(counts[0], 10, 10)  # class 0 the head, the last the tail


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_random_order_gives_the_ranked_counts_to_the_drawn_classes(seed):
    d = load_data(DataConfig(**DIGITS, class_order="random", split_seed=seed))
    order = d.class_order
    assert sorted(order) == list(range(10))
    n_max = int(d.train_counts.max())
    ranked = class_counts(n_max, 10, 10)
    assert [int(d.train_counts[c]) for c in order] == ranked  # head to tail as drawn
    assert d.train_split().class_order == order


def test_random_orders_vary_with_the_seed_and_every_class_can_be_the_head():
    heads = [head_to_tail(10, "random", s)[0] for s in range(300)]
    assert set(heads) == set(range(10))
    # each class is the head about 30 times in 300 draws: a loose binomial bound (p = 0.1)
    assert max(np.bincount(heads, minlength=10)) < 60
    assert head_to_tail(10, "random", 4) == head_to_tail(10, "random", 4)
    assert head_to_tail(4, "fixed", 4) == [0, 1, 2, 3]


def test_random_order_draws_each_class_s_images_as_a_fixed_order_with_those_counts():
    # the permutation has its own stream: the shuffle of each class's images is the same
    fixed = load_data(DataConfig(**DIGITS, split_seed=2))
    rand = load_data(DataConfig(**DIGITS, split_seed=2, class_order="random"))
    head = rand.class_order[0]
    n = int(rand.train_counts[head])
    assert n == int(fixed.train_counts[0])  # the head keeps as many images either way
    assert not np.array_equal(fixed.train_index, rand.train_index)


def test_the_digest_is_sha256_of_indices_and_labels():
    d = load_data(DataConfig(**DIGITS))
    index = np.asarray(d.train_index, dtype="<i8").tobytes()
    labels = np.asarray(d.train_y, dtype="<i8").tobytes()
    assert d.train_split().digest == hashlib.sha256(index + b"|" + labels).hexdigest()
    assert d.train_split().to_json()["class_counts"] == d.train_counts.tolist()


def test_random_order_is_refused_for_data_used_as_it_is(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "a.npz"
    y = np.repeat(np.arange(3), 10)
    x = rng.integers(0, 255, (30, 8, 8, 1), dtype=np.uint8)
    np.savez(path, train_x=x, train_y=y, test_x=x, test_y=y)
    cfg = DataConfig(
        dataset="arrays", path=str(path), imbalance_ratio=1, val_per_class=2, class_order="random"
    )
    with pytest.raises(DataError, match="class_order"):
        load_data(cfg)
