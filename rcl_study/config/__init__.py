"""Study files: the schema (``schema`` and its sections), the safe YAML reader, dotted keys.

A study file is read once (:func:`load_study`) into a frozen, validated :class:`StudyFile`; every
problem is a one-line :class:`ConfigError` naming the file and the key.
"""

from rcl_study.config.base import COMPONENTS, DATASETS, DRIVER_CPU
from rcl_study.config.errors import ConfigError
from rcl_study.config.keys import apply_overrides, check_key, set_in, set_path, to_dict, walk
from rcl_study.config.metrics import METRIC_INFO, METRICS, RENAMED_METRICS
from rcl_study.config.reader import load_study, read_yaml
from rcl_study.config.resources_section import ResourcesConfig
from rcl_study.config.schema import (
    DataConfig,
    LossConfig,
    ModelConfig,
    ReportConfig,
    StudyFile,
    TrainConfig,
    parse_study,
)
from rcl_study.config.study_section import RangeSpec, StudyConfig

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
