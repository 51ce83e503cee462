"""Stored records -> tables and statistics of a report (no plotting, no file writing)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from rcl_study.config import METRIC_INFO, METRICS, RENAMED_METRICS
from rcl_study.config.metrics import val_key
from rcl_study.losses import OFF_VALUES
from rcl_study.report import power, stats
from rcl_study.trials.design import within_keys
from rcl_study.trials.records import TrialRecord

#: prefix of a validation metric in a record (``val_balanced_acc``: balanced_acc on validation)
#: best-over-evaluations metrics of old records (chosen on the test set: optimistic)
BEST_COLUMNS = ("best_top1", "best_balanced_acc", "best_epoch_top1", "best_epoch_balanced_acc")
#: the metrics whose epoch a trainer chooses on validation
CHOSEN_METRICS = ("top1", "balanced_acc")
#: at the first epoch with the highest val_<m>: the epoch, test <m> and val_<m> there
CHOSEN_COLUMNS = tuple(
    f"chosen{part}_{m}" for m in CHOSEN_METRICS for part in ("_epoch", "", "_val")
)
METRIC_COLUMNS = (
    *METRICS,
    *(val_key(m) for m in METRICS),
    "seconds_per_epoch",
    *CHOSEN_COLUMNS,
    *BEST_COLUMNS,
)


def has_validation(df: pd.DataFrame, metric: str) -> bool:
    """True when some finished trial of ``df`` has a finite ``val_<metric>``."""
    if not len(df) or val_key(metric) not in df:
        return False
    vals = pd.to_numeric(df.loc[df["status"] == "ok", val_key(metric)], errors="coerce")
    return bool(np.isfinite(vals).any())


def direction(metric: str, mode: str | None = None) -> str:
    """``"max"`` or ``"min"``: the study's ``mode`` for its own metric, else METRIC_INFO's."""
    return mode or METRIC_INFO.get(metric, ("max", None))[0]


def bounds(metric: str) -> tuple[float, float] | None:
    """The metric's range (None: unbounded), from METRIC_INFO."""
    return METRIC_INFO.get(metric, ("max", None))[1]


def current_metrics(m: dict[str, Any]) -> dict[str, Any]:
    """A record's metrics with renamed keys mapped to today's names (old records stay readable)."""
    out = dict(m)
    for old, new in RENAMED_METRICS.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out


#: statuses that are failures; ``stopped`` (partial) and ``pruned`` (cut by the scheduler) are not
FAILURES = ("failed", "diverged")


def _finite(v: Any) -> bool:
    try:
        return v is not None and bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


def results_table(records: list[TrialRecord], metric: str | None = None) -> pd.DataFrame:
    """One row per recorded trial: ids, status, swept keys and the scalar metrics.

    A trial recorded "ok" whose ``metric`` is missing or not finite (NaN, inf) counts as failed,
    with the reason saying so.
    """
    rows = []
    for r in records:
        m = current_metrics(r.metrics)
        status, reason = r.status.value, r.reason
        if metric and status == "ok" and not _finite(m.get(metric)):
            status, reason = "failed", f"{metric} is {m.get(metric)} (not a finite number)"
        row = {
            "trial_id": r.trial_id,
            "variant": r.variant,
            "seed": r.seed,
            "status": status,
            "reason": reason,
            "wall_time": r.wall_time,
            "device": r.device,
        }
        row.update(r.overrides)
        row.update({k: m.get(k) for k in METRIC_COLUMNS})
        rows.append(row)
    cols = ["trial_id", "variant", "seed", "status", "reason", *METRIC_COLUMNS]
    df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)
    return df


