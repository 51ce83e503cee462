"""A study's records and plan as read back (``rcl_study.trials.folder``): validated, not trusted.

Each row of RECORD_CASES is one hand-edited or damaged line of ``records.jsonl``: it must be
handled as a damaged line (skipped by readers, moved aside by the driver, its trial runs again),
never raise, never pass as a record. Each row of PLAN_CASES is a damaged ``plan.json``: read as
no plan (the runner writes it again), with one line saying why.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pytest

from rcl_study.trials import folder as folder_mod
from rcl_study.trials.folder import StudyFolder

FULL = {
    "trial_id": "x__s0",
    "variant": "x",
    "seed": 0,
    "overrides": {},
    "status": "ok",
    "metrics": {"balanced_acc": 0.5, "per_class_acc": [0.5, 0.5]},
    "history": [{"balanced_acc": 0.5}],
    "attempts": 1,
}


def row(**changes: Any) -> bytes:
    """FULL with ``changes`` (a value DROP removes the key), as one JSON line."""
    out = {**FULL, **changes}
    return json.dumps({k: v for k, v in out.items() if v != "DROP"}).encode()


def nested(levels: int) -> dict[str, Any]:
    """A metrics mapping nested ``levels`` deep."""
    node: Any = 0.5
    for _ in range(levels):
        node = {"a": node}
    return node


class Bad(NamedTuple):
    """One invalid record line."""

    name: str
    line: bytes


RECORD_CASES = [
    Bad("200 kB of nested brackets", b"[" * 100_000 + b"]" * 100_000),
    Bad(
        "nested brackets inside a record",
        row()[:-1] + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ),
    Bad("metrics nested 40 deep", row(metrics=nested(40))),
    Bad("a missing seed", row(seed="DROP")),
    Bad("a seed as text", row(seed="3")),
    Bad("a seed as true", row(seed=True)),
    Bad("a list where metrics belong", row(metrics=[0.5])),
    Bad("a list inside history", row(history=[[0.5]])),
    Bad("a mapping where history belongs", row(history={"balanced_acc": 0.5})),
    Bad("a list where overrides belong", row(overrides=["loss.scale=2"])),
    Bad("attempts as text", row(attempts="2")),
    Bad("attempts zero", row(attempts=0)),
    Bad("a variant as a number", row(variant=3)),
    Bad("a wall time as text", row(wall_time="1s")),
]


@pytest.mark.parametrize("case", RECORD_CASES, ids=[c.name for c in RECORD_CASES])
def test_an_invalid_record_line_is_damaged_and_its_trial_runs_again(tmp_path, case):
    folder = StudyFolder(tmp_path)
    folder.append({**FULL, "trial_id": "good__s0", "variant": "good"})
    with open(folder.records_path, "ab") as f:
        f.write(case.line + b"\n")
    assert [r.trial_id for r in folder.records()] == ["good__s0"]
    assert folder.damaged_lines() == [case.line]
    assert folder.done_ids(retries=1) == {"good__s0"}
    assert folder.move_damaged_lines() == 1
    assert folder.damaged_path.read_bytes() == case.line + b"\n"
    assert [r.trial_id for r in folder.records()] == ["good__s0"]


def test_a_line_over_the_size_limit_is_damaged(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_mod, "MAX_LINE_BYTES", 1000)
    folder = StudyFolder(tmp_path)
    long = row(reason="x" * 2000)
    folder.records_path.write_bytes(row() + b"\n" + long + b"\n")
    assert folder.damaged_lines() == [long]


def test_a_full_valid_record_still_reads():
    assert folder_mod._parse(row()) is not None
    assert folder_mod._parse(json.dumps({"trial_id": "a", "status": "failed"}).encode())


PLAN_CASES = [
    Bad("not JSON", b'{"meta": {}, "trials": ['),
    Bad("nested brackets", b"[" * 100_000 + b"]" * 100_000),
    Bad("a list at the top", b"[]"),
    Bad("trials as a mapping", b'{"meta": {}, "trials": {"a": 1}}'),
    Bad("a trial as a list", b'{"meta": {}, "trials": [["a", "b"]]}'),
    Bad("a trial without an id", b'{"meta": {}, "trials": [{"variant": "a"}]}'),
    Bad("a variant as a number", b'{"meta": {}, "trials": [{"trial_id": "a", "variant": 1}]}'),
    Bad("a seed as text", b'{"trials": [{"trial_id": "a", "variant": "a", "seed": "0"}]}'),
    Bad("meta as a list", b'{"meta": [], "trials": []}'),
    Bad("not UTF-8", b'{"meta": {"study": "caf\xe9"}, "trials": []}'),
]


@pytest.mark.parametrize("case", PLAN_CASES, ids=[c.name for c in PLAN_CASES])
def test_a_damaged_plan_reads_as_no_plan_with_one_line(tmp_path, case):
    folder = StudyFolder(tmp_path)
    folder.plan_path.write_bytes(case.line)
    assert folder.plan() == {"meta": {}, "trials": []}
    plan, why = folder.checked_plan()
    assert plan == {"meta": {}, "trials": []}
    assert why and "plan.json" in why and "\n" not in why


def test_a_valid_plan_reads_back(tmp_path):
    folder = StudyFolder(tmp_path)
    trials = [{"trial_id": "a__s0", "variant": "a", "seed": 0, "overrides": {}}]
    folder.write_plan(trials + [{"trial_id": "search #0", "variant": "search"}], {"study": "s"})
    assert folder.checked_plan() == (
        {
            "meta": {"study": "s"},
            "trials": trials + [{"trial_id": "search #0", "variant": "search"}],
        },
        None,
    )
