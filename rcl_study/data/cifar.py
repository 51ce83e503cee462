"""CIFAR-10/100 "python version" batches, read through a restricted unpickler (no code runs)."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import numpy as np

from rcl_study.data.checks import DataError, check_labels, download_into, need
from rcl_study.data.types import Split


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


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # npy errors come in many types
        raise DataError(f"{path}: corrupt .npy file ({type(err).__name__})") from None


def read_cifar(root: Path, num_classes: int, download: bool = False) -> Split:
    """CIFAR-10/100 "python version" read directly (no md5 check), with the lossless mask if any.

    The mask is ``root/test_lossless.npy`` (bool, one entry per test image) when that file exists.
    """
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
        download_into(
            lambda: cls(str(root), train=True, download=True), root, f"CIFAR-{num_classes}"
        )
    what = f"the CIFAR-{num_classes} python-version folder '{folder}'"
    need(base, what, f"CIFAR-{num_classes}")

    def load(files):
        xs, ys = [], []
        for name in files:
            d = _unpickle(
                need(base / name, f"the CIFAR batch file '{name}'", f"CIFAR-{num_classes}")
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
    return Split(train_x, train_y, test_x, test_y, test_mask=mask)
