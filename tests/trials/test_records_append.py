"""records.jsonl is append-only: one line per append, the last line of a trial wins."""

import json
from pathlib import Path

import pytest

from rcl_study.study.runner import RecordBook
from rcl_study.trials.folder import StudyFolder
from rcl_study.trials.records import TrialRecord, TrialStatus


def _line(trial_id: str, status: str = "ok", **extra) -> bytes:
    return json.dumps({"trial_id": trial_id, "status": status, **extra}).encode()


def _ids(folder: StudyFolder) -> list[tuple[str, object]]:
    return [(r.trial_id, r.metrics.get("x")) for r in folder.records()]


def test_the_last_line_of_a_trial_wins_at_its_own_position(tmp_path):
    folder = StudyFolder(tmp_path)
    for tid, x, attempts in [("a", 1, 1), ("b", 1, 1), ("a", 2, 2), ("c", 1, 1), ("b", 3, 2)]:
        folder.append(
            TrialRecord(
                trial_id=tid, status=TrialStatus.FAILED, metrics={"x": x}, attempts=attempts
            )
        )
    assert len(folder.records_path.read_bytes().splitlines()) == 5  # every append kept a line
    assert _ids(folder) == [("a", 2), ("c", 1), ("b", 3)]
    assert [r["trial_id"] for r in folder.read_rows()[0]] == ["a", "c", "b"]
    assert folder.attempts() == {"a": 2, "c": 1, "b": 2}
    assert folder.done_ids(retries=1) == {"a", "b"}
    assert folder.holds_study()
    assert RecordBook(folder, lambda r: None).attempts == {"a": 2, "c": 1, "b": 2}


def test_a_damaged_later_line_does_not_hide_the_valid_earlier_one(tmp_path):
    folder = StudyFolder(tmp_path)
    folder.append({"trial_id": "a", "status": "ok", "metrics": {"x": 1}})
    with open(folder.records_path, "ab") as f:
        f.write(_line("a", "exploded") + b"\n")
    assert _ids(folder) == [("a", 1)]
    assert len(folder.damaged_lines()) == 1


def test_an_append_after_a_cut_line_starts_a_line_of_its_own(tmp_path):
    folder = StudyFolder(tmp_path)
    folder.append({"trial_id": "a", "status": "ok"})
    cut = _line("b", metrics={"x": 1})[:25]  # a crash mid-append: no newline, half a record
    with open(folder.records_path, "ab") as f:
        f.write(cut)
    before = folder.records_path.read_bytes()
    assert [r.trial_id for r in folder.records()] == ["a"]
    assert folder.damaged_lines() == [cut]
    folder.append({"trial_id": "b", "status": "ok"})  # the trial runs again
    after = folder.records_path.read_bytes()
    assert after == before + b"\n" + _line("b") + b"\n"  # not glued onto the cut line
    assert [r.trial_id for r in folder.records()] == ["a", "b"]
    assert folder.damaged_lines() == [cut]


def test_move_damaged_lines_compacts_once_keeping_lines_as_written(tmp_path):
    folder = StudyFolder(tmp_path)
    a1, b = _line("a", metrics={"x": 1}), b'{"status":"ok","trial_id":"b"}'  # compact, as is
    a2, c1, c2 = _line("a", metrics={"x": 2}), _line("c", "failed"), _line("c", attempts=2)
    bad1, bad2 = b'{"trial_id": "d", "sta', b"\xff not utf-8"
    folder.records_path.write_bytes(b"\n".join([a1, bad1, b, a2, bad2, c1, c2, b'{"trial_id"']))
    assert folder.move_damaged_lines() == 3
    assert folder.records_path.read_bytes() == b"\n".join([b, a2, c2]) + b"\n"
    assert folder.damaged_path.read_bytes() == b"\n".join([bad1, bad2, b'{"trial_id"']) + b"\n"
    assert _ids(folder) == [("b", None), ("a", 2), ("c", None)]
    before = folder.records_path.stat().st_mtime_ns, folder.records_path.read_bytes()
    assert folder.move_damaged_lines() == 0  # nothing left to do: the file is not rewritten
    assert (folder.records_path.stat().st_mtime_ns, folder.records_path.read_bytes()) == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_move_damaged_lines_collapses_duplicates_without_damaged_lines(tmp_path):
    folder = StudyFolder(tmp_path)
    for x in (1, 2, 3):
        folder.append({"trial_id": "a", "status": "ok", "metrics": {"x": x}})
    folder.append({"trial_id": "b", "status": "ok"})
    assert folder.move_damaged_lines() == 0
    assert not folder.damaged_path.exists()
    lines = folder.records_path.read_bytes().splitlines()
    assert [json.loads(x)["trial_id"] for x in lines] == ["a", "b"]
    assert _ids(folder) == [("a", 3), ("b", None)]


def test_append_does_not_read_the_table(tmp_path, monkeypatch):
    folder = StudyFolder(tmp_path)
    folder.append({"trial_id": "a", "status": "ok"})
    with open(folder.records_path, "ab") as f:
        f.write(b"not a record\n")
    folder.append({"trial_id": "b", "status": "ok"})
    before = folder.records_path.read_bytes()

    def no_read(*args, **kwargs):
        raise AssertionError("append read the records")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    monkeypatch.setattr(Path, "read_text", no_read)
    monkeypatch.setattr(StudyFolder, "_read", no_read)
    folder.append({"trial_id": "a", "status": "failed"})
    monkeypatch.undo()
    after = folder.records_path.read_bytes()
    assert after.startswith(before)  # the damaged line stays where it was, untouched
    assert after[len(before) :] == _line("a", "failed") + b"\n"  # one line added
    assert not folder.damaged_path.exists()
    assert [(r.trial_id, r.status.value) for r in folder.records()] == [
        ("b", "ok"),
        ("a", "failed"),
    ]


def test_an_invalid_record_appends_nothing(tmp_path):
    folder = StudyFolder(tmp_path)
    folder.append({"trial_id": "a", "status": "ok"})
    before = folder.records_path.read_bytes()
    with pytest.raises(ValueError, match="status"):
        folder.append({"trial_id": "b", "status": "weird"})
    assert folder.records_path.read_bytes() == before