def ok_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of finished trials whose ``metric`` is a finite number."""
    if not len(df):
        return df
    vals = pd.to_numeric(df[metric], errors="coerce")
    return df[(df["status"] == "ok") & np.isfinite(vals)]


def _mean(vals) -> float | None:
    v = pd.to_numeric(pd.Series(vals), errors="coerce").dropna()
    return float(v.mean()) if len(v) else None


def variant_summary(
    df: pd.DataFrame, metric: str, n_boot: int, exclude: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Per variant: trials, failures, mean / sd / CIs / IQM of ``metric`` over seeds, notes."""
    out = []
    for variant, g in df.groupby("variant", sort=False):
        if variant in exclude:
            continue
        ok = ok_rows(g, metric)
        s = stats.summarize(ok[metric].astype(float).tolist(), n_boot=n_boot, bounds=bounds(metric))
        s.update(
            variant=variant,
            trials=len(g),
            failed=int(g["status"].isin(FAILURES).sum()),
            seeds=sorted(int(x) for x in ok["seed"]),
        )
        for extra in (
            "many_acc",
            "medium_acc",
            "few_acc",
            "compactness",
            "equiangular_gap_deg",
            "top1",
            "top1_lossless",
            val_key(metric),
            *CHOSEN_COLUMNS,
            *BEST_COLUMNS,
        ):
            s[f"{extra}_mean"] = _mean(ok[extra]) if extra in ok else None
        out.append(s)
    return out


def _dropped(df: pd.DataFrame, metric: str, variant: str, seeds: set[int]) -> list[str]:
    """Why each of ``seeds`` is missing from ``variant``'s usable results."""
    out = []
    for s in sorted(seeds):
        rows = df[(df["variant"] == variant) & (df["seed"] == s)]
        if not len(rows):
            out.append(f"seed {s}: {variant} not recorded")
        else:
            r = rows.iloc[-1]
            why = r["reason"] if r["status"] != "ok" else f"{metric} missing"
            out.append(
                f"seed {s}: {variant} {r['status']} ({why})"
                if why
                else f"seed {s}: {variant} {r['status']}"
            )
    return out


