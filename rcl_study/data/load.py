"""``load_data(cfg)``: the reader that ``cfg.dataset`` names, then the long-tailed training split.

=====================  ==========================================  ===========================
``data.dataset``       reader                                      source
=====================  ==========================================  ===========================
``digits_lt``          :func:`~rcl_study.data.digits.read_digits`  scikit-learn's 8x8 digits
``cifar10_lt``,        :func:`~rcl_study.data.cifar.read_cifar`    CIFAR python-version pickles
``cifar100_lt``
``fashion_mnist_lt``   :mod:`rcl_study.data.fashion_mnist`         gzip IDX files
``imagenet_lt``,       :func:`~rcl_study.data.lists.read_lists`    list files + image folder
``inaturalist``,
``places_lt``
``arrays``             :func:`~rcl_study.data.arrays.read_arrays`  an exported ``.npz``
=====================  ==========================================  ===========================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from rcl_study.data.arrays import read_arrays
from rcl_study.data.checks import MAX_CLASSES, DataError, check_plugin_split
from rcl_study.data.cifar import read_cifar
from rcl_study.data.digits import read_digits
from rcl_study.data.fashion_mnist import read_fashion_mnist
from rcl_study.data.lists import read_lists
from rcl_study.data.longtail import (
    class_counts,
    long_tail_split,
    stratified_holdout,
    stratified_subset,
)
from rcl_study.data.types import ListImages, LTData, Split


def _root(cfg) -> Path:
    if cfg.root is None:
        raise DataError(
            f"data.root is not set; {cfg.dataset} needs the folder that holds its files"
        )
    return Path(cfg.root).expanduser()


def _lists(cfg) -> Split:
    root = _root(cfg)
    if not cfg.train_list or not cfg.test_list:
        raise DataError(f"{cfg.dataset} needs data.train_list and data.test_list (list files)")
    return read_lists(
        root,
        cfg.train_list,
        cfg.test_list,
        cfg.num_classes,
        cfg.image_size,
        cfg.val_list,
        cfg.workers,
    )


def read_digits_lt(cfg) -> Split:
    """The registered ``digits_lt``: scikit-learn's 8x8 digits."""
    return read_digits()


def read_cifar10_lt(cfg) -> Split:
    """The registered ``cifar10_lt``: CIFAR-10 pickles under ``data.root``."""
    return read_cifar(_root(cfg), 10, cfg.download)


def read_cifar100_lt(cfg) -> Split:
    """The registered ``cifar100_lt``: CIFAR-100 pickles under ``data.root``."""
    return read_cifar(_root(cfg), 100, cfg.download)


def read_fashion_mnist_lt(cfg) -> Split:
    """The registered ``fashion_mnist_lt``: gzip IDX files under ``data.root`` (or Debian's)."""
    return read_fashion_mnist(Path(cfg.root).expanduser() if cfg.root else None, cfg.download)


def read_imagenet_lt(cfg) -> Split:
    """The registered ``imagenet_lt``: list files plus an image folder."""
    return _lists(cfg)


read_inaturalist = read_places_lt = read_imagenet_lt


def read_arrays_file(cfg) -> Split:
    """The registered ``arrays``: an exported ``.npz`` (``data.path``, else ``data.root``)."""
    return read_arrays(Path(cfg.path or _root(cfg)).expanduser())


#: datasets read from list files (``data.train_list``, ``data.test_list``, ``data.val_list``)
LIST_DATASETS = ("imagenet_lt", "inaturalist", "places_lt")

#: the built-in readers by ``data.dataset`` (``rcl_study.registry`` holds these and plugins')
READERS: dict[str, Callable[..., Split]] = {
    "digits_lt": read_digits_lt,
    "cifar10_lt": read_cifar10_lt,
    "cifar100_lt": read_cifar100_lt,
    "fashion_mnist_lt": read_fashion_mnist_lt,
    "imagenet_lt": read_imagenet_lt,
    "inaturalist": read_inaturalist,
    "places_lt": read_places_lt,
    "arrays": read_arrays_file,
}


def check_data_present(cfg) -> None:
    """Raise :class:`DataError` when the files ``cfg`` (a ``DataConfig``) names are not there.

    Looks for the files only (their existence, not their contents), so a dry run can tell a
    missing data set without reading it; ``data.download: true`` fetches CIFAR and Fashion-MNIST.
    """
    need: list[Path] = []
    if cfg.dataset in ("cifar10_lt", "cifar100_lt") and not cfg.download:
        folder = "cifar-10-batches-py" if cfg.dataset == "cifar10_lt" else "cifar-100-python"
        need.append(_root(cfg) / folder)
    elif cfg.dataset == "fashion_mnist_lt" and cfg.root and not cfg.download:
        need.append(_root(cfg))
    elif cfg.dataset in ("imagenet_lt", "inaturalist", "places_lt"):
        root = _root(cfg)
        need.append(root)
        if not cfg.train_list or not cfg.test_list:
            raise DataError(f"{cfg.dataset} needs data.train_list and data.test_list (list files)")
        for lst in (cfg.train_list, cfg.test_list, cfg.val_list):
            if lst:
                need.append(Path(lst) if Path(lst).is_absolute() else root / lst)
    elif cfg.dataset == "arrays":
        need.append(Path(cfg.path or _root(cfg)).expanduser())
    for path in need:
        if not path.exists():
            raise DataError(f"data: {path} is not there ({cfg.dataset}); nothing was loaded")


