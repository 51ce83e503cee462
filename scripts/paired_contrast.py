"""One paired contrast straight from a records file, independent of the report's code.

    python scripts/paired_contrast.py reports/testbed_losses_cifar10/records.jsonl \
        "loss.preset=bcl" "loss.preset=la" [--metric balanced_acc]

Reads the finished (``ok``) records of the two variants, pairs them by seed, and prints each
seed's difference, the mean difference with its 95% Student-t interval, and the paired t-test's
two-sided p (scipy). A cross-check of what a report states, with nothing of the toolkit imported.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from scipy import stats


def values(path: str, variant: str, metric: str) -> dict[int, float]:
    """The metric of each finished record of ``variant``, by seed (the last line of a trial)."""
    by_trial: dict[str, dict] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and row.get("variant") == variant:
                by_trial[row["trial_id"]] = row
    out = {}
    for row in by_trial.values():
        v = (row.get("metrics") or {}).get(metric)
        if row.get("status") == "ok" and isinstance(v, (int, float)) and math.isfinite(v):
            out[int(row["seed"])] = float(v)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the paired contrast; 2 when fewer than two seeds pair up."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("records")
    p.add_argument("treatment")
    p.add_argument("control")
    p.add_argument("--metric", default="balanced_acc")
    a = p.parse_args(argv)
    t, c = values(a.records, a.treatment, a.metric), values(a.records, a.control, a.metric)
    seeds = sorted(set(t) & set(c))
    if len(seeds) < 2:
        print(f"error: {len(seeds)} seed(s) pair up; need 2", file=sys.stderr)
        return 2
    d = [t[s] - c[s] for s in seeds]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    p_value = stats.ttest_rel([t[s] for s in seeds], [c[s] for s in seeds]).pvalue
    for s, x in zip(seeds, d):
        print(f"seed {s}: {x:+.4f}")
    print(
        f"{a.treatment} - {a.control} ({a.metric}, {n} seeds): {mean:+.4f} "
        f"[{mean - half:+.4f}, {mean + half:+.4f}] (95% t), sd {sd:.4f}, paired t p = {p_value:.3g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
