"""Dataset readers. Each returns a :class:`LTData` with uint8 images ``[N, H, W, C]``."""

from __future__ import annotations

import gzip
import importlib
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rcl_study.data.longtail import class_counts, long_tail_indices, stratified_subset


class DataError(ValueError):
    """Missing, corrupt or inconsistent data; the message names the path and how to fix it."""


#: labels must lie below this before anything is sized by them (``np.bincount`` of a label of 1e9
#: allocates 8 GB). 100,000 is ten times the largest public long-tailed benchmark (iNaturalist
#: 2021: 10,000 classes; iNaturalist 2018: 8,142) and bounds a per-class table to 800 kB.
MAX_CLASSES = 100_000
#: the smallest image side the models take (scikit-learn's digits are 8x8; data.image_size >= 8)
MIN_SIDE = 8


def memory_cap() -> int:
    """Bytes one data array may take: half of this machine's physical memory."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def check_labels(
    y: object, path: object, name: str, n_images: int, num_classes: int | None = None
) -> np.ndarray:
    """Labels as int64 after checking them: 1-D integers, one per image, in ``[0, classes)``.

    ``classes`` is ``num_classes`` when given, else :data:`MAX_CLASSES`. Raises :class:`DataError`
    naming ``path`` and the array ``name``; nothing is allocated by the label values.
    """
    arr = np.asarray(y) if not isinstance(y, np.ndarray) else y
    if arr.ndim != 1:
        raise DataError(f"{path}: '{name}' must be 1-D labels, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise DataError(f"{path}: '{name}' must hold integer labels, got dtype {arr.dtype}")
    if arr.size == 0:
        raise DataError(f"{path}: '{name}' is empty")
    if arr.size != n_images:
        raise DataError(f"{path}: '{name}' has {arr.size} labels for {n_images} images")
    limit = num_classes if num_classes is not None else MAX_CLASSES
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= limit:
        bad = lo if lo < 0 else hi
        raise DataError(f"{path}: '{name}' holds label {bad}, outside [0, {limit})")
    return arr.astype(np.int64)


def check_images(x: np.ndarray, path: object, name: str) -> np.ndarray:
    """uint8 images ``[N, H, W, C]`` (``[N, H, W]`` gets ``C = 1``), C in {1, 3}, H, W >= 8."""
    if x.dtype != np.uint8:
        raise DataError(f"{path}: '{name}' must be uint8 images, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{path}: '{name}' must be [N, H, W, C] images, got shape {x.shape}")
    n, h, w, c = x.shape
    if n == 0:
        raise DataError(f"{path}: '{name}' is empty")
    if c not in (1, 3):
        raise DataError(f"{path}: '{name}' must have 1 or 3 channels, got {c} (shape {x.shape})")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise DataError(f"{path}: '{name}' images are {h}x{w}; at least {MIN_SIDE}x{MIN_SIDE}")
    return x


def _core(module: str) -> object:
    """``numpy.core.X`` (NumPy 1) or ``numpy._core.X`` (NumPy 2), whichever this NumPy has."""
    for name in (f"numpy._core.{module}", f"numpy.core.{module}"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(module)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR's python-version batches: dicts, lists, bytes, str and ndarrays only.

    ``find_class`` admits just the NumPy functions that rebuild an array or a dtype (under the
    NumPy 1 and NumPy 2 module names, protocols 2 to 5) and ``_codecs.encode`` (how protocol 2
    stores bytes); any other global, e.g. ``os.system``, is refused before it is looked up.
    """

    ALLOWED = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        **{
            (f"numpy.{core}.multiarray", fn): (lambda fn=fn: getattr(_core("multiarray"), fn))
            for core in ("core", "_core")
            for fn in ("_reconstruct", "scalar")
        },
        **{
            (f"numpy.{core}.numeric", "_frombuffer"): lambda: _core("numeric")._frombuffer
            for core in ("core", "_core")
        },
        ("_codecs", "encode"): lambda: __import__("codecs").encode,
    }

    def find_class(self, module: str, name: str) -> object:
        """The allowed global ``module.name``; anything else raises ``UnpicklingError``."""
        get = self.ALLOWED.get((module, name))
        if get is None:
            raise pickle.UnpicklingError(f"refused to load '{module}.{name}' (not CIFAR data)")
        return get()


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
    """A CIFAR batch through :class:`_CifarUnpickler` (no code runs from the file)."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise DataError(f"{path}: not a CIFAR batch ({err})") from None
    except Exception as err:  # a damaged pickle fails in many ways (EOF, Value, Type, Index...)
        raise DataError(f"{path}: corrupt or truncated pickle ({type(err).__name__})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR batch (a {type(d).__name__}, not a dict)")
    return d


def _cifar_images(d: dict, path: Path) -> np.ndarray:
    data = d.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        what = getattr(data, "dtype", type(data).__name__)
        raise DataError(f"{path}: 'data' must be a uint8 array [N, 3072], got {what}")
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] == 0:
        raise DataError(f"{path}: 'data' must be [N, 3072] uint8, got shape {data.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


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
            labels = d[key]
            if not isinstance(labels, (list, np.ndarray)) or any(
                isinstance(v, bool) or not isinstance(v, (int, np.integer))
                for v in (labels if isinstance(labels, list) else [])
            ):
                raise DataError(f"{base / name}: '{key}' must be a list of integer labels")
            ys.append(check_labels(labels, base / name, key, len(xs[-1]), num_classes))
        return np.concatenate(xs), np.concatenate(ys)

    train_x, train_y = load(train_files)
    test_x, test_y = load(test_files)
    mask_path = root / "test_lossless.npy"
    mask = _load_npy(mask_path) if mask_path.exists() else None
    if mask is not None and (mask.shape != (len(test_y),) or mask.dtype != np.bool_):
        raise DataError(
            f"{mask_path}: expected a bool mask of shape ({len(test_y)},), got {mask.dtype} "
            f"{mask.shape}"
        )
    return dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, test_mask=mask)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # npy errors come in many types
        raise DataError(f"{path}: corrupt .npy file ({type(err).__name__})") from None


def _read_idx(path: Path) -> np.ndarray:
    """A uint8 IDX file (gzip): header checked against the file before the body is read."""
    try:
        with open(path, "rb") as f:  # gzip's trailer holds the data size (mod 2**32)
            f.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", f.read(4))[0]
        with gzip.open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: truncated IDX header")
            zero, dtype_code, ndim = struct.unpack(">HBB", head)
            if zero != 0 or dtype_code != 0x08:
                raise DataError(f"{path}: expected uint8 IDX data, got type code {dtype_code:#x}")
            if ndim not in (1, 3):
                raise DataError(
                    f"{path}: expected 1 (labels) or 3 (images) IDX dimensions, got {ndim}"
                )
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            count = 1
            for d in dims:
                count *= d
            if (4 + 4 * ndim + count) % 2**32 != isize or count > memory_cap():
                raise DataError(
                    f"{path}: IDX header declares {dims} = {count} values, which the file "
                    "does not hold"
                )
            body = f.read(count + 1)
    except (OSError, EOFError, ValueError, struct.error) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: corrupt or truncated gzip IDX file ({err})") from None
    if len(body) != count:
        raise DataError(f"{path}: IDX file holds {len(body)} values, its header says {count}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


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
    paths = [_need(cand / f, "a Fashion-MNIST IDX file", "Fashion-MNIST") for f in FASHION_FILES]
    arrs = [_read_idx(p) for p in paths]
    train_x = check_images(arrs[0], paths[0], "images")
    test_x = check_images(arrs[2], paths[2], "images")
    return dict(
        train_x=train_x,
        train_y=check_labels(arrs[1], paths[1], "labels", len(train_x), 10),
        test_x=test_x,
        test_y=check_labels(arrs[3], paths[3], "labels", len(test_x), 10),
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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte offset {err.start})") from None
    limit = num_classes if num_classes is not None else MAX_CLASSES
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if (
            len(parts) != 2
            or not parts[1].lstrip("-").isascii()
            or not parts[1].lstrip("-").isdigit()
        ):
            raise DataError(f"{path}:{i}: expected 'relative/path.jpg label', got {line[:200]!r}")
        label = int(parts[1]) if len(parts[1]) < 20 else limit
        if label < 0 or label >= limit:
            raise DataError(f"{path}:{i}: label {parts[1][:20]} out of range [0, {limit})")
        paths.append(parts[0])
        labels.append(label)
    if not paths:
        raise DataError(f"{path}: list file is empty")
    return paths, np.asarray(labels, dtype=np.int64)


ARRAY_KEYS = ("train_x", "train_y", "test_x", "test_y")


def _npz_headers(zf: zipfile.ZipFile, path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an ``.npz``, read from the ``.npy`` headers only.

    Each header must agree with its member's stored size, and all arrays together must fit in
    :func:`memory_cap`, so a lying header or a zip bomb is refused before any allocation.
    """
    fmt = np.lib.format
    out, total = {}, 0
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        name = info.filename[:-4]
        with zf.open(info) as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f)  # version 3.0 differs only in the header's text encoding
            header_len = f.tell() if f.seekable() else None
        if dtype.hasobject:
            raise DataError(f"{path}: '{name}' holds Python objects; not an array file")
        nbytes = dtype.itemsize * int(np.prod(shape, dtype=object))
        if header_len is not None and header_len + nbytes != info.file_size:
            raise DataError(
                f"{path}: '{name}' declares shape {shape} ({nbytes} bytes) but holds "
                f"{info.file_size - header_len}"
            )
        total += nbytes
        out[name] = (tuple(shape), dtype)
    if total > memory_cap():
        raise DataError(
            f"{path}: arrays of {total / 2**30:.1f} GiB; more than half this machine's memory"
        )
    return out


