"""``report.within``: one grid key's effect at each value of the other, against scipy/statsmodels.

The imbalance sweep's question (does BCL+RCL's gain over BCL depend on the imbalance ratio) needs
the paired difference of the two presets at each ratio, one Holm family over the ratios, and a
test of whether the difference changes across them; the grid's default analysis (every variant
against the first one) does not answer it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from rcl_study.config import ConfigError, parse_study
from rcl_study.report.render import write_report
from rcl_study.study.checks import check_study
from rcl_study.trials.folder import StudyFolder
from tests.report.test_report import _record

IRS = [10, 50, 100]
SEEDS = [0, 1, 2, 3, 4]
GAIN = {10: 0.0, 50: 0.02, 100: 0.05}  # the true gain of bcl+rcl grows with the ratio


def _acc(ir, preset, seed):
    rng = np.random.default_rng([ir, seed, preset == "bcl+rcl"])
    base = 0.8 - 0.001 * ir + 0.01 * seed  # seed effect shared by both presets (pairing matters)
    return base + (GAIN[ir] if preset == "bcl+rcl" else 0.0) + rng.normal(0, 0.01)


def _raw(tmp_path, **report):
    """The study file's mapping: IR x preset, within the ratio, report in ``tmp_path/report``."""
    return {
        "name": "imb",
        "data": {"dataset": "digits_lt"},
        "study": {
            "kind": "grid",
            "grid": {"data.imbalance_ratio": IRS, "loss.preset": ["bcl", "bcl+rcl"]},
            "seeds": SEEDS,
        },
        "report": {"dir": str(tmp_path / "report"), "within": "data.imbalance_ratio", **report},
    }


def _study(tmp_path, **report):
    return parse_study(_raw(tmp_path, **report))


def _write(tmp_path, cfg):
    out = tmp_path / "runs"
    for ir in IRS:
        for p in ("bcl", "bcl+rcl"):
            for s in SEEDS:
                ov = {"data.imbalance_ratio": ir, "loss.preset": p}
                name = f"data.imbalance_ratio={ir},loss.preset={p}"
                StudyFolder(out).append(_record(f"{ir}_{p}__s{s}", name, s, ov, _acc(ir, p, s)))
    StudyFolder(out).write_plan([{"trial_id": f"p{i}"} for i in range(30)], {})
    return write_report(cfg, "studies/imb.yaml", out, tmp_path / "report")


def test_each_ratio_is_a_paired_test_in_one_holm_family_and_the_anova_matches_scipy(tmp_path):
    path = _write(tmp_path, _study(tmp_path))
    st = json.loads((path.parent / "stats.json").read_text())
    w = st["within"]
    assert (w["within"], w["other"], w["control"], w["treatment"]) == (
        "data.imbalance_ratio",
        "loss.preset",
        "bcl",
        "bcl+rcl",
    )
    diffs = []
    for row, ir in zip(w["rows"], IRS, strict=True):
        a = [_acc(ir, "bcl", s) for s in SEEDS]
        b = [_acc(ir, "bcl+rcl", s) for s in SEEDS]
        d = np.subtract(b, a)
        diffs.append(d)
        assert row["level"] == str(ir) and row["n"] == 5
        assert row["mean_diff"] == pytest.approx(d.mean())
        assert row["p_ttest"] == pytest.approx(sps.ttest_rel(b, a).pvalue)
        half = sps.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
        assert row["ci_diff"] == pytest.approx([d.mean() - half, d.mean() + half])
    holm = multipletests([r["p_ttest"] for r in w["rows"]], method="holm")[1]
    assert [r["p_ttest_holm"] for r in w["rows"]] == pytest.approx(list(holm))
    ref = sps.f_oneway(*diffs)
    assert w["anova"]["F"] == pytest.approx(ref.statistic)
    assert w["anova"]["p"] == pytest.approx(ref.pvalue) and w["anova"]["df"] == [2, 12]
    # the MDE: 5 seeds, pooled sd of the paired differences, alpha 0.05 / 3
    pooled = np.sqrt(np.mean([np.var(d, ddof=1) for d in diffs]))
    assert w["mde"]["family"] == 3 and f"{pooled:.3g}" in w["mde"]["basis"]
    # the declared analysis replaces "every variant against the first one"
    assert st["comparisons"] == [] and st["baseline"] is None
    md = path.read_text()
    assert "## Effect of loss.preset (bcl+rcl - bcl) at each data.imbalance_ratio" in md
    assert "**Does the effect change with data.imbalance_ratio?** One-way ANOVA" in md
    assert "Paired comparisons with the baseline" not in md
    assert "At data.imbalance_ratio = 100, **bcl+rcl** is significantly better than **bcl**" in md
    # the ratio is a condition, not a choice: no "best data.imbalance_ratio"
    assert "Best data.imbalance_ratio" not in md and "data.imbalance_ratio" not in st["sweeps"]


