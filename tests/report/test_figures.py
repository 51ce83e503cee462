"""The report's figures (``rcl_study.report.figures``): a label is drawn as itself.

Each row of LABELS is a figure label a study file or a record may hold: matplotlib must draw it,
never parse it as mathtext.
"""

from __future__ import annotations

import pytest

from rcl_study.report import figures

LABELS = ["$x^{$", "$\\undefined$", "a $b$ c", "$$", "100$ and $5", "$\\frac{1}{$"]


@pytest.mark.parametrize("label", LABELS)
def test_a_label_with_dollars_is_drawn_as_itself(tmp_path, label):
    rows = [{"label": label, "mean": 0.5, "ci": (0.4, 0.6), "values": [0.45, 0.55]}]
    assert figures.variant_means(rows, "balanced_acc", "max", tmp_path) == "variants.png"
    svg = (tmp_path / "variants.svg").read_text()
    assert svg  # drawn; with text.parse_math off the label is plain text
    import matplotlib

    assert matplotlib.rcParams["text.parse_math"] is False
