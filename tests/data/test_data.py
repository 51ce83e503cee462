"""Long-tail construction, readers on synthetic files of every layout, real CIFAR-10, export."""

import gzip
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rcl_study.config import DataConfig
from rcl_study.data import DataError, class_counts, load_data, long_tail_indices, shot_groups

ROOT = Path(__file__).resolve().parents[2]
REAL_CIFAR = ROOT.parent / "shared" / "data" / "cifar10"


# ------------------------------------------------------------------------ long-tail profiles


@pytest.mark.parametrize(
    "n_max,c,ir,total",
    [
        (5000, 10, 100, 12406),
        (5000, 10, 50, 13996),
        (5000, 10, 10, 20431),
        (500, 100, 100, 10847),
        (500, 100, 50, 12608),
        (500, 100, 10, 19573),
    ],
)
def test_published_totals(n_max, c, ir, total):
    assert sum(class_counts(n_max, c, ir)) == total


def test_cifar10_ir100_counts_and_shot_groups():
    assert class_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    groups = shot_groups(class_counts(500, 100, 100))
    assert [len(groups[g]) for g in ("many", "medium", "few")] == [35, 35, 30]
    # boundaries: many > 100, medium 20..100 inclusive, few < 20
    g = shot_groups([101, 100, 20, 19])
    assert g["many"].tolist() == [0] and g["medium"].tolist() == [1, 2] and g["few"].tolist() == [3]


def test_step_profile_and_ir_one():
    assert class_counts(100, 4, 10, "step") == [100, 100, 10, 10]
    assert class_counts(100, 5, 4, "step") == [100, 100, 25, 25, 25]
    assert class_counts(7, 3, 1) == [7, 7, 7]


def test_tail_with_zero_images_is_an_error():
    with pytest.raises(ValueError, match="0 images"):
        class_counts(50, 10, 100)
    with pytest.raises(ValueError, match=">= 1"):
        class_counts(50, 10, 0.5)


def test_ldam_drw_convention_and_seeds():
    labels = np.repeat(np.arange(3), 20)
    np.random.RandomState(1).shuffle(labels)
    counts = [20, 8, 3]
    got = long_tail_indices(labels, counts, seed=0)
    # LDAM-DRW: np.random.seed(0), then per class in order: shuffle its indices, keep the first n
    np.random.seed(0)
    want = []
    for c, n in enumerate(counts):
        idx = np.where(labels == c)[0]
        np.random.shuffle(idx)
        want.extend(idx[:n])
    assert got.tolist() == [int(i) for i in want]
    assert long_tail_indices(labels, counts, seed=0).tolist() == got.tolist()
    other = long_tail_indices(labels, counts, seed=5)
    for c in (1, 2):  # a different seed keeps different images of the sampled classes
        assert set(got[labels[got] == c]) != set(other[labels[other] == c])
    assert np.bincount(labels[other]).tolist() == counts


# ------------------------------------------------------------------------------ readers


def _cifar_dir(root: Path, n_classes: int, per_class: int, n_test: int = 5):
    rng = np.random.default_rng(0)
    if n_classes == 10:
        base = root / "cifar-10-batches-py"
        base.mkdir(parents=True)
        labels = np.repeat(np.arange(10), per_class)
        chunks = np.array_split(np.arange(len(labels)), 5)
        for i, ch in enumerate(chunks, start=1):
            data = rng.integers(0, 256, (len(ch), 3072), dtype=np.uint8)
            with open(base / f"data_batch_{i}", "wb") as f:
                pickle.dump({"data": data, "labels": labels[ch].tolist()}, f)
        with open(base / "test_batch", "wb") as f:
            pickle.dump(
                {
                    "data": rng.integers(0, 256, (10 * n_test, 3072), dtype=np.uint8),
                    "labels": np.repeat(np.arange(10), n_test).tolist(),
                },
                f,
            )
    else:
        base = root / "cifar-100-python"
        base.mkdir(parents=True)
        labels = np.repeat(np.arange(100), per_class)
        with open(base / "train", "wb") as f:
            pickle.dump(
                {
                    "data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8),
                    "fine_labels": labels.tolist(),
                },
                f,
            )
        with open(base / "test", "wb") as f:
            pickle.dump(
                {
                    "data": rng.integers(0, 256, (100 * n_test, 3072), dtype=np.uint8),
                    "fine_labels": np.repeat(np.arange(100), n_test).tolist(),
                },
                f,
            )
    return base


