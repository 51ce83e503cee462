"""The study section's bounds (``rcl_study.config.study_section``), checked before any work.

Rows of BOUND_CASES are study sections whose size is out of bounds: the trial count of a grid,
an ablation or a search is computed before anything is expanded and refused above
``study.max_trials`` (raisable); other sizes have upper bounds. Each is one ``ConfigError`` line
naming the key, from a study file or from ``--set`` alike.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from rcl_study import run
from rcl_study.config import ConfigError
from tests.conftest import TINY_STUDY


class Bound(NamedTuple):
    """One study section out of bounds, and the word the error line must hold."""

    name: str
    sections: dict[str, Any]
    needle: str


def grid(n_keys: int, n_values: int, seeds: int = 1, **more: Any) -> dict[str, Any]:
    """A grid over ``n_keys`` keys of ``n_values`` values each."""
    keys = ["loss.scale", "loss.margin", "loss.balance", "train.lr", "train.momentum"]
    keys += ["train.weight_decay"]
    values = [round(0.01 * (i + 1), 4) for i in range(n_values)]
    return {
        "study": {
            "kind": "grid",
            "seeds": list(range(seeds)),
            "grid": {k: values for k in keys[:n_keys]},
            **more,
        }
    }


BOUND_CASES = [
    Bound("a grid of a million points", grid(6, 10), "max_trials"),
    Bound("a grid of 40000 points", grid(2, 200), "max_trials"),
    Bound("a grid of 10000 points at 2 seeds", grid(2, 100, seeds=2), "max_trials"),
    Bound("a grid above a lowered max_trials", grid(1, 20, max_trials=10), "max_trials"),
    Bound(
        "a search of a billion trials",
        {
            "study": {
                "kind": "search",
                "n_trials": 10**9,
                "space": {"loss.scale": {"low": 0.5, "high": 2.0}},
            }
        },
        "max_trials",
    ),
    Bound(
        "a factorial ablation at 2000 seeds", {"study": {"seeds": list(range(2000))}}, "max_trials"
    ),
    Bound("a billion bootstrap resamples", {"report": {"bootstrap": 10**9}}, "bootstrap"),
    Bound("a million retries", {"study": {"retries": 10**6}}, "retries"),
    Bound("an image side of a million", {"data": {"image_size": 10**6}}, "image_size"),
    Bound("a batch of a billion", {"train": {"batch_size": 10**9}}, "batch_size"),
    Bound("a billion epochs", {"train": {"epochs": 10**9}}, "epochs"),
]


@pytest.mark.parametrize("case", BOUND_CASES, ids=[c.name for c in BOUND_CASES])
def test_a_size_out_of_bounds_is_one_line_before_any_work(case):
    with pytest.raises(ConfigError) as err:
        TINY_STUDY.parse(case.sections)
    msg = str(err.value)
    assert case.needle in msg and "\n" not in msg, msg


def test_a_raised_max_trials_lets_a_large_grid_through():
    cfg = TINY_STUDY.parse(grid(2, 150, max_trials=30_000))  # 22500 points
    assert cfg.study.max_trials == 30_000


SET_CASES = [
    (
        "study.n_trials=1000000000",
        "max_trials",
        {"study": {"kind": "search", "space": {"loss.scale": {"low": 0.5, "high": 2.0}}}},
    ),
    ("report.bootstrap=1000000000", "bootstrap", {}),
    ("study.seeds=[" + ",".join(map(str, range(3000))) + "]", "max_trials", {}),
]


@pytest.mark.parametrize("setting,needle,sections", SET_CASES, ids=[s[:30] for s, *_ in SET_CASES])
def test_set_values_pass_the_same_bounds(setting, needle, sections, tmp_path, monkeypatch, capsys):
    path = TINY_STUDY.write(tmp_path, sections, name="bounds")
    monkeypatch.chdir(tmp_path)
    assert run.main([str(path), "--set", setting, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err, err
