"""A search's report opens with its best configuration and lists every search trial.

The best: the finished trial best on the validation score, with its parameters, that score and
the test score of its re-runs at the held-out seeds. Pruned trials (at their last evaluation)
enter the history and the importances, marked; failed ones are listed with their status.
"""

import json

import pytest

from rcl_study.report import stats
from tests.report.test_paper_report import _write

SPACE = {"loss.scale": {"low": 1, "high": 2}, "loss.margin": {"low": 0, "high": 1}}
#: (scale, margin, validation score, status) of each search trial, in the order sampled
TRIALS = [
    (1.1, 0.0, 0.50, "ok"),
    (1.3, 0.5, 0.62, "ok"),
    (1.5, 1.0, 0.30, "pruned"),
    (1.7, 0.0, 0.55, "ok"),
    (1.9, 0.5, 0.25, "pruned"),
    (1.2, 1.0, None, "failed"),
    (1.4, 0.0, 0.58, "ok"),
]
BEST_TEST = {1: 0.61, 2: 0.65}  # the best configuration's re-runs, test score per seed


def _rec(trial_id, variant, seed, overrides, status, val=None, test=None, epoch=3):
    metrics = {}
    if status == "ok":
        metrics = {
            "balanced_acc": test if test is not None else val - 0.02,
            "val_balanced_acc": val,
        }
    elif status == "pruned":  # what the scheduler left: the last evaluation's scores
        metrics = {"val_balanced_acc": val, "epoch": 1.0}
    return {
        "trial_id": trial_id,
        "variant": variant,
        "seed": seed,
        "overrides": overrides,
        "status": status,
        "reason": {"ok": "", "pruned": "stopped early by the ASHA scheduler"}.get(status, "boom"),
        "metrics": metrics,
        "history": [],
        "finished": f"2026-01-01T00:00:{len(trial_id):02d}",
    }


def _records():
    recs = [
        _rec(f"search-{i}", "search", 0, {"loss.scale": s, "loss.margin": m}, st, val)
        for i, (s, m, val, st) in enumerate(TRIALS)
    ]
    for i, r in enumerate(recs):
        r["finished"] = f"2026-01-01T00:00:{i:02d}"
    best = {"loss.scale": 1.3, "loss.margin": 0.5}
    recs += [
        _rec(f"best__s{s}", "best", s, best, "ok", 0.6, BEST_TEST[s]) for s in sorted(BEST_TEST)
    ]
    return recs


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    study = {"kind": "search", "n_trials": len(TRIALS), "space": SPACE}
    path = _write(tmp, study, _records(), {"loss.scale": "scale s"})
    st = json.loads((tmp / "report" / "stats.json").read_text())
    return path.read_text(), st, (tmp / "report" / "tables.tex").read_text()


def test_the_report_opens_with_the_best_configuration(report):
    md = report[0]
    assert md.index("## Best configuration") < md.index("## Design")
    top = md.split("## Best configuration")[1].split("##")[0]
    assert "parameters: scale s = 1.3, loss.margin = 0.5" in top
    assert "validation val_balanced_acc: 0.6200 (trial search-1, the best of 4" in top
    lo, hi = stats.t_interval(list(BEST_TEST.values()), bounds=(0.0, 1.0))
    assert f"held-out seeds [1, 2]: mean 0.6300, 95% CI (t) [{lo:.4f}, {hi:.4f}]" in top


def test_every_search_trial_is_listed_with_its_status(report):
    md, _, tex = report
    table = md.split("### Search trials")[1].split("\n\n")[1]
    rows = [line for line in table.splitlines() if line.startswith("| search-")]
    assert len(rows) == len(TRIALS)
    assert "| trial | scale s | loss.margin | validation val_balanced_acc | status |" in table
    assert "| search-1 | 1.3 | 0.5 | 0.6200 | ok (best) |" in table
    assert "| search-2 | 1.5 | 1 | 0.3000 | pruned at epoch 1 |" in table
    assert "| search-5 | 1.2 | 1 | n/a | failed |" in table
    assert (
        "every search trial" in tex and "search-4 & 1.9 & 0.5 & 0.2500 & pruned at epoch 1" in tex
    )


def test_history_and_importances_take_the_pruned_trials_marked(report):
    st = report[1]["search"]
    history = st["history"]
    scored = [t for t in TRIALS if t[2] is not None]
    assert [h["value"] for h in history] == [t[2] for t in scored]
    assert [h["pruned"] for h in history] == [t[3] == "pruned" for t in scored]
    # the best so far is over finished trials: a pruned trial never lowers or raises it
    assert [h["best_so_far"] for h in history] == [0.5, 0.62, 0.62, 0.62, 0.62, 0.62]
    assert set(st["importances"]) == {"loss.scale", "loss.margin"}
    assert st["best"]["trial_id"] == "search-1"
