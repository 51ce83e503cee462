"""Reading a study file (``rcl_study.config.reader`` and the schema it validates against).

Each row of STUDY_CASES is one bad study file a user may be handed; adding a case is one line.
Every one ends in exit 2 with ONE line naming the file and the key, no traceback, and nothing
written or deleted; the YAML niceties a user relies on still load.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from rcl_study import run
from tests.helpers.study_text import BASE, study

GRID = {"kind": "grid", "seeds": [0], "grid": {"loss.scale": [1.0, 2.0]}}


SEARCH = {"kind": "search", "seeds": [0, 1], "n_trials": 2, "space": {}}


def space(**ranges: Any) -> str:
    """A search study over ``ranges`` (dotted keys written with ``__`` for ``.``)."""
    return study(study={**SEARCH, "space": {k.replace("__", "."): v for k, v in ranges.items()}})


def bomb(levels: int = 9, width: int = 10) -> str:
    """The 'billion laughs': each level lists the previous one ``width`` times."""
    lines = ["name: adv", "l0: &l0 [" + ",".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


class Case(NamedTuple):
    """One bad study file: its text (or bytes), the phrase the error line must hold, extra argv."""

    name: str
    text: str | bytes
    needle: str
    argv: tuple[str, ...] = ()
    names_file: bool = True


STUDY_CASES = [
    # --- encoding and size
    Case("latin-1 bytes", b"name: caf\xe9\n", "not UTF-8"),
    Case("utf-16 with BOM", "name: adv\n".encode("utf-16"), "UTF-16"),
    Case("utf-16 without BOM", "name: adv\n".encode("utf-16-le"), "UTF-16"),
    Case("NUL byte", b"name: adv\x00\n", "not valid YAML"),
    Case("larger than 1 MiB", "name: adv\n" + "#" * (2 << 20) + "\n", "larger than 1 MiB"),
    Case("empty file", "", "must be a YAML mapping"),
    Case("integer of 5000 digits", "name: adv\ntrain: {epochs: " + "9" * 5000 + "}\n", "YAML"),
    # --- YAML structure
    Case("duplicate top key", study() + "name: other\n", "duplicate key 'name'"),
    Case("duplicate nested key", "name: adv\ntrain:\n  epochs: 1\n  epochs: 2\n", "'epochs'"),
    Case("billion laughs", bomb(), "aliases are expanded"),
    Case("wide alias bomb", bomb(levels=3, width=200), "aliases are expanded"),
    Case("self-referencing list", "name: adv\nx: &a [1, *a]\n", "refers to itself"),
    Case("self-referencing map", "name: adv\nx: &a {k: *a}\n", "refers to itself"),
    Case("deep flow nesting", "name: adv\nx: " + "[" * 50000 + "]" * 50000 + "\n", "deeper"),
    Case("deep map nesting", "name: adv\nx: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "deeper"),
    Case("undefined alias", "name: adv\nx: *nope\n", "not valid YAML"),
    Case("python tag", "name: !!python/object/apply:os.system ['echo x']\n", "not valid YAML"),
    # --- booleans, non-finite numbers, seeds
    Case(
        "epochs: yes", study(train__epochs=True), "train.epochs: expected a number, not a boolean"
    ),
    Case("lr: true", study(train__lr=True), "train.lr: expected a number, not a boolean"),
    Case("lr: .inf", study(train__lr=float("inf")), "train.lr: expected a finite"),
    Case("lr: .nan", study(train__lr=float("nan")), "train.lr: expected a finite"),
    Case("gpus_per_trial: true", study(resources__gpus_per_trial=True), "not a boolean"),
    Case(
        "seeds: [true]", study(study__seeds=[True]), "study.seeds: expected a number, not a boolean"
    ),
    Case("seeds: [1.5]", study(study__seeds=[1.5]), "study.seeds"),
    Case("negative seed", study(study__seeds=[-1]), "study.seeds: a seed must be"),
    Case("seed of 2**32", study(study__seeds=[2**32]), "2**32"),
    Case("train.seed of 2**40", study(train__seed=2**40), "train.seed: a seed"),
    Case("split_seed -1", study(data__split_seed=-1), "data.split_seed: a seed"),
    # --- study design
    Case("duplicate component", study(study__components=["balance", "balance"]), "components"),
    Case("duplicate grid value", study(study={**GRID, "grid": {"loss.scale": [1, 1]}}), "twice"),
    Case("grid over train.seed", study(study={**GRID, "grid": {"train.seed": [0, 1]}}), "seed"),
    Case("grid over name", study(study={**GRID, "grid": {"name": ["a", "b"]}}), "'name'"),
    Case("grid value not a list", study(study={**GRID, "grid": {"loss.scale": 2}}), "grid"),
    Case("grid value boolean", study(study={**GRID, "grid": {"train.lr": [True]}}), "boolean"),
    Case(
        "space in an ablation",
        study(study__space={"loss.scale": {"low": 1, "high": 2}}),
        "kind 'search'",
    ),
    Case("grid in an ablation", study(study__grid={"loss.scale": [1.0]}), "study.grid"),
    Case("sampler in an ablation", study(study__sampler="random"), "study.sampler"),
    Case("components in a grid", study(study={**GRID, "components": ["scale"]}), "components"),
    Case(
        "design in a search",
        space(loss__scale={"low": 1, "high": 2}).replace(
            "n_trials: 2", "n_trials: 2\n  design: add_one_in"
        ),
        "study.design",
    ),
    Case(
        "bad categorical choice",
        space(loss__preset={"type": "categorical", "choices": ["bcl", "nope"]}),
        "preset",
    ),
    Case(
        "duplicate choice",
        space(loss__preset={"type": "categorical", "choices": ["bcl", "bcl"]}),
        "twice",
    ),
    Case("list as a choice", space(loss__scale={"type": "categorical", "choices": [[1]]}), "[1]"),
    Case(
        "int range, fractional",
        space(train__epochs={"type": "int", "low": 1.5, "high": 3}),
        "whole",
    ),
    Case(
        "int log range from 0",
        space(train__epochs={"type": "int", "low": 0, "high": 8, "log": True}),
        "log",
    ),
    Case("infinite bound", space(loss__scale={"low": 1, "high": float("inf")}), "finite"),
    Case("float range on int key", space(train__epochs={"low": 1, "high": 9}), "train.epochs"),
    Case("high end invalid", space(train__momentum={"low": 0.5, "high": 1.0}), "momentum"),
    Case("space over train.seed", space(train__seed={"type": "int", "low": 0, "high": 3}), "seed"),
    Case(
        "search with one seed (selection and report would share it)",
        space(loss__scale={"low": 1, "high": 2}).replace("  - 0\n  - 1\n", "  - 0\n"),
        "study.seeds: a search selects at the first seed",
    ),
    Case("unknown baseline", study(report={"baseline": "nope"}), "report.baseline"),
    Case(
        "baseline in a search",
        space(loss__scale={"low": 1, "high": 2}).replace(
            "name: adv", "name: adv\nreport: {baseline: best}"
        ),
        "report.baseline",
    ),
    # --- names and folders
    Case("name ..", study(name=".."), "name: cannot be dots"),
    Case("name .", study(name="."), "name: cannot be dots"),
    Case("name with slash", study(name="a/b"), "name: String should match"),
    Case("name over 255 bytes", study(name="a" * 300), "name: at most"),
    Case("output_dir .", study(study={**BASE["study"], "output_dir": "."}), "output_dir"),
    Case("output_dir ..", study(study={**BASE["study"], "output_dir": ".."}), "output_dir"),
    Case("report.dir .", study(report={"dir": "."}), "report.dir"),
    Case("report.dir = output_dir", study(report={"dir": "runs/adv"}), "report.dir"),
    # --- machine and command line
    Case("cuda with no GPU share", study(train__device="cuda"), "train.device"),
    Case("trial needs 64 CPUs", study(resources__cpus_per_trial=64), "--smoke"),
    Case("--set without value", study(), "--set", ("--set",), names_file=False),
    Case("--set without =", study(), "--set", ("--set", "train.epochs")),
    Case(
        "--set boolean epochs",
        study(),
        "expected a number, not a boolean",
        ("--set", "train.epochs=yes"),
    ),
    Case(
        "data error names study", study(data={"dataset": "arrays", "path": "nope.npz"}), "nope.npz"
    ),
]


@pytest.mark.parametrize("case", STUDY_CASES, ids=[c.name for c in STUDY_CASES])
def test_bad_study_file(case: Case, tmp_path, monkeypatch, capsys, no_ray):
    path = tmp_path / "study.yaml"
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run.main([str(path), *case.argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and err.startswith("error: ")
    assert case.needle in err.replace(str(tmp_path), "<tmp>"), err  # not in the tmp name
    if case.names_file:
        assert str(path) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_gpu_named_on_a_machine_without_one(tmp_path, monkeypatch, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    path = tmp_path / "study.yaml"
    path.write_text(study(train__device="cuda", resources__gpus_per_trial=1))
    monkeypatch.chdir(tmp_path)
    assert run.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.device: cuda, but this machine has no GPU" in err and str(path) in err


def test_yaml_niceties_still_load(tmp_path):
    """A UTF-8 byte-order mark, anchors, aliases and merge keys are fine."""
    from rcl_study.config import load_study

    text = (
        "\ufeffname: adv\n"
        "model: {<<: {arch: small_cnn, width: 8}, width: 4}\n"
        "study: {kind: ablation, components: &c [balance], seeds: [0, 1]}\n"
        "report: {question: *c}\n"
    )
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Exception, match="report.question"):  # the alias is resolved
        load_study(path)
    path.write_text(text.replace("{question: *c}", "{question: hi}"), encoding="utf-8")
    cfg = load_study(path)
    assert cfg.model.width == 4 and cfg.model.arch == "small_cnn" and cfg.study.seeds == [0, 1]
