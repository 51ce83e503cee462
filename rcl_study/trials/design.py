"""Study spec -> the list of trials (ablation, grid) or the search space (pure functions).

On the floor below ``study/`` and ``report/``: both read the design from here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

from rcl_study.config import ConfigError, StudyFile, check_key, set_path, to_dict
from rcl_study.config.base import TRIAL_SECTIONS
from rcl_study.config.dependent import ignored
from rcl_study.losses import OFF_VALUES, resolve_loss
from rcl_study.trials.records import TrialPlan

SLUG_MAX = 60


def trial_config(cfg: StudyFile, overrides: dict[str, Any], seed: int) -> StudyFile:
    """The resolved configuration one trial runs with (and its record stores)."""
    return set_path(cfg, {**overrides, "train.seed": seed, "train.progress": False})


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.+=" else "_" for ch in text)


def variant_id(name: str, overrides: dict[str, Any]) -> str:
    """A file-safe id for a variant, unique for distinct overrides and stable across runs.

    A name of at most 60 file-safe characters (commas become ``_``) keeps the id it always had,
    so existing study folders resume; a longer one, or one with other characters that had to be
    replaced (``/``, spaces), becomes a readable prefix plus ``-h`` and 8 hex digits of the SHA-1
    of the full overrides, so two variants that differ only past the cut never share an id.
    """
    slug = _slug(name)
    if _slug(name.replace(",", "")) == name.replace(",", "") and len(slug) <= SLUG_MAX:
        return slug
    return f"{slug[: SLUG_MAX - 10]}-h{params_id(overrides)[:8]}"


def params_id(params: dict[str, Any]) -> str:
    """A short stable id for a parameter dict (used for search trials)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:10]


def _on_values(cfg: StudyFile) -> dict[str, Any]:
    spec = resolve_loss(cfg.loss, cfg.train.alpha, cfg.train.beta)
    on = {}
    for comp in cfg.study.components:
        value = getattr(spec, comp)
        if value == OFF_VALUES[comp]:
            raise ConfigError(
                f"{cfg.name}: study.components: component '{comp}' has the same value on and off "
                f"({value}); set loss.{comp} to the value to study"
            )
        on[comp] = value
    return on


def ablation_variants(cfg: StudyFile) -> list[tuple[str, dict[str, Any]]]:
    """(variant name, overrides) for the study's ablation design.

    ``factorial``: all 2^k on/off combinations ("none" = all off, then "+"-joined names);
    ``leave_one_out``: "all" and "all-X" for each component; ``add_one_in``: "none" and "X".
    """
    comps = list(cfg.study.components)
    if not comps:
        raise ConfigError(f"{cfg.name}: study.components: an ablation needs at least one component")
    on = _on_values(cfg)

    def overrides(active: set[str]) -> dict[str, Any]:
        return {f"loss.{c}": (on[c] if c in active else OFF_VALUES[c]) for c in comps}

    design = cfg.study.design
    if design == "factorial":
        out = []
        for bits in itertools.product([False, True], repeat=len(comps)):
            active = {c for c, b in zip(comps, bits) if b}
            name = "+".join(c for c in comps if c in active) or "none"
            out.append((name, overrides(active)))
        return sorted(out, key=lambda v: (v[0] != "none", v[0].count("+"), v[0]))
    if design == "leave_one_out":
        return [("all", overrides(set(comps)))] + [
            (f"all-{c}", overrides(set(comps) - {c})) for c in comps
        ]
    return [("none", overrides(set()))] + [(c, overrides({c})) for c in comps]


def grid_variants(cfg: StudyFile) -> list[tuple[str, dict[str, Any]]]:
    """(variant name, overrides) for every point of the grid (product of the swept keys)."""
    grid = cfg.study.grid
    if not grid:
        raise ConfigError(f"{cfg.name}: study.grid: a grid study needs at least one key to sweep")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{cfg.name}: study.grid.{key}: needs a non-empty list of values")
        check_key(key, cfg.name, "study.grid")
        try:
            for v in values:
                set_path(cfg, {key: v})
        except ConfigError as err:
            raise ConfigError(
                f"{cfg.name}: study.grid.{key}: {str(err).split(': ', 1)[-1]}"
            ) from None
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        ov = dict(zip(keys, combo))
        out.append((",".join(f"{k}={v}" for k, v in ov.items()), ov))
    _refuse_same_training(cfg, out)
    return out


