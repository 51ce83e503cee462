"""The checks a study passes before anything runs or is written (pure, except the reads).

The design (:func:`check_study`), the machine (:func:`check_machine`), the folders
(:func:`check_folders`, once per command, before anything runs; :func:`check_run_folders` for a
run) and, on ``--resume``, whether the study file changed what recorded trials compute
(:func:`check_changes`). Each failure is one line naming the key.
"""

from __future__ import annotations

import os
from pathlib import Path

from rcl_study.config import ConfigError, StudyFile, to_dict
from rcl_study.store import read_bytes
from rcl_study.store.folders import folder_problem
from rcl_study.study.packing import pack_size
from rcl_study.trials.design import (
    baseline_variant,
    expand,
    search_distributions,
    trial_config,
    within_design,
)
from rcl_study.trials.folder import (
    LOCK,
    MAX_PLAN_BYTES,
    OWN_FILES,
    PLAN,
    RECORDS,
    StudyFolder,
    load_json,
)
from rcl_study.trials.records import TrialPlan, changed_keys, config_hash

#: the toolkit's own package folder: never a study's folder, nor any folder above it
_TOOLKIT_ROOT = Path(__file__).resolve().parents[1]


class StudyExists(RuntimeError):
    """The study folder already holds records and neither --resume nor --overwrite was given."""


class StudyChanged(ConfigError):
    """``--resume`` of a study whose file changed what its recorded trials compute."""


def check_folders(cfg: StudyFile, source: str | None = None, report_only: bool = False) -> None:
    """The one check of the records and report folders, made before anything runs or is written.

    Each folder must be new, empty (a driver lock aside) or marked as this study's, hold no
    symbolic link among its entries and its subfolders' entries, and hold the toolkit's own files
    as plain files (:func:`rcl_study.store.folders.folder_problem`); no two may overlap. Deeper
    paths are reached only through :mod:`rcl_study.store`, which refuses a link at every step.
    ``report_only``: the records folder is only read, so whose it is does not matter.

    Raises:
        ConfigError: one line naming the folder, or the path inside it, and why.

    """
    src = source or cfg.name
    key = _key(cfg.study.output_dir, f"runs/{cfg.name}", "study.output_dir")
    where = f"{src}: {key}: {cfg.output_dir}"
    _refuse(cfg.output_dir, cfg.name, where, (LOCK,), OWN_FILES, not report_only)
    taken: dict[Path, str] = {}
    for where, key in zip(report_dirs(cfg), _report_keys(cfg), strict=True):
        _refuse(where, cfg.name, f"{src}: {key}: {where}", (), (RECORDS, PLAN))
        _check_pair(cfg.output_dir, where, key, src)
        key = "report.dir" if key == "name" else key
        first = taken.setdefault(Path(where).resolve(), key)
        if first != key:
            raise ConfigError(f"{src}: {key}: its folder {where} is also {first}'s; name another")


def _report_keys(cfg: StudyFile) -> list[str]:
    first = _key(cfg.report.dir, f"reports/{cfg.name}", "report.dir")
    return [first, *(f"report.secondary '{s.name}'" for s in cfg.report.secondary)]


def _refuse(
    path: Path, study: str, where: str, keep: tuple, files: tuple, write: bool = True
) -> None:
    p = Path(path).expanduser().resolve()
    why = _place_problem(p, Path(path), where) if write else None
    why = why or folder_problem(path, study, where, keep, files, write)
    if why is not None:
        raise ConfigError(why)


def _place_problem(p: Path, given: Path, where: str) -> str | None:
    """Why the resolved folder ``p`` is no place for a study's files (None: it is)."""
    cwd = Path.cwd().resolve()
    if p == cwd or p in cwd.parents:
        return f"{where} is the working folder or one of its parents; name a subfolder"
    if p == Path.home().resolve() or p == Path(p.anchor):
        return f"{where} is the home folder or the file system root; name a subfolder"
    if p == _TOOLKIT_ROOT or p in _TOOLKIT_ROOT.parents:
        return f"{where} holds the rcl_study checkout; name a subfolder"
    if ".git" in p.parts or ".git" in given.expanduser().parts:
        return f"{where} is inside a git folder (.git); name a folder outside it"
    return None