def comparisons(
    df: pd.DataFrame,
    metric: str,
    baseline: str | None,
    mode: str = "max",
    alpha: float = 0.05,
    n_boot: int = 2000,
    exclude: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Paired comparison of each variant with the baseline on matched seeds.

    Holm-corrected over the family of these comparisons; seeds dropped from a pairing are
    named in the row's notes.
    """
    if baseline is None or baseline not in set(df["variant"]):
        return []
    ok = ok_rows(df, metric)
    base = ok[ok["variant"] == baseline].set_index("seed")[metric].astype(float)
    all_seeds = set(int(s) for s in df["seed"])
    rows = []
    for variant in [v for v in dict.fromkeys(df["variant"]) if v not in (baseline, *exclude)]:
        other = ok[ok["variant"] == variant].set_index("seed")[metric].astype(float)
        seeds = sorted(set(base.index) & set(other.index))
        res = stats.paired_comparison(
            base.loc[seeds].tolist(), other.loc[seeds].tolist(), mode, alpha, n_boot
        )
        res.update(variant=variant, baseline=baseline, seeds=[int(s) for s in seeds])
        lost = _dropped(df, metric, baseline, all_seeds - set(base.index))
        lost += _dropped(df, metric, variant, all_seeds - set(other.index))
        if lost:
            res["notes"].append("dropped from the pairing: " + "; ".join(lost))
        rows.append(res)
    for key in ("p_ttest", "p_wilcoxon"):
        adj = stats.holm([r[key] for r in rows])
        for r, a in zip(rows, adj):
            r[f"{key}_holm"] = a
    return rows


def factorial(df: pd.DataFrame, metric: str, components: list[str]) -> dict[str, Any] | None:
    """Main effects and interactions of a factorial ablation from the records' overrides.

    Seeds enter as blocks when every cell has every seed.
    """
    ok = ok_rows(df, metric)
    keys = [f"loss.{c}" for c in components]
    if len(ok) == 0 or any(k not in ok for k in keys):
        return None
    design = np.column_stack(
        [(ok[k] != OFF_VALUES[c]).astype(float).to_numpy() for k, c in zip(keys, components)]
    )
    cells = [tuple(r) for r in design]
    if len(set(cells)) < 2 ** len(components):
        return {
            "effects": [],
            "note": "some cells of the 2^k design have no successful trial",
            "df_resid": 0,
            "model": None,
        }
    seeds = ok["seed"].astype(int).to_numpy()
    per_cell = {c: set() for c in cells}
    for c, s in zip(cells, seeds):
        per_cell[c].add(s)
    complete = len({frozenset(v) for v in per_cell.values()}) == 1 and len(cells) == len(
        set(zip(cells, seeds))
    )
    out = stats.factorial_effects(
        design, ok[metric].astype(float).to_numpy(), components, seeds if complete else None
    )
    if not complete:
        out["note"] = "; ".join(
            x for x in (out["note"], "not every cell has every seed: seeds not used as blocks") if x
        )
    return out


def _per_seed(ok: pd.DataFrame, key: str, col: str) -> dict[str, dict[int, float]]:
    """``{value of key: {seed: mean of col over the other keys' values}}`` (finite ``col``)."""
    y = pd.to_numeric(ok[col], errors="coerce")
    use = ok.assign(_y=y)[np.isfinite(y)]
    groups: dict[str, dict[int, float]] = {}
    for (value, seed), m in use.groupby([key, "seed"])["_y"].mean().items():
        groups.setdefault(str(value), {})[int(seed)] = float(m)
    return groups


def sweeps(
    df: pd.DataFrame, metric: str, keys: list[str], mode: str, alpha: float = 0.05
) -> dict[str, Any]:
    """Best value of each swept key (averaged per seed over the other keys' values).

    Chosen on validation (``val_<metric>``) of selection seeds and reported on test of held-out
    seeds (see ``stats.best_of_sweep``); on test, said to be optimistic, for old records without
    a validation split.
    """
    ok = ok_rows(df, metric)
    on_val = has_validation(ok, metric)
    out = {}
    for key in keys:
        if key not in ok:
            continue
        select = _per_seed(ok, key, val_key(metric)) if on_val else None
        best = stats.best_of_sweep(_per_seed(ok, key, metric), mode, alpha, select)
        if best and best.get("value") is not None:
            best["mde"] = sweep_mde(key, best, alpha)
        out[key] = best
    return out


def search_analysis(
    records: list[TrialRecord], distributions: dict[str, Any], metric: str, mode: str
) -> dict[str, Any]:
    """Optuna's parameter importances and the optimisation history of a search.

    On the search's objective: ``val_<metric>`` where the records have it, else (old records)
    ``metric`` on test; ``objective`` names it.
    """
    import optuna

    done = [r for r in records if r.variant == "search" and r.ok]
    has_val = any(_finite(current_metrics(r.metrics).get(val_key(metric))) for r in done)
    objective = val_key(metric) if has_val else metric
    trials = [r for r in done if _finite(current_metrics(r.metrics).get(objective))]
    history = [
        {
            "trial": i,
            "value": float(current_metrics(r.metrics)[objective]),
            "params": r.overrides,
        }
        for i, r in enumerate(sorted(trials, key=lambda r: r.finished))
    ]
    best_so_far, best = [], None
    for h in history:
        v = h["value"]
        best = v if best is None else (max(best, v) if mode == "max" else min(best, v))
        best_so_far.append(best)
    for h, b in zip(history, best_so_far):
        h["best_so_far"] = b
    out: dict[str, Any] = {
        "history": history,
        "importances": None,
        "note": None,
        "objective": objective,
        "objective_split": "validation" if has_val else "test",
    }
    if len(trials) < 2 or not distributions:
        out["note"] = "fewer than 2 finished search trials: no importances"
        return out
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for r in trials:
        params = {k: v for k, v in r.overrides.items() if k in distributions}
        if len(params) != len(distributions):
            continue
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=float(current_metrics(r.metrics)[objective]),
            )
        )
    try:
        out["importances"] = {
            k: float(v) for k, v in optuna.importance.get_param_importances(study).items()
        }
    except (RuntimeError, ValueError) as err:
        out["note"] = f"importances not computable: {err}"
    return out


def interval_rows(df: pd.DataFrame, by: list[str], col: str, clip=None) -> list[dict[str, Any]]:
    """Mean and 95% t-interval (``stats.t_interval``) of ``col`` per group of ``by``.

    For the figures, so they draw the same intervals as the tables (deterministic).
    """
    out = []
    if col not in df:
        return out
    vals = df.assign(_v=pd.to_numeric(df[col], errors="coerce")).dropna(subset=["_v"])
    for key, g in vals.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        x = g["_v"].tolist()
        out.append(
            {
                **dict(zip(by, key)),
                "mean": float(np.mean(x)),
                "ci": stats.t_interval(x, bounds=clip),
                "values": x,
            }
        )
    return out


def comparisons_mde(plan: dict[str, Any] | None, alpha: float) -> dict[str, Any] | None:
    """The MDE of the paired comparisons with the baseline, from the seed plan (its pooled sd)."""
    if not plan or plan.get("mde_now") is None:
        return None
    return power.mde_info(
        plan["mde_now"],
        "paired comparisons with the baseline",
        "paired t-test",
        alpha,
        plan["family"],
        f"{plan['n_now']} seeds, pooled sd of paired differences {plan['sd']:.3g}",
    )


def factorial_mde(fx: dict[str, Any] | None, alpha: float) -> dict[str, Any] | None:
    """The MDE of a factorial model's terms: the t-test of one term at alpha / (its terms).

    From the largest standard error of a term (all are equal in a complete 2^k design) and the
    model's residual df; None without standard errors.
    """
    ses = [e["se"] for e in (fx or {}).get("effects", []) if e.get("se") is not None]
    if not ses:
        return None
    se, df, m = max(ses), int(fx["df_resid"]), len(fx["effects"])
    return power.mde_info(
        power.mde_se(se, df, alpha, m),
        "factorial terms",
        "t-test of a term in the OLS model",
        alpha,
        m,
        f"standard error of an effect {se:.3g}, {df} residual df",
    )


def _pooled_mde(
    pairs: list[tuple[Any, int]], n: int, m: int, analysis: str, alpha: float, seeds: str
) -> dict[str, Any] | None:
    """The MDE of a family of ``m`` paired t-tests on ``n`` seeds, from their pooled sd.

    ``pairs``: ``(sd of paired differences, n)`` per test. None without a positive pooled sd.
    """
    pooled = power.pooled_sd(pairs)
    if not pooled or not pooled[0]:
        return None
    return power.mde_info(
        power.mde(n, pooled[0], alpha, m),
        analysis,
        "paired t-test",
        alpha,
        m,
        f"{n} {seeds}, pooled sd of paired differences {pooled[0]:.3g}",
    )


def sweep_mde(key: str, best: dict[str, Any] | None, alpha: float) -> dict[str, Any] | None:
    """The MDE of a grid's best-versus-other tests on the report seeds (pooled paired sd)."""
    if not best or not best.get("versus"):
        return None
    pairs = [(v.get("sd_diff"), v.get("n", 0)) for v in best["versus"]]
    n, m = len(best["reported_on"]), len(best["versus"])
    return _pooled_mde(pairs, n, m, f"best-versus-other tests of {key}", alpha, "report seeds")


def same_value(a: Any, b: Any) -> bool:
    """Whether two grid values are the same point.

    Numbers by value (``100 == 100.0``, as pandas stores a mixed column); a missing value (None,
    NaN) equals only another missing one; booleans only booleans; anything else by its text.
    """

    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    if missing(a) or missing(b):
        return missing(a) and missing(b)
    numeric = (int, float, np.integer, np.floating)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, numeric) and isinstance(b, numeric):
        return float(a) == float(b)
    return str(a) == str(b)


