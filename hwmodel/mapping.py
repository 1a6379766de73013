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
class SpatialStage:
    """Spatial loops of one container (Timeloop pseudo-level such as ``inter_PE_spatial``)
    below a storage level.

    Timeloop treats every container as a level of its own: multicast and spatial reduction
    are found among the siblings of one container at a time, so a column container's
    children (``Q``) and a PE container's children (``M``, ``S``) are not merged across
    containers even where their data overlaps.  Keeping the stages apart keeps those counts.
    """

    name: str
    x: list[Loop] = field(default_factory=list)
    y: list[Loop] = field(default_factory=list)

    @property
    def loops(self) -> list[Loop]:
        return self.x + self.y


@dataclass
class LevelMapping:
    temporal: list[Loop] = field(default_factory=list)   # outermost loop first
    spatial_x: list[Loop] = field(default_factory=list)  # the level's own fan-out loops
    spatial_y: list[Loop] = field(default_factory=list)
    keep: frozenset[str] = frozenset()
    #: spatial loops of the containers below the level, outermost container first
    stages: list[SpatialStage] = field(default_factory=list)

    @property
    def all_x(self) -> list[Loop]:
        return self.spatial_x + [lp for st in self.stages for lp in st.x]

    @property
    def all_y(self) -> list[Loop]:
        return self.spatial_y + [lp for st in self.stages for lp in st.y]

    @property
    def spatial(self) -> list[Loop]:
        """Every spatial loop over this level's fan-out, whichever container it belongs to."""
        return self.all_x + self.all_y

    def spatial_stages(self) -> list[list[Loop]]:
        """The loops of each fan-out stage, outermost first (the level's own, then its
        containers'), for multicast and reduction."""
        own = self.spatial_x + self.spatial_y
        return [own] + [st.loops for st in self.stages]

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
            s = " ".join(f"{d}{f}" for d, f in lv.all_x if f > 1)
            s += (" " if s else "") + " ".join(f"{d}{f}" for d, f in lv.all_y if f > 1) \
                if any(f > 1 for _, f in lv.all_y) else ""
            body = t + (f"|{s.strip()}" if s.strip() else "")
            parts.append(f"{name}[{body}]")
        return " ".join(parts)
