"""``python -m rcl_study.train`` resolves each user path once.

Each row of PATH_CASES names ``data.path`` (and ``--out``) as a user might: relative, with
``..``, with ``~``, outside the working folder. The data file the command checks and reads is the
one at the resolved path, the result's configuration names that absolute path (so the result
says which file it trained on, whatever the working folder of whoever reads it), and ``--out`` is
written where it resolves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rcl_study.train as train_cli
from tests.conftest import DROP, TINY_STUDY

#: (data.path as written, where the file is, --out as written, where the result must land)
PATH_CASES = [
    ("d.npz", "work/d.npz", "r.json", "work/r.json"),
    ("sub/../d.npz", "work/d.npz", "sub/../r.json", "work/r.json"),
    ("~/d.npz", "home/d.npz", "~/r.json", "home/r.json"),
    ("../elsewhere/d.npz", "elsewhere/d.npz", "../elsewhere/r.json", "elsewhere/r.json"),
]


def _npz(path: Path) -> None:
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        train_x=rng.integers(0, 256, (20, 8, 8, 1), dtype=np.uint8),
        train_y=np.repeat(np.arange(2), 10),
        test_x=rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8),
        test_y=np.array([0, 1, 0, 1]),
    )


@pytest.mark.parametrize("data,where,out,lands", PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_train_resolves_each_path_once(data, where, out, lands, tmp_path, monkeypatch, capsys):
    for d in ("work/sub", "home", "elsewhere"):
        (tmp_path / d).mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")
    _npz(tmp_path / where)
    study = TINY_STUDY.write(
        tmp_path / "work",
        name="paths",
        data={
            "dataset": "arrays",
            "path": data,
            "imbalance_ratio": 1,
            "test_limit": DROP,
            "val_per_class": 2,
        },
        train={"batch_size": 8},
    )
    assert train_cli.main([str(study), "--out", out]) == 0, capsys.readouterr().err
    result = json.loads((tmp_path / lands).read_text())
    assert result["config"]["data"]["path"] == str((tmp_path / where).resolve())
    assert not (tmp_path / "work" / "~").exists()
