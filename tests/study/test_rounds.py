"""Seeds in planned rounds: a study runs round by round and stops once its contrasts are decided."""

from __future__ import annotations

import json

import pytest

from rcl_study.config import to_dict
from rcl_study.study.runner import run_study
from rcl_study.trials.design import trial_config
from rcl_study.trials.records import TrialRecord, TrialStatus, config_hash
from tests.conftest import TINY_STUDY


class Scored:
    """An executor that trains nothing: each trial scores ``score(variant, seed)``."""

    name = "local"

    def __init__(self, score) -> None:
        self.score, self.ran = score, []

    def start(self, study) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, study, units, folder, sink) -> None:
        for unit in units:
            for p in unit.members:
                self.ran.append(p.trial_id)
                metrics = {"balanced_acc": self.score(p.variant, p.seed)}
                config = to_dict(trial_config(study, p.overrides, p.seed))
                sink.record(
                    TrialRecord(
                        trial_id=p.trial_id,
                        variant=p.variant,
                        seed=p.seed,
                        overrides=p.overrides,
                        status=TrialStatus.OK,
                        metrics=metrics,
                        config=config,
                        config_hash=config_hash(config),
                    )
                )


def _study(tmp_path, rounds, **report):
    raw = TINY_STUDY(
        name="rounds",
        loss=TINY_STUDY.Only(preset="bcl+rcl"),
        study=TINY_STUDY.Only(
            kind="grid",
            grid={"loss.preset": ["la", "bcl"]},
            seeds=[0, 1, 2, 3, 4, 5],
            rounds=rounds,
        ),
        report=report,
    )
    raw["study"]["output_dir"] = str(tmp_path / "runs")
    raw["report"]["dir"] = str(tmp_path / "rep")
    from rcl_study.config import parse_study

    return parse_study(raw)


def _big_effect(variant: str, seed: int) -> float:
    return 0.5 + (0.3 + 0.0001 * seed if variant.endswith("bcl") else 0.0)


def test_a_decided_contrast_stops_the_study_after_its_round(tmp_path, capsys):
    cfg = _study(tmp_path, [2, 4, 6])
    ex = Scored(_big_effect)
    records = run_study(cfg, executor=ex, trackers=[], progress=False)
    assert sorted({r.seed for r in records}) == [0, 1]  # round 1 only: 2 seeds x 2 variants
    assert len(ex.ran) == 4
    assert "decided after round 1" in capsys.readouterr().err
    plan = json.loads((tmp_path / "runs" / "plan.json").read_text())
    declared = plan["meta"]["declared"]
    assert declared["primary"] == ["loss.preset=bcl - loss.preset=la"]
    assert declared["rounds"] == [2, 4, 6] and declared["primary_source"] == "default"
    # a resume walks the same rounds and runs nothing more
    ex2 = Scored(_big_effect)
    run_study(cfg, resume=True, executor=ex2, trackers=[], progress=False)
    assert ex2.ran == []


def test_an_undecided_contrast_runs_every_round(tmp_path):
    cfg = _study(tmp_path, [2, 4, 6])
    noise = {0: 0.01, 1: -0.02, 2: 0.03, 3: -0.01, 4: 0.02, 5: -0.03}
    ex = Scored(lambda v, s: 0.5 + (noise[s] if v.endswith("bcl") else 0.0))
    records = run_study(cfg, executor=ex, trackers=[], progress=False)
    assert len(records) == 12 and len(ex.ran) == 12


def test_futility_stops_the_study_when_the_interval_lies_inside_the_sesoi(tmp_path, capsys):
    cfg = _study(tmp_path, [3, 6], sesoi=0.5)
    tiny = {0: 0.001, 1: -0.001, 2: 0.0, 3: 0.001, 4: -0.001, 5: 0.0}
    ex = Scored(lambda v, s: 0.5 + (tiny[s] if v.endswith("bcl") else 0.0))
    records = run_study(cfg, executor=ex, trackers=[], progress=False)
    assert len(records) == 6
    assert "futile (look 1)" in capsys.readouterr().err


def test_without_rounds_every_seed_runs(tmp_path):
    cfg = _study(tmp_path, None)
    ex = Scored(_big_effect)
    assert len(run_study(cfg, executor=ex, trackers=[], progress=False)) == 12


@pytest.mark.parametrize("rounds", [[2, 4, 6]])
def test_rounds_never_reorder_seeds(tmp_path, rounds):
    cfg = _study(tmp_path, rounds)
    ex = Scored(_big_effect)
    run_study(cfg, executor=ex, trackers=[], progress=False)
    assert [t.rsplit("__s", 1)[1] for t in ex.ran] == ["0", "1", "0", "1"]


def test_a_dry_run_names_the_primary_contrasts_and_the_rounds(tmp_path):
    from rcl_study.study.runner import dry_run_text

    text = dry_run_text(_study(tmp_path, [2, 4, 6], sesoi=0.01))
    assert "primary contrasts (default): loss.preset=bcl - loss.preset=la" in text
    assert "rounds [2, 4, 6] (cumulative seeds)" in text and "SESOI 0.01" in text
    assert "primary contrasts" not in dry_run_text(_study(tmp_path, None))