def _check_pair(records: Path, report: Path, key: str, source: str) -> None:
    """Refuse a records folder and a report folder that are the same or nested."""
    a, b = Path(records).expanduser().resolve(), Path(report).expanduser().resolve()
    if a == b or a in b.parents or b in a.parents:
        raise ConfigError(
            f"{source}: {key if key != 'name' else 'report.dir'}: {report} and study.output_dir "
            f"{records} overlap; give each its own folder"
        )


def report_dirs(cfg: StudyFile) -> list[Path]:
    """The study's report folders: the primary one, then each secondary analysis's."""
    return [cfg.report_dir, *(cfg.secondary_dir(s.name) for s in cfg.report.secondary)]


def _key(given: str | None, default: str, key: str) -> str:
    """The key that named a folder: ``key`` when given, ``name`` for the default (made absolute)."""
    if given and os.path.abspath(os.path.expanduser(given)) != os.path.abspath(default):
        return key
    return "name"


def check_run_folders(cfg: StudyFile, resume: bool, overwrite: bool) -> None:
    """:func:`check_folders`, and refuse a records folder that holds the study unless told how."""
    check_folders(cfg)
    folder = StudyFolder(cfg.output_dir)
    if folder.holds_study() and not (resume or overwrite):
        raise StudyExists(
            f"{cfg.output_dir} already holds this study ({len(folder.records())} trials "
            "recorded); run again with --resume to finish it, or --overwrite to move it aside "
            "and start over"
        )


def check_changes(
    cfg: StudyFile, accept: bool = False, plans: list[TrialPlan] | None = None
) -> None:
    """Refuse to resume when the study file changed what recorded trials compute.

    Each record's ``config_hash`` is compared with the hash of the configuration the current
    study file gives the same trial (its current overrides for a planned trial, the recorded
    ones otherwise, e.g. for search trials); differing keys are named.

    Raises:
        StudyChanged: some recorded trial would now run differently, and ``accept`` is False.

    """
    folder = StudyFolder(cfg.output_dir)
    records = folder.records()
    if accept or not (records or folder.trials_dir.is_dir()):
        return
    if plans is None and cfg.study.kind != "search":
        plans = expand(cfg)
    planned = {p.trial_id: p.overrides for p in plans or []}
    keys: dict[str, None] = {}
    n = 0
    for r in records:
        overrides = planned.get(r.trial_id, r.overrides)
        seed = cfg.train.seed if r.seed is None else r.seed
        try:
            new = to_dict(trial_config(cfg, overrides, seed))
        except ConfigError:
            new = {}
        if r.config_hash == config_hash(new):
            continue
        diff = changed_keys(r.config, new) if new else list(overrides)
        if diff:
            n += 1
            keys.update(dict.fromkeys(diff))
    recorded = {r.trial_id for r in records}
    stale = 0  # trials that ran (a checkpoint or a result in their folder) but have no record
    for p in plans or []:
        old = _folder_config(folder, p.trial_id) if p.trial_id not in recorded else None
        if old is None:
            continue
        try:
            new = to_dict(trial_config(cfg, p.overrides, p.seed))
        except ConfigError:
            continue
        if config_hash(old) != config_hash(new) and (diff := changed_keys(old, new)):
            stale += 1
            keys.update(dict.fromkeys(diff))
    if keys:
        shown = ", ".join(list(keys)[:8]) + (", ..." if len(keys) > 8 else "")
        if not n:
            raise StudyChanged(
                f"{cfg.name}: the study changed since {stale} of its unrecorded trials started "
                f"({shown}); resume with --resume --accept-changes to train them again under "
                "the new configuration, or start over with --overwrite"
            )
        raise StudyChanged(
            f"{cfg.name}: the study changed since {n} of its {len(records)} recorded trials ran "
            f"({shown}); resume with --resume --accept-changes to keep those records as they "
            "are, or start over with --overwrite"
        )


