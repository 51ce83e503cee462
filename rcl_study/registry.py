"""Named parts a study file may choose: losses, datasets, backbones and contrastive losses.

(timm's registry style.)

A study file names a registered key (``data.dataset: tiny_blobs``), never an import path, so a
study file from someone else still cannot import code. Three places fill the registry, all the
same way, by name -> a reference loaded on first use:

- the built-ins, listed in :data:`BUILTINS` (``"module:attribute"``);
- installed packages, through Python entry points in the groups ``rcl_study.losses``,
  ``rcl_study.datasets``, ``rcl_study.backbones`` and ``rcl_study.contrastive`` (read once,
  loaded on first use)::

      [project.entry-points."rcl_study.losses"]
      focal = "my_package.losses:focal_loss"

- this process, with the :func:`register` decorator (a notebook, a test)::

      @register("losses", "focal")
      def focal_loss(logits, labels, class_counts, gamma=2.0): ...

  Ray workers are other processes: the study carries this process's registrations to them
  (:func:`local_parts`, :func:`adopt`), so a function registered in a script or a notebook
  trains under the Ray executor too.

The contract of each kind (what the trainer passes, what it expects back) is in
``docs/plugins.md``; ``tests/test_registry_contract.py`` checks every registered entry.
A name registered twice is an error, whatever the two sources.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

#: the kinds of part, each an entry-point group ``rcl_study.<kind>``
KINDS = ("losses", "datasets", "backbones", "contrastive")

#: each kind's name for one of its parts, as messages say it
SINGULAR = dict(
    losses="loss", datasets="dataset", backbones="backbone", contrastive="contrastive loss"
)

#: the built-in parts: kind -> name -> ``"module:attribute"``
BUILTINS: dict[str, dict[str, str]] = {
    "losses": {
        "cross_entropy": "rcl_study.losses.classification:cross_entropy_loss",
        "logit_adjusted": "rcl_study.losses.classification:logit_adjusted_loss",
    },
    "datasets": {
        "digits_lt": "rcl_study.data.load:read_digits_lt",
        "cifar10_lt": "rcl_study.data.load:read_cifar10_lt",
        "cifar100_lt": "rcl_study.data.load:read_cifar100_lt",
        "fashion_mnist_lt": "rcl_study.data.load:read_fashion_mnist_lt",
        "imagenet_lt": "rcl_study.data.load:read_imagenet_lt",
        "inaturalist": "rcl_study.data.load:read_inaturalist",
        "places_lt": "rcl_study.data.load:read_places_lt",
        "arrays": "rcl_study.data.load:read_arrays_file",
    },
    "backbones": {
        "small_cnn": "rcl_study.trainer.models:small_cnn",
        "small_cnn_s2": "rcl_study.trainer.models:small_cnn_s2",
        "resnet32": "rcl_study.trainer.models:resnet32",
        "resnet50": "rcl_study.trainer.models:resnet50",
        "resnext50": "rcl_study.trainer.models:resnext50",
    },
    "contrastive": {
        "rebalanced": "rcl_study.losses.contrastive:contrastive_loss",
    },
}

_LOCAL: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_PLUGINS: dict[str, dict[str, Any]] | None = None  # kind -> name -> EntryPoint, read once
_CLASHES: dict[str, list[str]] = {kind: [] for kind in KINDS}  # entry points refused, by kind
_LOADED: dict[tuple[str, str], Any] = {}


class RegistryError(ValueError):
    """An unknown kind or name, a name registered twice, or a part that does not load."""


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise RegistryError(f"unknown kind '{kind}', expected one of {', '.join(KINDS)}")
    return kind


def entry_point_name(ep: Any) -> str:
    """An entry point as a message names it: its package, group, name and target."""
    dist = getattr(ep, "dist", None)
    package = getattr(dist, "name", None) or "an unknown package"
    return f"package {package}, entry point {ep.group}: {ep.name} = {ep.value}"


def _plugins() -> dict[str, dict[str, Any]]:
    """The installed packages' entry points, by kind and name (read once per process).

    An entry point taking a name already taken (a built-in's, another package's) is left out
    and kept in ``_CLASHES`` of its kind: :func:`names` of that kind refuses it.
    """
    global _PLUGINS
    if _PLUGINS is None:
        found: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        for kind in KINDS:
            clashes: list[str] = []
            for ep in entry_points(group=f"rcl_study.{kind}"):
                if ep.name in BUILTINS[kind] or ep.name in found[kind]:
                    taken = "a built-in" if ep.name in BUILTINS[kind] else "another plugin"
                    clashes.append(
                        f"{SINGULAR[kind]} '{ep.name}' is registered twice ({taken}'s name, "
                        f"and {entry_point_name(ep)}); uninstall or rename the plugin's"
                    )
                    continue
                found[kind][ep.name] = ep
            _CLASHES[kind] = clashes
        _PLUGINS = found
    return _PLUGINS


def register(kind: str, name: str | None = None) -> Callable[[Any], Any]:
    """Decorator: register a loss, dataset reader or backbone builder under ``name``.

    ``name`` defaults to the function's ``__name__``. Raises :class:`RegistryError` when the name
    is taken.
    """
    _kind(kind)

    def deco(obj: Any) -> Any:
        key = name or obj.__name__
        if key in names(kind):
            raise RegistryError(f"rcl_study.{kind}: '{key}' is registered twice")
        _LOCAL[kind][key] = obj
        return obj

    return deco


def unregister(kind: str, name: str) -> None:
    """Remove a part registered in this process with :func:`register` (tests, notebooks)."""
    _LOCAL[_kind(kind)].pop(name, None)
    _LOADED.pop((kind, name), None)


def local_parts() -> dict[str, dict[str, Any]]:
    """The parts registered in this process with :func:`register`, by kind and name (a copy)."""
    return {kind: dict(parts) for kind, parts in _LOCAL.items() if parts}


def adopt(parts: dict[str, dict[str, Any]] | None) -> None:
    """Register ``parts`` (:func:`local_parts` of another process) where not registered yet.

    A name this process already holds keeps its own part: a worker that imported the same
    module registers the same function.
    """
    for kind, named in (parts or {}).items():
        for name, obj in named.items():
            if name not in names(kind):
                _LOCAL[_kind(kind)][name] = obj


def names(kind: str) -> list[str]:
    """Every registered name of ``kind``: built-ins, installed plugins, then this process's.

    Raises:
        RegistryError: an installed plugin of ``kind`` takes a name already taken.

    """
    _kind(kind)
    plugins = _plugins()[kind]
    if _CLASHES[kind]:
        raise RegistryError(_CLASHES[kind][0])
    return [*BUILTINS[kind], *plugins, *_LOCAL[kind]]


def source(kind: str, name: str) -> str:
    """Where ``name`` comes from: ``builtin``, the entry point's value, or ``register``."""
    if name in BUILTINS[_kind(kind)]:
        return "builtin"
    if name in _plugins()[kind]:
        return f"entry point {_plugins()[kind][name].value}"
    return "register"


