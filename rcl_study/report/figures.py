"""The only plotting of the toolkit (seaborn). Every figure is saved as PNG and SVG."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from rcl_study.report.drawn import CurvePanel, SensitivityData  # noqa: E402
from rcl_study.report.report_stats import SearchPoint  # noqa: E402
from rcl_study.store import atomic_write_bytes  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")
matplotlib.rcParams["svg.hashsalt"] = "rcl_study"  # stable SVG ids: same records, same files
# every label is a string from a study file or a record: drawn as itself, never as mathtext
# (matplotlib's mathtext would refuse a "$" in a grid value, and with it every figure)
matplotlib.rcParams["text.parse_math"] = False


def _save(fig, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    for suffix, options in (
        ("png", {"dpi": 120, "metadata": {"Software": None}}),
        ("svg", {"metadata": {"Date": None, "Creator": None}}),
    ):
        drawn = io.BytesIO()
        fig.savefig(drawn, format=suffix, **options)
        atomic_write_bytes(out_dir / f"{name}.{suffix}", drawn.getvalue())  # a full disk: one line
    plt.close(fig)
    return f"{name}.png"


def _label(metric: str, mode: str | None = None) -> str:
    text = metric.replace("_", " ")
    if mode:
        text += " (higher is better)" if mode == "max" else " (lower is better)"
    return text


def _err(rows: list[dict[str, Any]], key: str = "mean") -> np.ndarray:
    lo = [max(0.0, r[key] - r["ci"][0]) if r.get("ci") else 0.0 for r in rows]
    hi = [max(0.0, r["ci"][1] - r[key]) if r.get("ci") else 0.0 for r in rows]
    return np.array([lo, hi])


def variant_means(rows: list[dict[str, Any]], metric: str, mode: str, out_dir: Path) -> str:
    """Each variant's seeds (dots) and mean with the table's 95% t-interval (bar).

    ``rows``: ``[{"label", "mean", "ci", "values"}]`` in display order.
    """
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
    y = np.arange(len(rows))
    ax.errorbar([r["mean"] for r in rows], y, xerr=_err(rows), fmt="o", color="C0", capsize=4)
    for i, r in enumerate(rows):
        ax.plot(r["values"], [i] * len(r["values"]), "o", color="0.3", ms=3, alpha=0.6)
    ax.set_yticks(y, [r["label"] for r in rows])
    ax.invert_yaxis()
    ax.set(xlabel=_label(metric, mode), title=f"{_label(metric)} per variant (mean, 95% t-CI)")
    return _save(fig, out_dir, "variants")


def effects(rows: list[dict[str, Any]], out_dir: Path, name: str, title: str) -> str | None:
    """Effects (or differences to the baseline) with their 95% intervals.

    Green where the Holm-adjusted test is significant.
    """
    rows = [r for r in rows if r.get("value") is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
    y = np.arange(len(rows))
    colors = ["C2" if r.get("significant") else "C7" for r in rows]
    ax.barh(y, [r["value"] for r in rows], xerr=_err(rows, "value"), color=colors, capsize=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, [r["label"] for r in rows])
    ax.set(title=title, xlabel="difference (95% t-CI); green: significant after Holm")
    return _save(fig, out_dir, name)


def sensitivity(data: SensitivityData, metric: str, mode: str, out_dir: Path) -> str:
    """Metric against one swept key: mean over seeds with the 95% t-interval.

    A numeric key's points are joined by a line; a categorical key's are separate points with
    error bars, in the study's order (:func:`.drawn.sensitivity_data`).
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = [{"mean": m, "ci": c} for m, c in zip(data.mean, data.ci)]
    line = {"marker": "o"} if data.numeric else {"fmt": "o"}
    ax.errorbar(data.x, data.mean, yerr=_err(rows), capsize=4, **line)
    if data.ticks is not None:
        ax.set_xticks(data.x, data.ticks)
    if data.key == "data.imbalance_ratio":
        ax.set_xscale("log")
    ax.set(
        title=f"sensitivity of {_label(metric)} to {data.label}",
        ylabel=_label(metric, mode),
        xlabel=data.label,
    )
    return _save(fig, out_dir, f"sensitivity_{data.key.replace('.', '_')}")