def within_effects(
    df: pd.DataFrame,
    metric: str,
    within: str,
    other: str,
    values: list[Any],
    levels: list[Any],
    mode: str = "max",
    alpha: float = 0.05,
    n_boot: int = 2000,
) -> dict[str, Any]:
    """The effect of ``other`` (``values[1]`` minus ``values[0]``) at each of ``levels``.

    ``levels`` are the grid's values of ``within``, in its order. Rows are matched to grid
    values by :func:`same_value`. Paired by seed at each level
    (:func:`stats.paired_comparison`; seeds missing from either arm are left out and named), Holm
    over the levels that could be tested (one family; ``tested`` counts them); whether the effect
    changes across levels: a one-way ANOVA of the per-seed differences (scipy ``f_oneway``; the
    levels are assumed independent: an assumption, since they share seed numbers and the test
    set); the MDE of the paired tests from the pooled sd of the tested levels.
    """
    ok = ok_rows(df, metric)
    control, treatment = values
    out: dict[str, Any] = {"within": within, "other": other, "control": str(control)}
    out.update(treatment=str(treatment), rows=[], anova=None, mde=None, tested=0)
    if within not in ok or other not in ok:
        return out
    rows: list[dict[str, Any]] = []
    groups: list[np.ndarray] = []

    def arm(at: pd.DataFrame, value: Any) -> pd.Series:
        keep = at[other].map(lambda v: same_value(v, value))
        return at[keep.astype(bool)].set_index("seed")[metric].astype(float)

    for level in levels:
        at = ok[ok[within].map(lambda v, lv=level: same_value(v, lv)).astype(bool)]
        c, t = arm(at, control), arm(at, treatment)
        seeds = sorted(set(c.index) & set(t.index))
        res = stats.paired_comparison(
            c.loc[seeds].tolist(), t.loc[seeds].tolist(), mode, alpha, n_boot
        )
        missing = sorted(set(c.index) ^ set(t.index))
        if missing:
            res["notes"].append(f"seeds {missing} have one arm only: left out")
        res.update(
            level=str(level),
            seeds=[int(s) for s in seeds],
            control_mean=_mean(c.loc[seeds]),
            treatment_mean=_mean(t.loc[seeds]),
        )
        rows.append(res)
        groups.append(t.loc[seeds].to_numpy() - c.loc[seeds].to_numpy())
    for key in ("p_ttest", "p_wilcoxon"):
        for r, a in zip(rows, stats.holm([r[key] for r in rows])):
            r[f"{key}_holm"] = a
    tested = [r for r in rows if r["p_ttest"] is not None]
    out.update(rows=rows, tested=len(tested), anova=_anova(groups))
    out["mde"] = _within_mde(tested, other, alpha)
    return out


