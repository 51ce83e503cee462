"""Count the operations that make the host wait for the device (test helper).

On a GPU, reading a device value on the host (``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()``,
``.cpu()``, ``.numpy()``) and ops whose output size depends on the data (``nonzero``, boolean
indexing, ``masked_select``, ``unique``, ``bincount``, ``repeat_interleave`` without
``output_size``) block the CPU until the GPU has caught up. On a CPU they cost nothing, so a CPU
test cannot time them; it can count them. :class:`SyncCounter` records both kinds while active:

    with SyncCounter() as syncs:
        train_step(...)
    assert not syncs.calls, syncs.calls

The dispatch-level part sees aten ops below autograd (a ``TorchDispatchMode``); the host-read
methods that never reach the dispatcher on a CPU tensor (``tolist``, ``numpy``, ``cpu``) are
wrapped on ``torch.Tensor`` for the duration of the block.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# aten overload packets that synchronise on CUDA whatever their arguments
SYNC_OPS = {
    "_local_scalar_dense",  # .item(), int(t), float(t)
    "is_nonzero",  # bool(t)
    "nonzero",
    "masked_select",
    "_unique",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "unique_dim_consecutive",
    "bincount",
    "equal",
    "histc",
}
HOST_METHODS = ("tolist", "numpy", "cpu")


def _has_bool_index(args: Any) -> bool:
    for a in args:
        if isinstance(a, (list, tuple)) and _has_bool_index(a):
            return True
        if isinstance(a, torch.Tensor) and a.dtype == torch.bool:
            return True
    return False


class SyncCounter(TorchDispatchMode):
    """Record every host-device synchronising call made inside the ``with`` block.

    ``calls`` is a Counter of names: aten packets from :data:`SYNC_OPS`, ``index(bool)`` /
    ``index_put(bool)`` for boolean-mask indexing, ``repeat_interleave`` without an output size,
    and ``Tensor.tolist`` / ``Tensor.numpy`` / ``Tensor.cpu``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self._saved: dict[str, Any] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in SYNC_OPS:
            self.calls[name] += 1
        elif name in ("index", "index_put", "index_put_") and _has_bool_index(args[1:2]):
            self.calls[f"{name}(bool)"] += 1
        elif name == "repeat_interleave" and kwargs.get("output_size") is None:
            if len(args) < 3 or args[-1] is None:
                self.calls[name] += 1
        return func(*args, **kwargs)

    def __enter__(self):  # noqa: D105
        for meth in HOST_METHODS:
            original = getattr(torch.Tensor, meth)
            self._saved[meth] = original

            def wrapper(t, *a, __m=meth, __orig=original, **k):
                self.calls[f"Tensor.{__m}"] += 1
                return __orig(t, *a, **k)

            setattr(torch.Tensor, meth, wrapper)
        return super().__enter__()

    def __exit__(self, *exc):  # noqa: D105
        for meth, original in self._saved.items():
            setattr(torch.Tensor, meth, original)
        self._saved.clear()
        return super().__exit__(*exc)
