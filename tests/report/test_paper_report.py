"""Reports for a paper: display labels, categorical axes in the study's order, learning curves
readable at 8 variants, and ``tables.tex`` (booktabs) beside ``index.md``.

Figures are checked through what is drawn (:mod:`rcl_study.report.drawn`, the arguments the
drawing functions receive), not through pixels.
"""

import json

import pytest

from rcl_study.config import parse_study
from rcl_study.report import figures, latex
from rcl_study.report.drawn import REFERENCE_COLOR, SensitivityData, sensitivity_data
from rcl_study.report.labels import Labels
from rcl_study.report.render import write_report
from rcl_study.trials.folder import StudyFolder
from tests.report.test_report import BASE, _ablation_records, _record

#: a grid's categorical key, declared out of alphabetical order
PRESETS = ["rcl", "bcl+rcl", "ce"]
LABELS = {"loss.preset=bcl+rcl": "BCL+RCL", "loss.preset": "loss preset", "balance": "A&B_1 50%"}


def _write(tmp_path, study, records, labels=None):
    report = {"dir": str(tmp_path / "report"), "labels": labels or {}}
    cfg = parse_study({**BASE, "study": {**BASE["study"], **study}, "report": report})
    out = tmp_path / "runs"
    for r in records:
        StudyFolder(out).append(r)
    StudyFolder(out).write_plan([{"trial_id": f"p{i}"} for i in range(len(records))], {})
    return write_report(cfg, "studies/syn.yaml", out, tmp_path / "report")


def _grid_records():
    recs = []
    for i, preset in enumerate(PRESETS):
        for s in (1.0, 2.0):
            for seed in (0, 1, 2):
                name = f"loss.preset={preset},loss.scale={s}"
                ov = {"loss.preset": preset, "loss.scale": s}
                recs.append(_record(f"{preset}-{s}__s{seed}", name, seed, ov, 0.6 + i / 20))
    return recs


def _spy(monkeypatch, name):
    """Record the first argument of every call of ``figures.<name>`` (then draw as usual)."""
    seen, real = [], getattr(figures, name)

    def spy(data, *args, **kwargs):
        seen.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(figures, name, spy)
    return seen


def test_a_categorical_axis_keeps_the_grids_order_and_its_display_names(tmp_path, monkeypatch):
    seen = _spy(monkeypatch, "sensitivity")
    grid = {"loss.preset": PRESETS, "loss.scale": [2.0, 1.0]}
    _write(tmp_path, {"kind": "grid", "grid": grid}, _grid_records(), LABELS)
    by_key = {d.key: d for d in seen}
    preset = by_key["loss.preset"]
    assert not preset.numeric and preset.ticks == ["rcl", "BCL+RCL", "ce"]
    assert preset.x == [0, 1, 2] and preset.label == "loss preset"
    assert preset.mean == pytest.approx([0.6, 0.65, 0.7])  # each value's own mean, in that order
    scale = by_key["loss.scale"]  # numeric: ascending, whatever the grid's order
    assert scale.numeric and scale.x == [1.0, 2.0] and scale.ticks is None


def test_categorical_points_are_not_joined_by_a_line(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, out, name: drawn.append(fig) or name)
    rows = [{"k": v, "mean": m, "ci": (m - 0.1, m + 0.1)} for v, m in (("b", 0.5), ("a", 0.6))]
    for data in (
        sensitivity_data(rows, "k", ["b", "a"], Labels()),
        SensitivityData("k", "k", True, [1, 2], None, [0.5, 0.6], [None, None]),
    ):
        figures.sensitivity(data, "balanced_acc", "max", tmp_path)
    styles = [[ln.get_linestyle() for ln in fig.axes[0].lines] for fig in drawn]
    assert all(s == "None" for s in styles[0])  # categorical: markers and error bars only
    assert "-" in styles[1]  # numeric: the points are joined


def test_eight_variants_get_small_multiples_with_a_grey_reference(tmp_path, monkeypatch):
    seen = _spy(monkeypatch, "learning_curves")
    _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    panels = seen[0]
    assert len(panels) == 8 and panels[0].title == "none"
    assert [len(p.curves) for p in panels] == [1] + [2] * 7
    for p in panels[1:]:
        ref, own = p.curves
        assert ref.reference and ref.label == "none" and ref.color == REFERENCE_COLOR
        assert own.label == p.title and own.color != REFERENCE_COLOR
    assert len({p.curves[-1].color for p in panels}) == 8  # every variant its own colour


def test_few_variants_share_one_panel(tmp_path, monkeypatch):
    seen = _spy(monkeypatch, "learning_curves")
    recs = [r for r in _ablation_records() if r["variant"] in ("none", "balance")]
    _write(tmp_path, {"kind": "ablation", "components": ["balance"]}, recs)
    assert len(seen[0]) == 1 and [c.label for c in seen[0][0].curves] == ["none", "balance"]


def test_labels_name_variants_in_tables_figures_and_tables_tex(tmp_path, monkeypatch):
    seen = _spy(monkeypatch, "variant_means")
    path = _write(tmp_path, {"kind": "ablation"}, _ablation_records(), LABELS)
    md = path.read_text()
    assert "| A\\&B_1 50% | 3/3 |" in md  # the variant table (Markdown-escaped)
    assert "A&B_1 50%" in [r["label"] for r in seen[0]]
    tex = (tmp_path / "report" / "tables.tex").read_text()
    assert "  A\\&B\\_1 50\\% & 3/3 &" in tex  # the variant table
    assert "  A\\&B\\_1 50\\% & 3 &" in tex  # the comparison table
    st = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert "balance" in [v["variant"] for v in st["variants"]]  # the analysis keeps the names


def test_tables_tex_is_booktabs_beside_index_md(tmp_path):
    _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    tex = (tmp_path / "report" / "tables.tex").read_text()
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 2  # the variant table and the comparison table
    assert tex.count("\\begin{tabular}") == 2 and "\\hline" not in tex
    assert "balanced\\_acc" in tex and "95\\% CI" in tex


def test_latex_escapes_every_special_character():
    text = "a&b%c$d#e_f{g}h~i^j\\k"
    want = "a\\&b\\%c\\$d\\#e\\_f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j\\textbackslash{}k"
    assert latex.escape(text) == want
    assert latex.escape("two\nlines") == "two lines"
