"""What a report leaves out, and says once: comparisons identical to the baseline by construction,
analyses that cannot say anything at the study's number of seeds, an MDE beyond the metric's range;
and the late-movement section named for what it measures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rcl_study.config import parse_study
from rcl_study.report import power, stats
from rcl_study.report.plan import study_plan
from rcl_study.report.render import write_report
from rcl_study.trials.folder import StudyFolder
from tests.report.test_report import _record
from tests.report.test_within import _cfg, _records_2x

IDENTICAL = "identical to the baseline at every seed: not tested"


def _report(tmp_path, accs: dict[str, list[float]]):
    """A one-key grid (the first variant is the baseline) on balanced_acc; its md and stats."""
    n = len(next(iter(accs.values())))
    raw = {
        "name": "fix",
        "data": {"dataset": "digits_lt"},
        "study": {
            "kind": "grid",
            "grid": {"loss.scale": [float(i + 1) for i in range(len(accs))]},
            "seeds": list(range(n)),
            "output_dir": str(tmp_path / "runs"),
        },
        "report": {"dir": str(tmp_path / "report")},
    }
    cfg = parse_study(raw)
    folder = StudyFolder(tmp_path / "runs")
    for i, (name, acc) in enumerate(accs.items()):
        for s, a in enumerate(acc):
            folder.append(_record(f"{name}__s{s}", name, s, {"loss.scale": float(i + 1)}, a))
    folder.write_plan([{"trial_id": f"p{i}"} for i in range(n * len(accs))], {})
    md = write_report(cfg, "studies/fix.yaml", tmp_path / "runs", tmp_path / "report").read_text()
    return cfg, md, json.loads((tmp_path / "report" / "stats.json").read_text())


def _section(md: str, head: str) -> str:
    return md.split(head)[1].split("\n## ")[0]


BASE6 = [0.60 + 0.01 * s for s in range(6)]
DA = [0.02, 0.03, 0.01, 0.04, 0.02, 0.03]
DB = [-0.01, 0.0, 0.01, -0.02, 0.005, 0.0]


def test_a_comparison_identical_by_construction_leaves_the_family_sd_and_counts(tmp_path):
    """s = 1 "views" is the baseline itself: 0 at every seed, not 5 df of zeros in the pooled sd."""
    a = list(np.add(BASE6, DA))
    b = list(np.add(BASE6, DB))
    cfg, md, st = _report(tmp_path, {"base": BASE6, "same": list(BASE6), "a": a, "b": b})
    da, db = np.subtract(a, BASE6), np.subtract(b, BASE6)
    pooled = np.sqrt((np.var(da, ddof=1) + np.var(db, ddof=1)) / 2)  # 10 df, the zeros left out
    assert st["plan"]["sd"] == pytest.approx(pooled)
    assert st["plan"]["family"] == 2 and "pooled over 2 comparisons" in st["plan"]["source"]
    assert st["mde"]["family"] == 2
    assert st["mde"]["value"] == pytest.approx(power.mde(6, pooled, 0.05, 2))
    same = next(c for c in st["comparisons"] if c["variant"] == "same")
    assert same["p_ttest"] is None and same["p_ttest_holm"] is None
    holm = stats.holm([c["p_ttest"] for c in st["comparisons"] if c["variant"] != "same"])
    assert [c["p_ttest_holm"] for c in st["comparisons"] if c["variant"] != "same"] == holm
    comps = _section(md, "## Paired comparisons")
    assert "the 2 comparisons with the baseline" in comps and "3 comparisons" not in md
    assert md.count(IDENTICAL) == 1 and IDENTICAL in comps  # said once, in its note column
    assert "no test (no variance" not in md
    # the command line's seed plan from the same records agrees
    plan = study_plan(cfg)
    assert plan.family == 2 and plan.sd == pytest.approx(pooled)


def test_six_seeds_and_two_comparisons_show_no_wilcoxon_and_say_why_once(tmp_path):
    a, b = list(np.add(BASE6, DA)), list(np.add(BASE6, DB))
    _, md, _ = _report(tmp_path, {"base": BASE6, "a": a, "b": b})
    comps = _section(md, "## Paired comparisons")
    # 2 / 2**6 = 0.03125 > 0.05 / 2: after Holm no Wilcoxon p could be significant
    note = "Wilcoxon not shown: with 6 seeds its smallest p is 0.0312, above alpha/m = 0.05/2"
    assert md.count(note) == 1 and note in comps
    assert "Wilcoxon" not in comps.replace(note, "")  # no columns, no per-row notes
    assert "p (t, Holm)" in comps


DIFFS = [0.01, 0.2, 0.05, 0.1, 0.03, 0.08]


@pytest.mark.parametrize(
    ("n", "wilcoxon", "iqm", "improve", "profile"),
    [
        # one comparison: Wilcoxon from 2 / 2**n < 0.05 (n = 6); IQM from 4; the rest from 5
        (2, False, False, False, False),
        (3, False, False, False, False),
        (4, False, True, False, False),
        (5, False, True, True, True),
        (6, True, True, True, True),
    ],
)
def test_what_is_shown_at_each_number_of_seeds(tmp_path, n, wilcoxon, iqm, improve, profile):
    base = BASE6[:n]
    _, md, st = _report(tmp_path, {"base": base, "v": list(np.add(base, DIFFS[:n]))})
    results, comps = _section(md, "## Results"), _section(md, "## Paired comparisons")
    assert ("p (Wilcoxon)" in comps) is wilcoxon
    assert (f"Wilcoxon not shown: with {n} seeds" in md) is not wilcoxon
    assert ("IQM" in results.split("\n\n| variant")[1].splitlines()[0]) is iqm
    assert ("P(improve) [95% CI" in comps) is improve
    assert (st["profile"] is not None) is profile
    assert ("performance_profile" in md) is profile
    for shown, said in (
        (iqm, "IQM not shown"),
        (improve, "P(improve) not shown"),
        (profile, "Performance profiles not shown"),
    ):
        assert md.count(said) == (0 if shown else 1)


def test_an_mde_beyond_the_metric_range_is_worded_not_stated(tmp_path):
    base = BASE6[:2]
    _, md, st = _report(tmp_path, {"base": base, "v": list(np.add(base, DIFFS[:2]))})
    assert st["mde"]["value"] > 1  # balanced_acc is on [0, 1]: no difference that large exists
    assert md.count("no effect within the metric's range is detectable with 2 seeds") == 1
    assert f"{st['mde']['value']:.3g}" not in md
    planning = _section(md, "## Seed planning")
    assert "none within the metric's range" in planning


def test_within_an_identical_level_leaves_the_family_and_the_seed_plans(tmp_path, monkeypatch):
    """IR 10: both arms identical at every seed; IR 50 and 100 tested (4 seeds, family 2)."""
    noise = {0: 0.0, 1: 0.004, 2: -0.003, 3: 0.006}

    def acc(ir, v, s):
        if ir == 10:
            return 0.6 + 0.01 * s
        return 0.6 + 0.01 * s + (0.02 + noise[s] * ir / 50 if v == "bcl+rcl" else 0.0)

    out = tmp_path / "runs"
    _records_2x(out, [10, 50, 100], "loss.preset", ["bcl", "bcl+rcl"], acc)
    cfg = _cfg(tmp_path, {"data.imbalance_ratio": [10, 50, 100], "loss.preset": ["bcl", "bcl+rcl"]})
    md = write_report(cfg, "studies/w.yaml", out, tmp_path / "report").read_text()
    st = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert st["within"]["tested"] == 2 and st["plan"]["family"] == 2
    assert md.count(IDENTICAL) == 1
    note = "Wilcoxon not shown: with 4 seeds its smallest p is 0.125, above alpha/m = 0.05/2"
    assert md.count(note) == 1 and "p (Wilcoxon, Holm)" not in md
    assert study_plan(cfg, records_dir=out).family == 2


def test_the_late_movement_section_is_named_for_what_it_measures(tmp_path):
    recs = []
    for v in ("a", "b"):
        for s in range(3):
            r = _record(f"{v}__s{s}", v, s, {"loss.scale": 1.0 + (v == "b")}, 0.6 + 0.01 * s)
            r["history"] = [{"epoch": e, "balanced_acc": 0.6 + 0.01 * s} for e in range(1, 11)]
            recs.append(r)
    raw = {
        "name": "p",
        "data": {"dataset": "digits_lt"},
        "study": {"kind": "grid", "grid": {"loss.scale": [1.0, 2.0]}, "seeds": [0, 1, 2]},
        "report": {"dir": str(tmp_path / "report")},
    }
    for r in recs:
        StudyFolder(tmp_path / "runs").append(r)
    StudyFolder(tmp_path / "runs").write_plan([{"trial_id": "p"}], {})
    md = write_report(parse_study(raw), "s.yaml", tmp_path / "runs", tmp_path / "report")
    md = md.read_text()
    assert "## Late movement of the learning curves (test balanced_acc)" in md
    assert "plateau" not in md.lower()
    late = _section(md, "## Late movement")
    assert "late movement, not convergence" in late
