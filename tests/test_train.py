"""``python -m rcl_study.train`` (``rcl_study.train``): its expected errors.

Rows of TRAIN_CASES break one trial's command the ways a user's machine does (missing data, an
output under a file, a full disk): exit 2, one line starting ``error:``, no traceback, no
temporary file left.
"""

from __future__ import annotations

import pytest

from rcl_study import train
from tests.conftest import TINY_STUDY
from tests.helpers.errors import full_disk, leftovers, one_error_line

TRAIN_CASES = ["missing data", "out under a file", "full disk for --out"]


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train_errors_are_one_line(case, tmp_path, monkeypatch, capsys):
    data = (
        {"dataset": "arrays", "path": str(tmp_path / "nowhere.npz")}
        if case == "missing data"
        else {}
    )
    study = TINY_STUDY.write(
        tmp_path, name="one", data=data, train={"epochs": 1, "max_steps_per_epoch": 1}
    )
    out = tmp_path / "result.json"
    if case == "out under a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "result.json"
    elif case == "full disk for --out":
        full_disk(monkeypatch)
    monkeypatch.chdir(tmp_path)
    argv = [str(study), "--workdir", str(tmp_path / "work"), "--out", str(out)]
    assert train.main(argv) == 2
    err = one_error_line(capsys)
    assert (str(study) in err) or (str(out) in err), err
    assert leftovers(tmp_path) == []