def split_seed_of(cfg, trial_seed: int | None = None) -> int:
    """The seed of the long-tailed subset and validation split that ``cfg`` asks for.

    ``data.split_seed``: a number is used as it is, None is 0 (the published LDAM-DRW split),
    ``trial`` is the trial's seed (``train.seed``, given as ``trial_seed``).

    Raises:
        DataError: ``trial`` without a trial seed.

    """
    if cfg.split_seed == "trial":
        if trial_seed is None:
            raise DataError("data.split_seed: trial draws with a trial's seed; none was given")
        return int(trial_seed)
    return int(cfg.split_seed or 0)


def head_to_tail(num_classes: int, order: str, seed: int) -> list[int]:
    """The classes from head to tail: ``fixed`` 0, 1, ..., C-1; ``random`` a seeded permutation.

    The permutation has its own stream (seeded with ``(seed, 1)``), so the images kept of each
    class are drawn as they would be under a fixed order with the same counts.
    """
    if order == "fixed":
        return list(range(num_classes))
    return [int(c) for c in np.random.default_rng((seed, 1)).permutation(num_classes)]


def _read(reader, cfg) -> Split:
    """What ``reader`` returns for ``cfg``; a plugin's is checked (:func:`check_plugin_split`)."""
    from rcl_study import registry

    plugin = registry.source("datasets", cfg.dataset) != "builtin"
    who = f"data.dataset: {registry.origin('datasets', cfg.dataset)}"
    try:
        raw = reader(cfg)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - a plugin's reader failing: one line naming it
        if not plugin:
            raise
        raise DataError(f"{who} failed: {registry.error_line(err)}") from None
    if not isinstance(raw, Split):
        raise DataError(f"{who}: its reader returned {type(raw).__name__}, not a Split")
    if plugin:
        check_plugin_split(raw, who, cfg.num_classes)
    return raw