def test_cifar10_layout(tmp_path):
    base = _cifar_dir(tmp_path, 10, 50)
    d = load_data(
        DataConfig(dataset="cifar10_lt", root=str(tmp_path), imbalance_ratio=10, val_per_class=0)
    )
    assert d.train_counts.tolist() == class_counts(50, 10, 10)
    assert d.train_x.shape[1:] == (32, 32, 3) and d.train_x.dtype == np.uint8
    # pixel layout: row = R plane, G plane, B plane of a 32x32 image
    raw = pickle.load(open(base / "data_batch_1", "rb"), encoding="latin1")
    first = int(d.train_index[0])
    assert first < len(raw["labels"])
    assert d.train_x[0, 0, 1].tolist() == [
        raw["data"][first][1],
        raw["data"][first][1025],
        raw["data"][first][2049],
    ]


def test_cifar100_layout(tmp_path):
    _cifar_dir(tmp_path, 100, 20)
    d = load_data(
        DataConfig(dataset="cifar100_lt", root=str(tmp_path), imbalance_ratio=10, val_per_class=0)
    )
    assert d.num_classes == 100 and d.train_counts.tolist() == class_counts(20, 100, 10)
    assert len(d.test_y) == 500


def _idx(path: Path, arr: np.ndarray):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def _fashion_dir(root: Path, per_class=30):
    raw = root / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), per_class)
    _idx(raw / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (len(y), 28, 28)))
    _idx(raw / "train-labels-idx1-ubyte.gz", y)
    _idx(raw / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    _idx(raw / "t10k-labels-idx1-ubyte.gz", np.repeat(np.arange(10), 2))
    return raw


def test_fashion_idx_layout(tmp_path):
    _fashion_dir(tmp_path)
    d = load_data(
        DataConfig(
            dataset="fashion_mnist_lt", root=str(tmp_path), imbalance_ratio=5, val_per_class=0
        )
    )
    assert d.train_x.shape[1:] == (28, 28, 1) and d.train_counts.tolist() == class_counts(30, 10, 5)


def test_truncated_idx_is_an_error(tmp_path):
    raw = _fashion_dir(tmp_path)
    blob = gzip.open(raw / "train-images-idx3-ubyte.gz").read()
    with gzip.open(raw / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(blob[:1000])
    with pytest.raises(DataError, match="truncated"):
        load_data(DataConfig(dataset="fashion_mnist_lt", root=str(tmp_path)))


def _list_tree(root: Path, lines_train, lines_test):
    from PIL import Image

    for i in range(4):
        (root / "imgs").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40, 30, 3), 60 * i, np.uint8)).save(root / "imgs" / f"{i}.jpg")
    (root / "train.txt").write_text("\n".join(lines_train) + "\n")
    (root / "test.txt").write_text("\n".join(lines_test) + "\n")


def test_list_file_layout(tmp_path):
    _list_tree(
        tmp_path, ["imgs/0.jpg 0", "imgs/1.jpg 0", "imgs/2.jpg 1"], ["imgs/3.jpg 1", "imgs/0.jpg 0"]
    )
    d = load_data(
        DataConfig(
            dataset="imagenet_lt",
            root=str(tmp_path),
            train_list="train.txt",
            test_list="test.txt",
            image_size=16,
            val_per_class=0,
        )
    )
    assert d.train_counts.tolist() == [2, 1]
    batch = d.train_x[np.array([2, 0])]
    assert batch.shape == (2, 16, 16, 3) and batch.dtype == np.uint8
    assert abs(int(batch[0].mean()) - 120) <= 2  # image 2 is a flat 120


@pytest.mark.parametrize(
    "line,needle",
    [("imgs/0.jpg", "expected 'relative/path.jpg label'"), ("imgs/0.jpg 7", "out of range")],
)
def test_bad_list_lines(tmp_path, line, needle):
    _list_tree(tmp_path, ["imgs/1.jpg 0", line], ["imgs/3.jpg 1"])
    with pytest.raises(DataError, match=needle) as err:
        load_data(
            DataConfig(
                dataset="places_lt",
                root=str(tmp_path),
                train_list="train.txt",
                test_list="test.txt",
                num_classes=2,
            )
        )
    assert "train.txt:2" in str(err.value)


