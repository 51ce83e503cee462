"""Statistics against scipy and hand-computed values; figures and reports from synthetic records."""

import itertools
import json

import numpy as np
import pytest
from scipy import stats as sps

from rcl_study.config import parse_study
from rcl_study.report import stats
from rcl_study.report.render import write_report
from rcl_study.trials.folder import StudyFolder

# ------------------------------------------------------------------------------- statistics


def test_t_interval_matches_scipy():
    x = [0.61, 0.64, 0.59, 0.66, 0.62]
    lo, hi = stats.t_interval(x)
    want = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert (lo, hi) == pytest.approx(want)


def test_bootstrap_interval_brackets_mean_and_is_reproducible():
    x = [0.61, 0.64, 0.59, 0.66, 0.62, 0.60, 0.63, 0.65, 0.58, 0.67]  # 10: the fewest
    assert stats.bootstrap_interval(x[:9]) is None
    a = stats.bootstrap_interval(x, n_boot=4000, seed=1)
    assert a == stats.bootstrap_interval(x, n_boot=4000, seed=1)
    assert a[0] < np.mean(x) < a[1] and a[0] >= min(x) and a[1] <= max(x)


def test_paired_comparison_by_hand_and_against_scipy():
    base = [0.5, 0.6, 0.7]
    var = [0.6, 0.8, 0.7]
    r = stats.paired_comparison(base, var)
    # differences 0.1, 0.2, 0.0: mean 0.1, sd 0.1 -> d_z = 1.0; share improved (1 + 1 + 0.5) / 3
    assert r["mean_diff"] == pytest.approx(0.1)
    assert r["d_z"] == pytest.approx(1.0)
    assert r["share_improved"] == pytest.approx(2.5 / 3)
    # all 9 pairs: 0.6 beats 0.5, ties 0.6 (1.5); 0.8 beats all (3); 0.7 beats two, ties one (2.5)
    assert r["prob_improvement"] == pytest.approx(7 / 9)
    assert r["p_ttest"] == pytest.approx(sps.ttest_rel(var, base).pvalue)
    # t = 0.1 / (0.1 / sqrt 3) = sqrt 3 with 2 df: p = 2 * (1 - F_t2(1.732)) = 0.2254
    assert r["p_ttest"] == pytest.approx(0.2254, abs=1e-4)
    x = [0.61, 0.64, 0.59, 0.66, 0.62, 0.60, 0.63]
    y = [0.63, 0.65, 0.62, 0.69, 0.61, 0.64, 0.67]
    r = stats.paired_comparison(x, y)
    assert r["p_wilcoxon"] == pytest.approx(sps.wilcoxon(y, x).pvalue)


def test_paired_g_z_by_hand():
    # differences 1, 2, 3: d_z = 2 / 1 = 2; J(2) = 1 - 3 / (4 * 2 - 1) = 4 / 7
    r = stats.paired_effect_sizes([1.0, 2.0, 3.0])
    assert r["d_z"] == pytest.approx(2.0) and r["g_z"] == pytest.approx(8 / 7)
    two = stats.paired_effect_sizes([1.0, 2.0])  # the correction is 0 at 1 df: no g_z
    assert two["d_z"] == pytest.approx(1.5 / np.std([1.0, 2.0], ddof=1)) and two["g_z"] is None


def test_holm_known_values():
    # sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # None is skipped (m = 2): 0.02 * 2 = 0.04, then max(0.04, 0.03 * 1) = 0.04
    assert stats.holm([0.02, None, 0.03]) == [pytest.approx(0.04), None, pytest.approx(0.04)]
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_factorial_effects_recover_known_effects():
    rng = np.random.default_rng(0)
    true = {"A": 0.10, "B": -0.05, "C": 0.0, "A:B": 0.03}
    rows, ys = [], []
    for bits in itertools.product([0, 1], repeat=3):
        x = 2 * np.array(bits) - 1
        mean = (
            0.6
            + (true["A"] * x[0] + true["B"] * x[1] + true["C"] * x[2] + true["A:B"] * x[0] * x[1])
            / 2
        )
        for _ in range(5):
            rows.append(bits)
            ys.append(mean + rng.normal(0, 0.005))
    res = stats.factorial_effects(np.array(rows), ys, ["A", "B", "C"])
    got = {e["term"]: e for e in res["effects"]}
    assert res["df_resid"] == 40 - 8
    for term in ("A", "B", "C", "A:B", "A:C", "B:C", "A:B:C"):
        assert got[term]["effect"] == pytest.approx(true.get(term, 0.0), abs=0.01)
    assert got["A"]["p"] < 1e-6 and got["C"]["p"] > 0.01
    assert got["A"]["ci"][0] < 0.10 < got["A"]["ci"][1]


