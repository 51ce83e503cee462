"""Each defect of issue 14 with the test that failed before its fix (synthetic records)."""

import itertools
import json

import numpy as np
import pytest
from scipy import stats as sps

from rcl_study.config import ConfigError, parse_study
from rcl_study.report import stats
from rcl_study.report.render import write_report
from tests.report.test_report import _ablation_records, _record, _write


def _stats(tmp_path):
    return json.loads((tmp_path / "report" / "stats.json").read_text())


def test_untested_comparison_is_not_tested_never_no_difference(tmp_path):
    recs = [r for r in _ablation_records() if r["seed"] == 0]  # one seed per variant
    _, path = _write(tmp_path, {"kind": "ablation", "seeds": [0]}, recs)
    md = path.read_text()
    assert "No significant difference" not in md
    assert "**balance** vs **none**: not tested (one seed)" in md


def test_identical_differences_give_no_test_not_tiny_p():
    # differences 0.1 on every seed, up to round-off (0.0999...98 and 0.1000...09)
    r = stats.paired_comparison([0.5, 0.6, 0.7], [0.6, 0.7, 0.8])
    assert r["p_ttest"] is None and r["p_wilcoxon"] is None
    assert "no test (no variance" in r["notes"][0]


def test_factorial_without_residual_variance_gives_no_test():
    design = np.array([b for b in itertools.product([0, 1], repeat=2) for _ in range(3)])
    y = 0.6 + 0.05 * design[:, 0] - 0.03 * design[:, 1]  # exact: residuals are round-off
    res = stats.factorial_effects(design, y, ["A", "B"])
    assert all(e["p"] is None for e in res["effects"]) and "no variance" in res["note"]


def test_min_mode_calls_a_lower_value_better(tmp_path):
    recs = []
    for variant, ov, gap in (("none", 0.0, 10.0), ("margin", 0.5, 6.0)):
        for seed, noise in zip((0, 1, 2, 3), (0.0, 0.3, -0.2, 0.5)):
            r = _record(f"{variant}__s{seed}", variant, seed, {"loss.margin": ov}, 0.6)
            r["metrics"]["balancedness"] = gap + noise * (variant == "margin")
            recs.append(r)
    study = {"kind": "ablation", "components": ["margin"], "seeds": [0, 1, 2, 3]}
    study.update(metric="balancedness", mode="min")  # the old name still reads
    _, path = _write(tmp_path, study, recs)
    md = path.read_text()
    assert "**margin** is significantly better than **none**" in md
    comp = _stats(tmp_path)["comparisons"][0]
    assert comp["share_improved"] == 1.0 and comp["prob_improvement"] == 1.0


def test_mode_must_agree_with_the_metric_direction():
    with pytest.raises(ConfigError, match="mode"):
        parse_study({"name": "x", "study": {"metric": "balanced_acc", "mode": "min"}})


def test_factorial_terms_are_holm_corrected_before_called_significant(tmp_path):
    rng = np.random.default_rng(16)  # raw p of 'scale' 0.017, Holm over 7 terms 0.12
    recs = []
    for bits in itertools.product([0, 1], repeat=3):
        name = "+".join(c for c, b in zip(("balance", "scale", "margin"), bits) if b) or "none"
        ov = {"loss.balance": float(bits[0]), "loss.scale": 1 + 0.5 * bits[1]}
        ov["loss.margin"] = 0.5 * bits[2]
        for seed in (0, 1, 2):
            acc = 0.6 + 0.01 * (2 * bits[0] - 1) / 2 + rng.normal(0, 0.02)
            recs.append(_record(f"{name}__s{seed}", name, seed, ov, acc))
    _, path = _write(tmp_path, {"kind": "ablation"}, recs)
    summary = path.read_text().split("## Summary")[1].split("##")[0]
    assert "scale (" not in summary  # not called out as a significant term
    assert (
        "No factorial main effect or interaction is significant on test balanced_acc (Holm over "
        "the 7 terms" in summary
    )
    eff = {e["term"]: e for e in _stats(tmp_path)["factorial"]["effects"]}
    assert eff["scale"]["p"] < 0.05 < eff["scale"]["p_holm"]


