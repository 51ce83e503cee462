"""``.npz`` array files (``python -m rcl_study.data export``), sizes checked before loading."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from rcl_study.data.checks import DataError, check_images, check_labels, memory_cap, need
from rcl_study.data.types import Split

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


def read_arrays(path: Path) -> Split:
    """Read an ``.npz`` with uint8 ``train_x``, ``train_y``, ``test_x``, ``test_y``.

    Optional arrays: ``test_mask``, ``train_index`` and ``imbalance_ratio`` (as ``export`` writes
    them), and a validation set ``val_x`` / ``val_y`` (both or neither). Shapes, dtypes and sizes
    are checked from the file's headers before any array is loaded, and the labels before
    anything is sized by them.
    """
    need(path, "an .npz file with train_x, train_y, test_x, test_y", "the arrays")
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
        if ("val_x" in heads) != ("val_y" in heads):
            raise DataError(f"{path}: 'val_x' and 'val_y' come together (has {sorted(heads)})")
        for k in ("train_x", "test_x", "val_x"):
            if k not in heads:
                continue
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
    parts = ("train", "test", "val") if "val_x" in out else ("train", "test")
    for p in parts:
        out[f"{p}_x"] = check_images(out[f"{p}_x"], path, f"{p}_x")
        out[f"{p}_y"] = check_labels(out[f"{p}_y"], path, f"{p}_y", len(out[f"{p}_x"]))
        if out[f"{p}_x"].shape[1:] != out["train_x"].shape[1:]:
            raise DataError(
                f"{path}: 'train_x' images {out['train_x'].shape[1:]} and '{p}_x' images "
                f"{out[f'{p}_x'].shape[1:]} differ in size or channels"
            )
    mask = out.get("test_mask")
    if mask is not None and (mask.dtype != np.bool_ or mask.shape != out["test_y"].shape):
        raise DataError(f"{path}: 'test_mask' must be bool of shape {out['test_y'].shape}")
    idx = out.get("train_index")
    if idx is not None and (idx.ndim != 1 or len(idx) != len(out["train_y"])):
        raise DataError(f"{path}: 'train_index' must have one entry per training image")
    return Split(
        *(out[k] for k in ARRAY_KEYS),
        test_mask=mask,
        train_index=idx,
        imbalance_ratio=out.get("imbalance_ratio"),
        val_x=out.get("val_x"),
        val_y=out.get("val_y"),
    )
