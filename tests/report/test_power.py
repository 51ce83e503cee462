"""Seed planning against statsmodels' TTestPower and an independent scipy noncentral-t power."""

import json
import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.power import TTestPower

from rcl_study.report import power
from rcl_study.run import main
from rcl_study.trials.folder import StudyFolder


def _scipy_power(d: float, n: int, alpha: float) -> float:
    """Two-sided paired t-test power written out here: P(|T| > t_crit), T ~ nct(n-1, d sqrt n)."""
    crit = sps.t.ppf(1 - alpha / 2, n - 1)
    return sps.nct.sf(crit, n - 1, d * math.sqrt(n)) + sps.nct.cdf(-crit, n - 1, d * math.sqrt(n))


@pytest.mark.parametrize(
    "n,alpha,family", [(3, 0.05, 1), (5, 0.05, 3), (10, 0.01, 1), (20, 0.05, 7)]
)
def test_mde_matches_statsmodels_and_scipy(n, alpha, family):
    sd = 0.02
    got = power.mde(n, sd, alpha, family)
    a = alpha / family
    want_sm = TTestPower().solve_power(nobs=n, alpha=a, power=0.8) * sd
    hi = 1.5 * want_sm / sd  # a bracket inside scipy's finite range
    want_sp = optimize.brentq(lambda d: _scipy_power(d, n, a) - 0.8, 1e-6, hi) * sd
    assert got == pytest.approx(want_sm, rel=1e-4) and got == pytest.approx(want_sp, rel=1e-6)


def test_mde_at_two_seeds_is_right_where_solve_power_is_not():
    # 1 df: power 0.8 needs d of about 63 at alpha 0.05 / 7 (statsmodels' power agrees there)
    got = power.mde(2, 1.0, 0.05, 7)
    assert TTestPower().power(effect_size=got, nobs=2, alpha=0.05 / 7) == pytest.approx(0.8, 1e-4)
    assert power.mde(3, 1.0, 0.05, 7) < got  # more seeds, smaller detectable effect


@pytest.mark.parametrize("effect,sd,family", [(0.01, 0.02, 1), (0.01, 0.02, 3), (0.05, 0.02, 3)])
def test_seeds_needed_is_the_smallest_n_with_enough_power(effect, sd, family):
    n = power.seeds_needed(effect, sd, 0.05, family)
    a = 0.05 / family
    assert _scipy_power(effect / sd, n, a) >= 0.8
    assert n == 2 or _scipy_power(effect / sd, n - 1, a) < 0.8
    sm = TTestPower().solve_power(effect_size=effect / sd, alpha=a, power=0.8)
    assert n == max(2, math.ceil(sm))


def test_pooled_sd_by_hand():
    # variances 0.01^2 (3 df) and 0.02^2 (1 df): sqrt((3e-4 + 4e-4) / 4)
    sd, df = power.pooled_sd([(0.01, 4), (0.02, 2), (None, 1)])
    assert df == 4 and sd == pytest.approx(math.sqrt(7e-4 / 4))


def _cli(tmp_path, capsys, *args):
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\ndata: {dataset: digits_lt}\nstudy: {kind: ablation, components: [margin], "
        f"seeds: [0, 1, 2], output_dir: {tmp_path / 'runs'}}}\nloss: {{margin: 0.5}}\n"
    )
    code = main([str(study), "--plan-seeds", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plan_seeds_cli_from_the_study_file_alone(tmp_path, capsys):
    code, out, err = _cli(tmp_path, capsys)
    assert code == 2 and "--sd" in err and len(err.strip().splitlines()) == 1
    code, out, _ = _cli(tmp_path, capsys, "--sd", "0.02", "--effect", "0.01")
    assert code == 0
    assert f"with the study's 3 seeds: {power.mde(3, 0.02):.4g}" in out
    assert f"effect of 0.01: {power.seeds_needed(0.01, 0.02)}" in out
    assert not (tmp_path / "runs").exists()  # no training


def test_plan_seeds_cli_uses_stored_records_as_pilot(tmp_path, capsys):
    diffs = [0.01, 0.03, 0.05]  # sd of paired differences: 0.02
    for seed, d in enumerate(diffs):
        for variant, ov, acc in (("none", 0.0, 0.6), ("margin", 0.5, 0.6 + d)):
            StudyFolder(tmp_path / "runs").append(
                {
                    "trial_id": f"{variant}__s{seed}",
                    "variant": variant,
                    "seed": seed,
                    "overrides": {"loss.margin": ov},
                    "status": "ok",
                    "metrics": {"balanced_acc": acc},
                },
            )
    code, out, _ = _cli(tmp_path, capsys, "--effect", "0.01")
    assert code == 0 and "pilot" in out
    assert f"with the study's 3 seeds: {power.mde(3, float(np.std(diffs, ddof=1))):.4g}" in out
    json.dumps(out)


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
