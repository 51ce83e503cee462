"""Study files: the schema (``schema``), the safe YAML reader (``reader``), dotted keys (``keys``).

A study file is read once (:func:`load_study`) into a frozen, validated :class:`StudyFile`; every
problem is a one-line :class:`ConfigError` naming the file and the key.
"""

from rcl_study.config.errors import ConfigError
from rcl_study.config.keys import apply_overrides, check_key, set_in, set_path, to_dict, walk
from rcl_study.config.metrics import METRIC_INFO, METRICS, RENAMED_METRICS
from rcl_study.config.reader import load_study, read_yaml
from rcl_study.config.schema import (
    COMPONENTS,
    DATASETS,
    DRIVER_CPU,
    DataConfig,
    LossConfig,
    ModelConfig,
    RangeSpec,
    ReportConfig,
    ResourcesConfig,
    StudyConfig,
    StudyFile,
    TrainConfig,
    parse_study,
)

__all__ = [
    "COMPONENTS",
    "DATASETS",
    "DRIVER_CPU",
    "METRICS",
    "METRIC_INFO",
    "RENAMED_METRICS",
    "ConfigError",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "RangeSpec",
    "ReportConfig",
    "ResourcesConfig",
    "StudyConfig",
    "StudyFile",
    "TrainConfig",
    "apply_overrides",
    "check_key",
    "load_study",
    "parse_study",
    "read_yaml",
    "set_in",
    "set_path",
    "to_dict",
    "walk",
]