def origin(kind: str, name: str) -> str:
    """``name`` of ``kind`` as a message names it: built-in, a plugin's entry point, or local."""
    if name in _plugins()[_kind(kind)] and name not in BUILTINS[kind]:
        return f"{SINGULAR[kind]} '{name}' ({entry_point_name(_plugins()[kind][name])})"
    where = "built-in" if name in BUILTINS[kind] else "registered in this process"
    return f"{SINGULAR[kind]} '{name}' ({where})"


def unknown(kind: str, name: str) -> str:
    """The one-line message for an unknown ``name`` of ``kind`` (with a suggestion)."""
    import difflib

    known = names(kind)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {SINGULAR[kind]} '{name}'{hint} (registered: {', '.join(known)})"


def get(kind: str, name: str) -> Any:
    """The registered part ``name`` of ``kind``, loaded (and kept) on first use.

    Raises:
        RegistryError: ``name`` is not registered, or its module does not load.

    """
    if (kind, name) in _LOADED:
        return _LOADED[(kind, name)]
    _kind(kind)
    if name in _LOCAL[kind]:
        return _LOCAL[kind][name]
    if name not in BUILTINS[kind] and name not in _plugins()[kind]:
        raise RegistryError(unknown(kind, name))
    try:
        if name in BUILTINS[kind]:
            module, attr = BUILTINS[kind][name].split(":")
            obj = getattr(importlib.import_module(module), attr)
        else:
            obj = _plugins()[kind][name].load()
    except Exception as err:  # noqa: BLE001 - whatever a plugin's import raises: one line
        raise RegistryError(f"{origin(kind, name)} does not load: {error_line(err)}") from None
    _LOADED[(kind, name)] = obj
    return obj


def error_line(err: BaseException) -> str:
    """``Type: first line of the message`` of ``err`` (at most 300 characters)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


def create(kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the registered part ``name`` of ``kind`` with ``args`` and ``kwargs``."""
    return get(kind, name)(*args, **kwargs)
