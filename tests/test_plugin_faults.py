"""Plugins that fail: one line naming the package, the entry point, the key and the error.

Each row of CASES installs a plugin package made on the fly (``tests.helpers.plugins``) whose
entry point fails one way (its module raises at import, its reader returns bad arrays, it takes
a built-in's name), runs the study command on a study using it, and expects exit 2 and one
``error:`` line holding every fragment of the row, no traceback.
"""

from __future__ import annotations

import pytest

from rcl_study import registry, run
from tests.conftest import TINY_STUDY
from tests.helpers.errors import one_error_line
from tests.helpers.plugins import fake_plugin

DATASETS = "rcl_study.datasets"
LOSSES = "rcl_study.losses"

READER = """
import numpy as np
from rcl_study.data.types import Split

def read(cfg):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(40, 8, 8, 1)).astype(np.{dtype})
    y = np.arange(40) % 4
    {change}
    return Split(train_x=x, train_y=y, test_x=x[:20], test_y=y[:20])
"""


def reader(change: str = "", dtype: str = "uint8") -> str:
    return READER.format(change=change, dtype=dtype)


#: case -> (module source, entry points, study changes, fragments of the one error line)
CASES = {
    "dataset module raises RuntimeError at import": (
        "raise RuntimeError('no GPU driver found')\ndef read(cfg): pass\n",
        {DATASETS: {"plug_ds": "read"}},
        {"data": {"dataset": "plug_ds"}},
        ["data.dataset", "package {pkg}", "plug_ds = {pkg}:read", "RuntimeError", "no GPU driver"],
    ),
    "dataset returns a label of -1": (
        reader("y[3] = -1"),
        {DATASETS: {"plug_ds": "read"}},
        {"data": {"dataset": "plug_ds"}},
        ["data.dataset", "package {pkg}", "plug_ds = {pkg}:read", "train_y", "label -1"],
    ),
    "plugin loss takes a built-in loss name": (
        "def ce(logits, labels, counts): pass\n",
        {LOSSES: {"cross_entropy": "ce"}},
        {"loss": {"classification": "cross_entropy"}},
        ["loss.classification", "loss 'cross_entropy' is registered twice", "package {pkg}"],
    ),
    "unknown loss is named in the singular": (
        "def focal(logits, labels, counts): pass\n",
        {LOSSES: {"plug_focal": "focal"}},
        {"loss": {"classification": "plug_focall"}},
        ["loss.classification", "unknown loss 'plug_focall'", "did you mean 'plug_focal'"],
    ),
    # variants of our own
    "dataset reader raises KeyError when called": (
        "def read(cfg):\n    raise KeyError('images')\n",
        {DATASETS: {"plug_ds": "read"}},
        {"data": {"dataset": "plug_ds"}},
        ["data.dataset", "plug_ds = {pkg}:read", "failed: KeyError", "images"],
    ),
    "dataset with an empty class": (
        reader("y[y == 2] = 3"),
        {DATASETS: {"plug_ds": "read"}},
        {"data": {"dataset": "plug_ds"}},
        ["data.dataset", "plug_ds = {pkg}:read", "class 2 has no training image"],
    ),
    "dataset with float images": (
        reader(dtype="float32"),
        {DATASETS: {"plug_ds": "read"}},
        {"data": {"dataset": "plug_ds"}},
        ["data.dataset", "plug_ds = {pkg}:read", "train_x", "uint8", "float32"],
    ),
    "loss module raises ZeroDivisionError at import": (
        "1 / 0\ndef focal(logits, labels, counts): pass\n",
        {LOSSES: {"plug_focal": "focal"}},
        {"loss": {"classification": "plug_focal"}},
        ["loss 'plug_focal'", "plug_focal = {pkg}:focal", "ZeroDivisionError"],
    ),
}


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Entry points read afresh from a folder put on ``sys.path`` (restored afterwards)."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(registry, "_PLUGINS", None)
    monkeypatch.setattr(registry, "_CLASHES", {k: [] for k in registry.KINDS}, raising=False)
    monkeypatch.setattr(registry, "_LOADED", {})
    yield folder
    registry._PLUGINS = None


@pytest.mark.parametrize("case", list(CASES))
def test_a_failing_plugin_is_one_line(case, plugins, tmp_path, monkeypatch, capsys, no_ray):
    source, eps, changes, fragments = CASES[case]
    pkg = "plug_" + "".join(c if c.isalnum() else "_" for c in case)[:40]
    fake_plugin(plugins, pkg, source, eps)
    study = TINY_STUDY.write(
        tmp_path, changes, name="plug", resources={"executor": "local"}, study={"seeds": [0]}
    )
    monkeypatch.chdir(tmp_path)
    assert run.main([str(study), "--no-progress"]) == 2
    line = one_error_line(capsys)
    for fragment in fragments:
        assert fragment.format(pkg=pkg) in line, (fragment, line)


def test_a_loss_plugin_failing_under_train_is_one_line(plugins, tmp_path, monkeypatch, capsys):
    from rcl_study import train

    fake_plugin(
        plugins,
        "plug_train_loss",
        "raise ImportError('needs apex')\ndef focal(logits, labels, counts): pass\n",
        {LOSSES: {"plug_focal": "focal"}},
    )
    study = TINY_STUDY.write(tmp_path, {"loss": {"classification": "plug_focal"}}, name="one")
    assert train.main([str(study)]) == 2
    line = one_error_line(capsys)
    assert "plug_focal = plug_train_loss:focal" in line and "needs apex" in line, line
