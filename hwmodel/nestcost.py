"""What a spatial plan fixes, and the model's pricing pieces, for a search that decides a
mapping piecewise.

:func:`hwmodel.model.evaluate` prices a whole mapping at once.  The branch and bound of
:mod:`hwmodel.search` prices partial mappings term by term: the words one instance of a
keeper receives (the model's :func:`~hwmodel.model.transfers`, in closed form there), the
multicast spread between a keeper and its parent (:func:`~hwmodel.model.distinct_children`
over the fan-out stages in between), each instance's partition, and the per-word energy of
an action in whole rows (:func:`~hwmodel.model.access_energy`).  This module holds the
pieces that depend only on the spatial plan and the energy table, computed once per plan.
``tests/hwmodel/test_branch_and_bound.py`` checks the search's prices against ``evaluate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .arch import Architecture
from .mapping import Loop
from .mapspace import MapSpace, SpatialPlan
from .model import distinct_children


class EnergyView:
    """Per-word energies and block sizes of an energy table (or zeros without one), looked
    up once per level instead of per term."""

    def __init__(self, arch: Architecture, energy) -> None:
        names = [lv.name for lv in arch.levels]
        self.zero = energy is None
        block_size = getattr(energy, "block_size", None)
        self.block = [1 if block_size is None else max(1, int(block_size(n))) for n in names]
        self.pj = [{a: (0.0 if energy is None else float(energy.per_word(n, a)))
                    for a in ("read", "write", "update")} for n in names]
        leak = getattr(energy, "leak_per_cycle", None)
        self.leak = [0.0 if leak is None else float(leak(n)) for n in names]
        self.mac_pj = 0.0 if energy is None else float(energy.mac())


@dataclass
class PlanCost:
    """What a spatial plan fixes: fan-out, instances in use, per-instance extents."""

    plan: SpatialPlan
    spatial: list[dict[str, int]]          # per level, product of its stages' factors
    utilized: list[int]                    # instances in use above level i (len n + 1)
    spatial_above: list[dict[str, int]]    # per level 0..n, spatial factors above it
    temporal_total: dict[str, int]         # per dim, all temporal factors together
    compute_iters: int
    #: stage loops per level, in the model's order ([own] + containers)
    stage_loops: list[list[list[Loop]]]


class NestCost:
    """Counts and energies of one workload on one architecture with one energy table."""

    def __init__(self, space: MapSpace, energy) -> None:
        self.space = space
        self.arch = space.arch
        self.n = space.n
        self.ev = EnergyView(space.arch, energy)
        self.data_spaces = space.data_spaces
        self.relevant = [ds.dims() for ds in self.data_spaces]
        levels = self.arch.levels
        self.mult_cap = [max(1, lv.instances // lv.cluster_size) if lv.cluster_size > 1
                         else None for lv in levels]
        self.has_bandwidth = any(lv.read_bandwidth or lv.write_bandwidth or
                                 lv.shared_bandwidth for lv in levels)
        self.has_leak = any(v for v in self.ev.leak)

    # ------------------------------------------------------------------ plan
    def plan_cost(self, plan: SpatialPlan) -> PlanCost:
        space = self.space
        spatial = space.spatial_by_level(plan)
        utilized = [1] * (self.n + 1)
        above: list[dict[str, int]] = [dict() for _ in range(self.n + 1)]
        for i in range(self.n):
            utilized[i + 1] = utilized[i] * math.prod(spatial[i].values())
            acc = dict(above[i])
            for d, f in spatial[i].items():
                acc[d] = acc.get(d, 1) * f
            above[i + 1] = acc
        total = {d: b // above[self.n].get(d, 1) for d, b in space.bounds.items()}
        stage_loops: list[list[list[Loop]]] = []
        for i in range(self.n):
            own: list[Loop] = []
            conts: list[list[Loop]] = []
            for k in space.level_stages[i]:
                st = space.stages[k]
                x, y = plan.loops[k]
                if st.index < 0:
                    own = list(x) + list(y)
                elif x or y:
                    conts.append(list(x) + list(y))
            stage_loops.append([own] + conts)
        return PlanCost(plan, spatial, utilized, above, total, math.prod(total.values()),
                        stage_loops)

    # ------------------------------------------------------------------ per-term counts
    def spread(self, pc: PlanCost, k: int, parent: int, child: int,
               child_tile: dict[str, int] | None) -> int:
        """Distinct child tiles one parent access serves, over the fan-out stages between
        ``parent`` and ``child`` (``child_tile`` None: the MACs), innermost stage first."""
        ds = self.data_spaces[k]
        stages = [loops for j in range(parent, child) for loops in pc.stage_loops[j]][::-1]
        unit = dict(child_tile) if child_tile is not None else {d: 1 for d in
                                                                self.space.bounds}
        total = 1
        for loops in stages:
            if loops:
                total *= distinct_children(ds, unit, loops)
                for d, f in loops:
                    unit[d] = unit.get(d, 1) * f
        return total

    # ------------------------------------------------------------------ energy
    def action_pj(self, pc: PlanCost, level: int, action: str, count: float,
                  exact: bool = True) -> float:
        """pJ of ``count`` words per instance of one action at one level, all instances in
        use, in whole rows when ``exact`` (a lower bound prices words)."""
        if count <= 0:
            return 0.0
        if exact:
            block = self.ev.block[level]
            count = math.ceil(count / block - 1e-9) * block
        used = pc.utilized[level]
        cap = self.mult_cap[level]
        mult = used if cap is None or not used else min(used, cap)
        return count * self.ev.pj[level][action] * mult


def tiles_of(space: MapSpace, pc: PlanCost, factors: list[dict[str, int]]) -> list[dict]:
    """Per level, the extent of every dim over the loops at and below it."""
    n = space.n
    acc = {d: 1 for d in space.bounds}
    out: list[dict[str, int]] = [dict() for _ in range(n)]
    for i in range(n - 1, -1, -1):
        for d, f in factors[i].items():
            acc[d] *= f
        for d, f in pc.spatial[i].items():
            acc[d] *= f
        out[i] = dict(acc)
    return out
