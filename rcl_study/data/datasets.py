"""Dataset readers. Each returns a :class:`LTData` with uint8 images ``[N, H, W, C]``."""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .longtail import class_counts, long_tail_indices, stratified_subset


class DataError(ValueError):
    """Missing, corrupt or inconsistent data; the message names the path and how to fix it."""


@dataclass
class ListImages:
    """Images named in a list file, decoded on demand to ``size x size`` RGB uint8."""

    root: Path
    paths: list[str]
    size: int

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, size, size, 3)``, as an image array would have."""
        return (len(self.paths), self.size, self.size, 3)

    def _load(self, rel: str) -> np.ndarray:
        from PIL import Image

        path = self.root / rel
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                side = min(w, h)  # centre square, then resize (keeps aspect ratio)
                box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
                return np.asarray(img.resize((self.size, self.size), box=box), dtype=np.uint8)
        except FileNotFoundError:
            raise DataError(f"{path}: image named in the list file is missing") from None
        except OSError as err:
            raise DataError(f"{path}: cannot decode image ({err})") from None

    def __getitem__(self, idx) -> np.ndarray:
        """Decode the images at ``idx`` (threads) into ``[B, size, size, 3]`` uint8."""
        idx = np.atleast_1d(np.asarray(idx))
        with ThreadPoolExecutor(max_workers=8) as pool:
            return np.stack(list(pool.map(self._load, [self.paths[i] for i in idx])))

    def subset(self, idx: np.ndarray) -> ListImages:
        """The images at ``idx``, still decoded on demand."""
        return ListImages(self.root, [self.paths[i] for i in idx], self.size)


@dataclass
class LTData:
    """A long-tailed training split and a (balanced) test set.

    ``train_x``/``test_x`` are uint8 ``[N, H, W, C]`` arrays (or :class:`ListImages`);
    ``train_index`` are the kept images' indices in the source training set; ``test_mask`` marks a
    trusted test subset (the lossless CIFAR-10 images) when the data has one.
    """

    name: str
    train_x: np.ndarray | ListImages
    train_y: np.ndarray
    test_x: np.ndarray | ListImages
    test_y: np.ndarray
    num_classes: int
    train_index: np.ndarray
    test_mask: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)

    @property
    def train_counts(self) -> np.ndarray:
        """Training images per class, ``[C]``."""
        return np.bincount(self.train_y, minlength=self.num_classes)

    @property
    def channels(self) -> int:
        """Image channels (1 or 3)."""
        return int(self.train_x.shape[-1])

    @property
    def image_size(self) -> int:
        """Image height (= width) in pixels."""
        return int(self.train_x.shape[1])


def _download(fetch: Callable[[], object], root: Path, dataset: str) -> None:
    try:
        fetch()
    except Exception as err:  # network errors come as URLError, OSError, RuntimeError...
        raise DataError(
            f"{root}: could not download {dataset} there ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); put the "
            "files there yourself and set data.download: false"
        ) from None


def _need(path: Path, what: str, dataset: str) -> Path:
    if not path.exists():
        raise DataError(
            f"{path}: not found; expected {what} there. Set data.root to the folder that holds it, "
            f"or data.download: true to fetch {dataset} with torchvision"
        )
    return path


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DataError(f"{path}: corrupt or truncated pickle ({err})") from None


def _cifar_images(d: dict, path: Path) -> np.ndarray:
    data = np.asarray(d.get("data"))
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be [N, 3072] uint8, got shape {data.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.uint8)


def read_cifar(root: Path, num_classes: int, download: bool = False) -> dict:
    """CIFAR-10/100 "python version" read directly (no md5 check), with the lossless mask if any."""
    if num_classes == 10:
        folder, train_files, test_files, key = (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            ["test_batch"],
            "labels",
        )
    else:
        folder, train_files, test_files, key = (
            "cifar-100-python",
            ["train"],
            ["test"],
            "fine_labels",
        )
    base = root / folder
    if download and not base.exists():
        import torchvision

        cls = torchvision.datasets.CIFAR10 if num_classes == 10 else torchvision.datasets.CIFAR100
        _download(lambda: cls(str(root), train=True, download=True), root, f"CIFAR-{num_classes}")
    what = f"the CIFAR-{num_classes} python-version folder '{folder}'"
    _need(base, what, f"CIFAR-{num_classes}")

    def load(files):
        xs, ys = [], []
        for name in files:
            d = _unpickle(
                _need(base / name, f"the CIFAR batch file '{name}'", f"CIFAR-{num_classes}")
            )
            xs.append(_cifar_images(d, base / name))
            if key not in d:
                raise DataError(f"{base / name}: no '{key}' entry")
            ys.append(np.asarray(d[key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    train_x, train_y = load(train_files)
    test_x, test_y = load(test_files)
    mask_path = root / "test_lossless.npy"
    mask = np.load(mask_path) if mask_path.exists() else None
    if mask is not None and mask.shape != (len(test_y),):
        raise DataError(
            f"{mask_path}: expected a bool mask of shape ({len(test_y)},), got {mask.shape}"
        )
    return dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, test_mask=mask)


def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: corrupt or truncated gzip IDX file ({err})") from None
    if len(raw) < 8:
        raise DataError(f"{path}: truncated IDX header")
    _, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if dtype_code != 0x08:
        raise DataError(f"{path}: expected uint8 IDX data, got type code {dtype_code:#x}")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated IDX file ({body.size} of {int(np.prod(dims))} values)")
    return body.reshape(dims)


FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def read_fashion_mnist(root: Path | None, download: bool = False) -> dict:
    """Fashion-MNIST from the four gzip IDX files (torchvision's ``raw/`` or Debian's folder)."""
    root = root or DEBIAN_FASHION
    if download and not any(
        (c / FASHION_FILES[0]).exists() for c in (root, root / "raw", root / "FashionMNIST" / "raw")
    ):
        import torchvision

        _download(
            lambda: torchvision.datasets.FashionMNIST(str(root), train=True, download=True),
            root,
            "Fashion-MNIST",
        )
    for cand in (root, root / "raw", root / "FashionMNIST" / "raw"):
        if (cand / FASHION_FILES[0]).exists():
            break
    else:
        raise DataError(
            f"{root}: no '{FASHION_FILES[0]}' there (nor in raw/ or FashionMNIST/raw/); set "
            "data.root, install Debian's dataset-fashion-mnist, or set data.download: true"
        )
    arrs = [
        _read_idx(_need(cand / f, "a Fashion-MNIST IDX file", "Fashion-MNIST"))
        for f in FASHION_FILES
    ]
    return dict(
        train_x=arrs[0][..., None],
        train_y=arrs[1].astype(np.int64),
        test_x=arrs[2][..., None],
        test_y=arrs[3].astype(np.int64),
        test_mask=None,
    )


def read_digits(test_fraction: float = 0.3) -> dict:
    """scikit-learn's ``load_digits`` (1,797 real 8x8 digits, shipped with scikit-learn).

    Pixel values 0..16 are scaled to 0..255; a fixed stratified split (seed 0) gives the test set.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    idx_train, idx_test = train_test_split(
        np.arange(len(d.target)), test_size=test_fraction, stratify=d.target, random_state=0
    )
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    return dict(
        train_x=images[idx_train],
        train_y=d.target[idx_train].astype(np.int64),
        test_x=images[idx_test],
        test_y=d.target[idx_test].astype(np.int64),
        test_mask=None,
    )


