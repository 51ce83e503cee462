"""Long-tailed datasets, their construction, and batched augmentation.

A map of the package:

- :mod:`~rcl_study.data.load`: ``load_data(cfg)``, the reader by ``cfg.dataset`` + long tail
- :mod:`~rcl_study.data.types`: ``Split`` (every reader's result), ``LTData``, ``ListImages``
- :mod:`~rcl_study.data.checks`: ``DataError``, ``memory_cap``, ``check_labels``, ``check_images``
- one reader per source: :mod:`~rcl_study.data.cifar`, :mod:`~rcl_study.data.fashion_mnist`,
  :mod:`~rcl_study.data.digits`, :mod:`~rcl_study.data.lists`, :mod:`~rcl_study.data.arrays`
- :mod:`~rcl_study.data.longtail`: per-class counts and the long-tailed subsampling
- :mod:`~rcl_study.data.augment` (+ ``autoaugment``, ``randaugment``, ``uint8_ops``,
  ``float_ops``): batched augmentation on the device
- ``python -m rcl_study.data export``: write a split as an ``.npz`` (:mod:`.__main__`)
"""

from rcl_study.data.checks import DataError
from rcl_study.data.load import load_data
from rcl_study.data.longtail import class_counts, long_tail_indices, shot_groups
from rcl_study.data.types import LTData

__all__ = ["DataError", "LTData", "class_counts", "load_data", "long_tail_indices", "shot_groups"]
