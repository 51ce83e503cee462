"""The late-movement criterion (``rcl_study.report.plateau``): the last fifth of the mean
learning curve against the seed sd, checked against values computed by hand."""

from __future__ import annotations

import statistics

import pytest

from rcl_study.report.plateau import plateau_check, variant_plateau
from rcl_study.trials.records import TrialRecord
from tests.report.test_report import _record, _write


def _curves(finals, slope):
    """Curves at epochs 10..100; over epochs 80-100 each rises by ``slope`` per evaluation."""
    return [
        {e: f - slope * (100 - e) / 10 if e >= 80 else 0.1 * e / 100 for e in range(10, 101, 10)}
        for f in finals
    ]


def test_a_flat_tail_within_the_seed_sd_is_a_plateau():
    row = variant_plateau(_curves([0.70, 0.72, 0.74], slope=0.005))
    assert row["last_epoch"] == 100 and row["tail_epochs"] == [80, 90, 100]
    # by hand: the mean curve at 80, 90, 100 is 0.71, 0.715, 0.72: range 0.01; sd(0.70,.72,.74)=.02
    assert row["movement"] == pytest.approx(0.01)
    assert row["sd"] == pytest.approx(statistics.stdev([0.70, 0.72, 0.74]))
    assert row["plateau"] is True


def test_a_tail_that_still_climbs_past_the_seed_sd_is_not():
    row = variant_plateau(_curves([0.70, 0.71, 0.72], slope=0.02))
    assert row["movement"] == pytest.approx(0.04) and row["sd"] == pytest.approx(0.01)
    assert row["plateau"] is False


def test_the_tail_is_the_last_fifth_of_the_epochs_even_off_the_evaluation_grid():
    # evaluations every 15 epochs up to 200: the last fifth is epochs >= 160: 165, 180, 195, 200
    epochs = [*range(15, 200, 15), 200]
    curves = [{e: 0.5 + s / 100 for e in epochs} for s in range(3)]
    assert variant_plateau(curves)["tail_epochs"] == [165, 180, 195, 200]


@pytest.mark.parametrize(
    "curves, why",
    [
        ([{10: 0.5, 20: 0.6}], "fewer than 2 seeds"),
        ([{10: 0.5, 20: 0.6}, {10: 0.5, 30: 0.6}], "seeds end at different epochs (20, 30)"),
        ([{50: 0.5, 100: 0.6}, {50: 0.55, 100: 0.62}], "fewer than 2 evaluations in the last"),
    ],
)
def test_what_cannot_be_checked_says_why(curves, why):
    row = variant_plateau(curves)
    assert row["plateau"] is None and why in row["why"]


def test_only_finished_trials_count_and_non_finite_points_are_skipped():
    def rec(tid, variant, status, hist):
        return TrialRecord(trial_id=tid, variant=variant, status=status, history=hist)

    def hist(*values):
        return [{"epoch": e, "balanced_acc": v} for e, v in zip((8, 9, 10), values)]

    records = [
        rec("a0", "a", "ok", hist(0.5, 0.5, 0.5)),
        rec("a1", "a", "ok", hist(0.5, 0.5, 0.6)),
        rec("a2", "a", "failed", hist(0.0, 0.0, 0.0)),  # would move the mean curve if counted
        # b: a NaN at epoch 9 in one seed; epoch 9 then lacks that seed and is left out of the
        # tail (mean over 8 and 10 only: 0.5, 0.55), not averaged as 0.9 from the other seed
        rec("b0", "b", "ok", hist(0.5, float("nan"), 0.5)),
        rec("b1", "b", "ok", hist(0.5, 0.9, 0.6)),
    ]
    rows = {r["variant"]: r for r in plateau_check(records, "balanced_acc")}
    assert rows["a"]["n"] == 2 and rows["a"]["movement"] == pytest.approx(0.05)
    assert rows["b"]["tail_epochs"] == [8, 10] and rows["b"]["movement"] == pytest.approx(0.05)


def test_a_flat_curve_whose_seeds_agree_exactly_meets_the_criterion():
    row = variant_plateau([{8: 0.5, 9: 0.5, 10: 0.5}, {8: 0.5, 9: 0.5, 10: 0.5}])
    assert row["movement"] == 0 and row["sd"] == 0 and row["plateau"] is True


def test_a_chosen_metric_is_read_from_its_learning_curve():
    records = [
        TrialRecord(
            trial_id=f"a{s}",
            variant="a",
            status="ok",
            history=[{"epoch": e, "balanced_acc": 0.5 + s / 10} for e in (8, 9, 10)],
        )
        for s in (0, 1)
    ]
    (row,) = plateau_check(records, "chosen_balanced_acc")
    assert row["plateau"] is True and row["tail_epochs"] == [8, 9, 10]


def test_the_report_has_the_section_with_its_numbers(tmp_path):
    # _record's history: balanced_acc = acc * e / 3 at e = 1, 2, 3: over the last fifth (epoch 3
    # only: e >= 2.4) one evaluation, so the synthetic report says why it is not checked
    recs = [_record(f"v{v}__s{s}", f"v{v}", s, {}, 0.6 + 0.01 * s) for v in (0, 1) for s in (0, 1)]
    _, path = _write(tmp_path, {"kind": "ablation"}, recs)
    md = path.read_text()
    assert "## Late movement of the learning curves" in md
    assert "Not checked (fewer than 2 evaluations in the last fifth (epochs 2.4-3))." in md


def test_the_report_table_gives_each_variants_movement_sd_and_verdict(tmp_path):
    recs = []
    for v, slope in (("flat", 0.0), ("climbing", 0.05)):
        for s, final in enumerate((0.60, 0.62, 0.64)):
            r = _record(f"{v}__s{s}", v, s, {}, final)
            r["history"] = [
                {"epoch": e, "balanced_acc": final - slope * (10 - e)} for e in range(1, 11)
            ]
            recs.append(r)
    _, path = _write(tmp_path, {"kind": "ablation"}, recs)
    md = path.read_text()
    # tail: epochs 8, 9, 10; flat: range 0, sd 0.02 -> yes; climbing: range 0.1 -> no
    assert "On test balanced_acc, 1 of 2 variants move less than the seed sd." in md
    assert "| flat | 8-10 (3 evaluations) | 0.0000 | 0.0200 | yes |" in md
    assert "| climbing | 8-10 (3 evaluations) | 0.1000 | 0.0200 | no |" in md
