"""Figures of the package's import graph: modules, layers, import arrows, upward imports, cycles.

    python scripts/import_graph.py            # figures for rcl_study/ in this checkout
    python scripts/import_graph.py --edges    # ... and every arrow, one per line
    python scripts/import_graph.py --root OTHER_CHECKOUT/rcl_study

Read from the source with ``ast`` (nothing is imported or run). Two levels:

- **modules**: every ``.py`` file; an arrow A -> B when A imports B (a module-level or a
  function-level import; ``from pkg import name`` points at ``pkg/name.py`` when that file exists,
  else at ``pkg/__init__.py``); the arrows of a package's ``__init__.py`` that only re-exports
  (a "face") are counted like any other.
- **parts**: the top-level entries of the package (``config/``, ``study/``, ``run.py``, ...);
  an arrow between two parts when any module of one imports any module of the other.

Layers are longest-path levels (1 = imports nothing of the package). An upward import is an arrow
from a part to a part that :data:`ORDER` places above it (the architecture's declared direction:
the losses own the presets that the config schema names; then the data flow study file ->
plan -> trials -> records -> statistics -> report); a cycle is a
strongly connected set of two or more modules (or parts).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

#: the declared order of the parts, ground floor first; a part not listed counts as top floor
ORDER = (
    "signals",
    "store",
    "registry",
    "losses",
    "config",
    "data",
    "trainer",
    "trials",
    "study",
    "report",
    "__init__",
    "train",
    "run",
)


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root`` (a package folder)."""
    return {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}


def _resolve(name: str, current: str, is_pkg: bool, level: int) -> str:
    if level == 0:
        return name
    base = current.split(".") if is_pkg else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def edges(root: Path) -> set[tuple[str, str]]:
    """Every import arrow (importer, imported) between modules of the package."""
    mods = modules(root)
    top = root.name
    out: set[tuple[str, str]] = set()
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module or "", mod, is_pkg, node.level)
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t.split(".")[0] == top and t != mod:
                    out.add((mod, t))
    return out


def layers(nodes: set[str], arrows: set[tuple[str, str]]) -> dict[str, int]:
    """Longest-path level of each node (1 = imports nothing); nodes on a cycle share one level."""
    comp = {n: i for i, c in enumerate(cycles(nodes, arrows, keep_single=True)) for n in c}
    deps: dict[int, set[int]] = {c: set() for c in comp.values()}
    for a, b in arrows:
        if comp[a] != comp[b]:
            deps[comp[a]].add(comp[b])
    memo: dict[int, int] = {}

    def level(c: int) -> int:
        if c not in memo:
            memo[c] = 1 + max((level(d) for d in deps[c]), default=0)
        return memo[c]

    return {n: level(comp[n]) for n in nodes}


def cycles(
    nodes: set[str], arrows: set[tuple[str, str]], keep_single: bool = False
) -> list[list[str]]:
    """Strongly connected components (Tarjan); those of 2+ nodes unless ``keep_single``."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in sorted(arrows):
        succ[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if keep_single or len(comp) > 1:
                out.append(sorted(comp))

    for n in sorted(nodes):
        if n not in index:
            visit(n)
    return out


def part(module: str) -> str:
    """The top-level part a module belongs to (``rcl_study.study.runner`` -> ``study``)."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "__init__"


#: where the flat modules of the layout before 2026-11-29 belong in :data:`ORDER` (for the
#: "before" figures of docs/architecture.md)
LEGACY = {
    "models": "trainer",
    "metrics": "trainer",
    "batches": "trainer",
    "checkpoint": "trainer",
    "evaluation": "trainer",
    "trial_setup": "trainer",
    "pack": "trainer",
    "records": "trials",
    "space": "trials",
    "study_folder": "trials",
    "folders": "trials",
    "files": "store",
}


def _rank(p: str) -> int:
    p = LEGACY.get(p, p)
    return ORDER.index(p) if p in ORDER else len(ORDER)


def figures(root: Path) -> dict[str, object]:
    """The graph's figures at the module and the part level."""
    mods = set(modules(root))
    arrows = edges(root)
    parts = {part(m) for m in mods}
    part_arrows = {(part(a), part(b)) for a, b in arrows if part(a) != part(b)}
    upward = sorted((a, b) for a, b in arrows if _rank(part(a)) < _rank(part(b)))
    return {
        "modules": len(mods),
        "module layers": max(layers(mods, arrows).values()),
        "module arrows": len(arrows),
        "module cycles": len(cycles(mods, arrows)),
        "parts": len(parts),
        "part layers": max(layers(parts, part_arrows).values()),
        "part arrows": len(part_arrows),
        "part cycles": len(cycles(parts, part_arrows)),
        "upward imports": len(upward),
        "upward": [f"{a} -> {b}" for a, b in upward],
    }


def main() -> None:
    """Print the figures (and with ``--edges`` every arrow)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1] / "rcl_study"))
    ap.add_argument("--edges", action="store_true", help="also print every module arrow")
    a = ap.parse_args()
    root = Path(a.root).resolve()
    for key, value in figures(root).items():
        if isinstance(value, list):
            for v in value:
                print(f"  upward: {v}")
        else:
            print(f"{key:16s} {value}")
    if a.edges:
        for x, y in sorted(edges(root)):
            print(f"{x} -> {y}")


if __name__ == "__main__":
    main()
