"""ReportStats: the typed statistics of a report and their stats.json form."""

import json
from pathlib import Path

import pytest

from rcl_study.config import load_study
from rcl_study.report.assemble import analyse, in_plan_order, normalise
from rcl_study.report.report_stats import (
    Anova,
    Comparison,
    FactorialEffects,
    FactorialTerm,
    Mde,
    MdeRow,
    Plateau,
    PlateauRow,
    Profile,
    ReportStats,
    SecondaryOf,
    SecondaryRef,
    SeedPlan,
    SeedsNeeded,
    SweepBest,
    SweepVersus,
    VariantSummary,
    WithinAnalysis,
    WithinRow,
)
from rcl_study.trials.folder import StudyFolder

ROOT = Path(__file__).resolve().parents[2]

PAIRED = {
    "n": 2,
    "mean_diff": 0.1,
    "ci_diff": (0.0, 0.2),
    "sd_diff": 0.01,
    "p_ttest": 0.02,
    "p_wilcoxon": None,
    "d_z": 10.0,
    "d_z_ci": (1.0, 20.0),
    "g_z": None,
    "g_z_ci": None,
    "share_improved": 1.0,
    "prob_improvement": 1.0,
    "prob_improvement_ci": None,
    "untested": None,
    "notes": ["no non-zero difference: Wilcoxon undefined"],
}
MDE = {
    "value": 0.05,
    "analysis": "a",
    "test": "paired t-test",
    "alpha": 0.05,
    "family": 1,
    "power": 0.8,
    "basis": "b",
}


def _small() -> ReportStats:
    """A study of two variants with one of every part, written out by hand."""
    mde = Mde(0.05, "a", "paired t-test", 0.05, 1, 0.8, "b")
    summary = VariantSummary(
        2, 0.7, 0.01, (0.6, 0.8), None, 0.7, None, ["few seeds"], "a", 2, 0, [0, 1],
        {"top1": 0.71, "val_top1": None},
    )  # fmt: skip
    comp = Comparison(**PAIRED, variant="b", baseline="a", seeds=[0, 1], p_ttest_holm=0.02,
                      p_wilcoxon_holm=None)  # fmt: skip
    row = WithinRow(**PAIRED, level="10", seeds=[0, 1], control_mean=0.6, treatment_mean=0.7,
                    p_ttest_holm=0.04, p_wilcoxon_holm=None)  # fmt: skip
    best = SweepBest(
        "0.5", None, "validation", [0, 1], {"0.5": 0.7}, [2, 3], True, 0.72, (0.7, 0.74),
        [SweepVersus("1", -0.01, 0.002, 2, 0.1, None, 0.1)], mde,
    )  # fmt: skip
    plateau = PlateauRow("a", 2, 10, [8, 10], 0.001, 0.01, True, "")
    return ReportStats(
        study="small", metric="top1", mode="max", alpha=0.05, planned=4, recorded=4,
        status_counts={"ok": 4}, baseline="a", on_validation=True,
        secondary=None, secondaries=[SecondaryRef("vs_b", "b", "reports/small_vs_b")],
        variants=[summary], comparisons=[comp],
        factorial=FactorialEffects(1, [FactorialTerm("x", 0.1, 0.01, (0.0, 0.2), 0.01, 0.01)],
                                   None, "OLS y ~ x", mde),
        sweeps={"loss.scale": best, "loss.margin": SweepBest(None, "no seed where every value"
                                                             " finished"), "loss.t": None},
        search=None,
        within=WithinAnalysis("w", "o", "x", "y", [row], Anova(1.5, 0.3, [1, 2], None), mde, 1),
        plateau=Plateau("top1", [plateau], None),
        plan=SeedPlan(0.01, "s", 0.05, 1, 0.8, 2, 0.05, [MdeRow(2, 0.05)], [SeedsNeeded(0.01, 9)]),
        mde=mde, profile=Profile([0.5, 0.6], {"a": {"share": [1.0, 0.0]}}),
    )  # fmt: skip


