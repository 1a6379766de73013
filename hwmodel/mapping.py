"""Mappings: how a workload's loops are tiled over an architecture's levels.

A :class:`Mapping` holds, for every storage level (outermost first, aligned with
``Architecture.levels``), the temporal loops that iterate at that level, the spatial loops
that distribute work over its fan-out, and which data spaces the level keeps (the rest
bypass it).  This is Timeloop's mapping in object form; ``hwmodel.mapping_yaml`` reads and
writes the YAML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Loop = tuple[str, int]  # (dimension, factor)


@dataclass
class LevelMapping:
    temporal: list[Loop] = field(default_factory=list)   # outermost loop first
    spatial_x: list[Loop] = field(default_factory=list)
    spatial_y: list[Loop] = field(default_factory=list)
    keep: frozenset[str] = frozenset()

    @property
    def spatial(self) -> list[Loop]:
        return self.spatial_x + self.spatial_y

    def factor(self, dim: str, spatial: bool = False) -> int:
        loops = self.spatial if spatial else self.temporal
        return math.prod(f for d, f in loops if d == dim)


@dataclass
class Mapping:
    levels: list[LevelMapping]

    def dim_product(self, dim: str) -> int:
        return math.prod(lv.factor(dim) * lv.factor(dim, spatial=True) for lv in self.levels)

    def short(self, names: list[str]) -> str:
        """One-line form: ``DRAM[M4 C2] GLB[P7|X:M14] ...`` (temporal | spatial)."""
        parts = []
        for name, lv in zip(names, self.levels):
            t = " ".join(f"{d}{f}" for d, f in lv.temporal if f > 1)
            s = " ".join(f"{d}{f}" for d, f in lv.spatial_x if f > 1)
            s += (" " if s else "") + " ".join(f"{d}{f}" for d, f in lv.spatial_y if f > 1) \
                if any(f > 1 for _, f in lv.spatial_y) else ""
            body = t + (f"|{s.strip()}" if s.strip() else "")
            parts.append(f"{name}[{body}]")
        return " ".join(parts)
