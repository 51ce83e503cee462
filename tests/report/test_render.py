"""A report written from synthetic records (``rcl_study.report.render.write_report``).

What its ``index.md`` and ``stats.json`` say: tests only where they can say something, the
metric's direction, Holm-corrected factorial terms, MDEs per analysis, dropped seeds named,
intervals clipped to the metric's range, p-values never rounded across alpha, figures
reproducible, definitions in every report.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from rcl_study.report import power, stats
from rcl_study.report.render import write_report
from tests.report.test_report import _ablation_records, _record, _write
from tests.report.test_stats import NOT_COMPUTED


def _stats(tmp_path):
    return json.loads((tmp_path / "report" / "stats.json").read_text())


def test_untested_comparison_is_not_tested_never_no_difference(tmp_path):
    recs = [r for r in _ablation_records() if r["seed"] == 0]  # one seed per variant
    _, path = _write(tmp_path, {"kind": "ablation", "seeds": [0]}, recs)
    md = path.read_text()
    assert "No significant difference" not in md
    assert "**balance** vs **none**: not tested (one seed)" in md


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


def test_report_shows_paired_g_not_independent_hedges_g(tmp_path):
    _, path = _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    md = path.read_text()
    assert "g_z [95% CI]" in md and "Hedges g |" not in md


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


def test_report_at_three_seeds_shows_no_bootstrap_interval(tmp_path):
    _, path = _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    md = path.read_text()
    table = md.split("## Results")[1].split("##")[0]
    row = next(line for line in table.splitlines() if line.startswith("| none |"))
    iqm_cell = row.split(" | ")[5]
    assert "[" not in iqm_cell  # the IQM alone, no interval
    comps = md.split("## Paired comparisons")[1].split("##")[0]
    assert NOT_COMPUTED.replace("<", "\\<") in md  # "<" escaped in Markdown prose
    html_page = (tmp_path / "report" / "index.html").read_text()
    assert NOT_COMPUTED.replace("<", "&lt;") in html_page
    for line in comps.splitlines():
        if line.startswith("| balance |"):
            assert line.split(" | ")[10].count("[") == 0  # P(improve) without an interval


def test_report_iqm_definition_names_k_of_n(tmp_path):
    _, path = _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    defs = path.read_text().split("## Definitions")[1]
    assert "middle 50%" not in defs and "the middle 3 of 3 seeds" in defs
    assert json.loads((tmp_path / "report" / "stats.json").read_text())


def test_each_analysis_states_its_own_mde(tmp_path):
    # a factorial whose terms are precise (small residual) but whose paired differences vary
    import itertools

    rng = np.random.default_rng(2)
    recs = []
    seed_shift = {s: rng.normal(0, 0.05) for s in range(4)}
    for bits in itertools.product([0, 1], repeat=2):
        name = "+".join(c for c, b in zip(("balance", "margin"), bits) if b) or "none"
        ov = {"loss.balance": float(bits[0]), "loss.margin": 0.5 * bits[1]}
        for seed in range(4):
            acc = 0.6 + 0.013 * bits[0] + seed_shift[seed] * (1 + bits[1]) + rng.normal(0, 0.004)
            recs.append(_record(f"{name}__s{seed}", name, seed, ov, acc))
    study = {"kind": "ablation", "components": ["balance", "margin"], "seeds": [0, 1, 2, 3]}
    _, path = _write(tmp_path, study, recs)
    st = json.loads((tmp_path / "report" / "stats.json").read_text())
    paired, fact = st["mde"]["value"], st["factorial"]["mde"]["value"]
    assert paired == pytest.approx(
        power.mde(4, st["plan"]["sd"], 0.05, len(st["comparisons"])), rel=1e-9
    )
    fx = st["factorial"]
    se = max(e["se"] for e in fx["effects"])
    assert fact == pytest.approx(power.mde_se(se, fx["df_resid"], 0.05, len(fx["effects"])))
    assert f"{paired:.3g}" != f"{fact:.3g}"
    md = path.read_text()
    assert "detects differences" not in md
    summary = md.split("## Summary")[1].split("\n## ")[0]
    for line in summary.splitlines():
        if "factorial" in line.lower():
            assert f"MDE of the factorial terms: {fact:.3g}" in line and f"{paired:.3g}" not in line
        if "from the baseline" in line:
            assert f"MDE of the paired comparisons with the baseline: {paired:.3g}" in line
            assert f"{fact:.3g}" not in line
    assert "find it significant in 80% of repeated studies and miss it in 20%" in summary


def test_grid_best_has_its_own_mde(tmp_path):
    from tests.report.test_validation_choice import GRID, _grid_records

    _write(tmp_path, GRID, _grid_records())
    best = json.loads((tmp_path / "report" / "stats.json").read_text())["sweeps"]["loss.scale"]
    sd, _ = power.pooled_sd([(v["sd_diff"], v["n"]) for v in best["versus"]])
    from statsmodels.stats.power import TTestPower

    # 2 report seeds: solve_power fails at 1 df, its power function does not
    got = TTestPower().power(effect_size=best["mde"]["value"] / sd, nobs=2, alpha=0.05 / 2)
    assert got == pytest.approx(0.8, abs=1e-4)
    assert best["mde"]["analysis"] == "best-versus-other tests of loss.scale"


# ------------------------------------------------------------ labels of the Design block


def _design(md):
    return md.split("## Design")[1].split("\n## ")[0]


def test_a_grid_over_the_loss_preset_does_not_show_a_fixed_preset(tmp_path):
    recs = [
        _record(f"{p}__s{s}", f"loss.preset={p}", s, {"loss.preset": p}, 0.5 + 0.01 * s + i / 50)
        for i, p in enumerate(("ce", "la", "bcl", "bcl+rcl"))
        for s in (0, 1, 2)
    ]
    study = {"kind": "grid", "grid": {"loss.preset": ["ce", "la", "bcl", "bcl+rcl"]}}
    _, path = _write(tmp_path, study, recs)
    design = _design(path.read_text())
    assert "bcl+rcl;" not in design and "loss preset: bcl+rcl" not in design
    assert "preset varied by the grid" in design
    assert "temperature 0.1" in design  # what is fixed is still said


def test_the_all_off_ablation_baseline_is_not_read_as_no_baseline(tmp_path):
    _, path = _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    md = path.read_text()
    assert "baseline: none" not in md
    assert 'baseline: the all-off variant "none" (balance, scale, margin off)' in _design(md)
    assert '## Paired comparisons with the baseline (the all-off variant "none"' in md