def test_an_explicit_baseline_keeps_its_own_family_beside_it(tmp_path):
    cfg = _study(tmp_path, baseline="data.imbalance_ratio=10,loss.preset=bcl")
    st = json.loads((_write(tmp_path, cfg).parent / "stats.json").read_text())
    assert len(st["comparisons"]) == 5 and st["within"]["rows"]


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        ({"data.imbalance_ratio": [10, 50]}, "one of the two keys of a grid"),
        ({"data.imbalance_ratio": [10, 50], "loss.scale": [1.0, 1.5, 2.0]}, "exactly two values"),
        ({"loss.margin": [0.0, 0.5], "loss.scale": [1.0, 1.5]}, "one of the two keys"),
    ],
)
def test_within_needs_a_two_key_grid_whose_other_key_has_two_values(grid, match):
    raw = {
        "name": "w",
        "data": {"dataset": "digits_lt"},
        "study": {"kind": "grid", "grid": grid, "seeds": [0, 1]},
        "report": {"within": "data.imbalance_ratio"},
    }
    with pytest.raises(ConfigError, match=match):
        check_study(parse_study(raw))


def _records_2x(out, within_vals, other_key, other_vals, acc, seeds=(0, 1, 2, 3), skip=()):
    """Records of a grid data.imbalance_ratio x ``other_key``; ``skip``: (ir, value, seed) left out
    or, with a 4th element "failed", recorded as failed."""
    skipped = {s[:3]: (s[3] if len(s) > 3 else None) for s in skip}
    for ir in within_vals:
        for v in other_vals:
            for s in seeds:
                how = skipped.get((ir, v, s), "keep")
                if how is None:
                    continue
                ov = {"data.imbalance_ratio": ir, other_key: v}
                name = f"data.imbalance_ratio={ir},{other_key}={v}"
                status = "failed" if how == "failed" else "ok"
                rec = _record(f"{ir}_{v}__s{s}", name, s, ov, acc(ir, v, s), status)
                StudyFolder(out).append(rec)
    StudyFolder(out).write_plan([{"trial_id": "p"}], {})


def _cfg(tmp_path, grid):
    return parse_study(
        {
            "name": "w",
            "data": {"dataset": "digits_lt"},
            "study": {"kind": "grid", "grid": grid, "seeds": [0, 1, 2, 3]},
            "report": {"dir": str(tmp_path / "report"), "within": "data.imbalance_ratio"},
        }
    )


@pytest.mark.parametrize("values", [[1, 1.5], [None, 0.5]])
def test_float_and_null_grid_values_are_matched_to_their_rows(tmp_path, values):
    """pandas stores [1, 1.5] as 1.0 / 1.5 and None as NaN: the arms must still be found."""
    key = "loss.scale" if values[0] == 1 else "loss.margin"

    def acc(ir, v, s):
        return 0.6 + 0.01 * s + (0.03 if v == values[1] else 0.0) + 0.002 * (s % 2) * (v is None)

    out = tmp_path / "runs"
    _records_2x(out, [10, 50], key, values, acc)
    cfg = _cfg(tmp_path, {"data.imbalance_ratio": [10, 50], key: values})
    write_report(cfg, "studies/w.yaml", out, tmp_path / "report")
    st = json.loads((tmp_path / "report" / "stats.json").read_text())
    rows = st["within"]["rows"]
    assert [r["n"] for r in rows] == [4, 4]
    assert [r["mean_diff"] for r in rows] == pytest.approx([0.03 - 0.001 * (values[0] is None)] * 2)