def read_arrays(path: Path) -> dict:
    """Read an ``.npz`` with uint8 ``train_x``, ``train_y``, ``test_x``, ``test_y``.

    Shapes, dtypes and sizes are checked from the file's headers before any array is loaded, and
    the labels before anything is sized by them.
    """
    _need(path, "an .npz file with train_x, train_y, test_x, test_y", "the arrays")
    try:
        if path.suffix == ".xz":  # an xz-compressed .npz (export --out F.npz.xz): ~20% smaller
            import lzma

            cap, source = memory_cap(), io.BytesIO()
            with lzma.open(path) as f:  # in chunks: read(cap) would reserve cap bytes at once
                while chunk := f.read(1 << 24):
                    source.write(chunk)
                    if source.tell() > cap:
                        raise DataError(
                            f"{path}: decompresses to more than half this machine's memory"
                        )
        else:
            source = path
        with zipfile.ZipFile(source) as zf:  # type: ignore[arg-type]
            heads = _npz_headers(zf, path)
        for k in ARRAY_KEYS:
            if k not in heads:
                raise DataError(f"{path}: missing array '{k}' (has {sorted(heads)})")
        for k in ("train_x", "test_x"):
            shape, dtype = heads[k]
            # a zero-stride stand-in of the declared shape: checked before anything is allocated
            ghost = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape, (0,) * len(shape))
            check_images(ghost, path, k)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        z = np.load(source, allow_pickle=False)
        out = {k: z[k] for k in z.files}
    except DataError:
        raise
    except Exception as err:  # zip/npy/lzma errors come in many types
        raise DataError(
            f"{path}: corrupt or truncated .npz ({type(err).__name__}: {err})"
        ) from None
    for k in ("train_x", "test_x"):
        out[k] = check_images(out[k], path, k)
    out["train_y"] = check_labels(out["train_y"], path, "train_y", len(out["train_x"]))
    out["test_y"] = check_labels(out["test_y"], path, "test_y", len(out["test_x"]))
    if out["train_x"].shape[1:] != out["test_x"].shape[1:]:
        raise DataError(
            f"{path}: 'train_x' images {out['train_x'].shape[1:]} and 'test_x' images "
            f"{out['test_x'].shape[1:]} differ in size or channels"
        )
    mask = out.get("test_mask")
    if mask is not None and (mask.dtype != np.bool_ or mask.shape != out["test_y"].shape):
        raise DataError(f"{path}: 'test_mask' must be bool of shape {out['test_y'].shape}")
    idx = out.get("train_index")
    if idx is not None and (idx.ndim != 1 or len(idx) != len(out["train_y"])):
        raise DataError(f"{path}: 'train_index' must have one entry per training image")
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
    for lst, paths in ((cfg.train_list, tr_paths), (cfg.test_list, te_paths)):
        missing = [p for p in paths if not (root / p).is_file()]
        if missing:
            raise DataError(
                f"{rel(lst)}: {len(missing)} image(s) named in the list file are missing under "
                f"{root}, e.g. '{missing[0]}'"
            )
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
    train_y = raw["train_y"]  # readers checked: 1-D int64, non-empty, in [0, MAX_CLASSES)
    if cfg.num_classes is not None and cfg.num_classes > MAX_CLASSES:
        raise DataError(f"data.num_classes: {cfg.num_classes} is above {MAX_CLASSES}")
    num_classes = int(cfg.num_classes or max(train_y.max(), raw["test_y"].max()) + 1)
    if train_y.max() >= num_classes:
        raise DataError(f"{cfg.dataset}: training labels outside [0, {num_classes})")
    if raw["test_y"].max() >= num_classes or raw["test_y"].min() < 0:
        raise DataError(f"{cfg.dataset}: test labels outside [0, {num_classes})")
    if num_classes > len(train_y):
        raise DataError(
            f"{cfg.dataset}: {num_classes} classes but {len(train_y)} training images; every "
            "class needs at least one (check the labels or data.num_classes)"
        )
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
