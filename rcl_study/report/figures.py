"""The only plotting of the toolkit (seaborn). Every figure is saved as PNG and SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


def _save(fig, out_dir: Path, name: str) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out_dir / f"{name}.{ext}", dpi=120)
    plt.close(fig)
    return f"{name}.png"


def _label(metric: str) -> str:
    return metric.replace("_", " ")


def variant_means(df: pd.DataFrame, metric: str, out_dir: Path, order: list[str]) -> str:
    """Each variant's seeds (dots) and mean with 95% t-interval (bar)."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(order) + 1.5))
    sns.pointplot(
        data=df,
        y="variant",
        x=metric,
        order=order,
        errorbar=("ci", 95),
        linestyle="none",
        color="C0",
        ax=ax,
        capsize=0.3,
    )
    sns.stripplot(
        data=df, y="variant", x=metric, order=order, color="0.3", size=4, alpha=0.6, ax=ax
    )
    ax.set(xlabel=_label(metric), ylabel="", title=f"{_label(metric)} per variant (mean, 95% CI)")
    return _save(fig, out_dir, "variants")


def effects(rows: list[dict[str, Any]], out_dir: Path, name: str, title: str) -> str | None:
    """Effects (or differences to the baseline) with their 95% intervals."""
    rows = [r for r in rows if r.get("value") is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
    y = np.arange(len(rows))
    vals = [r["value"] for r in rows]
    lo = [r["value"] - r["ci"][0] if r.get("ci") else 0 for r in rows]
    hi = [r["ci"][1] - r["value"] if r.get("ci") else 0 for r in rows]
    colors = ["C2" if r.get("significant") else "C7" for r in rows]
    ax.barh(y, vals, xerr=[lo, hi], color=colors, capsize=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, [r["label"] for r in rows])
    ax.set(title=title, xlabel="effect on the metric (95% CI); green: significant")
    return _save(fig, out_dir, name)


def sensitivity(df: pd.DataFrame, key: str, metric: str, out_dir: Path) -> str:
    """Metric against one swept key, mean with a 95% confidence band over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    data = df.copy()
    numeric = pd.to_numeric(data[key], errors="coerce")
    if numeric.notna().all():
        data[key] = numeric
    sns.lineplot(data=data, x=key, y=metric, errorbar=("ci", 95), marker="o", ax=ax)
    if key == "data.imbalance_ratio":
        ax.set_xscale("log")
    ax.set(title=f"sensitivity of {_label(metric)} to {key}", ylabel=_label(metric))
    return _save(fig, out_dir, f"sensitivity_{key.replace('.', '_')}")


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


def shot_groups(df: pd.DataFrame, order: list[str], out_dir: Path) -> str | None:
    """Many / medium / few-shot accuracy per variant (mean over seeds, 95% CI)."""
    cols = [c for c in ("many_acc", "medium_acc", "few_acc") if c in df and df[c].notna().any()]
    if not cols:
        return None
    long = df.melt(
        id_vars=["variant", "seed"], value_vars=cols, var_name="group", value_name="accuracy"
    ).dropna()
    long["group"] = long["group"].str.replace("_acc", "")
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order) + 2), 4))
    sns.barplot(
        data=long, x="variant", y="accuracy", hue="group", order=order, errorbar=("ci", 95), ax=ax
    )
    ax.tick_params(axis="x", rotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(title="group", bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set(title="many / medium / few-shot accuracy (mean, 95% CI)", xlabel="", ylim=(0, 1.02))
    return _save(fig, out_dir, "shot_groups")


def learning_curves(history: pd.DataFrame, metric: str, out_dir: Path) -> str | None:
    """Test metric per epoch, one line per variant (band: 95% CI over seeds)."""
    if history.empty or metric not in history:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=history, x="epoch", y=metric, hue="variant", errorbar=("ci", 95), ax=ax)
    ax.set(title=f"learning curves ({_label(metric)})")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, out_dir, "learning_curves")


def feature_measures(df: pd.DataFrame, order: list[str], out_dir: Path) -> str | None:
    """Intra-class compactness and balancedness of class means per variant."""
    cols = [c for c in ("compactness", "balancedness") if c in df and df[c].notna().any()]
    if not cols:
        return None
    fig, axes = plt.subplots(1, len(cols), figsize=(5 * len(cols), 0.45 * len(order) + 1.5))
    axes = np.atleast_1d(axes)
    titles = {
        "compactness": "compactness (mean cos to class mean; higher = tighter)",
        "balancedness": "spread of class-mean angles (deg; 0 = simplex)",
    }
    for ax, col in zip(axes, cols):
        sns.pointplot(
            data=df,
            y="variant",
            x=col,
            order=order,
            errorbar=("ci", 95),
            linestyle="none",
            ax=ax,
            capsize=0.3,
        )
        ax.set(title=titles[col], ylabel="", xlabel=col)
        ax.title.set_fontsize(9)
    return _save(fig, out_dir, "feature_measures")


def search_history(history: list[dict[str, Any]], metric: str, out_dir: Path) -> str | None:
    """Optuna optimisation history: each trial's value and the best so far."""
    if not history:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([h["trial"] for h in history], [h["value"] for h in history], "o", label="trial")
    ax.plot(
        [h["trial"] for h in history], [h["best_so_far"] for h in history], "-", label="best so far"
    )
    ax.set(xlabel="trial (order finished)", ylabel=_label(metric), title="optimisation history")
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