def _trained(cfg: StudyFile, overrides: dict[str, Any]) -> str:
    """What a variant trains, as canonical JSON: its config with the loss resolved to its spec.

    Two grid points that differ only in ``loss.preset`` train the same loss when the loss section
    sets every knob in which the presets differ (``bcl`` with ``balance: 1, scale: 1.2, margin:
    0.5`` is ``bcl+rcl``); keys the trial does not read (``rcl_study.config.dependent``) are
    taken at their defaults. Every key is seen, mappings and lists included.
    """
    tc = trial_config(cfg, overrides, 0)
    unread = ignored(tc)  # a key the trial does not read (loss.tau_la without LA-CE) trains nothing
    tc = set_path(tc, unread) if unread else tc
    raw = {s: to_dict(getattr(tc, s)) for s in TRIAL_SECTIONS}  # the others are every arm's
    raw["loss"] = dict(vars(resolve_loss(tc.loss, tc.train.alpha, tc.train.beta)))
    return json.dumps(raw, sort_keys=True, default=str)


def _refuse_same_training(cfg: StudyFile, variants: list[tuple[str, dict[str, Any]]]) -> None:
    """Raise ``ConfigError`` when two grid points would train the same thing.

    Such an arm wastes its trials, and the report would compare a loss with itself.
    """
    seen: dict[str, str] = {}
    for name, ov in variants:
        first = seen.setdefault(_trained(cfg, ov), name)
        if first != name:
            keys = sorted(k for k in ov if k.startswith("loss."))
            hint = (
                "; the loss section's explicit knobs override what the presets differ in: "
                "remove them (loss.balance, loss.scale, loss.margin, ...) to compare presets"
                if "loss.preset" in keys
                else ""
            )
            raise ConfigError(
                f"{cfg.name}: study.grid: '{first}' and '{name}' train the same model with the "
                f"same loss{hint}"
            )


def expand(cfg: StudyFile) -> list[TrialPlan]:
    """Every planned trial of an ablation or grid study (variants x seeds, variant-major)."""
    if cfg.study.kind == "ablation":
        variants = ablation_variants(cfg)
    elif cfg.study.kind == "grid":
        variants = grid_variants(cfg)
    else:
        raise ConfigError(f"{cfg.name}: study.kind: 'search' trials are sampled, not expanded")
    plans = []
    for name, ov in variants:
        vid = variant_id(name, ov)
        for seed in cfg.study.seeds:
            plans.append(TrialPlan(f"{vid}__s{seed}", name, seed, ov))
    seen: dict[str, str] = {}
    for p in plans:
        if seen.setdefault(p.trial_id, p.variant) != p.variant:
            raise ConfigError(
                f"{cfg.name}: study: variants '{seen[p.trial_id]}' and '{p.variant}' would share "
                f"the trial id '{p.trial_id}'"
            )
    return plans


def within_design(cfg: StudyFile) -> tuple[tuple[str, str] | None, str | None]:
    """``((within, other), None)`` for a valid ``report.within``, else ``(None, why not)``.

    Valid: declared on a two-key grid whose other key has two values (control, treatment).
    Not declared: ``(None, None)``. The one statement of these rules, for
    ``study.checks.check_within`` (which raises the reason) and :func:`within_keys`.
    """
    key = cfg.report.within
    if key is None:
        return None, None
    grid = cfg.study.grid if cfg.study.kind == "grid" else {}
    if len(grid) != 2 or key not in grid:
        return None, (
            f"'{key}' must be one of the two keys of a grid study "
            f"(study.grid has {', '.join(grid) or 'none'})"
        )
    other = next(k for k in grid if k != key)
    if len(grid[other]) != 2:
        return None, (
            f"the other grid key, {other}, needs exactly two values (control first, then "
            f"treatment); it has {len(grid[other])}"
        )
    return (key, other), None


def within_keys(cfg: StudyFile) -> tuple[str, str] | None:
    """``(within, other)`` of the study's ``report.within``, or None (see :func:`within_design`)."""
    return within_design(cfg)[0]


def baseline_variant(cfg: StudyFile, variants: list[str]) -> str | None:
    """The variant every other one is compared with."""
    if cfg.report.baseline:
        if cfg.report.baseline not in variants:
            raise ConfigError(
                f"{cfg.name}: report.baseline: '{cfg.report.baseline}' is not a "
                f"variant of this study ({', '.join(variants)})"
            )
        return cfg.report.baseline
    if cfg.study.kind == "ablation":
        return "all" if cfg.study.design == "leave_one_out" else "none"
    if cfg.study.kind == "grid":
        return variants[0] if variants else None
    return None  # a search's trials differ in several keys at once: nothing to pair


