"""A digits study with a data draw per seed, random tail classes, rounds and two presets."""

from __future__ import annotations

import json

from rcl_study.config import parse_study
from rcl_study.report.render import write_report
from rcl_study.study.runner import run_study
from tests.conftest import TINY_STUDY


def _study(tmp_path, **report):
    raw = TINY_STUDY(
        name="instrument",
        data={"split_seed": "trial", "class_order": "random"},
        loss=TINY_STUDY.Only(preset="bcl+rcl"),
        study=TINY_STUDY.Only(
            kind="grid", grid={"loss.preset": ["la", "bcl"]}, seeds=[0, 1, 2], rounds=[2, 3]
        ),
        resources={"executor": "local"},
        report={"primary": ["loss.preset=bcl - loss.preset=la"], "sesoi": 0.02, **report},
    )
    raw["study"]["output_dir"] = str(tmp_path / "runs")
    raw["report"]["dir"] = str(tmp_path / "rep")
    return parse_study(raw)


def test_the_report_has_the_sequential_features_and_per_class_sections(tmp_path):
    cfg = _study(tmp_path)
    records = run_study(cfg, progress=False)
    assert {r.seed for r in records} <= {0, 1, 2} and all(r.ok for r in records)
    digests = {(r.seed, r.train_split["digest"]) for r in records}
    assert len({d for _, d in digests}) == len({s for s, _ in digests})  # one draw per seed
    text = write_report(cfg, "instrument.yaml").read_text()
    assert "## Sequential test of the primary contrasts" in text
    assert "written to plan.json when the run started" in text
    assert "loss.preset=bcl - loss.preset=la" in text
    assert "## Feature measures" in text and "proj_ncm_balanced_acc" in text
    assert "## Per-class differences of the primary contrasts" in text
    assert "seeds and data draws" in text
    st = json.loads((tmp_path / "rep" / "stats.json").read_text())
    seq = st["sequential"]
    assert seq["primary"] == ["loss.preset=bcl - loss.preset=la"] and seq["rounds"] == [2, 3]
    assert seq["looks"][0]["seeds"] == 2 and seq["plan_declared"]["sesoi"] == 0.02
    assert seq["seeds_run"] == 3 and seq["seeds_planned"] == 3
    by_variant = {row["variant"]: row for row in st["features"]}
    la = [r for r in records if r.variant == "loss.preset=la"]
    mean = sum(r.metrics["proj_compactness"] for r in la) / len(la)
    assert abs(by_variant["loss.preset=la"]["measures"]["proj_compactness"][0] - mean) < 1e-12
    assert {row["label"] for row in st["per_class"]} == set(range(10))


def test_without_a_declaration_or_rounds_no_sequential_section(tmp_path):
    raw = TINY_STUDY(
        name="plain",
        study={"components": ["margin"], "seeds": [0, 1]},
        resources={"executor": "local"},
    )
    raw["study"]["output_dir"] = str(tmp_path / "runs")
    raw["report"] = {"dir": str(tmp_path / "rep")}
    cfg = parse_study(raw)
    run_study(cfg, progress=False)
    text = write_report(cfg, "plain.yaml").read_text()
    assert "Sequential" not in text and "Per-class differences" not in text
    assert "seeds only: every seed trains on the same data draw" in text
    assert "sequential" not in json.loads((tmp_path / "rep" / "stats.json").read_text())