def test_factorial_blocks_seeds_and_matches_a_naive_least_squares(tmp_path):
    _write(tmp_path, {"kind": "ablation"}, _ablation_records())  # seed effect 0.01 per seed
    fx = _stats(tmp_path)["factorial"]
    assert fx["model"] == "OLS y ~ balance*scale*margin + C(seed)"
    assert fx["df_resid"] == 24 - 8 - 2
    # independent check: numpy least squares with seed dummies on noisy data
    rng = np.random.default_rng(3)
    design = np.array([b for b in itertools.product([0, 1], repeat=3) for _ in range(4)])
    seeds = np.tile(np.arange(4), 8)
    y = 0.6 + 0.04 * design[:, 0] + 0.02 * seeds + rng.normal(0, 0.01, len(seeds))
    res = stats.factorial_effects(design, y, ["A", "B", "C"], seeds)
    coded = 2 * design - 1
    cols = [
        np.prod(coded[:, list(c)], axis=1)
        for o in (1, 2, 3)
        for c in itertools.combinations(range(3), o)
    ]
    X = np.column_stack([np.ones(len(y)), *cols, *(seeds == s for s in (1, 2, 3))]).astype(float)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    df = len(y) - X.shape[1]
    cov = (np.sum((y - X @ coef) ** 2) / df) * np.linalg.inv(X.T @ X)
    assert res["df_resid"] == df
    for j, e in enumerate(res["effects"], start=1):
        assert e["effect"] == pytest.approx(2 * coef[j])
        assert e["se"] == pytest.approx(2 * np.sqrt(cov[j, j]))


def test_paired_effect_sizes_with_noncentral_t_intervals():
    d = [0.02, 0.035, -0.01, 0.04, 0.025, 0.015]
    r = stats.paired_effect_sizes(d)
    n = len(d)
    dz = np.mean(d) / np.std(d, ddof=1)
    assert r["d_z"] == pytest.approx(dz)
    assert r["g_z"] == pytest.approx(dz * (1 - 3 / (4 * (n - 1) - 1)))
    # independent: scan the noncentrality for the 2.5% / 97.5% points of the observed t
    grid = np.linspace(-5, 15, 200001)
    cdf = sps.nct.cdf(dz * np.sqrt(n), n - 1, grid)
    lo, hi = grid[np.argmin(abs(cdf - 0.975))], grid[np.argmin(abs(cdf - 0.025))]
    assert r["d_z_ci"] == pytest.approx((lo / np.sqrt(n), hi / np.sqrt(n)), abs=1e-3)


def test_report_shows_paired_g_not_independent_hedges_g(tmp_path):
    _, path = _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    md = path.read_text()
    assert "g_z [95% CI]" in md and "Hedges g |" not in md


def test_prob_improvement_is_rliable_p_x_greater_y_with_interval():
    base, var = [0.5, 0.6, 0.7, 0.6], [0.6, 0.6, 0.65, 0.9]
    r = stats.paired_comparison(base, var)
    u = sps.mannwhitneyu(var, base).statistic  # U counts ties one half
    assert r["prob_improvement"] == pytest.approx(u / 16)
    assert r["prob_improvement_ci"] is None  # 4 seeds: no bootstrap interval (issue 20)
    r = stats.paired_comparison(base * 3, var * 3)  # 12 seeds
    lo, hi = r["prob_improvement_ci"]
    assert lo <= r["prob_improvement"] <= hi
    again = stats.paired_comparison(base * 3, var * 3)["prob_improvement_ci"]
    assert r["prob_improvement_ci"] == again


def test_dropped_seeds_are_named_and_a_nan_metric_counts_as_failed(tmp_path):
    recs = []
    for seed in (0, 1, 2, 3):
        recs.append(_record(f"none__s{seed}", "none", seed, {"loss.margin": 0.0}, 0.6))
        status = "failed" if seed == 2 else "ok"
        r = _record(f"margin__s{seed}", "margin", seed, {"loss.margin": 0.5}, 0.62, status)
        if seed == 1:
            r["metrics"]["balanced_acc"] = float("nan")
        recs.append(r)
    _, path = _write(
        tmp_path, {"kind": "ablation", "components": ["margin"], "seeds": [0, 1, 2, 3]}, recs
    )
    md = path.read_text()
    assert "seed 1: margin failed (balanced_acc is nan" in md
    assert "seed 2: margin failed (boom)" in md
    assert "ok 6, failed 2" in md
    unfinished = md.split("Trials that did not finish")[1].split("## Reproduce")[0]
    assert unfinished.count("margin__s") == 2


def test_summarize_notes_reach_index(tmp_path):
    recs = [r for r in _ablation_records() if r["seed"] == 0]
    _, path = _write(tmp_path, {"kind": "ablation", "seeds": [0]}, recs)
    assert "one seed: no spread or interval" in path.read_text()


def test_wilcoxon_note_counts_the_nonzero_differences_used():
    base = [0.5, 0.6, 0.7, 0.55, 0.65, 0.6]
    var = [0.52, 0.63, 0.7, 0.56, 0.69, 0.61]  # one zero difference: 5 used
    r = stats.paired_comparison(base, var)
    assert r["p_wilcoxon"] == pytest.approx(sps.wilcoxon(var, base).pvalue)
    assert any("5 non-zero differences (1 zero dropped) cannot reach" in n for n in r["notes"])


