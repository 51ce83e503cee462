"""The report of a study depends on its records, not on the order in which trials finished."""

import itertools
import random

from rcl_study.config import parse_study
from rcl_study.report.render import write_report
from rcl_study.trials.folder import StudyFolder


def _records():
    """A 2^2 ablation x 3 seeds with per-seed noise (so that sums depend on their order)."""
    out = []
    rng = random.Random(7)
    for bits in itertools.product([0, 1], repeat=2):
        name = "+".join(c for c, b in zip(("balance", "margin"), bits) if b) or "none"
        ov = {"loss.balance": float(bits[0]), "loss.margin": 0.5 * bits[1]}
        for seed in (0, 1, 2):
            acc = 0.6 + 0.05 * bits[0] - 0.01 * bits[1] + rng.uniform(-0.02, 0.02)
            out.append(
                {
                    "trial_id": f"{name}__s{seed}",
                    "variant": name,
                    "seed": seed,
                    "overrides": ov,
                    "status": "ok",
                    "metrics": {"balanced_acc": acc, "top1": acc + 0.01},
                    "history": [{"epoch": 1, "balanced_acc": acc}],
                }
            )
    return out


def _report(tmp_path, records):
    cfg = parse_study(
        {
            "name": "order",
            "loss": {"preset": "bcl+rcl", "balance": 1.0, "margin": 0.5},
            "study": {"kind": "ablation", "components": ["balance", "margin"], "seeds": [0, 1, 2]},
            "report": {"dir": str(tmp_path / "report")},
        }
    )
    folder = StudyFolder(tmp_path / "runs")
    folder.write_plan([{"trial_id": r["trial_id"]} for r in _records()], {})
    for r in records:
        folder.append(r)
    write_report(cfg, "studies/order.yaml", tmp_path / "runs", tmp_path / "report")
    return {
        name: (tmp_path / "report" / name).read_text().replace(str(tmp_path), "X")
        for name in ("index.md", "results.csv", "stats.json")
    }


def test_same_records_in_another_finishing_order_give_the_same_report(tmp_path):
    records = _records()
    shuffled = records[::-1]
    random.Random(3).shuffle(shuffled)
    a = _report(tmp_path / "a", records)
    b = _report(tmp_path / "b", shuffled)
    for name in a:
        assert a[name] == b[name], name