def heatmap(df: pd.DataFrame, keys: list[str], metric: str, out_dir: Path) -> str:
    """Mean metric over seeds for two swept keys."""
    table = df.pivot_table(index=keys[0], columns=keys[1], values=metric, aggfunc="mean")
    fig, ax = plt.subplots(figsize=(1.2 * table.shape[1] + 2, 0.8 * table.shape[0] + 1.5))
    sns.heatmap(table, annot=True, fmt=".3f", cmap="viridis", ax=ax)
    ax.set_title(f"mean {_label(metric)}")
    return _save(fig, out_dir, "heatmap")


def per_class(train_counts: list[int], curves: dict[str, list[float | None]], out_dir: Path) -> str:
    """Per-class accuracy against training-set class frequency (log axis)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    counts = np.asarray(train_counts)
    for name, acc in curves.items():
        a = np.array([np.nan if v is None else v for v in acc], dtype=float)
        order = np.argsort(counts)
        ax.plot(counts[order], a[order], marker="o", label=name, alpha=0.85)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(
        xlabel="training images of the class (log)",
        ylabel="test accuracy of the class",
        title="per-class accuracy vs class frequency",
    )
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "per_class")


def shot_groups(rows: list[dict[str, Any]], order: list[str], out_dir: Path) -> str | None:
    """Many / medium / few-shot accuracy per variant (mean over seeds, 95% t-CI).

    ``rows``: ``[{"variant", "group", "mean", "ci"}]``.
    """
    if not rows:
        return None
    groups = list(dict.fromkeys(r["group"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order) + 2), 4))
    width = 0.8 / len(groups)
    for j, grp in enumerate(groups):
        sub = {r["variant"]: r for r in rows if r["group"] == grp}
        xs = [i + (j - (len(groups) - 1) / 2) * width for i, v in enumerate(order) if v in sub]
        rs = [sub[v] for v in order if v in sub]
        ax.bar(
            xs, [r["mean"] for r in rs], width, yerr=_err(rs), capsize=2, label=grp, color=f"C{j}"
        )
    ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    ax.legend(title="group", bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set(title="many / medium / few-shot accuracy (mean, 95% t-CI)", ylim=(0, 1.02))
    return _save(fig, out_dir, "shot_groups")


def learning_curves(panels: list[CurvePanel], metric: str, mode: str, out_dir: Path):
    """Test metric per epoch, one line per variant (band: 95% t-CI over seeds).

    One panel, or small multiples with shared axes for many variants
    (:func:`.drawn.curve_panels`; the reference variant in grey in each).
    """
    if not panels:
        return None
    n = len(panels)
    cols = min(n, 4)
    nrows = -(-n // cols)
    size = (7, 4) if n == 1 else (3.2 * cols, 2.6 * nrows + 0.6)
    fig, axes = plt.subplots(nrows, cols, figsize=size, sharex=True, sharey=True, squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for c in panel.curves:
            color = f"C{c.color}"
            ax.plot(c.epochs, c.mean, color=color, label=c.label, lw=1.0 if c.reference else None)
            ax.fill_between(c.epochs, c.lo, c.hi, color=color, alpha=0.1 if c.reference else 0.2)
        if panel.title is not None:
            ax.set_title(panel.title, fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    title = f"learning curves ({_label(metric)}, 95% t-CI)"
    if n == 1:
        ax = axes[0, 0]
        ax.set(title=title, xlabel="epoch", ylabel=_label(metric, mode))
        ax.legend(fontsize=7, ncol=2)
    else:
        first = panels[0].curves[0].label
        fig.suptitle(f"{title}; grey: {first}", fontsize=10)
        fig.supxlabel("epoch", fontsize=9)
        fig.supylabel(_label(metric, mode), fontsize=9)
    return _save(fig, out_dir, "learning_curves")


FEATURE_TITLES = {
    "compactness": "compactness (mean cos to class mean)",
    "equiangular_gap_deg": "sd of class-mean angles (deg; 0 = equiangular)",
}


def feature_measures(
    rows: dict[str, list[dict[str, Any]]], out_dir: Path, modes: dict[str, str] | None = None
) -> str | None:
    """Intra-class compactness and the equiangular gap of class means per variant.

    ``rows``: ``{measure: [{"variant", "mean", "ci"}]}`` (95% t-intervals).
    """
    rows = {k: v for k, v in rows.items() if v}
    if not rows:
        return None
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 0.45 * n + 1.5))
    for ax, (col, rs) in zip(np.atleast_1d(axes), rows.items()):
        y = np.arange(len(rs))
        ax.errorbar([r["mean"] for r in rs], y, xerr=_err(rs), fmt="o", capsize=4)
        ax.set_yticks(y, [r["variant"] for r in rs])
        ax.invert_yaxis()
        ax.set(title=FEATURE_TITLES.get(col, col), xlabel=_label(col, (modes or {}).get(col)))
        ax.title.set_fontsize(9)
    return _save(fig, out_dir, "feature_measures")


def performance_profile(
    profile: dict[str, dict[str, list[float]]],
    taus: list[float],
    metric: str,
    mode: str,
    out_dir: Path,
) -> str | None:
    """Rliable's performance profile: share of runs better than tau, stratified-bootstrap band."""
    if not profile:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    banded = any(p["lo"] is not None for p in profile.values())
    for i, (name, p) in enumerate(profile.items()):
        ax.step(taus, p["share"], where="post", color=f"C{i % 10}", label=name)
        if p["lo"] is not None:  # no band below 10 runs (the bootstrap under-covers)
            ax.fill_between(taus, p["lo"], p["hi"], step="post", color=f"C{i % 10}", alpha=0.15)
    word = "above" if mode == "max" else "below"
    ax.set(
        xlabel=f"threshold tau on {_label(metric, mode)}",
        ylabel=f"share of runs {word} tau",
        ylim=(-0.02, 1.02),
        title="performance profiles"
        + (
            " (95% stratified-bootstrap band from 10 runs up)"
            if banded
            else " (no band: fewer than 10 runs)"
        ),
    )
    ax.legend(fontsize=7)
    return _save(fig, out_dir, "performance_profile")


