"""A search's sections: its best configuration (at the top of the report) and its trials.

The best configuration is the finished search trial best on the search's objective (the
validation score), with the test score of its re-runs at the held-out seeds (variant ``best``);
the trial table lists every search trial, pruned and failed ones included.
"""

from __future__ import annotations

from typing import Any

from rcl_study.report import stats
from rcl_study.report.labels import Labels
from rcl_study.report.markup import Block, lit
from rcl_study.report.report_input import ReportInput
from rcl_study.report.report_stats import SearchAnalysis, SearchTrial
from rcl_study.report.wording import fmt


def _value(v: Any) -> str:
    """A sampled parameter as shown: a float to 4 significant digits, anything else as is."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _status(t: SearchTrial, best: SearchTrial | None) -> str:
    """A trial's status as listed: a pruned one at its last epoch, the best one said so."""
    if t.status == "pruned" and t.epoch is not None:
        return f"pruned at epoch {t.epoch:g}"
    return f"{t.status} (best)" if best is not None and t.trial_id == best.trial_id else t.status


def _scored(s: SearchAnalysis) -> str:
    """The objective as the report names it (on test: said to be optimistic)."""
    said = f"{s.objective_split} {lit(s.objective)}"
    return said + (f" ({stats.ON_TEST})" if s.objective_split == "test" else "")


def best(r: ReportInput) -> list[Block]:
    """The best configuration: its parameters, validation score and held-out test score."""
    s = r.stats.search
    if not s:
        return []
    out: list[Block] = [("h", 2, "Best configuration")]
    if s.best is None:
        return [*out, ("p", "No search trial has finished with a score yet.")]
    labels = Labels.of(r.cfg)
    finished = sum(1 for t in s.trials if t.status == "ok" and t.value is not None)
    chosen = s.best.params.items()
    params = ", ".join(f"{lit(labels.name(k))} = {lit(_value(v))}" for k, v in chosen)
    lines = [
        f"parameters: {params or 'none sampled'}",
        f"{_scored(s)}: {fmt(s.best.value)} (trial {lit(s.best.trial_id)}, the best of "
        f"{finished} finished search trials at seed {r.cfg.study.seeds[0]})",
    ]
    rerun = next((v for v in r.stats.variants if v.variant == "best"), None)
    metric = lit(r.stats.metric)
    if rerun is not None and rerun.n:
        lines.append(
            f"test {metric} on the held-out seeds {rerun.seeds}: mean {fmt(rerun.mean)}, "
            f"95% CI (t) {fmt(rerun.ci_t)} ({rerun.n} re-runs of this configuration)"
            + "".join(f"; {lit(n)}" for n in rerun.notes)
        )
    else:
        lines.append(f"test {metric} on the held-out seeds: not re-run yet")
    return [*out, ("ul", lines)]


def trial_table(r: ReportInput) -> Block | None:
    """Every search trial: its parameters, objective and status (pruned and failed included)."""
    s = r.stats.search
    if not s or not s.trials:
        return None
    labels = Labels.of(r.cfg)
    keys = list(dict.fromkeys(k for t in s.trials for k in t.params))
    head = ["trial", *(labels.name(k) for k in keys), f"{s.objective_split} {s.objective}"]
    rows = [
        [t.trial_id, *(_value(t.params[k]) if k in t.params else "" for k in keys)]
        + [fmt(t.value), _status(t, s.best)]
        for t in s.trials
    ]
    return ("table", [*head, "status"], rows)


def search(r: ReportInput) -> list[Block]:
    """A search's objective, its trials and the parameter importances."""
    s = r.stats.search
    if not s:
        return []
    pruned = sum(1 for t in s.trials if t.status == "pruned")
    on = "history and importances on it: every trial with a score"
    on += f", the {pruned} pruned at their last evaluation" if pruned else ""
    out: list[Block] = [
        ("h", 2, "Search"),
        ("p", f"Search objective: {_scored(s)}; {on}."),
        (
            "p",
            "Search trials differ in their parameters: they are not pooled into one "
            "row; the best configuration is summarised from its re-runs ('best').",
        ),
    ]
    table = trial_table(r)
    if table:
        out += [("h", 3, "Search trials"), table]
    if s.importances:
        rows = [[name, f"{v:.3f}"] for name, v in _named(r, s.importances)]
        out.append(("table", ["parameter", "importance"], rows))
    if s.note:
        out.append(("p", f"Note: {lit(s.note)}."))
    return out


def _named(r: ReportInput, values: dict[str, float]) -> list[tuple[str, float]]:
    """``values`` keyed by display name."""
    labels = Labels.of(r.cfg)
    return [(labels.name(k), v) for k, v in values.items()]