def read_list_file(path: Path, num_classes: int | None) -> tuple[list[str], np.ndarray]:
    """``relative/path.jpg label`` per line (ImageNet-LT, iNaturalist, Places-LT list files)."""
    _need(
        path, "an ImageNet-LT-style list file ('relative/path.jpg label' per line)", "the dataset"
    )
    paths, labels = [], []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{path}:{i}: expected 'relative/path.jpg label', got {line!r}")
        label = int(parts[1])
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise DataError(f"{path}:{i}: label {label} out of range [0, {num_classes})")
        paths.append(parts[0])
        labels.append(label)
    if not paths:
        raise DataError(f"{path}: list file is empty")
    return paths, np.asarray(labels, dtype=np.int64)


def read_arrays(path: Path) -> dict:
    """Read an ``.npz`` with uint8 ``train_x``, ``train_y``, ``test_x``, ``test_y``."""
    _need(path, "an .npz file with train_x, train_y, test_x, test_y", "the arrays")
    try:
        if path.suffix == ".xz":  # an xz-compressed .npz (export --out F.npz.xz): ~20% smaller
            import io
            import lzma

            with lzma.open(path) as f:
                z = np.load(io.BytesIO(f.read()), allow_pickle=False)
        else:
            z = np.load(path, allow_pickle=False)
        out = {k: z[k] for k in z.files}
    except Exception as err:  # zip/npy errors come in many types
        raise DataError(f"{path}: corrupt or truncated .npz ({err})") from None
    for k in ("train_x", "train_y", "test_x", "test_y"):
        if k not in out:
            raise DataError(f"{path}: missing array '{k}' (has {sorted(out)})")
    for k in ("train_x", "test_x"):
        if out[k].dtype != np.uint8:
            raise DataError(f"{path}: '{k}' must be uint8 images, got {out[k].dtype}")
        if out[k].ndim == 3:
            out[k] = out[k][..., None]
    out["train_y"] = out["train_y"].astype(np.int64)
    out["test_y"] = out["test_y"].astype(np.int64)
    return out


