"""The study schema (``rcl_study.config.schema``): a report's ``mode`` agrees with its metric."""

from __future__ import annotations

import pytest

from rcl_study.config import ConfigError, parse_study


def test_mode_must_agree_with_the_metric_direction():
    with pytest.raises(ConfigError, match="mode"):
        parse_study({"name": "x", "study": {"metric": "balanced_acc", "mode": "min"}})
