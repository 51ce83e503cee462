"""The example package's loss, dataset and backbone run in a study.

The package is ``examples/rcl_study_example`` (``pip install ./examples/rcl_study_example``;
``.ci/run`` installs it and sets ``RCL_STUDY_EXAMPLE_REQUIRED=1``, so CI never skips this).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from rcl_study import registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "rcl_study_example"
PARTS = {
    "losses": "example_focal",
    "datasets": "example_blobs",
    "backbones": "example_mlp",
    "contrastive": "example_supcon",
}


@pytest.fixture
def example_installed():
    """Skip (or, in CI, fail) unless the example package's entry points are installed."""
    missing = [f"{k}:{n}" for k, n in PARTS.items() if n not in registry.names(k)]
    if missing:
        message = f"examples/rcl_study_example is not installed ({', '.join(missing)})"
        if os.environ.get("RCL_STUDY_EXAMPLE_REQUIRED"):
            pytest.fail(message)
        pytest.skip(message)


def test_the_entry_points_name_the_example_parts(example_installed):
    for kind, name in PARTS.items():
        assert registry.source(kind, name).startswith("entry point rcl_study_example:")


def test_the_example_study_runs_with_the_plugin_parts(example_installed, tmp_path):
    import rcl_study

    raw = yaml.safe_load((EXAMPLE / "study.yaml").read_text())
    raw["study"]["output_dir"] = str(tmp_path / "runs")
    raw["report"] = {"dir": str(tmp_path / "report")}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    study = rcl_study.load_study(path)
    records = rcl_study.run_study(study, progress=False)
    assert [r.status.value for r in records] == ["ok", "ok"], [r.reason for r in records]
    assert all(r.loss_spec["classification"] == "example_focal" for r in records)
    assert all(r.loss_spec["contrastive_loss"] == "example_supcon" for r in records)
    assert all(r.config["model"]["arch"] == "example_mlp" for r in records)
    df = rcl_study.StudyFolder(study.output_dir).dataframe()
    assert list(df["variant"]) == ["none", "margin"]
    assert rcl_study.write_report(study, str(path)).exists()


def test_the_example_contrastive_loss_is_supcon_at_weight_one(example_installed):
    """At ``negative_weight`` 1 the plugin equals the built-in loss with every knob off."""
    import torch

    from rcl_study.losses.contrastive import contrastive_loss

    torch.manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(12, 6), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 0])
    counts = torch.tensor([5.0, 4.0, 3.0])
    plugin = registry.get("contrastive", "example_supcon")
    ours = plugin(feats, labels, counts, None, temperature=0.1, negative_weight=1.0)
    built_in = contrastive_loss(feats, labels, counts, None, temperature=0.1)
    assert ours.item() == pytest.approx(built_in.item(), rel=1e-6)
    lighter = plugin(feats, labels, counts, None, temperature=0.1, negative_weight=0.5)
    assert lighter.item() < ours.item()  # negatives that push less cost less
