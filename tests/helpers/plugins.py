"""A plugin package made on the fly: a module and its entry points, installed under a folder.

``fake_plugin(folder, module, source, entry_points)`` writes ``folder/<module>.py`` and a
``<module>-0.1.dist-info`` holding ``METADATA`` and ``entry_points.txt``: with ``folder`` on
``sys.path`` (or ``PYTHONPATH``), ``importlib.metadata`` finds the package as an installed one.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def fake_plugin(
    folder: Path, module: str, source: str, entry_points: dict[str, dict[str, str]]
) -> Path:
    """Write the package ``module`` (``source``) with ``entry_points`` (group -> name -> attr)."""
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    lines = []
    for group, names in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {module}:{attr}" for name, attr in names.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return folder
