"""Long-tailed datasets, their construction, and batched augmentation."""

from .datasets import DataError, LTData, load_data
from .longtail import class_counts, long_tail_indices, shot_groups

__all__ = ["DataError", "LTData", "class_counts", "load_data", "long_tail_indices", "shot_groups"]