def test_arrays_and_export_roundtrip(tmp_path):
    _cifar_dir(tmp_path / "src", 10, 40)
    out = tmp_path / "split.npz"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rcl_study.data",
            "export",
            "--dataset",
            "cifar10_lt",
            "--imbalance-ratio",
            "10",
            "--root",
            str(tmp_path / "src"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    direct = load_data(
        DataConfig(dataset="cifar10_lt", root=str(tmp_path / "src"), imbalance_ratio=10)
    )
    back = load_data(DataConfig(dataset="arrays", path=str(out), imbalance_ratio=10))
    assert np.array_equal(back.train_x, direct.train_x)
    assert np.array_equal(back.train_index, direct.train_index)
    with pytest.raises(DataError, match="exported at imbalance ratio 10"):
        load_data(DataConfig(dataset="arrays", path=str(out), imbalance_ratio=100))


@pytest.mark.parametrize("dataset", ["cifar10_lt", "cifar100_lt", "fashion_mnist_lt"])
def test_missing_root_names_path_and_fix(tmp_path, dataset):
    with pytest.raises(DataError) as err:
        load_data(DataConfig(dataset=dataset, root=str(tmp_path / "nowhere")))
    msg = str(err.value)
    assert "nowhere" in msg and "data.download: true" in msg


def test_corrupt_pickle(tmp_path):
    base = _cifar_dir(tmp_path, 10, 10)
    (base / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="data_batch_3"):
        load_data(DataConfig(dataset="cifar10_lt", root=str(tmp_path), imbalance_ratio=2))


def test_imbalance_too_large_for_head(tmp_path):
    _cifar_dir(tmp_path, 10, 50)
    with pytest.raises(DataError, match="0 images"):
        load_data(DataConfig(dataset="cifar10_lt", root=str(tmp_path), imbalance_ratio=100))


def test_digits_default():
    d = load_data(DataConfig())
    assert d.num_classes == 10 and d.train_x.shape[1:] == (8, 8, 1)
    assert d.train_counts[0] / d.train_counts[-1] == pytest.approx(10, rel=0.1)
    assert np.bincount(d.test_y).min() >= 50  # fixed stratified test split


# ------------------------------------------------------------------------- real CIFAR-10


@pytest.mark.skipif(
    not (REAL_CIFAR / "cifar-10-batches-py").exists(),
    reason="the real CIFAR-10 copy (../shared/data/cifar10) is not on this machine",
)
def test_real_cifar10():
    cfg = DataConfig(dataset="cifar10_lt", root=str(REAL_CIFAR), imbalance_ratio=100)
    d = load_data(cfg.model_copy(update={"val_per_class": 0}))
    assert d.train_counts.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert len(d.test_y) == 10000 and np.bincount(d.test_y).tolist() == [1000] * 10
    assert d.test_mask is not None and int(d.test_mask.sum()) == 1000
    raw = pickle.load(
        open(REAL_CIFAR / "cifar-10-batches-py" / "data_batch_1", "rb"), encoding="latin1"
    )
    # the first training image of the original set (a frog): its first pixels, R plane
    assert raw["labels"][0] == 6
    assert raw["data"][0][:3].tolist() == [59, 43, 50]
    pos = int(np.where(d.train_index == 0)[0][0]) if 0 in d.train_index else None
    if pos is not None:
        assert d.train_x[pos, 0, :3, 0].tolist() == [59, 43, 50]


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian():
    d = load_data(DataConfig(dataset="fashion_mnist_lt", imbalance_ratio=100, val_per_class=0))
    assert d.train_counts.tolist() == class_counts(6000, 10, 100)
    assert d.train_x.shape[1:] == (28, 28, 1) and len(d.test_y) == 10000
    assert np.bincount(d.test_y).tolist() == [1000] * 10
    from rcl_study.data.fashion_mnist import read_fashion_mnist

    raw = read_fashion_mnist(None)
    assert raw["train_y"][:3].tolist() == [9, 0, 0]  # ankle boot, T-shirt, T-shirt