def test_degenerate_cases_say_why():
    one = stats.summarize([0.7])
    assert one["std"] is None and one["ci_t"] is None and "one seed" in one["notes"][0]
    same = stats.summarize([0.7, 0.7, 0.7])
    assert same["std"] == 0 and same["ci_t"] == (0.7, 0.7)
    none = stats.summarize([])
    assert none["mean"] is None and "no successful" in none["notes"][0]
    r = stats.paired_comparison([0.5, 0.6], [0.6, 0.7])  # identical differences
    assert r["p_ttest"] is None and "no variance" in r["notes"][0]
    r = stats.paired_comparison([0.5], [0.6])
    assert r["p_ttest"] is None and "one seed" in r["notes"][0]
    res = stats.factorial_effects(
        np.array(list(itertools.product([0, 1], repeat=2))), [1, 2, 3, 4.5], ["A", "B"]
    )
    assert res["effects"][0]["se"] is None and "no replicate" in res["note"]
    assert json.dumps([one, same, none, r, res])  # no NaN anywhere
    assert "NaN" not in json.dumps([one, same, none, r, res])


def test_best_of_sweep_selects_and_reports_on_different_seeds():
    # seeds 0, 1 select ("3" wins there), seeds 2, 3 report: "3" is worse than "2" there
    groups = {
        "1": {0: 0.50, 1: 0.51, 2: 0.50, 3: 0.52},
        "2": {0: 0.60, 1: 0.61, 2: 0.62, 3: 0.64},
        "3": {0: 0.63, 1: 0.64, 2: 0.58, 3: 0.59},
    }
    best = stats.best_of_sweep(groups)
    assert best["value"] == "3" and best["held_out"]
    assert best["selected_on"] == [0, 1] and best["reported_on"] == [2, 3]
    assert best["mean"] == pytest.approx(0.585)  # the held-out seeds' mean, not 0.61
    assert best["ci_t"] == pytest.approx(stats.t_interval([0.58, 0.59]))
    vs = {v["other"]: v for v in best["versus"]}
    assert vs["2"]["mean_diff"] == pytest.approx(-0.045)
    # three seeds: no held-out half, no interval of the best, an "optimistic" note
    small = stats.best_of_sweep({k: {s: v[s] for s in (0, 1, 2)} for k, v in groups.items()})
    assert not small["held_out"] and small["ci_t"] is None and "optimistic" in small["note"]
    # min mode picks the lowest selection mean
    assert stats.best_of_sweep(groups, mode="min")["value"] == "1"


# ------------------------------------------------------------------ figures and reports


def _record(trial_id, variant, seed, overrides, acc, status="ok"):
    rng = np.random.default_rng(abs(hash(trial_id)) % 2**32)
    per_class = list(np.clip(acc + rng.normal(0, 0.05, 10), 0, 1))
    metrics = (
        {
            "top1": min(1.0, acc + 0.01),  # accuracies stay in [0, 1] (else: a damaged record)
            "balanced_acc": acc,
            "many_acc": min(1.0, acc + 0.1),
            "medium_acc": acc,
            "few_acc": max(0.0, acc - 0.2),
            "compactness": 0.8,
            "balancedness": 3.0,
            "per_class_acc": per_class,
            "train_counts": [500, 300, 180, 100, 60, 40, 25, 15, 9, 5],
        }
        if status == "ok"
        else {}
    )
    history = [{"epoch": e, "balanced_acc": acc * e / 3, "loss": 1 / e} for e in (1, 2, 3)]
    return {
        "trial_id": trial_id,
        "variant": variant,
        "seed": seed,
        "overrides": overrides,
        "status": status,
        "reason": "" if status == "ok" else "boom",
        "metrics": metrics,
        "history": history if status == "ok" else [],
        "finished": f"2026-01-01T00:00:{seed}",
    }


