"""The report side of choosing on validation: report on test, name every split."""

import json

import numpy as np
import pytest

from rcl_study.report import stats
from tests.report.test_report import _record, _write

OLD = "chosen on the test set (old records without a validation split): optimistic"

# seeds 0, 1 select, 2, 3 report. Validation favours "2"; test favours "3" on every seed.
TEST = {
    "1": {0: 0.50, 1: 0.51, 2: 0.50, 3: 0.52},
    "2": {0: 0.60, 1: 0.61, 2: 0.62, 3: 0.64},
    "3": {0: 0.70, 1: 0.71, 2: 0.72, 3: 0.73},
}
VAL = {
    "1": {0: 0.55, 1: 0.55, 2: 0.55, 3: 0.55},
    "2": {0: 0.66, 1: 0.68, 2: 0.50, 3: 0.50},
    "3": {0: 0.60, 1: 0.61, 2: 0.90, 3: 0.90},  # best on validation only on report seeds
}


def test_best_of_sweep_selects_on_validation_of_selection_seeds_reports_test_of_held_out():
    best = stats.best_of_sweep(TEST, select=VAL)
    assert best["value"] == "2" and best["selected_by"] == "validation"
    assert best["selected_on"] == [0, 1] and best["reported_on"] == [2, 3]
    assert best["mean"] == pytest.approx(0.63)  # TEST of "2" on seeds 2, 3
    assert best["ci_t"] == pytest.approx(stats.t_interval([0.62, 0.64]))
    assert best["note"] is None
    vs = {v["other"]: v for v in best["versus"]}
    assert vs["3"]["mean_diff"] == pytest.approx(0.63 - 0.725)  # on test, held-out seeds
    # without validation (old records): chosen on test, and the note says so
    old = stats.best_of_sweep(TEST)
    assert old["value"] == "3" and old["selected_by"] == "test" and OLD in old["note"]


def test_best_of_sweep_min_mode_on_validation():
    flipped = {k: {s: -v for s, v in g.items()} for k, g in VAL.items()}
    assert stats.best_of_sweep(TEST, mode="min", select=flipped)["value"] == "2"


def _grid_records(with_val=True):
    recs = []
    for value in (1.0, 1.5, 2.0):
        for seed in (0, 1, 2, 3):
            key = str(int(value * 2) - 1)  # 1.0 -> "1", 1.5 -> "2", 2.0 -> "3"
            r = _record(f"s{value}__s{seed}", f"loss.scale={value}", seed, {"loss.scale": value}, 0)
            m = r["metrics"]
            m["balanced_acc"] = TEST[key][seed]
            m["top1"] = TEST[key][seed] + 0.01
            if with_val:
                m["val_balanced_acc"] = VAL[key][seed]
                m["val_top1"] = VAL[key][seed] + 0.01
                m["chosen_epoch_balanced_acc"] = 2
                m["chosen_balanced_acc"] = TEST[key][seed] - 0.005
                m["chosen_val_balanced_acc"] = VAL[key][seed] + 0.002
                for h in r["history"]:
                    h["val_balanced_acc"] = h["balanced_acc"] + 0.01
            else:
                m["best_balanced_acc"] = TEST[key][seed] + 0.02
            recs.append(r)
    return recs


GRID = {"kind": "grid", "grid": {"loss.scale": [1.0, 1.5, 2.0]}, "seeds": [0, 1, 2, 3]}


def test_grid_report_chooses_on_validation_and_names_every_split(tmp_path):
    _, path = _write(tmp_path, GRID, _grid_records())
    md = path.read_text()
    st = json.loads((tmp_path / "report" / "stats.json").read_text())
    best = st["sweeps"]["loss.scale"]
    assert best["value"] == "1.5" and best["selected_by"] == "validation"
    assert best["mean"] == pytest.approx(0.63)
    summary = md.split("## Summary")[1].split("\n## ")[0]
    assert "**Best loss.scale:** 1.5 (chosen on validation val_balanced_acc" in summary
    assert "test balanced_acc on held-out seeds [2, 3]: mean 0.6300" in summary
    assert "optimistic" not in summary
    assert "chosen on the test set" not in md.split("## Definitions")[0]
    results = md.split("## Results")[1].split("\n## ")[0]
    head = next(line for line in results.splitlines() if line.startswith("| variant"))
    assert "mean (test, last epoch)" in head and "mean (validation, last epoch)" in head
    assert "test at the validation-chosen epoch" in head
    row = next(line for line in results.splitlines() if line.startswith("| loss.scale=1.5 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    chosen = cells[head.strip("|").split("|").index(" test at the validation-chosen epoch ")]
    assert float(chosen) == pytest.approx(np.mean([t - 0.005 for t in TEST["2"].values()]))
    assert "## Results (test balanced_acc" in md
    comps = md.split("## Paired comparisons")[1].split("\n## ")[0]
    assert "diff (test)" in comps


def test_old_records_say_their_choice_was_on_test(tmp_path):
    _, path = _write(tmp_path, GRID, _grid_records(with_val=False))
    md = path.read_text()
    best = json.loads((tmp_path / "report" / "stats.json").read_text())["sweeps"]["loss.scale"]
    assert best["value"] == "2.0" and best["selected_by"] == "test"
    summary = md.split("## Summary")[1].split("\n## ")[0]
    assert OLD in summary
    results = md.split("## Results")[1].split("\n## ")[0]
    assert f"best epoch ({OLD})" in results
    assert "mean (validation" not in results


def test_search_objective_is_validation(tmp_path):
    recs = []
    for i in range(6):
        r = _record(f"search-{i}", "search", 0, {"loss.scale": 1 + i / 10}, 0.5 + i / 100)
        r["metrics"]["val_balanced_acc"] = 0.9 - i / 100  # validation disagrees with test
        recs.append(r)
    study = {"kind": "search", "n_trials": 6, "space": {"loss.scale": {"low": 1, "high": 2}}}
    _, path = _write(tmp_path, study, recs)
    s = json.loads((tmp_path / "report" / "stats.json").read_text())["search"]
    assert s["objective"] == "val_balanced_acc"
    assert [h["value"] for h in s["history"]] == pytest.approx([0.9 - i / 100 for i in range(6)])
    assert all(h["best_so_far"] == pytest.approx(0.9) for h in s["history"])
    assert "objective: validation val_balanced_acc" in path.read_text()
