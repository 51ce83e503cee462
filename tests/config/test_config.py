"""Study files: strict schema, overrides, and the one-line errors of the main command."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from rcl_study import run
from rcl_study.config import ConfigError, load_study, parse_study, to_dict

ROOT = Path(__file__).resolve().parents[2]
GOOD = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())


def _write(tmp_path, data, name="study.yaml"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def _with(path, value):
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    node = raw
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return raw


BAD = [
    ("not yaml", "name: [unclosed", "not valid YAML"),
    ("not a mapping", "- a\n- b\n", "must be a YAML mapping"),
    ("unknown top key", _with("lsos", {}), "unknown key 'lsos'"),
    (
        "unknown nested key",
        _with("loss.scael", 2.0),
        "unknown key 'loss.scael' (did you mean 'scale'?)",
    ),
    (
        "unknown deep key",
        _with("study.space", {"loss.scale": {"lo": 1, "high": 2}}),
        "unknown key 'study.space.loss.scale.lo' (did you mean 'low'?)",
    ),
    ("wrong type", _with("train.epochs", "many"), "train.epochs"),
    ("temperature <= 0", _with("loss.temperature", 0), "loss.temperature"),
    ("scale <= 0", _with("loss.scale", 0), "loss.scale"),
    ("margin < 0", _with("loss.margin", -0.5), "loss.margin"),
    ("imbalance < 1", _with("data.imbalance_ratio", 0.5), "data.imbalance_ratio"),
    ("epochs < 1", _with("train.epochs", 0), "train.epochs"),
    ("empty seeds", _with("study.seeds", []), "study.seeds"),
    ("unknown dataset", _with("data.dataset", "cifar10lt"), "did you mean 'cifar10_lt'?"),
    ("unknown preset", _with("loss.preset", "bcl+rlc"), "did you mean 'bcl+rcl'?"),
    (
        "unknown classifier",
        _with("model.classifier", "cosin"),
        "model.classifier: Input should be 'linear' or 'cosine', got 'cosin' (did you mean",
    ),
    ("unknown scale_on", _with("loss.scale_on", "view"), "loss.scale_on: Input should be 'all' or"),
    (
        "unknown component",
        _with("study.components", ["balance", "margn"]),
        "did you mean 'margin'?",
    ),
    ("empty grid", {**GOOD, "study": {"kind": "grid", "seeds": [0]}}, "study.grid"),
    (
        "grid key not in schema",
        {
            **_with("study.kind", "grid"),
            "study": {"kind": "grid", "seeds": [0], "grid": {"loss.scael": [1, 2]}},
        },
        "study.grid: unknown key 'loss.scael' (did you mean 'scale'?)",
    ),
    (
        "search low > high",
        {
            **GOOD,
            "study": {
                "kind": "search",
                "seeds": [0],
                "space": {"loss.scale": {"low": 3, "high": 1}},
            },
        },
        "study.space.loss.scale: low (3.0) is greater",
    ),
    ("too many GPUs", _with("resources.gpus_per_trial", 64), "resources.gpus_per_trial"),
    (
        "two DDP ranks on one GPU",
        {**GOOD, "resources": {"gpus_per_trial": 1, "workers_per_trial": 2}},
        "resources: workers_per_trial (2) with gpus_per_trial 1 would put 2",
    ),
    (
        "two DDP ranks on half a GPU",
        {**GOOD, "resources": {"gpus_per_trial": 0.5, "workers_per_trial": 2}},
        "ranks on one GPU",
    ),
]


@pytest.mark.parametrize("label,data,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_study_exits_2_with_one_line(label, data, needle, tmp_path, monkeypatch, capsys):
    path = _write(tmp_path, data)
    monkeypatch.chdir(tmp_path)
    assert run.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err
    assert needle in err, err
    assert not (tmp_path / "reports").exists()
    assert not (tmp_path / "runs").exists()


def test_missing_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run.main(["nope.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: nope.yaml: study file not found"


def test_bad_set_key(tmp_path, monkeypatch, capsys):
    path = _write(tmp_path, GOOD)
    monkeypatch.chdir(tmp_path)
    assert run.main([str(path), "--set", "loss.scal=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--set: unknown key 'loss.scal' (did you mean 'scale'?)" in err
    assert not (tmp_path / "reports").exists()


def test_no_traceback_from_the_real_command(tmp_path):
    path = _write(tmp_path, _with("loss.temperature", -1))
    proc = subprocess.run(
        [sys.executable, "-m", "rcl_study.run", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "loss.temperature" in proc.stderr


def test_overrides_apply_and_parse_yaml_values(tmp_path):
    path = _write(tmp_path, GOOD)
    cfg = load_study(path, ["loss.scale=2.5", "study.seeds=[3, 4]", "train.progress=false"])
    assert cfg.loss.scale == 2.5 and cfg.study.seeds == [3, 4] and cfg.train.progress is False


def test_config_is_frozen_and_defaults_resolve():
    cfg = parse_study({"name": "x"})
    assert cfg.model.classifier == "linear" and cfg.loss.scale_on == "all"
    assert cfg.output_dir == Path("runs/x") and cfg.report_dir == Path("reports/x")
    with pytest.raises(ValidationError):
        cfg.loss.scale = 3  # frozen


def test_every_shipped_study_validates():
    for path in sorted((ROOT / "studies").glob("*.yaml")):
        cfg = load_study(path)
        assert cfg.name == path.stem


def test_parse_study_errors_are_one_line():
    with pytest.raises(ConfigError) as err:
        parse_study({"name": "x", "train": {"epochs": 0, "lr": -1}}, "f.yaml")
    assert "\n" not in str(err.value) and str(err.value).startswith("f.yaml: ")


def _recipe_keys() -> list[tuple[str, object]]:
    """(key, value) pairs of the `key` column of docs/recipe.md's table."""
    pairs = []
    for line in (ROOT / "docs" / "recipe.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].isdigit():
            for key, value in re.findall(r"`([a-z_]+\.[a-z_]+)` = (\[[^\]]*\]|[^,]+)", cells[5]):
                pairs.append((key, yaml.safe_load(value.strip())))
    return pairs


#: recipe keys whose CIFAR value the CIFAR studies set: the default stays the one every
#: other study was written for (docs/recipe.md, "Where the CIFAR defaults live")
CIFAR_STUDY_KEYS = {"train.schedule": "cosine", "train.milestones": None}


def test_recipe_table_matches_config():
    # docs/recipe.md cites a source for each value (BCL-derived CIFAR code: lr 0.15 at batch 256,
    # ConCutMix run_files/cifar10_imb100.sh L3, L7); the shipped study and the defaults follow it
    pairs = _recipe_keys()
    assert len(pairs) >= 12
    study = to_dict(load_study(ROOT / "studies" / "reproduce_bcl.yaml"))
    defaults = to_dict(parse_study({"name": "x"}))
    for key, value in pairs:
        section, name = key.split(".")
        assert study[section][name] == value, f"studies/reproduce_bcl.yaml {key}"
        if key in CIFAR_STUDY_KEYS:  # the CIFAR studies set these; the defaults stay general
            assert defaults[section][name] == CIFAR_STUDY_KEYS[key], f"config default {key}"
            continue
        if (
            section == "train"
            or name.startswith("proj_")
            or key in ("loss.temperature", "loss.tau_la")
        ):
            assert defaults[section][name] == value, f"config default {key}"