def _root(cfg) -> Path:
    if cfg.root is None:
        raise DataError(
            f"data.root is not set; {cfg.dataset} needs the folder that holds its files"
        )
    return Path(cfg.root).expanduser()


def _list_dataset(cfg) -> dict:
    root = _root(cfg)
    if not cfg.train_list or not cfg.test_list:
        raise DataError(f"{cfg.dataset} needs data.train_list and data.test_list (list files)")
    rel = lambda p: Path(p) if Path(p).is_absolute() else root / p  # noqa: E731
    tr_paths, tr_y = read_list_file(rel(cfg.train_list), cfg.num_classes)
    te_paths, te_y = read_list_file(rel(cfg.test_list), cfg.num_classes)
    return dict(
        train_x=ListImages(root, tr_paths, cfg.image_size),
        train_y=tr_y,
        test_x=ListImages(root, te_paths, cfg.image_size),
        test_y=te_y,
        test_mask=None,
        already_long_tailed=True,
    )


READERS: dict[str, Callable] = {
    "digits_lt": lambda cfg: read_digits(),
    "cifar10_lt": lambda cfg: read_cifar(_root(cfg), 10, cfg.download),
    "cifar100_lt": lambda cfg: read_cifar(_root(cfg), 100, cfg.download),
    "fashion_mnist_lt": lambda cfg: read_fashion_mnist(
        Path(cfg.root).expanduser() if cfg.root else None, cfg.download
    ),
    "imagenet_lt": _list_dataset,
    "inaturalist": _list_dataset,
    "places_lt": _list_dataset,
    "arrays": lambda cfg: read_arrays(Path(cfg.path or _root(cfg)).expanduser()),
}


def load_data(cfg) -> LTData:
    """Read ``cfg.dataset`` and make its training split long-tailed as ``cfg`` says.

    ``cfg`` is a ``DataConfig``. List-file datasets and exported ``arrays`` files are already long
    tailed and are used as they are, as is any ``arrays`` file at ``imbalance_ratio: 1``; other
    ``arrays`` files are made long-tailed like CIFAR.
    """
    raw = READERS[cfg.dataset](cfg)
    train_y = raw["train_y"]
    num_classes = int(cfg.num_classes or max(train_y.max(), raw["test_y"].max()) + 1)
    if raw["test_y"].max() >= num_classes or raw["test_y"].min() < 0:
        raise DataError(f"{cfg.dataset}: test labels outside [0, {num_classes})")
    stored_ir = raw.get("imbalance_ratio")
    if stored_ir is not None and float(stored_ir) != float(cfg.imbalance_ratio):
        raise DataError(
            f"{cfg.path}: this file was exported at imbalance ratio {float(stored_ir):g}, "
            f"but data.imbalance_ratio is {cfg.imbalance_ratio:g}; re-export or change the ratio"
        )
    as_is = cfg.dataset == "arrays" and cfg.imbalance_ratio == 1  # a file used as it is
    if raw.get("already_long_tailed") or stored_ir is not None or as_is:
        keep = raw.get("train_index", np.arange(len(train_y)))
        train_x, train_y_kept = raw["train_x"], train_y
    else:
        per_class = np.bincount(train_y, minlength=num_classes)
        n_max = int(per_class.min() if cfg.dataset == "digits_lt" else per_class.max())
        try:
            counts = class_counts(n_max, num_classes, cfg.imbalance_ratio, cfg.profile)
            idx = long_tail_indices(train_y, counts, seed=cfg.split_seed or 0)
        except ValueError as err:
            raise DataError(f"data.imbalance_ratio: {cfg.dataset}: {err}") from None
        keep = idx
        train_x, train_y_kept = raw["train_x"][idx], train_y[idx]
    counts_now = np.bincount(train_y_kept, minlength=num_classes)
    if (counts_now == 0).any():
        raise DataError(
            f"{cfg.dataset}: classes {np.where(counts_now == 0)[0].tolist()} have no "
            "training images"
        )
    test_x, test_y, mask = raw["test_x"], raw["test_y"], raw.get("test_mask")
    if cfg.max_per_class is not None:
        sub = stratified_subset(train_y_kept, cfg.max_per_class)
        train_x, train_y_kept, keep = _take(train_x, sub), train_y_kept[sub], np.asarray(keep)[sub]
    if cfg.test_limit is not None:
        per = max(1, cfg.test_limit // num_classes)
        sub = stratified_subset(test_y, per)
        test_x, test_y = _take(test_x, sub), test_y[sub]
        mask = mask[sub] if mask is not None else None
    return LTData(
        cfg.dataset, train_x, train_y_kept, test_x, test_y, num_classes, np.asarray(keep), mask
    )


def _take(x, idx):
    return x.subset(idx) if isinstance(x, ListImages) else x[idx]
