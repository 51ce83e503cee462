"""scripts/paired_contrast.py: a paired contrast from a records file, checked by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "paired_contrast.py"


def _load():
    spec = importlib.util.spec_from_file_location("paired_contrast", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mean_interval_and_pairing_by_hand(tmp_path, capsys):
    rows = []
    for seed, (a, b) in enumerate([(0.51, 0.50), (0.53, 0.50), (0.52, 0.50)]):
        for variant, v in (("a", a), ("b", b)):
            rows.append(
                {
                    "trial_id": f"{variant}{seed}",
                    "variant": variant,
                    "seed": seed,
                    "status": "ok",
                    "metrics": {"balanced_acc": v},
                }
            )
    rows.append(
        {
            "trial_id": "a9",
            "variant": "a",
            "seed": 9,
            "status": "ok",
            "metrics": {"balanced_acc": 0.9},
        }
    )  # no partner: left out
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{damaged\n")
    assert _load().main([str(path), "a", "b"]) == 0
    out = capsys.readouterr().out
    # differences 0.01, 0.03, 0.02: mean 0.02, sd 0.01, half width t(0.975, 2) 0.01 / sqrt(3)
    assert "+0.0200 [-0.0048, +0.0448]" in out and "sd 0.0100" in out and "3 seeds" in out
