"""Records validated as typed values when read (``rcl_study.trials.reading``).

Each row of DAMAGED is one hand edit of a valid line of ``records.jsonl`` (a bool where a number
belongs, a metric out of its range or too large, an integer metric that is not one, a second
record of a variant and seed...): the line is set aside as damaged with its line number and why,
never counted, never a traceback. Each row of KEPT is an edit the toolkit itself writes (a NaN
metric of a diverged trial, a search's trials sharing their seed...): the record still reads.
REPORTED runs ``--report-only`` on a study with one such line: exit 0, the line named in the
report, the trial counted nowhere.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
import yaml

from rcl_study import run
from rcl_study.trials.folder import StudyFolder
from tests.report.test_report import _ablation_records

GOOD = {
    "trial_id": "x__s0",
    "variant": "x",
    "seed": 0,
    "overrides": {"loss.margin": 0.5},
    "status": "ok",
    "reason": "",
    "metrics": {
        "device": "cpu",
        "processes": 1,
        "top1": 0.61,
        "balanced_acc": 0.6,
        "val_balanced_acc": 0.58,
        "few_acc": None,
        "compactness": 0.9,
        "equiangular_gap_deg": 12.0,
        "loss": 0.4,
        "epoch": 30,
        "n_train": 413,
        "per_class_acc": [0.5, 0.7],
        "train_counts": [102, 10],
        "chosen_epoch_balanced_acc": 30,
    },
    "history": [{"balanced_acc": 0.3, "epoch": 15}, {"balanced_acc": 0.6, "epoch": 30}],
    "wall_time": 7.0,
    "attempts": 1,
}
OTHER = {**GOOD, "trial_id": "y__s0", "variant": "y"}


def metric(key: str, value: Any) -> Callable[[dict], None]:
    """An edit setting ``metrics[key]``."""
    return lambda r: r["metrics"].__setitem__(key, value)


def history(i: int, key: str, value: Any) -> Callable[[dict], None]:
    """An edit setting ``history[i][key]``."""
    return lambda r: r["history"][i].__setitem__(key, value)


def field(key: str, value: Any) -> Callable[[dict], None]:
    """An edit setting a field of the record."""
    return lambda r: r.__setitem__(key, value)


class Case(NamedTuple):
    """One hand edit of the second record line, and what the reason must say."""

    name: str
    edit: Callable[[dict], None]
    why: str


DAMAGED = [
    # the cases of the issue
    Case("balanced_acc true", metric("balanced_acc", True), "a bool is not a number"),
    Case("balanced_acc 1e308", metric("balanced_acc", 1e308), "outside [0, 1]"),
    Case(
        "a copy under another id, same variant and seed",
        field("variant", "x"),
        "repeats variant 'x' at seed 0",
    ),
    # more of each kind
    Case("balanced_acc false", metric("balanced_acc", False), "a bool is not a number"),
    Case("balanced_acc as text", metric("balanced_acc", "0.95"), "not text"),
    Case("top1 above 1", metric("top1", 1.5), "outside [0, 1]"),
    Case("val_balanced_acc below 0", metric("val_balanced_acc", -0.2), "outside [0, 1]"),
    Case("equiangular_gap_deg past 180", metric("equiangular_gap_deg", 500.0), "outside [0, 180]"),
    Case("the old name balancedness past 180", metric("balancedness", 400.0), "outside [0, 180]"),
    Case("an unbounded loss of 1e300", metric("loss", 1e300), "outside"),
    Case("n_train of 10**400", metric("n_train", 10**400), "outside"),
    Case("epoch 30.5", metric("epoch", 30.5), "an integer is expected"),
    Case("processes true", metric("processes", True), "a bool is not a number"),
    Case("per_class_acc with a bool", metric("per_class_acc", [0.5, True]), "a bool"),
    Case("per_class_acc with 7.0", metric("per_class_acc", [0.5, 7.0]), "outside [0, 1]"),
    Case("per_class_acc nested", metric("per_class_acc", [[0.5]]), "a number is expected"),
    Case("train_counts with 2.5", metric("train_counts", [10, 2.5]), "an integer is expected"),
    Case("a metric as a mapping", metric("top1", {"value": 0.5}), "a number is expected"),
    Case("history balanced_acc true", history(1, "balanced_acc", True), "history[1] metric"),
    Case("history top1 1e308", history(0, "top1", 1e308), "outside [0, 1]"),
    Case("a negative seed", field("seed", -1), "'seed' must be an integer in [0, 2**32)"),
    Case("a seed past 2**32", field("seed", 2**40), "'seed' must be an integer in [0, 2**32)"),
    Case("wall_time true", field("wall_time", True), "'wall_time' must be a finite number"),
    Case("wall_time 1e308", field("wall_time", 1e308), "'wall_time' must be a finite number"),
]

KEPT = [
    Case("a NaN metric (a diverged trial writes it)", metric("balanced_acc", float("nan")), ""),
    Case("an infinite loss", metric("loss", float("inf")), ""),
    Case("a metric not measured (None)", metric("few_acc", None), ""),
    Case("a cosine a rounding past 1", metric("compactness", 1.0000001), ""),
    Case("an unknown metric", metric("new_measure", 123.0), ""),
    Case("an epoch written as 3.0 (a Tune report's float)", metric("epoch", 3.0), ""),
]


def _write(tmp_path, edit: Callable[[dict], None]) -> tuple[StudyFolder, bytes]:
    """A records file: GOOD (line 1), the edited OTHER (line 2); returns the edited line."""
    folder = StudyFolder(tmp_path)
    first, second = copy.deepcopy(GOOD), copy.deepcopy(OTHER)
    edit(second)
    line = json.dumps(second).encode()
    folder.records_path.write_bytes(json.dumps(first).encode() + b"\n" + line + b"\n")
    return folder, line


@pytest.mark.parametrize("case", DAMAGED, ids=[c.name for c in DAMAGED])
def test_a_hand_edited_record_is_set_aside_with_its_line_and_why(tmp_path, case):
    folder, line = _write(tmp_path, case.edit)
    assert [r.trial_id for r in folder.records()] == ["x__s0"]  # never counted
    assert folder.damaged_lines() == [line]
    (damaged,) = folder.read().damaged
    assert damaged.line == 2 and case.why in damaged.why, damaged.why
    assert "\n" not in damaged.note() and damaged.note().startswith("line 2: ")
    assert folder.move_damaged_lines() == 1  # the driver moves it aside; the good one stays
    assert folder.damaged_path.read_bytes() == line + b"\n"
    assert [r.trial_id for r in folder.records()] == ["x__s0"]


@pytest.mark.parametrize("case", KEPT, ids=[c.name for c in KEPT])
def test_what_the_toolkit_writes_still_reads(tmp_path, case):
    folder, _ = _write(tmp_path, case.edit)
    assert [r.trial_id for r in folder.records()] == ["x__s0", "y__s0"]
    assert folder.damaged_lines() == []


def test_a_searchs_sampled_trials_share_their_seed(tmp_path):
    folder = StudyFolder(tmp_path)
    for r in (GOOD, OTHER):
        folder.append({**r, "variant": "search"})
    assert len(folder.records()) == 2 and not folder.damaged_lines()


def test_a_trial_recorded_again_is_replaced_not_a_second_of_its_seed(tmp_path):
    folder = StudyFolder(tmp_path)
    for r in (GOOD, OTHER, {**GOOD, "reason": "again"}):
        folder.append(r)
    read = folder.read()
    assert [r.trial_id for r in read.records] == ["y__s0", "x__s0"] and not read.damaged
    assert read.records[1].reason == "again" and read.superseded == 1


def test_the_first_trial_of_a_variant_and_seed_is_kept_wherever_it_was_recorded_again(tmp_path):
    """The original trial retried after its copy was written: still the original kept."""
    folder = StudyFolder(tmp_path)
    for r in (GOOD, {**GOOD, "trial_id": "copy"}, {**GOOD, "reason": "retried"}):
        folder.append(r)
    read = folder.read()
    assert [r.trial_id for r in read.records] == ["x__s0"]
    assert [d.line for d in read.damaged] == [2] and "'copy'" in read.damaged[0].why


# ------------------------------------------------------------------ through --report-only


def _hand_edit(trial: str, edit: Callable[[dict], None]) -> Callable[[list[dict]], None]:
    def apply(rows: list[dict]) -> None:
        edit(next(r for r in rows if r["trial_id"] == trial))

    return apply


def _copy_of(trial: str, new_id: str) -> Callable[[list[dict]], None]:
    def apply(rows: list[dict]) -> None:
        rows.append({**next(r for r in rows if r["trial_id"] == trial), "trial_id": new_id})

    return apply


class Reported(NamedTuple):
    """One hand edit of an ablation's records, the trial set aside, what its reason says."""

    name: str
    edit: Callable[[list[dict]], None]
    trial: str
    why: str


