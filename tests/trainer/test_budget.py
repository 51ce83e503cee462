"""How many pack members fit a time budget, at a few synthetic speeds.

Expected counts are worked out by hand from the model of :func:`members_that_fit`: ``k`` members
need ``epochs_left * epoch_s * (0.2 + 0.8 * k / 8) + evals_left * k * eval_s`` seconds, at most
``0.9 x`` the seconds left; at least one member always stays.
"""

from __future__ import annotations

import pytest

from rcl_study.trainer.budget import PackBudget, members_that_fit


@pytest.mark.parametrize(
    "epoch_s, seconds_left, expected",
    [
        # the GPU ablation: 0.45 s per member-epoch (3.6 s for 8), 198 epochs and 40 evaluations
        # (0.1 s per member) left, 420 s: 142.56 + 75.28 k <= 378 -> k = 3
        (3.6, 420.0, 3),
        # twice the seconds: 142.56 + 75.28 k <= 756 -> k = 8.1 -> all 8
        (3.6, 840.0, 8),
        # a faster device, 2.0 s for 8: 79.2 + 43.6 k <= 378 -> k = 6.85 -> 6
        (2.0, 420.0, 6),
        # 1.0 s for 8: 39.6 + 23.8 k <= 378 -> k = 14.2 -> all 8
        (1.0, 420.0, 8),
        # 8 s for 8: 316.8 + 162.4 k > 378 for every k -> BCL alone (it resumes later)
        (8.0, 420.0, 1),
    ],
)
def test_members_that_fit_at_synthetic_speeds(epoch_s, seconds_left, expected):
    got = members_that_fit(
        members=8,
        epoch_s=epoch_s,
        eval_s=0.1,
        epochs_left=198,
        evals_left=40,
        seconds_left=seconds_left,
        shared=0.2,
        safety=0.9,
    )
    assert got == expected


def test_the_budget_logs_its_decision_and_checks_the_next_epoch():
    now = [100.0]
    budget = PackBudget(deadline=520.0, clock=lambda: now[0])
    assert budget.keep(8, 3.6, 0.1, 198, 40) == 3  # 420 s left, as the first case above
    assert budget.decisions == [
        {
            "members": 8,
            "keep": 3,
            "epoch_s": 3.6,
            "eval_s": 0.1,
            "epochs_left": 198,
            "seconds_left": 420.0,
        }
    ]
    now[0] = 515.0  # 5 s left
    assert budget.next_epoch_fits(4.5, 0.5) and not budget.next_epoch_fits(4.5, 0.6)
