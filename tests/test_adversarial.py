"""Adversarial inputs (issue 12): study files, data files and folders a user may be handed.

Each table row is one case; adding a case is one line. Every bad input must end in exit 2 (or a
``DataError``) with ONE line naming the file and the key or array, no traceback, and nothing
written or deleted.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import yaml

from rcl_study import run
from rcl_study.config import DataConfig
from rcl_study.data import DataError, load_data
from tests.conftest import DROP, TINY_STUDY

ROOT = Path(__file__).resolve().parents[1]
#: the tiny study as this file's cases start from: one step, two trials (balance off and on)
BASE: dict[str, Any] = TINY_STUDY(
    name="adv",
    data={"test_limit": DROP},
    train={"max_steps_per_epoch": 1, "warmup_epochs": DROP},
    loss={"scale": 1.2},
    study={"components": ["balance"], "seeds": [0]},
)
GRID = {"kind": "grid", "seeds": [0], "grid": {"loss.scale": [1.0, 2.0]}}
SEARCH = {"kind": "search", "seeds": [0, 1], "n_trials": 2, "space": {}}


def study(**dotted: Any) -> str:
    """BASE as YAML with dotted keys replaced (``study=...`` replaces a whole section)."""
    raw = json.loads(json.dumps(BASE))
    for key, value in dotted.items():
        node = raw
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return yaml.safe_dump(raw, sort_keys=False)


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


# ------------------------------------------------------------------------------- data files


def _npz(path: Path, **arrays: Any) -> Path:
    rng = np.random.default_rng(0)
    base = {
        "train_x": rng.integers(0, 256, (20, 8, 8, 1), dtype=np.uint8),
        "train_y": np.repeat(np.arange(2), 10),
        "test_x": rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8),
        "test_y": np.array([0, 1, 0, 1]),
    }
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def _lying_npz(path: Path) -> Path:
    """An .npz whose ``train_y`` header declares 10**12 labels but holds 16 bytes."""
    _npz(path)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)}
    )
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["train_y.npy"] = buf.getvalue() + b"\0" * 16
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return path


def _idx(path: Path, arr: np.ndarray, dims: tuple[int, ...] | None = None) -> Path:
    dims = dims or arr.shape
    head = struct.pack(">HBB", 0, 8, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())
    return path


def _fashion(root: Path, **replace: Any) -> Path:
    raw = root / "raw"
    raw.mkdir(parents=True)
    y = np.repeat(np.arange(10), 3)
    files = {
        "train-images-idx3-ubyte.gz": np.zeros((30, 28, 28)),
        "train-labels-idx1-ubyte.gz": y,
        "t10k-images-idx3-ubyte.gz": np.zeros((10, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(10),
    }
    for name, arr in files.items():
        spec = replace.get(name.split("-idx")[0].replace("-", "_"))
        if spec is not None:
            arr, dims = spec if isinstance(spec, tuple) else (spec, None)
            _idx(raw / name, arr, dims)
        else:
            _idx(raw / name, arr)
    return root


class _Boom:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def _cifar(root: Path, batch: Any = None, labels: Any = None) -> Path:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {
            "data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
            "labels": np.repeat(np.arange(10), 2).tolist(),
        }
        obj = d
        if name == "data_batch_2" and batch is not None:
            obj = batch(root) if callable(batch) else batch
        elif name == "data_batch_2" and labels is not None:
            obj = {**d, "labels": labels}
        with open(base / name, "wb") as f:
            pickle.dump(obj, f)
    return root


def _list_root(root: Path, train_lines: str, make_images: bool = True) -> Path:
    from PIL import Image

    (root / "img").mkdir(parents=True)
    if make_images:
        for i in range(4):
            Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(root / "img" / f"{i}.png")
    (root / "train.txt").write_text(train_lines)
    (root / "test.txt").write_text("img/0.png 0\nimg/1.png 1\n")
    return root


class DataCase(NamedTuple):
    """One bad data file: how to build it under a folder, the DataConfig keys, the phrases."""

    name: str
    build: Any  # (folder) -> dict of DataConfig keys
    needles: tuple[str, ...]


def _arrays(**arrays: Any):
    return lambda d: {
        "dataset": "arrays",
        "path": str(_npz(d / "bad.npz", **arrays)),
        "imbalance_ratio": 1,
    }


_LIST = {
    "dataset": "imagenet_lt",
    "train_list": "train.txt",
    "test_list": "test.txt",
    "image_size": 16,
}
_IMG = np.zeros((20, 8, 8, 1), np.uint8)

DATA_CASES = [
    DataCase("label of 1e9", _arrays(train_y=np.array([0] * 19 + [10**9])), ("bad.npz", "train_y")),
    DataCase(
        "label of 2**63-1 (uint64)",
        _arrays(train_y=np.array([0] * 19 + [2**63 - 1], np.uint64)),
        ("train_y",),
    ),
    DataCase("negative label", _arrays(train_y=np.array([-1] + [0] * 19)), ("train_y", "-1")),
    DataCase("2-D labels", _arrays(train_y=np.zeros((20, 2), np.int64)), ("train_y", "1-D")),
    DataCase("float labels", _arrays(train_y=np.linspace(0, 1, 20)), ("train_y", "integer")),
    DataCase("bool labels", _arrays(train_y=np.arange(20) % 2 == 0), ("train_y", "integer")),
    DataCase(
        "empty arrays",
        _arrays(train_x=_IMG[:0], train_y=np.zeros(0, np.int64)),
        ("train_x", "empty"),
    ),
    DataCase("length mismatch", _arrays(train_y=np.zeros(19, np.int64)), ("train_y", "19")),
    DataCase(
        "4 channels", _arrays(train_x=np.zeros((20, 8, 8, 4), np.uint8)), ("train_x", "channels")
    ),
    DataCase("1x1 images", _arrays(train_x=np.zeros((20, 1, 1, 3), np.uint8)), ("train_x", "1x1")),
    DataCase("flat images", _arrays(train_x=np.zeros((20, 64), np.uint8)), ("train_x", "shape")),
    DataCase("float images", _arrays(train_x=np.zeros((20, 8, 8, 1))), ("train_x", "uint8")),
    DataCase(
        "train/test sizes differ", _arrays(test_x=np.zeros((4, 9, 9, 1), np.uint8)), ("test_x",)
    ),
    DataCase(
        "more classes than images",
        _arrays(train_y=np.array([0] * 19 + [50])),
        ("classes", "training images"),
    ),
    DataCase(
        "test label beyond train", _arrays(test_y=np.array([0, 1, 0, 7])), ("no training images",)
    ),
    DataCase(
        "object array",
        lambda d: {"dataset": "arrays", "path": str(_obj_npz(d)), "imbalance_ratio": 1},
        ("bad.npz",),
    ),
    DataCase(
        "header lies about size",
        lambda d: {
            "dataset": "arrays",
            "imbalance_ratio": 1,
            "path": str(_lying_npz(d / "bad.npz")),
        },
        ("train_y", "declares"),
    ),
    DataCase(
        "not a zip",
        lambda d: {
            "dataset": "arrays",
            "imbalance_ratio": 1,
            "path": str(_write(d / "bad.npz", b"PK\x03\x04junk")),
        },
        ("bad.npz", "corrupt"),
    ),
    DataCase(
        "num_classes 1e9", lambda d: {**_arrays()(d), "num_classes": 10**9}, ("data.num_classes",)
    ),
    DataCase("bad mask", _arrays(test_mask=np.ones(3, bool)), ("test_mask",)),
    # CIFAR pickles
    DataCase(
        "pickle runs os.system",
        lambda d: _cfg10(_cifar(d, batch=lambda r: {"data": _Boom(r / "PWNED")})),
        ("data_batch_2", "refused"),
    ),
    DataCase(
        "pickle runs eval",
        lambda d: _cfg10(_cifar(d, batch={"data": _Eval()})),
        ("data_batch_2", "refused"),
    ),
    DataCase(
        "pickle is a list", lambda d: _cfg10(_cifar(d, batch=[1, 2])), ("data_batch_2", "dict")
    ),
    DataCase(
        "CIFAR int64 pixels",
        lambda d: _cfg10(
            _cifar(d, batch={"data": np.zeros((20, 3072), np.int64), "labels": [0] * 20})
        ),
        ("data_batch_2", "uint8"),
    ),
    DataCase(
        "CIFAR label 10",
        lambda d: _cfg10(_cifar(d, labels=[10] * 20)),
        ("data_batch_2", "labels", "10"),
    ),
    DataCase(
        "CIFAR float labels",
        lambda d: _cfg10(_cifar(d, labels=[0.5] * 20)),
        ("data_batch_2", "labels"),
    ),
    DataCase(
        "CIFAR string labels",
        lambda d: _cfg10(_cifar(d, labels=["a"] * 20)),
        ("data_batch_2", "labels"),
    ),
    DataCase(
        "CIFAR labels short", lambda d: _cfg10(_cifar(d, labels=[0] * 19)), ("data_batch_2", "19")
    ),
    # IDX (Fashion-MNIST)
    DataCase(
        "IDX header declares 1e9 labels",
        lambda d: _fashion_cfg(_fashion(d, train_labels=(np.zeros(30), (10**9,)))),
        ("train-labels", "header"),
    ),
    DataCase(
        "IDX 2-D",
        lambda d: _fashion_cfg(_fashion(d, train_labels=np.zeros((30, 2)))),
        ("train-labels", "dimensions"),
    ),
    DataCase(
        "IDX label 200",
        lambda d: _fashion_cfg(_fashion(d, train_labels=np.full(30, 200))),
        ("train-labels", "200"),
    ),
    DataCase(
        "IDX 1x1 images",
        lambda d: _fashion_cfg(_fashion(d, train_images=np.zeros((30, 1, 1)))),
        ("train-images", "1x1"),
    ),
    DataCase(
        "IDX label count mismatch",
        lambda d: _fashion_cfg(_fashion(d, train_labels=np.zeros(29))),
        ("train-labels", "29"),
    ),
    # list files
    DataCase(
        "list label 1e30",
        lambda d: {
            **_LIST,
            "root": str(_list_root(d, "img/0.png 0\nimg/1.png 1000000000000000000000000000000\n")),
        },
        ("train.txt:2",),
    ),
    DataCase(
        "list label 1e9",
        lambda d: {**_LIST, "root": str(_list_root(d, "img/0.png 0\nimg/1.png 1000000000\n"))},
        ("train.txt:2",),
    ),
    DataCase(
        "list names a missing image",
        lambda d: {**_LIST, "root": str(_list_root(d, "img/0.png 0\nimg/9.png 1\n"))},
        ("train.txt", "img/9.png"),
    ),
    DataCase(
        "list file not UTF-8",
        lambda d: {**_LIST, "root": str(_list_root(d, "img/0.png 0\n"))} | _latin1(d),
        ("train.txt", "UTF-8"),
    ),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _latin1(d: Path) -> dict:
    (d / "train.txt").write_bytes(b"img/caf\xe9.png 0\n")
    return {}


def _obj_npz(d: Path) -> Path:
    path = d / "bad.npz"
    arr = np.empty(20, object)
    np.savez(path, train_x=_IMG, train_y=arr, test_x=_IMG[:4], test_y=np.array([0, 1, 0, 1]))
    return path


def _cfg10(root: Path) -> dict:
    return {"dataset": "cifar10_lt", "root": str(root), "imbalance_ratio": 1}


def _fashion_cfg(root: Path) -> dict:
    return {"dataset": "fashion_mnist_lt", "root": str(root), "imbalance_ratio": 1}


@pytest.mark.parametrize("case", DATA_CASES, ids=[c.name for c in DATA_CASES])
def test_bad_data_file(case: DataCase, tmp_path):
    cfg = DataConfig(**{"val_per_class": 0, **case.build(tmp_path)})  # the files, not the split
    with pytest.raises(DataError) as err:
        load_data(cfg)
    msg = str(err.value)
    assert "\n" not in msg
    for needle in case.needles:
        assert needle in msg.replace(str(tmp_path), "<tmp>"), msg  # not in the tmp name
    assert not (tmp_path / "PWNED").exists()  # nothing from a pickle ran


def test_bad_data_through_the_command_names_study_and_array(tmp_path, monkeypatch, capsys):
    _npz(tmp_path / "bad.npz", train_y=np.array([0] * 19 + [10**9]))
    path = tmp_path / "study.yaml"
    path.write_text(study(data={"dataset": "arrays", "path": "bad.npz", "imbalance_ratio": 1}))
    monkeypatch.chdir(tmp_path)
    assert run.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "bad.npz" in err
    assert "train_y" in err and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("suffix", [".npz", ".npz.xz"])
def test_good_arrays_still_load(tmp_path, suffix):
    import lzma

    path = _npz(tmp_path / "ok.npz")
    if suffix == ".npz.xz":
        path = _write(tmp_path / "ok.npz.xz", lzma.compress(path.read_bytes()))
    d = load_data(DataConfig(dataset="arrays", path=str(path), imbalance_ratio=1, val_per_class=2))
    assert d.num_classes == 2 and d.train_counts.tolist() == [8, 8] and len(d.val_y) == 4


REAL_CIFAR = next(
    (
        p
        for p in (ROOT.parent / "shared" / "data" / "cifar10", Path("/work/shared/data/cifar10"))
        if (p / "cifar-10-batches-py").exists()
    ),
    None,
)


@pytest.mark.skipif(REAL_CIFAR is None, reason="no real CIFAR-10 copy on this machine")
def test_real_cifar10_loads_through_the_restricted_unpickler():
    cfg = DataConfig(dataset="cifar10_lt", root=str(REAL_CIFAR), imbalance_ratio=100)
    d = load_data(cfg.model_copy(update={"val_per_class": 0}))
    assert d.train_counts.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickle_protocols_load(tmp_path, protocol):
    """Arrays pickled with protocols 2 (``_codecs``), 4 (``_reconstruct``), 5 (``_frombuffer``)."""
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {
            "data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
            "labels": list(range(10)),
            b"batch_label": b"x",
            "filenames": ["a.png"] * 10,
        }
        (base / name).write_bytes(pickle.dumps(d, protocol=protocol))
    data = load_data(
        DataConfig(dataset="cifar10_lt", root=str(tmp_path), imbalance_ratio=1, val_per_class=0)
    )
    i = int(data.train_index[0])
    row = pickle.loads((base / f"data_batch_{i // 10 + 1}").read_bytes())["data"][i % 10]
    assert data.train_x[0, 0, 0].tolist() == [row[0], row[1024], row[2048]]


# ---------------------------------------------------------------------------------- folders


@pytest.fixture
def no_ray(monkeypatch):
    """Stand-ins for the Ray adapter: a folder test must never start trials."""
    from rcl_study.study import ray_tune as tune

    monkeypatch.setattr(tune.RayExecutor, "start", lambda self, cfg: None)
    monkeypatch.setattr(tune.RayExecutor, "run", lambda *a, **k: None)
    monkeypatch.setattr(tune.RayExecutor, "search", lambda *a, **k: None)
    monkeypatch.setattr(tune.RayExecutor, "stop", lambda self: None)


def _record(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_text(json.dumps({"trial_id": "x", "status": "ok"}) + "\n")


class FolderCase(NamedTuple):
    """A study whose folders point somewhere they must not; ``setup`` fills the sandbox."""

    name: str
    dotted: dict[str, Any]
    setup: Any  # (cwd) -> None
    needle: str


FOLDER_CASES = [
    FolderCase("name .. with records in cwd", {"name": ".."}, lambda c: _record(c), "name"),
    FolderCase(
        "output_dir . with records",
        {"study__output_dir": "."},
        lambda c: _record(c),
        "study.output_dir",
    ),
    FolderCase(
        "output_dir .. (a parent)",
        {"study__output_dir": ".."},
        lambda c: _record(c.parent),
        "study.output_dir",
    ),
    FolderCase(
        "output_dir holds unrelated files",
        {"study__output_dir": "mine"},
        lambda c: _record(c / "mine"),
        "did not write",
    ),
    FolderCase(
        "report.dir .",
        {"report": {"dir": "."}},
        lambda c: _claimed(c / "runs" / "adv", "adv"),
        "report.dir",
    ),
    FolderCase(
        "report.dir holds unrelated files",
        {"report": {"dir": "mine"}},
        lambda c: _record(c / "runs" / "adv"),
        "did not write",
    ),
    FolderCase(
        "output_dir of another study",
        {"study__output_dir": "other"},
        lambda c: _marked(c / "other", "someone"),
        "belongs to study 'someone'",
    ),
]


def _claimed(folder: Path, name: str) -> None:
    _record(folder)
    (folder / ".rcl_study").write_text(json.dumps({"study": name}))


def _marked(folder: Path, name: str) -> None:
    _record(folder)
    (folder / ".rcl_study").write_text(json.dumps({"study": name}))
    (folder / "SENTINEL").unlink()


@pytest.mark.parametrize("case", FOLDER_CASES, ids=[c.name for c in FOLDER_CASES])
def test_overwrite_never_deletes_outside_the_study(case, tmp_path, monkeypatch, capsys, no_ray):
    cwd = tmp_path / "sandbox" / "work"
    cwd.mkdir(parents=True)
    for folder in (tmp_path / "sandbox", cwd, cwd / "mine", cwd / "other"):
        folder.mkdir(exist_ok=True)
        (folder / "SENTINEL").write_text("keep me")
    case.setup(cwd)
    path = cwd / "study.yaml"
    path.write_text(study(**case.dotted))
    monkeypatch.chdir(cwd)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert run.main([str(path), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err, err
    assert case.needle in err.replace(str(tmp_path), "<tmp>"), err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == files


def test_overwrite_moves_the_old_study_aside_and_deletes_nothing(tmp_path, monkeypatch):
    from rcl_study.config import parse_study
    from rcl_study.store import atomic_write_text
    from rcl_study.study.runner import prepare_folder
    from rcl_study.trials.folder import StudyFolder

    monkeypatch.chdir(tmp_path)
    cfg = parse_study(yaml.safe_load(study()))
    out = prepare_folder(cfg, overwrite=False)
    marker = json.loads((out / ".rcl_study").read_text())
    assert marker == {"study": "adv"}
    StudyFolder(out).append({"trial_id": "x", "status": "ok"})  # through the toolkit's writers
    atomic_write_text(out / "trials" / "t" / "config.json", "{}")
    (out / "notes.txt").write_text("mine")
    (out / "records.damaged.jsonl").write_text("{")  # a toolkit-like name the user made
    (out / "study.lock").write_text("1 host")
    rep = tmp_path / "reports" / "adv"
    rep.mkdir(parents=True)
    (rep / ".rcl_study").write_text(json.dumps({"study": "adv", "manifest": ".rcl_study.files"}))
    atomic_write_text(rep / "index.md", "old")
    (rep / "my.txt").write_text("mine")
    prepare_folder(cfg, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [".rcl_study"]
    assert sorted(p.name for p in rep.iterdir()) == []
    (old_out,) = out.parent.glob("adv.replaced-*")
    (old_rep,) = rep.parent.glob("adv.replaced-*")
    assert sorted(p.name for p in old_out.iterdir()) == [
        ".rcl_study",
        "notes.txt",
        "records.damaged.jsonl",
        "records.jsonl",
        "study.lock",
        "trials",
    ]
    assert (old_out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in old_rep.iterdir()) == [".rcl_study", "index.md", "my.txt"]


def test_folder_from_before_markers_is_refused(tmp_path, monkeypatch):
    from rcl_study.config import ConfigError, parse_study
    from rcl_study.study.checks import check_folders, check_run_folders

    monkeypatch.chdir(tmp_path)
    cfg = parse_study(yaml.safe_load(study()))
    _record(tmp_path / "runs" / "adv")
    (tmp_path / "runs" / "adv" / "plan.json").write_text("{}")
    with pytest.raises(ConfigError, match="did not write"):
        check_run_folders(cfg, resume=True, overwrite=False)
    with pytest.raises(ConfigError, match="did not write"):
        check_folders(cfg)
    assert not (tmp_path / "runs" / "adv" / ".rcl_study").exists()