REPORTED = [
    Reported(
        "balanced_acc true",
        _hand_edit("none__s0", metric("balanced_acc", True)),
        "none__s0",
        "bool",
    ),
    Reported(
        "balanced_acc 1e308",
        _hand_edit("none__s0", metric("balanced_acc", 1e308)),
        "none__s0",
        "outside",
    ),
    Reported(
        "a copy under another id", _copy_of("margin__s1", "copy__s1"), "copy__s1", "repeats variant"
    ),
    Reported(
        "history 1e308",
        _hand_edit("scale__s2", history(2, "balanced_acc", 1e308)),
        "scale__s2",
        "outside",
    ),
]


@pytest.mark.parametrize("case", REPORTED, ids=[c.name for c in REPORTED])
def test_report_only_sets_a_damaged_record_aside_in_one_note(tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    study = {"name": "syn", "data": {"dataset": "digits_lt"}, "study": {"seeds": [0, 1, 2]}}
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "syn.yaml").write_text(yaml.safe_dump(study))
    rows = _ablation_records()
    case.edit(rows)
    line = 1 + [r["trial_id"] for r in rows].index(case.trial)
    runs = tmp_path / "runs" / "syn"
    runs.mkdir(parents=True)
    (runs / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run.main(["studies/syn.yaml", "--report-only"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "1 damaged line(s)" in err and f"(line {line}: " in err
    report = tmp_path / "reports" / "syn"
    md = (report / "index.md").read_text()
    assert "## Records set aside as damaged" in md and case.why in md.split("set aside")[1]
    assert f"| {line} |" in md
    n = len(rows) - 1  # the damaged one counts nowhere
    assert f"{n} of {n} planned trials recorded" in md
    trials = [row.split(",")[0] for row in (report / "results.csv").read_text().splitlines()[1:]]
    assert len(trials) == n and case.trial not in trials