def within_of(cfg: Any, df: pd.DataFrame, n_boot: int = 2000) -> dict[str, Any] | None:
    """The study's declared ``report.within`` analysis (:func:`within_effects` on its grid).

    None when it declares none or ``df`` is empty.
    """
    keys = within_keys(cfg)
    if not keys or not len(df):
        return None
    within, other = keys
    grid, st = cfg.study.grid, cfg.study
    return within_effects(
        df,
        st.metric,
        within,
        other,
        list(grid[other]),
        list(grid[within]),
        st.mode,
        cfg.report.alpha,
        n_boot,
    )


def _anova(groups: list[np.ndarray]) -> dict[str, Any]:
    """One-way ANOVA of the per-seed differences across the groups (``untested`` says why not)."""
    from scipy import stats as sps

    usable = [g for g in groups if len(g) >= 2]
    n = sum(len(g) for g in usable)
    out: dict[str, Any] = {"F": None, "p": None, "df": None, "untested": None}
    if len(usable) < 2 or n - len(usable) < 1:
        out["untested"] = "fewer than two values with at least two seeds each"
    elif all(stats.no_variance(g) for g in usable):
        out["untested"] = "no variance within any value"
    if out["untested"]:
        return out
    res = sps.f_oneway(*usable)
    out.update(F=float(res.statistic), p=float(res.pvalue), df=[len(usable) - 1, n - len(usable)])
    return out


def _within_mde(tested: list[dict[str, Any]], other: str, alpha: float) -> dict[str, Any] | None:
    """The MDE of the tested levels' paired t-tests (Holm family: those levels)."""
    if not tested:
        return None
    pairs = [(r["sd_diff"], r["n"]) for r in tested]
    n, m = min(r["n"] for r in tested), len(tested)
    return _pooled_mde(pairs, n, m, f"paired tests of {other} at each value", alpha, "seeds")
