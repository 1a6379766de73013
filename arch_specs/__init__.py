"""Accelerator specs shipped with hwcost, resolvable by bare name.

``hwcost estimate --arch eyeriss`` should work without the user knowing where the package
was installed, so the specs are package data found through :mod:`importlib.resources`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def list_bundled() -> list[str]:
    """Names (file stems) of the bundled ``*.yaml`` specs, sorted."""
    root = resources.files(__name__)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def bundled_path(name: str) -> Path | None:
    """Filesystem path of bundled spec ``name`` (``"eyeriss"``), or None if not bundled."""
    if not name or "/" in name or "\\" in name:
        return None
    entry = resources.files(__name__) / f"{name}.yaml"
    if not entry.is_file():
        return None
    return Path(str(entry))