def test_bootstrap_interval_only_from_ten_seeds():
    x = [0.61, 0.64, 0.59, 0.66, 0.62]
    few = stats.summarize(x)
    assert few["ci_boot"] is None and any("bootstrap" in n for n in few["notes"])
    many = stats.summarize(x * 2)
    assert many["ci_boot"] is not None


def test_accuracy_interval_is_clipped_to_its_range(tmp_path):
    recs = [
        _record(f"none__s{s}", "none", s, {"loss.margin": 0.0}, a)
        for s, a in zip((0, 1, 2), (0.97, 1.0, 1.0))
    ]
    _write(tmp_path, {"kind": "ablation", "components": ["margin"]}, recs)
    v = _stats(tmp_path)["variants"][0]
    assert v["ci_t"][1] == 1.0 and v["ci_t"][0] < 0.99
    assert any("clipped" in n for n in v["notes"])


@pytest.mark.slow
def test_figures_are_identical_when_rendered_twice(tmp_path):
    cfg, _ = _write(tmp_path, {"kind": "ablation"}, _ablation_records(fail_variant="scale"))
    figs = tmp_path / "report" / "figures"
    first = {p.name: p.read_bytes() for p in figs.iterdir()}
    write_report(cfg, "studies/syn.yaml", tmp_path / "runs", tmp_path / "report")
    assert {p.name: p.read_bytes() for p in figs.iterdir()} == first


def test_grid_best_value_is_never_given_a_ci_on_the_data_that_chose_it(tmp_path):
    recs = []
    for s in (1.0, 1.5, 2.0):
        for seed in (0, 1, 2):
            acc = 0.7 - 0.1 * abs(s - 1.5) + 0.01 * seed + 0.003 * (seed * s % 2)
            recs.append(_record(f"s{s}__s{seed}", f"loss.scale={s}", seed, {"loss.scale": s}, acc))
    _, path = _write(tmp_path, {"kind": "grid", "grid": {"loss.scale": [1.0, 1.5, 2.0]}}, recs)
    md = path.read_text()
    best = _stats(tmp_path)["sweeps"]["loss.scale"]
    assert best["ci_t"] is None and "optimistic" in best["note"]
    assert "**Best loss.scale:** 1.5 (chosen on test" in md and "Holm over 2" in md


def test_search_trials_are_not_pooled_and_best_uses_other_seeds(tmp_path):
    recs = [
        _record(f"search-{i}", "search", 0, {"loss.scale": 1 + i / 10}, 0.5 + i / 100)
        for i in range(4)
    ]
    recs += [
        _record(f"best__s{s}", "best", s, {"loss.scale": 1.3}, 0.55 + s / 100) for s in (0, 1, 2)
    ]
    study = {"kind": "search", "n_trials": 4, "space": {"loss.scale": {"low": 1, "high": 2}}}
    _write(tmp_path, study, recs)
    rows = {v["variant"]: v for v in _stats(tmp_path)["variants"]}
    assert "search" not in rows
    assert rows["best"]["seeds"] == [1, 2] and "seeds [0] left out" in rows["best"]["notes"][-1]


def test_p_values_are_never_rounded_across_alpha():
    from rcl_study.report.render import format_p

    assert format_p(0.0496) == "0.0496"
    assert float(format_p(0.049996)) < 0.05 and float(format_p(0.05)) == 0.05
    assert format_p(0.2254) == "0.225" and format_p(3e-5) == "<1e-4"


def test_old_balancedness_records_read_as_equiangular_gap(tmp_path):
    _write(tmp_path, {"kind": "ablation"}, _ablation_records())  # records say "balancedness"
    v = _stats(tmp_path)["variants"][0]
    assert v["equiangular_gap_deg_mean"] == pytest.approx(3.0)


@pytest.mark.slow
def test_best_epoch_column_only_when_records_have_it(tmp_path):
    recs = _ablation_records()
    _, path = _write(tmp_path, {"kind": "ablation"}, recs)
    assert "best epoch (" not in path.read_text().split("## Paired")[0]
    for r in recs:
        r["metrics"]["best_balanced_acc"] = r["metrics"]["balanced_acc"] + 0.02
    _, path = _write(tmp_path / "b", {"kind": "ablation"}, recs)
    assert f"best epoch ({stats.ON_TEST})" in path.read_text()


def test_every_report_has_definitions(tmp_path):
    _, path = _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    defs = path.read_text().split("## Definitions")[1]
    for word in ("d_z:", "g_z:", "P(improve):", "IQM:", "MDE:", "effect (factorial):", "Holm:"):
        assert word in defs