BASE = {"name": "syn", "data": {"dataset": "digits_lt"}, "study": {"seeds": [0, 1, 2]}}


def _write(tmp_path, study, records, planned=None):
    cfg = parse_study(
        {**BASE, "study": {**BASE["study"], **study}, "report": {"dir": str(tmp_path / "report")}}
    )
    out = tmp_path / "runs"
    for r in records:
        StudyFolder(out).append(r)
    StudyFolder(out).write_plan([{"trial_id": f"p{i}"} for i in range(planned or len(records))], {})
    path = write_report(cfg, "studies/syn.yaml", out, tmp_path / "report")
    return cfg, path


def _ablation_records(fail_variant=None):
    recs = []
    for bits in itertools.product([0, 1], repeat=3):
        on = [c for c, b in zip(("balance", "scale", "margin"), bits) if b]
        name = "+".join(on) or "none"
        ov = {
            "loss.balance": float(bits[0]),
            "loss.scale": 1.0 + 0.5 * bits[1],
            "loss.margin": 0.5 * bits[2],
        }
        for seed in (0, 1, 2):
            acc = 0.6 + 0.05 * bits[0] - 0.03 * bits[1] + 0.01 * seed
            status = "failed" if name == fail_variant else "ok"
            recs.append(_record(f"{name}__s{seed}", name, seed, ov, acc, status))
    return recs


def _figs(tmp_path):
    return {p.name for p in (tmp_path / "report" / "figures").iterdir() if p.stat().st_size > 0}


