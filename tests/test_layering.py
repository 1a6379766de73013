"""The dependency picture of the README holds for every import of every module.

``core <- multiplier_lib <- hwmodel <- darts <- nas <- hwcost``: a package imports only from
packages to its left (function-level imports included, relative ones resolved), and ``core``,
``hwmodel`` and ``darts`` never import torch, so the cost model and the network description
stay usable without it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("core", "multiplier_lib", "hwmodel", "darts", "nas", "hwcost")
TORCH_FREE = ("core", "hwmodel", "darts")


def modules() -> list[Path]:
    return sorted(p for pkg in ORDER for p in (ROOT / pkg).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Top-level names of everything ``path`` imports, anywhere in the file."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    package = rel[:-1]          # a module's own package (an __init__'s too)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                names.add(base[0] if base else rel[0])
            elif node.module:
                names.add(node.module.split(".")[0])
    return names


def test_the_picture_covers_a_real_tree():
    found = modules()
    assert len(found) > 100
    assert {p.relative_to(ROOT).parts[0] for p in found} == set(ORDER)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_left(path):
    own = path.relative_to(ROOT).parts[0]
    allowed = set(ORDER[:ORDER.index(own) + 1])
    wrong = sorted(n for n in imported(path) if n in ORDER and n not in allowed)
    assert not wrong, f"{own} may import only {sorted(allowed)}, imports {wrong}"
    if own in TORCH_FREE:
        assert not imported(path) & {"torch", "triton"}, f"{own} must not import torch"


def test_the_checker_sees_imports_that_break_the_picture(tmp_path):
    """The checker itself: a function-level import and a relative import are both seen."""
    probe = ROOT / "darts" / "_layering_probe.py"
    probe.write_text("def f():\n    from nas import search\n    import torch\n"
                     "from . import pricing\n")
    try:
        names = imported(probe)
    finally:
        probe.unlink()
    assert {"nas", "torch", "darts"} <= names
