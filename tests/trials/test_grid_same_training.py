"""A grid whose points train the same thing is refused before anything runs.

The committed imbalance sweep compared ``loss.preset: [bcl, bcl+rcl]`` with ``balance: 1.0, scale:
1.2, margin: 0.5`` in its loss section: explicit knobs override the preset, so both arms were
BCL+RCL and the report would have compared a loss with itself.
"""

from __future__ import annotations

import pytest

from rcl_study.config import ConfigError
from rcl_study.losses import resolve_loss
from rcl_study.trials.design import expand, trial_config


def _grid(tiny_study, loss: dict, grid: dict):
    return tiny_study.parse(
        {
            "name": "g",
            "loss": tiny_study.Only(loss),
            "study": {"kind": "grid", "grid": grid, "seeds": [0, 1]},
        }
    )


def test_presets_made_equal_by_explicit_knobs_are_refused(tiny_study):
    cfg = _grid(
        tiny_study,
        {"preset": "bcl+rcl", "balance": 1.0, "scale": 1.2, "margin": 0.5},
        {"loss.preset": ["bcl", "bcl+rcl"]},
    )
    # the independent expectation: the two arms resolve to one loss
    a, b = (trial_config(cfg, {"loss.preset": p}, 0) for p in ("bcl", "bcl+rcl"))
    assert resolve_loss(a.loss, 2.0, 0.6) == resolve_loss(b.loss, 2.0, 0.6)
    with pytest.raises(ConfigError, match="'loss.preset=bcl' and 'loss.preset=bcl\\+rcl' train"):
        expand(cfg)


def test_presets_that_differ_are_accepted(tiny_study):
    cfg = _grid(tiny_study, {"preset": "bcl+rcl"}, {"loss.preset": ["bcl", "bcl+rcl"]})
    assert len(expand(cfg)) == 4


def test_the_two_readings_at_scale_one_stay_a_deliberate_pair(tiny_study):
    """s = 1 under scale_on all and views: the same numbers, but two declared readings (the scale
    sweep's reproducibility check), so not refused."""
    cfg = _grid(
        tiny_study,
        {"preset": "bcl+rcl"},
        {"loss.scale": [1.0, 2.0], "loss.scale_on": ["all", "views"]},
    )
    assert len(expand(cfg)) == 8
