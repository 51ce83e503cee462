"""Packs in the study engine: planning, bad input, the local executor, records and resume."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import rcl_study.trainer.pack as pack
from rcl_study.config import ConfigError
from rcl_study.study.packing import make_units, pack_size, plan_units
from rcl_study.study.runner import run_study
from rcl_study.trainer.result import TrialResult, TrialStatus
from rcl_study.trials.design import expand
from rcl_study.trials.folder import RECORDS, StudyFolder
from tests.conftest import TINY_STUDY

#: this file's tiny study: 4 variants x 1 seed through the local executor
TINY_HERE = {
    "name": "tinypack",
    "train": {"progress": False},
    "study": {"seeds": [0], "components": ["balance", "margin"]},
    "resources": {"executor": "local"},
}


def _cfg(tmp_path=None, **sections):
    """This file's tiny study with ``sections`` merged in, recording to ``tmp_path``."""
    out = {}
    if tmp_path is not None:  # the report beside the records: the run ships its records there
        report = str(tmp_path.parent / f"{tmp_path.name}-report")
        out = {"study": {"output_dir": str(tmp_path)}, "report": {"dir": report}}
    return TINY_STUDY.parse(TINY_HERE, out, **sections)


# ------------------------------------------------------------------------------ planning (fast)


def test_units_group_by_seed_and_non_packable_keys():
    cfg = _cfg(study={"seeds": [0, 1], "components": ["balance", "scale", "margin"]})
    plans = expand(cfg)  # 8 variants x 2 seeds
    units = make_units(plans, 3)  # each seed's 8 variants -> packs of 3, 3, 2
    assert sorted(len(u.members) for u in units) == [2, 2, 3, 3, 3, 3]
    for u in units:
        assert len({p.seed for p in u.members}) == 1 and u.pack_id.startswith("pack__s")
    assert sorted(p.trial_id for u in units for p in u.members) == sorted(p.trial_id for p in plans)
    assert all(u.pack_id is None for u in make_units(plans, 1))
    # a grid over a non-packable key never shares a pack
    grid = _cfg(study={"kind": "grid", "grid": {"train.lr": [0.1, 0.2], "loss.scale": [1, 2]}})
    units = make_units(expand(grid), 2)
    assert [sorted(p.overrides["train.lr"] for p in u.members) for u in units] == [
        [0.1, 0.1],
        [0.2, 0.2],
    ]


def test_partly_recorded_pack_plans_only_missing_members():
    cfg = _cfg(resources={"pack": 4})
    plans = expand(cfg)
    units = plan_units(cfg, plans, plans[2:])
    assert [[p.trial_id for p in u.members] for u in units] == [[p.trial_id for p in plans[2:]]]


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"resources": {"pack": 5}}, "5 members per pack, but at most 4"),
        (
            {"study": {"kind": "grid", "grid": {"train.lr": [0.1, 0.2]}}, "resources": {"pack": 2}},
            "at most 1",
        ),
        (
            {
                "study": {"kind": "search", "space": {"loss.scale": {"low": 1, "high": 2}}},
                "resources": {"pack": 2},
            },
            "search",
        ),
    ],
)
def test_packs_that_cannot_be_formed_name_resources_pack(sections, message):
    cfg = _cfg(**sections)
    plans = [] if cfg.study.kind == "search" else expand(cfg)
    with pytest.raises(ConfigError, match=f"resources.pack: .*{message}"):
        pack_size(cfg, plans)


def test_auto_packs_on_cpu_only_to_keep_slots_busy(monkeypatch):
    import rcl_study.study.packing as packing

    cfg = _cfg(
        study={"seeds": [0, 1], "components": ["balance", "scale", "margin"]},
        resources={"executor": "ray", "pack": "auto"},
        train={"device": "cpu"},
    )
    plans = expand(cfg)
    monkeypatch.setattr(packing.os, "cpu_count", lambda: 2)
    assert pack_size(cfg, plans) == 8  # 2 seed groups, 2 slots: one pack of 8 per slot
    monkeypatch.setattr(packing.os, "cpu_count", lambda: 8)
    assert pack_size(cfg, plans) == 2  # 8 slots: 4 packs per group
    monkeypatch.setattr(packing.os, "cpu_count", lambda: 64)
    assert pack_size(cfg, plans) == 1  # every trial has a slot: nothing to gain
    local = _cfg(study={"seeds": [0, 1]}, resources={"pack": "auto"}, train={"device": "cpu"})
    assert pack_size(local, expand(local)) == 4  # one slot: whole groups


