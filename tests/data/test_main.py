"""``python -m rcl_study.data export`` (``rcl_study.data.__main__``): its expected errors.

Rows of EXPORT_CASES break the export the ways a user's machine does (an output under a file, a
full disk, an output that is a folder): exit 2, one line starting ``error:``, no traceback, no
temporary file left.
"""

from __future__ import annotations

import pytest

from rcl_study.data import __main__ as data_cli
from tests.helpers.errors import full_disk, leftovers, one_error_line

EXPORT_CASES = ["out under a file", "full disk", "out is a folder"]


@pytest.mark.parametrize("case", EXPORT_CASES)
def test_export_errors_are_one_line(case, tmp_path, monkeypatch, capsys):
    out = tmp_path / "d.npz"
    if case == "out under a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "d.npz"
    elif case == "full disk":
        full_disk(monkeypatch)
    else:
        out.mkdir()
    argv = ["export", "--dataset", "digits_lt", "--imbalance-ratio", "10", "--out", str(out)]
    assert data_cli.main(argv) == 2
    one_error_line(capsys)
    assert leftovers(tmp_path) == []
    assert case == "out is a folder" or not out.is_file()