def test_untested_levels_leave_the_family_and_the_mde(tmp_path):
    """IR 10: the same difference at every seed (untested); IR 50: a seed with one arm only and a
    failed trial; IR 100: one common seed (untested). The family is the tested levels only."""
    noise = {0: 0.0, 1: 0.004, 2: -0.003, 3: 0.006}

    def acc(ir, v, s):
        gain = 0.02 if v == "bcl+rcl" else 0.0
        return 0.6 + 0.01 * s + gain + (noise[s] if (ir != 10 and v == "bcl+rcl") else 0.0)

    skip = [(50, "bcl", 3), (50, "bcl+rcl", 2, "failed")]
    skip += [(100, "bcl", s) for s in (1, 2, 3)]
    out = tmp_path / "runs"
    _records_2x(out, [10, 50, 100], "loss.preset", ["bcl", "bcl+rcl"], acc, skip=skip)
    cfg = _cfg(tmp_path, {"data.imbalance_ratio": [10, 50, 100], "loss.preset": ["bcl", "bcl+rcl"]})
    md = write_report(cfg, "studies/w.yaml", out, tmp_path / "report").read_text()
    w = json.loads((tmp_path / "report" / "stats.json").read_text())["within"]
    r10, r50, r100 = w["rows"]
    assert r10["p_ttest"] is None and "no variance" in r10["untested"]
    assert r100["p_ttest"] is None and r100["untested"] == "one seed"
    assert r50["seeds"] == [0, 1] and "seeds [2, 3] have one arm only" in "; ".join(r50["notes"])
    assert w["tested"] == 1 and r50["p_ttest_holm"] == pytest.approx(r50["p_ttest"])
    d = np.array([noise[0], noise[1]]) + 0.02
    assert w["mde"]["family"] == 1 and f"{d.std(ddof=1):.3g}" in w["mde"]["basis"]
    assert "one Holm family: the 1 values tested (not tested: 10, 100" in md
    assert "Holm over the 1 values of data.imbalance_ratio tested" in md


def test_within_on_a_search_is_refused():
    raw = {
        "name": "s",
        "data": {"dataset": "digits_lt"},
        "study": {
            "kind": "search",
            "seeds": [0, 1],
            "n_trials": 2,
            "space": {"loss.scale": {"low": 1.0, "high": 2.0}},
        },
        "report": {"within": "data.imbalance_ratio"},
    }
    with pytest.raises(ConfigError, match="one of the two keys of a grid"):
        check_study(parse_study(raw))


def test_a_secondary_report_does_not_repeat_the_within_family(tmp_path):
    from rcl_study.report.render import secondary_config

    cfg = _study(
        tmp_path, secondary=[{"name": "v", "baseline": "data.imbalance_ratio=10,loss.preset=bcl"}]
    )
    assert secondary_config(cfg, "v").report.within is None


def test_seed_plans_of_a_within_study_use_its_family(tmp_path, monkeypatch, capsys):
    """--plan-seeds and the report's seed plan: the within tests' pooled sd, family = values."""
    import yaml

    from rcl_study import run

    path = _write(tmp_path, _study(tmp_path))
    st = json.loads((path.parent / "stats.json").read_text())
    diffs = [
        np.subtract([_acc(ir, "bcl+rcl", s) for s in SEEDS], [_acc(ir, "bcl", s) for s in SEEDS])
        for ir in IRS
    ]
    pooled = float(np.sqrt(np.mean([np.var(d, ddof=1) for d in diffs])))
    assert st["plan"]["family"] == 3 and st["plan"]["sd"] == pytest.approx(pooled)
    assert st["mde"] is None  # no comparisons with a baseline: no MDE of them
    assert "paired tests of loss.preset" in st["plan"]["source"]
    # the command line, from the same records
    monkeypatch.chdir(tmp_path)
    raw = _raw(tmp_path)
    raw["study"]["output_dir"] = str(tmp_path / "runs")
    (tmp_path / "imb.yaml").write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert run.main(["imb.yaml", "--plan-seeds"]) == 0
    out = capsys.readouterr().out
    assert "family of 3 comparisons" in out and f"{pooled:.4g}" in out
    assert "paired tests of loss.preset at each data.imbalance_ratio" in out