def test_bad_pack_on_the_command_line_is_exit_2(tmp_path, tiny_study, cli):
    path = tiny_study.write(tmp_path, TINY_HERE, filename="s.yaml")
    out = cli.run(path, "--dry-run", "--set", "resources.pack=9", timeout=300)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "resources.pack" in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ local executor (one process)


def test_local_packed_study_records_equal_unpacked(tmp_path):
    packed = run_study(_cfg(tmp_path / "p", resources={"pack": 4}), progress=False)
    alone = run_study(_cfg(tmp_path / "u", resources={"pack": 1}), progress=False)
    assert len(packed) == len(alone) == 4
    pid = {r.pack for r in packed}
    assert len(pid) == 1 and pid.pop().startswith("pack__s0__")
    assert {r.pack for r in alone} == {None}
    by_id = {r.trial_id: r for r in alone}
    for r in packed:
        u = by_id[r.trial_id]
        assert r.status == u.status == "ok"
        for section in ("loss", "train", "model", "data"):
            assert r.config[section] == u.config[section], section
        assert r.overrides == u.overrides
        for k in ("top1", "balanced_acc", "loss", "compactness"):
            assert r.metrics[k] == pytest.approx(u.metrics[k], abs=1e-6), k


def test_local_resume_trains_only_missing_members_and_failures_are_recorded(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, resources={"pack": 4})
    first = {r.trial_id: r for r in run_study(cfg, progress=False)}
    # forget two members, as if the study had stopped before they were recorded
    keep = [r for r in StudyFolder(tmp_path).read_rows()[0] if r["variant"] in ("none", "balance")]
    (tmp_path / RECORDS).write_text("".join(json.dumps(r) + "\n" for r in keep))
    for r in first.values():
        if r.variant not in ("none", "balance"):
            (tmp_path / "trials" / r.trial_id / "result.json").unlink()
    trained = []
    real = pack.train_pack

    def spy(cfgs, names, *args, **kwargs):
        trained.append(list(names))
        return real(cfgs, names, *args, **kwargs)

    monkeypatch.setattr(pack, "train_pack", spy)
    again = {r.trial_id: r for r in run_study(cfg, resume=True, progress=False)}
    assert trained == [["margin__s0", "balance+margin__s0"]]
    assert again.keys() == first.keys()
    for tid, r in again.items():
        assert r.metrics["loss"] == pytest.approx(first[tid].metrics["loss"], abs=1e-6)

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(pack, "train_pack", boom)
    failed = run_study(_cfg(tmp_path / "f", resources={"pack": 4}), progress=False)
    assert [r.status for r in failed] == ["failed"] * 4
    assert all(r.reason == "RuntimeError: out of memory (simulated)" for r in failed)


def test_local_executor_never_imports_ray(tmp_path, tiny_study):
    path = tiny_study.write(
        tmp_path,
        TINY_HERE,
        filename="s.yaml",
        study={"output_dir": str(tmp_path / "out")},
        report={"dir": str(tmp_path / "report"), "bootstrap": 100},
    )
    code = (
        "import sys; from rcl_study.run import main; rc = main([sys.argv[1], '--no-progress']);"
        "assert 'ray' not in sys.modules, 'ray was imported'; sys.exit(rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    records = StudyFolder(tmp_path / "out").read_rows()[0]
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
    assert (tmp_path / "report" / "index.md").exists()


def test_unit_with_a_stored_member_trains_the_rest_in_its_own_folder(tmp_path, monkeypatch):
    from rcl_study.study.execute import Resolver, train_unit
    from rcl_study.trials.records import config_hash

    cfg = _cfg(tmp_path, resources={"pack": 4})
    unit = plan_units(cfg, expand(cfg), expand(cfg))[0]
    stored = unit.members[0].trial_id
    (tmp_path / "trials" / stored).mkdir(parents=True)
    # a stored result is reused only under its trial's configuration
    own = config_hash(Resolver(cfg)(unit.members[0])[1])
    row = {"status": "ok", "config_hash": own}
    (tmp_path / "trials" / stored / "result.json").write_text(json.dumps(row))
    seen = []

    def spy(cfgs, names, report=None, *, workdir=None, log=None, budget=None, config_hashes=None):
        seen.append((list(names), Path(workdir).name))
        return [TrialResult(status=TrialStatus.OK) for _ in names]

    monkeypatch.setattr(pack, "train_pack", spy)
    train_unit(unit, Resolver(cfg), StudyFolder(tmp_path), None, 1)
    assert seen == [([m.trial_id for m in unit.members[1:]], f"{unit.pack_id}-3of4")]