def search_distributions(cfg: StudyFile) -> dict[str, Any]:
    """Optuna distributions of ``study.space`` (keys are dotted config keys)."""
    import optuna

    if not cfg.study.space:
        raise ConfigError(f"{cfg.name}: study.space: a search needs at least one range")
    out: dict[str, Any] = {}
    grid = cfg.study.sampler == "grid"
    for key, r in cfg.study.space.items():
        check_key(key, cfg.name, "study.space")
        if grid:  # the grid sampler tells only the values it lists
            out[key] = optuna.distributions.CategoricalDistribution(r.grid_values())
        elif r.type == "categorical":
            out[key] = optuna.distributions.CategoricalDistribution(r.choices)
        elif r.type == "int":
            step = int(r.step or 1)
            out[key] = optuna.distributions.IntDistribution(
                int(r.low), int(r.high), log=r.log, step=step
            )
        else:
            out[key] = optuna.distributions.FloatDistribution(r.low, r.high, log=r.log, step=r.step)
        try:  # every value a trial may get must be valid: all choices, both ends, a fraction
            for probe in _probes(r):
                set_path(cfg, {key: probe})
        except ConfigError as err:
            raise ConfigError(
                f"{cfg.name}: study.space.{key}: {str(err).split(': ', 1)[-1]}"
            ) from None
    return out


def search_trials(cfg: StudyFile) -> int:
    """How many search trials will really run: ``study.n_trials``, at most the grid's points."""
    n = cfg.study.n_trials
    if cfg.study.sampler == "grid":
        points = 1
        for r in cfg.study.space.values():
            points *= len(r.grid_values() or [])
        n = min(n, points)
    return n


def grid_sampler(cfg: StudyFile, seed: int) -> Any:
    """Optuna's grid sampler over ``study.space``'s listed values, for ask-and-tell use.

    See :mod:`rcl_study.trials.grid_sampler` (Optuna's own raises once the grid is done).
    """
    from rcl_study.trials.grid_sampler import AskTellGridSampler

    grid = {k: r.grid_values() for k, r in cfg.study.space.items()}
    return AskTellGridSampler(grid, seed=seed)


def optuna_storage(cfg: StudyFile, out_dir: Any) -> Any:
    """The Optuna storage of a search: ``study.storage`` (an RDB URL) or the journal file.

    The Optuna study is named after the study file (``name``); open it with
    ``optuna.load_study(study_name=name, storage=URL)``.
    """
    import optuna

    if cfg.study.storage:
        try:
            return optuna.storages.RDBStorage(cfg.study.storage)
        except Exception as err:  # noqa: BLE001 - a bad URL, a missing driver: one line
            raise ConfigError(
                f"{cfg.name}: study.storage: cannot open '{cfg.study.storage}' "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
            ) from None
    return optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(Path(out_dir) / "optuna.journal"))
    )


def _probes(r: Any) -> list[Any]:
    """Values standing for a range: every choice; low, high and (floats) a non-whole inside."""
    if r.type == "categorical":
        return list(r.choices)
    if r.type == "int":
        return [int(r.low), int(r.high)]
    probes = [r.low, r.high]
    if r.high > r.low:  # a float range on an integer key fails here
        inside = r.low + 0.37 * (r.high - r.low)
        probes.append(inside + (r.high - inside) / 2 if inside.is_integer() else inside)
    return probes


def describe(cfg: StudyFile) -> dict[str, Any]:
    """A short, JSON-safe description of the design (for dry runs and reports)."""
    d: dict[str, Any] = {"kind": cfg.study.kind, "seeds": list(cfg.study.seeds)}
    if cfg.study.kind == "ablation":
        d.update(
            design=cfg.study.design,
            components=list(cfg.study.components),
            on_values=_on_values(cfg),
        )
    elif cfg.study.kind == "grid":
        d["grid"] = {k: list(v) for k, v in cfg.study.grid.items()}
    else:
        d.update(
            space={k: to_dict(v) for k, v in cfg.study.space.items()},
            n_trials=cfg.study.n_trials,
            sampler=cfg.study.sampler,
            asha=cfg.study.asha if isinstance(cfg.study.asha, bool) else to_dict(cfg.study.asha),
        )
    return d