def load_data(cfg, trial_seed: int | None = None) -> LTData:
    """Read ``cfg.dataset`` and make its training split long-tailed as ``cfg`` says.

    ``cfg`` is a ``DataConfig``; ``trial_seed`` the trial's ``train.seed`` (needed by
    ``data.split_seed: trial``). List-file datasets and exported ``arrays`` files are already long
    tailed and are used as they are, as is any ``arrays`` file at ``imbalance_ratio: 1``; other
    ``arrays`` files are made long-tailed like CIFAR, with the classes from head to tail in
    ``data.class_order``.
    """
    seed = split_seed_of(cfg, trial_seed)
    from rcl_study.registry import RegistryError, get

    try:
        reader = get("datasets", cfg.dataset)
    except RegistryError as err:  # a plugin that does not import: one line, exit 2
        raise DataError(f"data.dataset: {err}") from None
    raw = _read(reader, cfg)
    train_y = raw.train_y  # readers checked: 1-D int64, non-empty, in [0, MAX_CLASSES)
    if cfg.num_classes is not None and cfg.num_classes > MAX_CLASSES:
        raise DataError(f"data.num_classes: {cfg.num_classes} is above {MAX_CLASSES}")
    num_classes = int(cfg.num_classes or max(train_y.max(), raw.test_y.max()) + 1)
    if train_y.max() >= num_classes:
        raise DataError(f"{cfg.dataset}: training labels outside [0, {num_classes})")
    if raw.test_y.max() >= num_classes or raw.test_y.min() < 0:
        raise DataError(f"{cfg.dataset}: test labels outside [0, {num_classes})")
    if num_classes > len(train_y):
        raise DataError(
            f"{cfg.dataset}: {num_classes} classes but {len(train_y)} training images; every "
            "class needs at least one (check the labels or data.num_classes)"
        )
    stored_ir = raw.imbalance_ratio
    if stored_ir is not None and float(stored_ir) != float(cfg.imbalance_ratio):
        raise DataError(
            f"{cfg.path}: this file was exported at imbalance ratio {float(stored_ir):g}, "
            f"but data.imbalance_ratio is {cfg.imbalance_ratio:g}; re-export or change the ratio"
        )
    as_is = cfg.dataset == "arrays" and cfg.imbalance_ratio == 1  # a file used as it is
    k = cfg.val_per_class
    val_x, val_y, val_source = raw.val_x, raw.val_y, "none"
    if val_y is not None and k > 0:
        if len(val_y) and val_y.max() >= num_classes:
            raise DataError(f"{cfg.dataset}: validation labels outside [0, {num_classes})")
        val_source = "shipped with the data (val_x/val_y or data.val_list)"
    elif k == 0:
        val_x = val_y = None
    order: list[int] = []
    if raw.already_long_tailed or stored_ir is not None or as_is:
        if cfg.class_order != "fixed":
            raise DataError(
                f"data.class_order: {cfg.class_order}: {cfg.dataset} is used as it is (already "
                "long-tailed), so which classes are head and tail is fixed; use fixed"
            )
        keep = raw.train_index if raw.train_index is not None else np.arange(len(train_y))
        train_x, train_y_kept = raw.train_x, train_y
        if k > 0 and val_y is None:  # nothing discarded to draw from: hold out a stratified part
            rest, held, val_source = _held_out(cfg, train_y, seed)
            val_x, val_y = _take(train_x, held), train_y[held]
            train_x, train_y_kept, keep = (
                _take(train_x, rest),
                train_y[rest],
                np.asarray(keep)[rest],
            )
    else:
        source_x, offset = raw.train_x, np.arange(len(train_y))
        if cfg.dataset == "digits_lt" and k > 0 and val_y is None:
            # digits' head is its smallest class, which the long tail keeps whole: the
            # validation part is held out (stratified) before the long tail is drawn, so the
            # imbalance ratio stays exact
            offset, held, val_source = _held_out(cfg, train_y, seed)
            val_x, val_y = raw.train_x[held], train_y[held]
            source_x, train_y = raw.train_x[offset], train_y[offset]
        per_class = np.bincount(train_y, minlength=num_classes)
        n_max = int(per_class.min() if cfg.dataset == "digits_lt" else per_class.max())
        if cfg.head_images is not None:
            if cfg.head_images > n_max:
                raise DataError(
                    f"data.head_images: {cfg.head_images} is more than the {n_max} images the "
                    f"head class of {cfg.dataset} has"
                )
            n_max = cfg.head_images
        draw = k if val_y is None else 0  # digits: 0, its validation part is held out above
        order = head_to_tail(num_classes, cfg.class_order, seed)
        try:
            ranked = class_counts(n_max, num_classes, cfg.imbalance_ratio, cfg.profile)
            counts = [0] * num_classes
            for rank, c in enumerate(order):
                counts[c] = ranked[rank]
            idx, held, moved = long_tail_split(train_y, counts, draw, seed=seed)
        except ValueError as err:
            raise DataError(f"data.imbalance_ratio/val_per_class: {cfg.dataset}: {err}") from None
        keep = offset[idx]
        train_x, train_y_kept = source_x[idx], train_y[idx]
        if draw:
            val_x, val_y = source_x[held], train_y[held]
            val_source = f"{k} per class from the training images the long tail discarded" + (
                f" ({moved} from the head's kept images)" if moved else ""
            )
    counts_now = np.bincount(train_y_kept, minlength=num_classes)
    if (counts_now == 0).any():
        raise DataError(
            f"{cfg.dataset}: classes {np.where(counts_now == 0)[0].tolist()} have no "
            "training images"
        )
    test_x, test_y, mask = raw.test_x, raw.test_y, raw.test_mask
    if cfg.max_per_class is not None:
        sub = stratified_subset(train_y_kept, cfg.max_per_class)
        train_x, train_y_kept, keep = _take(train_x, sub), train_y_kept[sub], np.asarray(keep)[sub]
    if cfg.test_limit is not None:
        per = max(1, cfg.test_limit // num_classes)
        sub = stratified_subset(test_y, per)
        test_x, test_y = _take(test_x, sub), test_y[sub]
        mask = mask[sub] if mask is not None else None
    return LTData(
        cfg.dataset,
        train_x,
        train_y_kept,
        test_x,
        test_y,
        num_classes,
        np.asarray(keep),
        mask,
        val_x=val_x,
        val_y=val_y,
        val_source=val_source,
        split_seed=seed,
        class_order=order,
    )


def _held_out(cfg, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(rest, held, source)``: ``data.val_per_class`` images a class held out, seeded.

    For sources with nothing discarded to draw validation images from; a class too small for it
    is a one-line :class:`DataError` (list datasets are pointed at ``data.val_list``).
    """
    k = cfg.val_per_class
    try:
        rest, held = stratified_holdout(labels, k, seed=seed)
    except ValueError as err:
        hint = "; or give data.val_list" if cfg.dataset in LIST_DATASETS else ""
        raise DataError(f"data.val_per_class: {cfg.dataset}: {err}{hint}") from None
    return rest, held, f"held out: {k} training images per class (seeded, stratified)"


def _take(x, idx):
    return x.subset(idx) if isinstance(x, ListImages) else x[idx]
