"""Loading data files (``rcl_study.data.load`` and the readers of each format).

Each row of DATA_CASES is one bad data file (arrays, IDX, CIFAR pickles, image lists): it ends in
a ``DataError`` with ONE line naming the file and the array, no traceback; through the command it
also names the study. Good files in every supported format still load.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from rcl_study import run
from rcl_study.config import DataConfig
from rcl_study.data import DataError, load_data
from tests.helpers.study_text import study

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize("workers, pools", [(0, []), (1, []), (3, [3])])
def test_data_workers_sets_the_decoding_threads_of_a_list_dataset(
    tmp_path, monkeypatch, workers, pools
):
    """``data.workers`` is honoured: that many decoding threads, the same pixels either way."""
    import rcl_study.data.types as types_mod

    seen: list[int] = []
    real_pool = types_mod.ThreadPoolExecutor

    def counting_pool(max_workers):
        seen.append(max_workers)
        return real_pool(max_workers=max_workers)

    monkeypatch.setattr(types_mod, "ThreadPoolExecutor", counting_pool)
    root = _list_root(tmp_path, "img/0.png 0\nimg/1.png 0\nimg/2.png 1\nimg/3.png 1\n")
    cfg = DataConfig(**_LIST, root=str(root), imbalance_ratio=1, val_per_class=0, workers=workers)
    images = load_data(cfg).train_x[np.arange(4)]
    assert seen == pools
    reds = sorted(int(v) for v in images[:, 0, 0, 0])
    assert reds == [0, 40, 80, 120]  # the four images' red channel, decoded in any thread count
