"""The data types: :class:`Split`, :class:`LTData` and :class:`ListImages`.

Every reader returns a :class:`Split`; :func:`~rcl_study.data.load.load_data` returns an
:class:`LTData`; list-file datasets hold their images as :class:`ListImages` (decoded on demand).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rcl_study.data.checks import DataError


@dataclass
class ListImages:
    """Images named in a list file, decoded on demand to ``size x size`` RGB uint8."""

    root: Path
    paths: list[str]
    size: int
    #: threads decoding a batch (``data.workers``; 0 or 1: in the calling thread)
    workers: int = 8

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, size, size, 3)``, as an image array would have."""
        return (len(self.paths), self.size, self.size, 3)

    def _load(self, rel: str) -> np.ndarray:
        from PIL import Image

        path = self.root / rel
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                side = min(w, h)  # centre square, then resize (keeps aspect ratio)
                box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
                return np.asarray(img.resize((self.size, self.size), box=box), dtype=np.uint8)
        except FileNotFoundError:
            raise DataError(f"{path}: image named in the list file is missing") from None
        except OSError as err:
            raise DataError(f"{path}: cannot decode image ({err})") from None

    def __getitem__(self, idx) -> np.ndarray:
        """Decode the images at ``idx`` (threads) into ``[B, size, size, 3]`` uint8."""
        idx = np.atleast_1d(np.asarray(idx))
        paths = [self.paths[i] for i in idx]
        if self.workers <= 1:
            return np.stack([self._load(p) for p in paths])
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return np.stack(list(pool.map(self._load, paths)))

    def subset(self, idx: np.ndarray) -> ListImages:
        """The images at ``idx``, still decoded on demand."""
        return ListImages(self.root, [self.paths[i] for i in idx], self.size, self.workers)


@dataclass(frozen=True)
class Split:
    """A source's training and test sets as read, checked and not yet long-tailed.

    Every reader returns one. ``test_mask`` marks a trusted test subset (CIFAR-10's lossless
    images) when the source has one; ``train_index`` and ``imbalance_ratio`` are what an exported
    ``arrays`` file stored (``imbalance_ratio`` as stored, a 0-d array); ``already_long_tailed``
    marks sources used as they are (list files); ``val_x`` / ``val_y`` are a validation set the
    source ships (a list dataset's ``val_list``, an ``arrays`` file's ``val_x`` / ``val_y``).
    """

    train_x: np.ndarray | ListImages
    train_y: np.ndarray
    test_x: np.ndarray | ListImages
    test_y: np.ndarray
    test_mask: np.ndarray | None = None
    train_index: np.ndarray | None = None
    imbalance_ratio: np.ndarray | None = None
    already_long_tailed: bool = False
    val_x: np.ndarray | ListImages | None = None
    val_y: np.ndarray | None = None

    def __getitem__(self, key: str) -> object:
        """``split["train_y"]`` is ``split.train_y``: read access for code written for dicts."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)


@dataclass(frozen=True)
class TrainSplit:
    """The name of a trial's training split, as its record keeps it (``train_split``).

    ``digest``: SHA-256 of the kept images' source indices and labels (int64, little-endian),
    equal for two trials exactly when they train on the same images with the same labels;
    ``class_counts``: training images per class; ``class_order``: the classes from head to tail
    (empty where the data was used as it is); ``split_seed``: the seed it was drawn with.
    """

    digest: str
    class_counts: list[int]
    class_order: list[int]
    split_seed: int

    def to_json(self) -> dict[str, object]:
        """The JSON form a record stores."""
        return {
            "digest": self.digest,
            "class_counts": list(self.class_counts),
            "class_order": list(self.class_order),
            "split_seed": self.split_seed,
        }


@dataclass
class LTData:
    """A long-tailed training split, a validation set and a (balanced) test set.

    ``train_x``/``val_x``/``test_x`` are uint8 ``[N, H, W, C]`` arrays (or :class:`ListImages`);
    ``train_index`` are the kept images' indices in the source training set; ``test_mask`` marks a
    trusted test subset (the lossless CIFAR-10 images) when the data has one. The validation set
    (what every choice is made on) is disjoint from both; ``val_source`` says where it came from.
    ``val_x`` is None only when ``data.val_per_class`` is 0 (no validation: choices fall back to
    the test set, and say so).
    """

    name: str
    train_x: np.ndarray | ListImages
    train_y: np.ndarray
    test_x: np.ndarray | ListImages
    test_y: np.ndarray
    num_classes: int
    train_index: np.ndarray
    test_mask: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    val_x: np.ndarray | ListImages | None = None
    val_y: np.ndarray | None = None
    val_source: str = "none"
    #: the seed the long-tailed subset and the validation split were drawn with
    split_seed: int = 0
    #: the classes from head to tail (``data.class_order``); empty for data used as it is
    class_order: list[int] = field(default_factory=list)

    def train_split(self) -> TrainSplit:
        """What names this training split: its digest, class counts, class order and seed."""
        index = np.ascontiguousarray(np.asarray(self.train_index, dtype="<i8"))
        labels = np.ascontiguousarray(np.asarray(self.train_y, dtype="<i8"))
        digest = hashlib.sha256(index.tobytes() + b"|" + labels.tobytes()).hexdigest()
        return TrainSplit(
            digest=digest,
            class_counts=[int(n) for n in self.train_counts],
            class_order=list(self.class_order),
            split_seed=int(self.split_seed),
        )

    @property
    def train_counts(self) -> np.ndarray:
        """Training images per class, ``[C]``."""
        return np.bincount(self.train_y, minlength=self.num_classes)

    @property
    def channels(self) -> int:
        """Image channels (1 or 3)."""
        return int(self.train_x.shape[-1])

    @property
    def image_size(self) -> int:
        """Image height (= width) in pixels."""
        return int(self.train_x.shape[1])