def test_ablation_report_with_failed_variant(tmp_path):
    _, path = _write(tmp_path, {"kind": "ablation"}, _ablation_records(fail_variant="scale+margin"))
    md = path.read_text()
    figs = _figs(tmp_path)
    for name in (
        "variants",
        "vs_baseline",
        "per_class",
        "shot_groups",
        "learning_curves",
        "feature_measures",
    ):
        assert f"{name}.png" in figs and f"{name}.svg" in figs
    assert "effects.png" not in figs  # a missing cell: no factorial model to draw
    assert "| balance | 3/3 |" in md and "| scale+margin | 0/3 |" in md
    assert "Factorial effects" in md and "some cells of the 2^k design" in md
    assert "Trials that did not finish" in md
    assert "python -m rcl_study.train studies/syn.yaml --set loss.balance=1.0" in md
    html = (tmp_path / "report" / "index.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    st = json.loads((tmp_path / "report" / "stats.json").read_text())
    comp = {c["variant"]: c for c in st["comparisons"]}
    assert comp["balance"]["mean_diff"] == pytest.approx(0.05)
    assert (tmp_path / "report" / "results.csv").read_text().count("\n") == 25


def test_full_factorial_recovers_synthetic_effects(tmp_path):
    _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    assert {"effects.png", "effects.svg"} <= _figs(tmp_path)
    st = json.loads((tmp_path / "report" / "stats.json").read_text())
    eff = {e["term"]: e["effect"] for e in st["factorial"]["effects"]}
    assert eff["balance"] == pytest.approx(0.05) and eff["scale"] == pytest.approx(-0.03)
    assert eff["margin"] == pytest.approx(0.0, abs=1e-12)


def test_grid_reports_one_and_two_keys(tmp_path):
    recs = []
    for s, ir in itertools.product([1.0, 1.5, 2.0], [10, 100]):
        for seed in (0, 1, 2):
            recs.append(
                _record(
                    f"s{s}-ir{ir}__s{seed}",
                    f"loss.scale={s},data.imbalance_ratio={ir}",
                    seed,
                    {"loss.scale": s, "data.imbalance_ratio": ir},
                    0.7 - 0.1 * abs(s - 1.5) - 0.001 * ir + 0.01 * seed,
                )
            )
    _, path = _write(
        tmp_path,
        {
            "kind": "grid",
            "grid": {"loss.scale": [1.0, 1.5, 2.0], "data.imbalance_ratio": [10, 100]},
        },
        recs,
    )
    figs = _figs(tmp_path)
    assert {
        "sensitivity_loss_scale.png",
        "sensitivity_data_imbalance_ratio.png",
        "heatmap.png",
    } <= figs
    assert "**Best loss.scale:** 1.5 (chosen on test" in path.read_text()


def test_search_report_and_partial_progress(tmp_path):
    recs = [
        _record(
            f"search-{i}",
            "search",
            0,
            {"loss.scale": 1 + i / 10, "loss.margin": (i % 3) / 2},
            0.5 + i / 100,
        )
        for i in range(6)
    ]
    recs += [_record(f"best__s{s}", "best", s, recs[-1]["overrides"], 0.56) for s in (0, 1)]
    _, path = _write(
        tmp_path,
        {
            "kind": "search",
            "n_trials": 6,
            "space": {"loss.scale": {"low": 1, "high": 2}, "loss.margin": {"low": 0, "high": 1}},
        },
        recs,
        planned=9,
    )
    md = path.read_text()
    assert "8 of 9 planned trials recorded (partial" in md
    assert {"search_history.png", "importances.png"} <= _figs(tmp_path)
    st = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert set(st["search"]["importances"]) == {"loss.scale", "loss.margin"}


def test_all_failed_report_says_so(tmp_path):
    recs = [_record(f"none__s{s}", "none", s, {"loss.margin": 0.0}, 0, "failed") for s in (0, 1)]
    _, path = _write(tmp_path, {"kind": "ablation", "components": ["margin"]}, recs)
    assert "Every recorded trial failed" in path.read_text()


def test_stopped_trials_are_partial_not_failed(tmp_path):
    """A run cut at a deadline records its trials `stopped`: the report must not call them
    failed."""
    recs = [_record(f"none__s{s}", "none", s, {"loss.margin": 0.0}, 0.5, "stopped") for s in (0, 1)]
    recs.append(_record("margin__s0", "margin", 0, {"loss.margin": 0.5}, 0, "failed"))
    _, path = _write(tmp_path, {"kind": "ablation", "components": ["margin"]}, recs)
    md = path.read_text()
    assert "Every recorded trial failed" not in md
    assert "No recorded trial finished" in md and "stopped 2" in md
    st = json.loads((tmp_path / "report" / "stats.json").read_text())
    by = {v["variant"]: v for v in st["variants"]}
    assert (by["none"]["trials"], by["none"]["failed"]) == (2, 0)  # stopped: partial
    assert (by["margin"]["trials"], by["margin"]["failed"]) == (1, 1)
    assert "`--resume` trains the stopped trials again" in md


def test_pruned_trials_are_not_failed_and_not_promised_a_resume(tmp_path):
    """Pruned trials (the scheduler's cut) are not trained again by --resume."""
    recs = [_record(f"none__s{s}", "none", s, {"loss.margin": 0.0}, 0.5, "pruned") for s in (0, 1)]
    recs.append(_record("margin__s0", "margin", 0, {"loss.margin": 0.5}, 0, "failed"))
    _, path = _write(tmp_path, {"kind": "ablation", "components": ["margin"]}, recs)
    md = path.read_text()
    assert "No recorded trial finished" in md and "pruned 2" in md
    assert "--resume" not in md.split("No recorded trial finished")[1].split("\n")[0]


def test_report_is_reproducible(tmp_path):
    """A rebuild writes the same report and figures (a committed report stays clean)."""
    cfg, path = _write(tmp_path, {"kind": "ablation"}, _ablation_records())
    rep = tmp_path / "report"

    def written():
        return {
            p.relative_to(rep).as_posix(): p.read_bytes() for p in rep.rglob("*") if p.is_file()
        }

    first = written()
    assert ".rcl_study" in first and "figures/variants.png" in first
    write_report(cfg, "studies/syn.yaml", tmp_path / "runs", rep)
    assert written() == first