def search_history(
    history: list[SearchPoint], metric: str, out_dir: Path, mode: str | None = None
) -> str | None:
    """Optuna optimisation history: each trial's value and the best finished value so far.

    A pruned trial is drawn (as a cross) at its last evaluation.
    """
    if not history:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for pruned, style in ((False, "o"), (True, "x")):
        pts = [h for h in history if h.pruned == pruned]
        if pts:
            label = "pruned (last evaluation)" if pruned else "finished trial"
            ax.plot([h.trial for h in pts], [h.value for h in pts], style, label=label)
    best = [h for h in history if h.best_so_far is not None]
    ax.plot([h.trial for h in best], [h.best_so_far for h in best], "-", label="best so far")
    ax.set(
        xlabel="trial (order finished)", ylabel=_label(metric, mode), title="optimisation history"
    )
    ax.legend()
    return _save(fig, out_dir, "search_history")


def importances(imp: dict[str, float] | None, out_dir: Path) -> str | None:
    """Optuna parameter importances (fANOVA by default)."""
    if not imp:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(imp) + 1.5))
    sns.barplot(x=list(imp.values()), y=list(imp.keys()), ax=ax, color="C0")
    ax.set(title="parameter importances (Optuna)", xlabel="importance")
    return _save(fig, out_dir, "importances")
