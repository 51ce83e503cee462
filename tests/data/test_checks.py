"""The checks of a data path before it is read (``rcl_study.data.checks``).

Rows of DATA_CASES are data paths that are not regular files of plausible size (a device, a
FIFO, a file over the memory cap): one ``DataError`` line, nothing read.
"""

from __future__ import annotations

import os

import pytest

from rcl_study.config import DataConfig
from rcl_study.data import DataError, checks, load_data


def _fifo(tmp):
    path = tmp / "data.npz"
    os.mkfifo(path)
    return str(path)


def _large(tmp, monkeypatch):
    monkeypatch.setattr(checks, "memory_cap", lambda: 1000)
    path = tmp / "big.npz"
    path.write_bytes(b"\0" * 2000)
    return str(path)


DATA_CASES = ["/dev/zero", "a FIFO", "larger than the memory cap"]


@pytest.mark.parametrize("case", DATA_CASES)
def test_a_data_path_must_be_a_regular_file_of_plausible_size(case, tmp_path, monkeypatch):
    if case == "/dev/zero":
        path = "/dev/zero"
    elif case == "a FIFO":
        path = _fifo(tmp_path)
    else:
        path = _large(tmp_path, monkeypatch)
    with pytest.raises(DataError) as err:
        load_data(DataConfig(dataset="arrays", path=path, imbalance_ratio=1))
    msg = str(err.value)
    assert path in msg and "\n" not in msg, msg
