"""Long-tailed datasets, their construction, and batched augmentation."""

from rcl_study.data.datasets import DataError, LTData, load_data
from rcl_study.data.longtail import class_counts, long_tail_indices, shot_groups

__all__ = ["DataError", "LTData", "class_counts", "load_data", "long_tail_indices", "shot_groups"]