EXPECTED = {
    "study": "small",
    "metric": "top1",
    "mode": "max",
    "alpha": 0.05,
    "planned": 4,
    "recorded": 4,
    "status_counts": {"ok": 4},
    "baseline": "a",
    "on_validation": True,
    "secondary": None,
    "secondaries": [{"name": "vs_b", "baseline": "b", "dir": "reports/small_vs_b"}],
    "variants": [
        {
            "n": 2,
            "mean": 0.7,
            "std": 0.01,
            "ci_t": [0.6, 0.8],
            "ci_boot": None,
            "iqm": 0.7,
            "iqm_ci": None,
            "notes": ["few seeds"],
            "variant": "a",
            "trials": 2,
            "failed": 0,
            "seeds": [0, 1],
            "top1_mean": 0.71,
            "val_top1_mean": None,
        }
    ],
    "comparisons": [
        {
            **PAIRED,
            "variant": "b",
            "baseline": "a",
            "seeds": [0, 1],
            "p_ttest_holm": 0.02,
            "p_wilcoxon_holm": None,
        }
    ],
    "factorial": {
        "df_resid": 1,
        "effects": [
            {"term": "x", "effect": 0.1, "se": 0.01, "ci": [0.0, 0.2], "p": 0.01, "p_holm": 0.01}
        ],
        "note": None,
        "model": "OLS y ~ x",
        "mde": MDE,
    },
    "sweeps": {
        "loss.scale": {
            "value": "0.5",
            "selected_by": "validation",
            "selected_on": [0, 1],
            "selection_means": {"0.5": 0.7},
            "reported_on": [2, 3],
            "held_out": True,
            "mean": 0.72,
            "ci_t": [0.7, 0.74],
            "versus": [
                {
                    "other": "1",
                    "mean_diff": -0.01,
                    "sd_diff": 0.002,
                    "n": 2,
                    "p": 0.1,
                    "untested": None,
                    "p_holm": 0.1,
                }
            ],
            "note": None,
            "mde": MDE,
        },
        "loss.margin": {"value": None, "note": "no seed where every value finished"},
        "loss.t": None,
    },
    "search": None,
    "within": {
        "within": "w",
        "other": "o",
        "control": "x",
        "treatment": "y",
        "rows": [
            {
                **PAIRED,
                "level": "10",
                "seeds": [0, 1],
                "control_mean": 0.6,
                "treatment_mean": 0.7,
                "p_ttest_holm": 0.04,
                "p_wilcoxon_holm": None,
            }
        ],
        "anova": {"F": 1.5, "p": 0.3, "df": [1, 2], "untested": None},
        "mde": MDE,
        "tested": 1,
    },
    "plateau": {
        "metric": "top1",
        "test": [
            {
                "variant": "a",
                "n": 2,
                "last_epoch": 10,
                "tail_epochs": [8, 10],
                "movement": 0.001,
                "sd": 0.01,
                "plateau": True,
                "why": "",
            }
        ],
        "validation": None,
    },
    "plan": {
        "sd": 0.01,
        "source": "s",
        "alpha": 0.05,
        "family": 1,
        "power": 0.8,
        "n_now": 2,
        "mde_now": 0.05,
        "mde_table": [{"seeds": 2, "mde": 0.05}],
        "needed": [{"effect": 0.01, "seeds": 9}],
    },
    "mde": MDE,
    "profile": {"taus": [0.5, 0.6], "curves": {"a": {"share": [1.0, 0.0]}}},
}


def _text(d) -> str:
    return json.dumps(d, indent=1, default=str)


def test_to_json_of_a_small_study_is_the_stats_dict_key_for_key_in_order():
    got = _small().to_json()
    assert json.loads(_text(got)) == json.loads(_text(EXPECTED))
    assert _text(got) == _text(EXPECTED)  # the same keys in the same order, nested too


def test_a_secondary_analysis_names_its_primary_and_lists_no_secondaries():
    from dataclasses import replace

    got = replace(_small(), secondary=SecondaryOf("vs_b", "reports/small"), secondaries=[])
    out = got.to_json()
    assert out["secondary"] == {"name": "vs_b", "primary_report": "reports/small"}
    assert "secondaries" not in out
    assert list(out)[9:11] == ["secondary", "variants"]


def test_a_factorial_with_an_empty_cell_lists_its_effects_first():
    fx = FactorialEffects(0, [], "some cells of the 2^k design have no successful trial", None)
    assert list(fx.to_json()) == ["effects", "note", "df_resid", "model", "mde"]


def test_parts_are_frozen():
    with pytest.raises(AttributeError):
        _small().metric = "x"


@pytest.mark.parametrize("study", ["quickstart", "margin_sweep_fmnist"])
def test_analysis_of_a_committed_report_gives_its_stats_json(study):
    report = ROOT / "reports" / study
    cfg = load_study(ROOT / "studies" / f"{study}.yaml")
    folder = StudyFolder(report)
    plan = folder.plan()
    records = normalise(in_plan_order(folder.records(), plan, cfg.study.kind))
    got = analyse(cfg, records, plan).stats
    assert isinstance(got.variants[0], VariantSummary)
    assert _text(got.to_json()) == (report / "stats.json").read_text()
