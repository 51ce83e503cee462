"""Secondary analyses are declared, labelled and rebuilt by their own command."""

import json

import pytest
import yaml

from rcl_study import run
from rcl_study.config import ConfigError, parse_study
from rcl_study.trials.folder import StudyFolder
from tests.report.test_report import _record

LABEL = "secondary (not part of the primary Holm family)"
PRESETS = ["ce", "la", "bcl", "bcl+rcl"]


def _study(tmp_path, secondary):
    study = {
        "name": "losses",
        "data": {"dataset": "digits_lt"},
        "study": {"kind": "grid", "grid": {"loss.preset": PRESETS}, "seeds": [0, 1, 2]},
        "report": {"baseline": "loss.preset=ce", "secondary": secondary},
    }
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "losses.yaml").write_text(yaml.safe_dump(study))
    folder = StudyFolder(tmp_path / "runs" / "losses")
    offsets = {"ce": 0.0, "la": 0.1, "bcl": 0.05, "bcl+rcl": 0.07}
    noise = [0.0, 0.013, -0.008]
    for p in PRESETS:
        for s in (0, 1, 2):
            acc = 0.3 + offsets[p] + noise[s] * (1 + PRESETS.index(p))
            folder.append(_record(f"{p}__s{s}", f"loss.preset={p}", s, {"loss.preset": p}, acc))


@pytest.mark.parametrize(
    ("secondary", "match"),
    [
        ([{"name": "vs_bcl"}], "baseline"),
        ([{"name": "vs_bcl", "baseline": "x", "basline": "y"}], "basline"),
        ([{"name": "a/b", "baseline": "x"}], "name"),
        ([{"name": "v", "baseline": "x"}, {"name": "v", "baseline": "y"}], "named 'v'"),
        ({"name": "v", "baseline": "x"}, "secondary"),
    ],
)
def test_report_secondary_is_validated(secondary, match):
    with pytest.raises(ConfigError, match=match):
        parse_study({"name": "x", "report": {"secondary": secondary}})


def test_secondary_analysis_is_labelled_and_rebuilt_by_its_own_command(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    _study(tmp_path, [{"name": "vs_bcl", "baseline": "loss.preset=bcl"}])
    assert run.main(["studies/losses.yaml", "--report-only"]) == 0
    primary = (tmp_path / "reports" / "losses" / "index.md").read_text()
    sec_dir = tmp_path / "reports" / "losses_vs_bcl"
    second = (sec_dir / "index.md").read_text()

    # the primary: its own family, names the secondary and the command that rebuilds it
    assert "Regenerate this report without training: `python -m rcl_study.run " in primary
    assert "studies/losses.yaml --report-only`." in primary
    assert "Secondary analysis vs_bcl" in primary and LABEL in primary
    assert "`python -m rcl_study.run studies/losses.yaml --report-only --secondary vs_bcl`" in (
        primary
    )
    # the secondary: labelled where its tests are, its own Regenerate line
    assert second.startswith("# Study report: losses, secondary analysis vs_bcl")
    assert f"## Paired comparisons with the baseline (loss.preset=bcl), {LABEL}" in second
    assert f"## Summary ({LABEL})" in second
    assert (
        "Regenerate this report without training: `python -m rcl_study.run studies/losses.yaml "
        "--report-only --secondary vs_bcl`." in second
    )
    st = json.loads((sec_dir / "stats.json").read_text())
    assert st["baseline"] == "loss.preset=bcl" and st["secondary"]["name"] == "vs_bcl"
    assert {c["variant"] for c in st["comparisons"]} == {
        "loss.preset=ce",
        "loss.preset=la",
        "loss.preset=bcl+rcl",
    }
    assert not (sec_dir / "records.jsonl").exists()  # a report build writes no records
    from rcl_study.config import load_study
    from rcl_study.study.runner import absolute_paths
    from rcl_study.trials.shipping import ship_study

    ship_study(absolute_paths(load_study("studies/losses.yaml")))  # what a run does at its end
    assert (sec_dir / "records.jsonl").exists()

    # --secondary rebuilds that one only
    (sec_dir / "index.md").unlink()
    (tmp_path / "reports" / "losses" / "index.md").unlink()
    capsys.readouterr()
    assert run.main(["studies/losses.yaml", "--report-only", "--secondary", "vs_bcl"]) == 0
    assert (sec_dir / "index.md").read_text() == second
    assert not (tmp_path / "reports" / "losses" / "index.md").exists()


def test_secondary_refusals(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _study(tmp_path, [{"name": "vs_bcl", "baseline": "loss.preset=bcl"}])
    assert run.main(["studies/losses.yaml", "--report-only", "--secondary", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--secondary 'nope' is not in report.secondary (vs_bcl)" in err
    assert len(err.strip().splitlines()) == 1
    assert run.main(["studies/losses.yaml", "--secondary", "vs_bcl"]) == 2
    assert "--secondary only applies with --report-only" in capsys.readouterr().err


def test_a_secondary_baseline_that_is_not_a_variant_is_refused_before_anything_runs(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    _study(tmp_path, [{"name": "vs_x", "baseline": "loss.preset=nope"}])
    assert run.main(["studies/losses.yaml", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "report.secondary 'vs_x': baseline 'loss.preset=nope' is not a variant" in err
    assert len(err.strip().splitlines()) == 1


def test_overwrite_moves_the_secondary_reports_aside_too(tmp_path, monkeypatch):
    from rcl_study.config import load_study, set_path
    from rcl_study.study.runner import prepare_folder

    monkeypatch.chdir(tmp_path)
    _study(tmp_path, [{"name": "vs_bcl", "baseline": "loss.preset=bcl"}])
    assert run.main(["studies/losses.yaml", "--report-only"]) == 0
    assert run.main(["studies/losses.yaml", "--report-only", "--secondary", "vs_bcl"]) == 0
    sec_dir = tmp_path / "reports" / "losses_vs_bcl"
    mine = sec_dir / "notes.txt"  # a user's own file in the secondary folder survives
    mine.write_text("keep")
    assert (sec_dir / "index.md").exists()
    # records in a folder of the toolkit's own (the synthetic ones above were written unmarked)
    cfg = set_path(load_study("studies/losses.yaml"), {"study.output_dir": "runs/fresh"})
    prepare_folder(cfg, overwrite=True)
    assert not (sec_dir / "index.md").exists() and not (sec_dir / "stats.json").exists()
    (moved,) = sec_dir.parent.glob("losses_vs_bcl.replaced-*")
    assert (moved / "notes.txt").read_text() == "keep" and (moved / "index.md").exists()
    assert not (tmp_path / "reports" / "losses" / "index.md").exists()


@pytest.mark.parametrize(
    ("where", "match"), [("reports/losses", "also report.dir"), ("runs/fresh/rep", "overlap")]
)
def test_a_secondary_folder_on_the_primary_report_or_the_records_is_refused(
    tmp_path, monkeypatch, where, match
):
    from rcl_study.config import load_study, set_path
    from rcl_study.study.checks import check_folders

    monkeypatch.chdir(tmp_path)
    _study(tmp_path, [{"name": "vs_bcl", "baseline": "loss.preset=bcl", "dir": where}])
    cfg = set_path(load_study("studies/losses.yaml"), {"study.output_dir": "runs/fresh"})
    with pytest.raises(ConfigError, match=match):
        check_folders(cfg)