def _folder_config(folder: StudyFolder, trial_id: str) -> dict | None:
    """The configuration ``trials/<id>/config.json`` was written for (None: none readable)."""
    path = folder.trial_dir(trial_id) / "config.json"
    try:
        row = load_json(read_bytes(path, MAX_PLAN_BYTES), MAX_PLAN_BYTES)
    except (OSError, ValueError):  # missing, unreadable, or no plain file (never waited on)
        return None
    config = row.get("config") if isinstance(row, dict) else None
    return config if isinstance(config, dict) else None


def check_study(cfg: StudyFile) -> list[TrialPlan]:
    """Validate what the schema alone cannot (design, grid keys, ranges, baseline); no writes.

    Returns the planned trials of an ablation or grid (``[]`` for a search, whose trials are
    sampled), so that a caller expands the design once.
    """
    check_within(cfg)
    if cfg.study.kind == "search":
        search_distributions(cfg)
        if len(cfg.study.seeds) < 2:
            raise ConfigError(
                f"{cfg.name}: study.seeds: a search selects at the first seed and re-runs its best "
                f"configuration at the others, so it needs at least 2 seeds (got {cfg.study.seeds})"
            )
        if cfg.report.baseline:
            raise ConfigError(
                f"{cfg.name}: report.baseline: a search has no baseline variant (its trials "
                "differ in several keys at once); remove it"
            )
        pack_size(cfg, [])
        return []
    plans = expand(cfg)
    check_parts(cfg, plans)
    variants = list(dict.fromkeys(p.variant for p in plans))
    baseline_variant(cfg, variants)
    for sec in cfg.report.secondary:  # refused now, not when its report is written
        if sec.baseline not in variants:
            raise ConfigError(
                f"{cfg.name}: report.secondary '{sec.name}': baseline '{sec.baseline}' is not a "
                f"variant of this study ({', '.join(variants)})"
            )
    pack_size(cfg, plans)
    return plans


#: the study keys that name a registered part, and its kind
PART_KEYS = {"loss.classification": "losses", "model.arch": "backbones"}


def check_parts(cfg: StudyFile, plans: list[TrialPlan]) -> None:
    """Load every plugin part the study's trials name, so a plugin that fails is one line.

    The package's own parts are checked by name only: loading them would import torch into a
    driver that trains nothing.
    """
    from rcl_study import registry

    base = {"loss.classification": cfg.loss.classification, "model.arch": cfg.model.arch}
    for key, kind in PART_KEYS.items():
        chosen = {base[key], *(p.overrides.get(key) for p in plans)}
        for name in sorted(n for n in chosen if isinstance(n, str) and n != "auto"):
            if name in registry.BUILTINS[kind]:
                continue  # the package's own part: known by its name, loaded where it trains
            try:
                registry.get(kind, name)
            except registry.RegistryError as err:
                raise ConfigError(f"{cfg.name}: {key}: {err}") from None


def check_within(cfg: StudyFile) -> None:
    """``report.within`` needs a two-key grid naming it, whose other key has two values."""
    _, why = within_design(cfg)
    if why:
        raise ConfigError(f"{cfg.name}: report.within: {why}")


def check_machine(cfg: StudyFile) -> None:
    """Refuse trials that need more CPUs or GPUs than this machine has (local Ray only).

    The GPUs are counted (through torch) only where the study asks for one.
    """
    if cfg.train.device == "cuda" and cfg.resources.gpus_per_trial == 0:
        raise ConfigError(
            f"{cfg.name}: train.device: cuda, but resources.gpus_per_trial is 0 (Ray would hide "
            "the GPUs from the trial); give each trial a GPU share or set train.device: auto"
        )
    if cfg.resources.address:
        return  # the cluster is checked when Ray joins it
    gpus = 0
    if cfg.train.device == "cuda" or cfg.resources.gpus_per_trial:
        import torch

        gpus = torch.cuda.device_count()
    if cfg.train.device == "cuda" and gpus == 0:
        raise ConfigError(
            f"{cfg.name}: train.device: cuda, but this machine has no GPU; "
            "set train.device: auto (or cpu), or run with --smoke"
        )
    why = cfg.resources.shortfall(os.cpu_count() or 1, gpus, "this machine")
    if why:
        key = why.split(":", 1)[0]
        raise ConfigError(
            f"{cfg.name}: {why}; lower it (--set {key}=...) or try the study with --smoke"
        )
