"""Stored records -> tables and statistics of a report (no plotting, no file writing)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import METRICS
from ..losses import OFF_VALUES
from . import stats

METRIC_COLUMNS = (*METRICS, "seconds_per_epoch")


def results_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per recorded trial: ids, status, swept keys and the scalar metrics."""
    rows = []
    for r in records:
        row = {
            "trial_id": r["trial_id"],
            "variant": r["variant"],
            "seed": r["seed"],
            "status": r["status"],
            "reason": r.get("reason", ""),
            "wall_time": r.get("wall_time"),
            "device": r.get("device"),
        }
        row.update({k: v for k, v in r.get("overrides", {}).items()})
        m = r.get("metrics", {})
        row.update({k: m.get(k) for k in METRIC_COLUMNS})
        rows.append(row)
    cols = ["trial_id", "variant", "seed", "status", "reason", *METRIC_COLUMNS]
    df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)
    return df


def _ok(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df[metric].notna()] if len(df) else df


def variant_summary(df: pd.DataFrame, metric: str, n_boot: int) -> list[dict[str, Any]]:
    """Per variant: trials, failures and the mean / sd / CIs of ``metric`` over seeds."""
    out = []
    for variant, g in df.groupby("variant", sort=False):
        ok = _ok(g, metric)
        s = stats.summarize(ok[metric].tolist(), n_boot=n_boot)
        s.update(
            variant=variant,
            trials=len(g),
            failed=int((g["status"] != "ok").sum()),
            seeds=sorted(int(x) for x in ok["seed"]),
        )
        for extra in (
            "many_acc",
            "medium_acc",
            "few_acc",
            "compactness",
            "balancedness",
            "top1",
            "top1_lossless",
        ):
            vals = ok[extra].dropna() if extra in ok else []
            s[f"{extra}_mean"] = float(np.mean(vals)) if len(vals) else None
        out.append(s)
    return out


def comparisons(df: pd.DataFrame, metric: str, baseline: str | None) -> list[dict[str, Any]]:
    """Paired comparison of each variant with the baseline on matched seeds, Holm-corrected."""
    if baseline is None or baseline not in set(df["variant"]):
        return []
    ok = _ok(df, metric)
    base = ok[ok["variant"] == baseline].set_index("seed")[metric]
    rows = []
    for variant in [v for v in dict.fromkeys(df["variant"]) if v != baseline]:
        other = ok[ok["variant"] == variant].set_index("seed")[metric]
        seeds = sorted(set(base.index) & set(other.index))
        res = stats.paired_comparison(base.loc[seeds].tolist(), other.loc[seeds].tolist())
        res.update(variant=variant, baseline=baseline, seeds=[int(s) for s in seeds])
        if not seeds:
            res["notes"].append("no seed where both finished")
        rows.append(res)
    for key in ("p_ttest", "p_wilcoxon"):
        adj = stats.holm([r[key] for r in rows])
        for r, a in zip(rows, adj):
            r[f"{key}_holm"] = a
    return rows


def factorial(df: pd.DataFrame, metric: str, components: list[str]) -> dict[str, Any] | None:
    """Main effects and interactions of a factorial ablation from the records' overrides."""
    ok = _ok(df, metric)
    keys = [f"loss.{c}" for c in components]
    if len(ok) == 0 or any(k not in ok for k in keys):
        return None
    design = np.column_stack(
        [(ok[k] != OFF_VALUES[c]).astype(float).to_numpy() for k, c in zip(keys, components)]
    )
    if len({tuple(r) for r in design}) < 2 ** len(components):
        return {
            "effects": [],
            "note": "some cells of the 2^k design have no successful trial",
            "df_resid": 0,
        }
    return stats.factorial_effects(design, ok[metric].to_numpy(), components)


def sweeps(df: pd.DataFrame, metric: str, keys: list[str], mode: str) -> dict[str, Any]:
    """Best value of each swept key (averaged over the other keys' values)."""
    ok = _ok(df, metric)
    out = {}
    for key in keys:
        if key not in ok:
            continue
        groups = {str(v): g[metric].tolist() for v, g in ok.groupby(key)}
        if len(keys) > 1:  # average over the other keys per seed first
            per_seed = ok.groupby([key, "seed"])[metric].mean().reset_index()
            groups = {str(v): g[metric].tolist() for v, g in per_seed.groupby(key)}
        out[key] = stats.best_of_sweep(groups, mode)
    return out


def search_analysis(
    records: list[dict[str, Any]], distributions: dict[str, Any], metric: str, mode: str
) -> dict[str, Any]:
    """Optuna's parameter importances and the optimisation history of a search."""
    import optuna

    trials = [
        r
        for r in records
        if r["variant"] == "search" and r["status"] == "ok" and r["metrics"].get(metric) is not None
    ]
    history = [
        {"trial": i, "value": r["metrics"][metric], "params": r["overrides"]}
        for i, r in enumerate(sorted(trials, key=lambda r: r.get("finished", "")))
    ]
    best_so_far, best = [], None
    for h in history:
        v = h["value"]
        best = v if best is None else (max(best, v) if mode == "max" else min(best, v))
        best_so_far.append(best)
    for h, b in zip(history, best_so_far):
        h["best_so_far"] = b
    out: dict[str, Any] = {"history": history, "importances": None, "note": None}
    if len(trials) < 2 or not distributions:
        out["note"] = "fewer than 2 finished search trials: no importances"
        return out
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for r in trials:
        params = {k: v for k, v in r["overrides"].items() if k in distributions}
        if len(params) != len(distributions):
            continue
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=distributions, value=r["metrics"][metric]
            )
        )
    try:
        out["importances"] = {
            k: float(v) for k, v in optuna.importance.get_param_importances(study).items()
        }
    except (RuntimeError, ValueError) as err:
        out["note"] = f"importances not computable: {err}"
    return out
