"""The rows of ``docs/results.md``'s GPU tables, from a restored GPU run (no training).

    python scripts/gpu/results_table.py runs/gpu_ablation [--published 84.3]

Reads ``records.jsonl`` (one record per finished trial), ``metrics/<trial_id>.jsonl`` (curves
of trials that did not finish), ``meta/gaps.json`` (``ablation.py gap``), ``meta/speed.json``
(``ablation.py measure``), ``meta/choice.txt`` and ``meta/phases.tsv`` of a folder restored by
``scripts/gpu/ablation.py restore``, and prints three Markdown tables: accuracy per trial (last
and best evaluation, lossless subset, JPEG gap with its paired 95% interval, many/medium/few,
feature measures, seconds per epoch), the measured speed, and the phases. Percentages.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _pct(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{100 * v:.2f}"


def _num(v: Any, fmt: str = ".3f") -> str:
    return "-" if not isinstance(v, (int, float)) else format(v, fmt)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _curve(path: Path) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                rows[int(row["epoch"])] = row
            except (ValueError, KeyError, TypeError):
                continue
    return [rows[k] for k in sorted(rows)]


def trial_rows(folder: Path) -> list[dict[str, Any]]:
    """One dict per trial: its record's metrics, or (unfinished) its curve's last evaluation."""
    from rcl_study.trainer.evaluation import chosen_of
    from rcl_study.trials.folder import StudyFolder

    out: dict[str, dict[str, Any]] = {}
    for r in StudyFolder(folder).records():
        out[r.trial_id] = {
            "trial_id": r.trial_id,
            "variant": r.variant,
            "status": r.status.value,
            "device": r.device,
            **r.metrics,
        }
    for path in sorted((folder / "metrics").glob("*.jsonl")):
        tid = path.stem
        if tid in out:
            continue
        curve = _curve(path)
        if curve:
            out[tid] = {
                "trial_id": tid,
                "variant": tid.rsplit("__s", 1)[0],
                "status": f"unfinished (epoch {curve[-1]['epoch']})",
                **curve[-1],
                **chosen_of(curve),
            }
    return list(out.values())


def tables(folder: Path, published: float) -> str:
    """The Markdown tables (see the module docstring)."""
    folder = Path(folder)
    gaps = _json(folder / "meta" / "gaps.json") or {}
    lines = [
        "| trial | status | top-1 last | top-1 at the validation-chosen epoch (epoch) | "
        "balanced last | balanced at the validation-chosen epoch (epoch) | "
        "top-1 lossless 1,000 | JPEG-75 copies | gap [95% CI] | many | medium | few | "
        "compactness | equiangular gap deg | s/epoch | published |",
        "| --- " * 16 + "|",
    ]
    for r in trial_rows(folder):
        g = gaps.get(r["trial_id"], {})
        ci = g.get("gap_ci") or [None, None]
        gap = "-" if not g else f"{_pct(g['gap'])} [{_pct(ci[0])}, {_pct(ci[1])}]"
        pub = f"{published}" if r["variant"] == "none" else "-"
        lines.append(
            f"| {r['trial_id']} | {r['status']} | {_pct(r.get('top1'))} | "
            f"{_pct(r.get('chosen_top1'))} ({r.get('chosen_epoch_top1', '-')}) | "
            f"{_pct(r.get('balanced_acc'))} | {_pct(r.get('chosen_balanced_acc'))} "
            f"({r.get('chosen_epoch_balanced_acc', '-')}) | {_pct(r.get('top1_lossless'))} | "
            f"{_pct(g.get('acc_jpeg'))} | {gap} | {_pct(r.get('many_acc'))} | "
            f"{_pct(r.get('medium_acc'))} | {_pct(r.get('few_acc'))} | "
            f"{_num(r.get('compactness'))} | {_num(r.get('equiangular_gap_deg'), '.2f')} | "
            f"{_num(r.get('seconds_per_epoch'), '.2f')} | {pub} |"
        )
    speed = _json(folder / "meta" / "speed.json") or {"rows": {}}
    lines += [
        "",
        "| members K | device | s/epoch (2nd epoch) | evaluation round s | setup s | "
        "predicted s for the plan | s/epoch per member |",
        "| --- " * 7 + "|",
    ]
    for k, row in sorted(speed["rows"].items(), key=lambda kv: int(kv[0])):
        if "skipped" in row:
            lines.append(f"| {k} | - | not measured: {row['skipped']} | - | - | - | - |")
            continue
        lines.append(
            f"| {k} | {row.get('device')} | {_num(row['epoch_s'], '.3f')} | "
            f"{_num(row['eval_s'], '.3f')} | {_num(row['setup_s'], '.1f')} | "
            f"{_num(row['plan_s'], '.0f')} | {_num(row['s_per_epoch_per_member'], '.3f')} |"
        )
    choice = folder / "meta" / "choice.txt"
    if choice.is_file():
        lines += ["", f"Plan chosen: {choice.read_text().strip()}"]
    phases = folder / "meta" / "phases.tsv"
    if phases.is_file():
        lines += ["", "| phase | seconds | exit |", "| --- | --- | --- |"]
        for row in phases.read_text().splitlines():
            if row.count("\t") == 2:
                lines.append("| " + " | ".join(row.split("\t")) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", help="a folder restored by scripts/gpu/ablation.py restore")
    p.add_argument("--published", type=float, default=84.3, help="BCL's published top-1 (%%)")
    a = p.parse_args(argv)
    folder = Path(a.folder)
    if not (folder / "records.jsonl").is_file() and not (folder / "metrics").is_dir():
        print(f"error: {folder}: no records.jsonl and no metrics/ (restore first)", file=sys.stderr)
        return 2
    print(tables(folder, a.published))
    return 0


if __name__ == "__main__":
    sys.exit(main())
