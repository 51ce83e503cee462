"""The group-sequential test of the primary contrasts: boundaries, decisions, simulated validity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from rcl_study.trials.sequential import (
    boundaries,
    check_rounds,
    nominal_levels,
    power,
    sequential_test,
    spent,
)


def test_spending_by_hand():
    assert spent(1.0, 0.05) == pytest.approx(0.05)
    assert spent(0.0, 0.05) == 0.0
    # 2 - 2 Phi(1.959964 * sqrt(2)) = 2 - 2 Phi(2.771808)
    assert spent(0.5, 0.05) == pytest.approx(2 * stats.norm.sf(1.959964 * math.sqrt(2)), rel=1e-6)
    assert spent(0.5, 0.05) == pytest.approx(0.005575, abs=2e-6)


def test_one_look_is_the_fixed_sample_test():
    assert boundaries((10,), 0.05)[0] == pytest.approx(stats.norm.isf(0.025))
    assert nominal_levels((10,), 0.01)[0] == pytest.approx(0.01)


def test_two_looks_spend_alpha_exactly_by_the_bivariate_normal():
    c1, c2 = boundaries((6, 12), 0.05)
    r = math.sqrt(6 / 12)
    mvn = stats.multivariate_normal([0, 0], [[1, r], [r, 1]])

    def inside(a, b):  # P(|Z1| < a, |Z2| < b)
        return mvn.cdf([a, b]) - mvn.cdf([-a, b]) - mvn.cdf([a, -b]) + mvn.cdf([-a, -b])

    assert 2 * stats.norm.sf(c1) == pytest.approx(spent(0.5, 0.05), rel=1e-6)
    assert 1 - inside(c1, c2) == pytest.approx(0.05, abs=2e-5)
    assert c1 > c2 > stats.norm.isf(0.025)  # O'Brien-Fleming: conservative early, near 1.96 late


def test_three_looks_against_simulated_brownian_paths():
    rounds = (3, 6, 9)
    cs = np.array(boundaries(rounds, 0.05))
    rng = np.random.default_rng(11)
    s = np.cumsum(rng.normal(size=(400_000, 3)), axis=1)
    z = s / np.sqrt([1, 2, 3])
    cross = np.abs(z) >= cs
    first = np.where(cross.any(1), cross.argmax(1), -1)
    want = np.diff([0.0] + [spent(t, 0.05) for t in (1 / 3, 2 / 3, 1.0)])
    for k in range(3):
        got = np.mean(first == k)
        se = math.sqrt(want[k] * (1 - want[k]) / len(first))
        assert abs(got - want[k]) < 4 * se + 1e-5


@pytest.mark.parametrize("bad", [[], [1, 4], [4, 4], [6, 3], [2.5, 4], [True, 4]])
def test_bad_rounds_are_refused(bad):
    with pytest.raises(ValueError, match="rounds"):
        check_rounds(bad)


def test_a_single_look_decides_as_holm_over_paired_t_tests():
    rng = np.random.default_rng(3)
    for _ in range(40):
        d = {c: rng.normal(mu, 1, 8) for c, mu in zip("abc", (0.0, 0.8, 1.6))}
        res = sequential_test(d, (8,), 0.05)
        p = [stats.ttest_1samp(d[c], 0).pvalue for c in "abc"]
        holm = multipletests(p, 0.05, method="holm")[0]
        got = [res.decided.get(c, ("", 0))[0] == "reject" for c in "abc"]
        assert got == list(holm)
        assert res.stop


def test_holm_passes_a_rejected_contrast_s_level_on_within_a_look():
    # p-values about 0.001 and 0.03 at one look of 10 seeds: 0.001 < 0.025, then 0.03 < 0.05
    def with_p(p: float, n: int = 10) -> np.ndarray:
        t = stats.t.isf(p / 2, n - 1)
        base = np.array([1.0, -1.0] * (n // 2))
        base = base / base.std(ddof=1)
        return base + t / math.sqrt(n)

    res = sequential_test({"a": with_p(0.001), "b": with_p(0.03)}, (10,), 0.05)
    assert res.decided == {"a": ("reject", 1), "b": ("reject", 1)}
    res = sequential_test({"a": with_p(0.001), "b": with_p(0.06)}, (10,), 0.05)
    assert res.decided == {"a": ("reject", 1)}
    assert res.looks[0].contrasts[1].level == pytest.approx(0.05)  # raised after 'a'


def test_futility_when_the_repeated_interval_lies_inside_the_sesoi():
    d = np.array([0.01, -0.01] * 6)
    res = sequential_test({"a": d}, (4, 8, 12), 0.05, sesoi=0.1)
    assert res.decided == {"a": ("futile", 1)}
    assert res.stop
    row = res.looks[0].contrasts[0]
    assert -0.1 < row.rci[0] < row.rci[1] < 0.1
    # without a SESOI nothing is futile: the study runs its rounds
    res = sequential_test({"a": d[:4]}, (4, 8, 12), 0.05)
    assert res.decided == {} and not res.stop


def test_a_study_stops_once_every_contrast_is_decided():
    big = np.full(12, 5.0) + np.tile([0.1, -0.1], 6)
    res = sequential_test({"a": big, "b": big * 2}, (4, 8, 12), 0.05)
    assert res.decided == {"a": ("reject", 1), "b": ("reject", 1)}
    assert res.stop and len(res.looks) == 1


@pytest.mark.slow
def test_family_wise_error_is_at_most_alpha_under_the_null_by_simulation():
    # 20,000 simulated studies, 3 contrasts sharing a baseline (correlation 0.5), 3 looks
    rng = np.random.default_rng(2026)
    m, rounds, n_sim = 3, (4, 8, 12), 20_000
    cov = np.full((m, m), 0.5) + 0.5 * np.eye(m)
    chol = np.linalg.cholesky(cov)
    errors = 0
    for _ in range(n_sim):
        d = rng.normal(size=(12, m)) @ chol.T
        res = sequential_test({f"c{j}": d[:, j] for j in range(m)}, rounds, 0.05, sesoi=0.5)
        errors += any(how == "reject" for how, _ in res.decided.values())
    rate = errors / n_sim
    assert rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / n_sim)


@pytest.mark.slow
@pytest.mark.parametrize("effect", [0.8, 1.2])
def test_planned_power_matches_simulated_studies(effect):
    rng = np.random.default_rng(int(effect * 10))
    rounds, n_sim = (4, 8, 12), 10_000
    hits = 0
    for _ in range(n_sim):
        d = rng.normal(effect, 1.0, rounds[-1])
        res = sequential_test({"a": d}, rounds, 0.05)
        hits += res.decided.get("a", ("", 0))[0] == "reject"
    assert abs(hits / n_sim - power(effect, rounds, 0.05)) < 0.02


# ------------------------------------------------------------ the declared plan and its data


def _grid(tiny_study, **report):
    return tiny_study.parse(
        study=tiny_study.Only(
            kind="grid",
            grid={"loss.preset": ["la", "bcl", "bcl+rcl"]},
            seeds=[0, 1, 2, 3],
            rounds=[2, 4],
        ),
        report=report,
        loss=tiny_study.Only(preset="bcl+rcl"),
    )


def test_declared_contrasts_name_variants_and_default_to_the_baseline(tiny_study):
    from rcl_study.config import ConfigError
    from rcl_study.trials.design import expand
    from rcl_study.trials.sequential import primary_contrasts

    cfg = _grid(tiny_study)
    names = [c.name for c in primary_contrasts(cfg, expand(cfg))]
    assert names == ["loss.preset=bcl - loss.preset=la", "loss.preset=bcl+rcl - loss.preset=la"]
    cfg = _grid(tiny_study, primary=["loss.preset=bcl+rcl - loss.preset=bcl"], sesoi=0.02)
    assert [c.name for c in primary_contrasts(cfg, expand(cfg))] == cfg.report.primary
    cfg = _grid(tiny_study, primary=["loss.preset=ce - loss.preset=la"])
    with pytest.raises(ConfigError, match="'loss.preset=ce' is not a variant"):
        primary_contrasts(cfg, expand(cfg))


def test_within_contrasts_are_the_other_key_s_effect_at_each_value(tiny_study):
    from rcl_study.trials.design import expand
    from rcl_study.trials.sequential import primary_contrasts

    cfg = tiny_study.parse(
        study=tiny_study.Only(
            kind="grid",
            grid={"data.imbalance_ratio": [10, 50], "loss.preset": ["bcl", "bcl+rcl"]},
            seeds=[0, 1],
        ),
        report={"within": "data.imbalance_ratio"},
        loss=tiny_study.Only(preset="bcl+rcl"),
    )
    got = [(c.treatment, c.control) for c in primary_contrasts(cfg, expand(cfg))]
    assert got == [
        ("data.imbalance_ratio=10,loss.preset=bcl+rcl", "data.imbalance_ratio=10,loss.preset=bcl"),
        ("data.imbalance_ratio=50,loss.preset=bcl+rcl", "data.imbalance_ratio=50,loss.preset=bcl"),
    ]


def test_differences_pair_by_seed_in_planned_order_and_skip_unfinished():
    from rcl_study.trials.records import TrialRecord, TrialStatus
    from rcl_study.trials.sequential import Contrast, contrast_differences

    def rec(variant, seed, value, status=TrialStatus.OK):
        metrics = {"balanced_acc": value}
        return TrialRecord(
            trial_id=f"{variant}{seed}", variant=variant, seed=seed, status=status, metrics=metrics
        )

    records = [rec("a", 2, 0.5), rec("b", 2, 0.4), rec("a", 0, 0.7), rec("b", 0, 0.4)]
    records += [rec("a", 1, 0.9, TrialStatus.FAILED), rec("b", 1, 0.1), rec("a", 3, float("nan"))]
    records += [rec("b", 3, 0.2)]
    got = contrast_differences(records, [Contrast("a", "b")], "balanced_acc", [0, 1, 2, 3])
    assert got == {"a - b": [pytest.approx(0.3), pytest.approx(0.1)]}


@pytest.mark.parametrize(
    "study,report,match",
    [
        ({"rounds": [1, 2]}, {}, "from 2 up"),
        ({"rounds": [2, 2]}, {}, "from 2 up"),
        ({"rounds": [2, 3]}, {}, "last look is after every seed"),
        ({}, {"primary": ["a-b"]}, "spaces"),
        ({}, {"primary": ["a - a"]}, "itself"),
        ({}, {"sesoi": 0}, "greater than 0"),
        ({}, {"sesoi": 0.02}, "report.sesoi: only read with primary contrasts"),
    ],
)
def test_the_schema_refuses_bad_rounds_and_contrasts(tiny_study, study, report, match):
    from rcl_study.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        tiny_study.parse(study={"seeds": [0, 1, 2, 3], **study}, report=report)


@pytest.mark.parametrize(
    "study,report",
    [({"rounds": [2, 4]}, {}), ({}, {"primary": ["loss.preset=bcl - loss.preset=la"]})],
)
def test_a_sesoi_is_kept_where_primary_contrasts_read_it(tiny_study, study, report):
    grid = {"kind": "grid", "grid": {"loss.preset": ["la", "bcl"]}}
    cfg = tiny_study.parse(
        study={"seeds": [0, 1, 2, 3], **grid, **study}, report=report | {"sesoi": 0.02}
    )
    assert cfg.report.sesoi == 0.02


# ------------------------------------------------------------ planning rounds


def test_equal_rounds_and_rounds_for_power():
    from rcl_study.trials.sequential import equal_rounds, rounds_for_power

    assert equal_rounds(12, 3) == [4, 8, 12]
    assert equal_rounds(4, 3) == [2, 3, 4]
    got = rounds_for_power(1.0, 0.05)
    assert power(1.0, got, 0.05) >= 0.8
    fewer = equal_rounds(got[-1] - 1, 3)
    assert power(1.0, fewer, 0.05) < 0.8  # the fewest seeds that reach it
    assert rounds_for_power(0.0, 0.05) is None
    assert rounds_for_power(0.01, 0.05, limit=50) is None


def test_expected_seeds_lie_between_the_first_and_last_look():
    from rcl_study.trials.sequential import expected_seeds, rejection_by_look

    by_look = rejection_by_look(1.2, (4, 8, 12), 0.05)
    assert sum(by_look) == pytest.approx(power(1.2, (4, 8, 12), 0.05))
    used = expected_seeds(1.2, (4, 8, 12), 0.05)
    assert 4 < used < 12
    assert expected_seeds(0.0, (4, 8, 12), 0.05) == pytest.approx(12, abs=0.6)  # rarely stops


def test_plan_seeds_prints_the_rounds_power(tmp_path, capsys):
    from rcl_study.run import main
    from rcl_study.trials.sequential import power as seq_power

    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\ndata: {dataset: digits_lt}\nstudy: {kind: ablation, components: [margin], "
        "seeds: [0, 1, 2, 3, 4, 5], rounds: [2, 4, 6]}\nloss: {margin: 0.5}\n"
    )
    assert main([str(study), "--plan-seeds", "--sd", "0.02", "--effect", "0.03"]) == 0
    out = capsys.readouterr().out
    assert "planned rounds [2, 4, 6]" in out
    assert f"effect 0.03: power {seq_power(1.5, [2, 4, 6], 0.05):.0%}" in out


def test_differences_without_spread_are_found_at_the_first_look():
    from rcl_study.trials.sequential import rejection_by_look, rounds_for_power

    assert rejection_by_look(math.inf, (2, 4), 0.05) == [1.0, 0.0]
    assert rounds_for_power(math.inf, 0.05) == [2, 4, 6]
