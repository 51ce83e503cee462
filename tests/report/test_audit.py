"""Issue 20, item 3: each defect of the audit with the test that failed before its fix."""

import json
import time

import numpy as np
import pytest
from scipy import stats as sps

from rcl_study.report import power, robust, stats, wording
from tests.report.test_report import _ablation_records, _record, _write

NOT_COMPUTED = "not computed (n < 10: the bootstrap under-covers)"


# ------------------------------------------------------------ no bootstrap below 10 seeds


@pytest.mark.parametrize("n", [2, 3, 6, 9])
def test_no_bootstrap_interval_below_ten_seeds(n):
    rng = np.random.default_rng(n)
    x, y = rng.normal(0.6, 0.02, n), rng.normal(0.62, 0.02, n)
    s = stats.summarize(x)
    assert s["ci_boot"] is None and s["iqm_ci"] is None
    assert any(NOT_COMPUTED in note for note in s["notes"])
    c = stats.paired_comparison(x, y)
    assert c["prob_improvement_ci"] is None and c["prob_improvement"] is not None
    assert robust.iqm_interval(x) is None and robust.prob_improvement_interval(y, x) is None
    assert stats.bootstrap_interval(x) is None
    band = robust.performance_profile({"a": x}, [0.5, 0.6, 0.7], n_boot=200)["a"]
    assert band["lo"] is None and band["hi"] is None and len(band["share"]) == 3


def test_bootstrap_intervals_from_ten_seeds():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.6, 0.02, 10), rng.normal(0.62, 0.02, 10)
    s = stats.summarize(x)
    assert s["ci_boot"] is not None and s["iqm_ci"] is not None
    assert stats.paired_comparison(x, y)["prob_improvement_ci"] is not None


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


# ------------------------------------------------------------ P(improve): 50,000 resamples


def test_prob_improvement_interval_has_rliable_resamples_and_agrees_with_scipy():
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.62, 0.02, 12), rng.normal(0.60, 0.02, 10)
    assert robust.PI_REPS == 50_000
    t0 = time.perf_counter()
    lo, hi = robust.prob_improvement_interval(x, y)
    assert time.perf_counter() - t0 < 2.0  # vectorised: 50,000 resamples in well under 2 s

    def stat(a, b, axis=-1):
        d = a[..., :, None] - b[..., None, :]
        return ((d > 0) + 0.5 * (d == 0)).mean(axis=(-2, -1))

    ref = sps.bootstrap(
        (x, y),
        stat,
        n_resamples=50_000,
        method="percentile",
        vectorized=True,
        batch=2000,
        random_state=np.random.default_rng(9),
    ).confidence_interval
    # two Monte Carlo estimates of the same quantiles: at 50,000 reps they agree to ~0.005
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)
    # the report's comparisons use the same 50,000 resamples, whatever report.bootstrap says
    c = stats.paired_comparison(y[:10], x[:10], n_boot=100)
    assert c["prob_improvement_ci"] == pytest.approx(
        robust.prob_improvement_interval(x[:10], y[:10])
    )


def test_prob_improvement_interval_matches_a_plain_loop():
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, 10), np.round(rng.normal(0.3, 1, 11), 1)
    got = robust.prob_improvement_interval(x, y, n_boot=3000, seed=4)
    g = np.random.default_rng(4)  # the same draws: all of X's resamples, then all of Y's
    ix, iy = g.integers(0, len(x), (3000, len(x))), g.integers(0, len(y), (3000, len(y)))
    reps = [robust.prob_improvement(x[a], y[b]) for a, b in zip(ix, iy)]
    assert got == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])))


# ------------------------------------------------------------ IQM wording


@pytest.mark.parametrize(("n", "k"), [(4, 2), (6, 4), (8, 4), (10, 6), (12, 6)])
def test_iqm_says_which_k_of_n_it_averages(n, k):
    x = np.arange(n, dtype=float) ** 2  # distinct, skewed: the trimmed mean is unambiguous
    assert robust.iqm_kept(n) == k
    middle = np.sort(x)[(n - k) // 2 : (n - k) // 2 + k]
    assert robust.iqm(x) == pytest.approx(middle.mean())
    assert robust.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25))
    text = " ".join(wording.definitions("balanced_acc", "max", 0.05, [n]))
    assert "middle 50%" not in text
    assert f"the middle {k} of {n} seeds" in text


def test_report_iqm_definition_names_k_of_n(tmp_path):
    _, path = _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    defs = path.read_text().split("## Definitions")[1]
    assert "middle 50%" not in defs and "the middle 3 of 3 seeds" in defs
    assert json.loads((tmp_path / "report" / "stats.json").read_text())


# ------------------------------------------------------------ one MDE per analysis


@pytest.mark.parametrize(("n", "alpha", "family"), [(3, 0.05, 1), (6, 0.05, 3), (12, 0.01, 7)])
def test_paired_mde_through_the_one_power_code_matches_statsmodels(n, alpha, family):
    from statsmodels.stats.power import TTestPower

    sd = 0.03
    want = TTestPower().solve_power(nobs=n, alpha=alpha / family, power=0.8) * sd
    assert power.mde_se(sd / np.sqrt(n), n - 1, alpha, family) == pytest.approx(want, rel=1e-4)
    assert power.mde(n, sd, alpha, family) == pytest.approx(want, rel=1e-4)


def test_factorial_mde_has_80_percent_power_in_a_simulation():
    """Simulate a 2^3 design (3 replicates) whose term A is exactly its MDE: ~80% found."""
    import itertools

    sigma, reps, alpha, m = 0.02, 3, 0.05, 7
    bits = np.array([b for b in itertools.product([0, 1], repeat=3) for _ in range(reps)])
    x = 2.0 * bits - 1
    cols = [np.ones(len(x))] + [
        np.prod(x[:, c], axis=1) for k in (1, 2, 3) for c in itertools.combinations(range(3), k)
    ]
    design = np.column_stack(cols)
    df = len(x) - design.shape[1]
    se = 2 * sigma / np.sqrt(len(x))  # effect = 2 * coefficient; sd of a coefficient sigma/sqrt N
    delta = power.mde_se(se, df, alpha, m)
    rng = np.random.default_rng(0)
    sims = 4000
    y = 0.6 + delta / 2 * x[:, 0] + rng.normal(0, sigma, (sims, len(x)))
    coef, res, *_ = np.linalg.lstsq(design, y.T, rcond=None)
    s2 = res / df
    t = coef[1] / np.sqrt(s2 * np.linalg.inv(design.T @ design)[1, 1])
    found = np.mean(2 * sps.t.sf(np.abs(t), df) < alpha / m)
    assert found == pytest.approx(0.8, abs=0.025)  # 4000 runs: binomial sd 0.006


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
