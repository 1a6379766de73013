"""Feasibility on the map-space side: the smallest tiles the constraints allow, and a bound.

No search happens here; everything is a construction on a :class:`~hwmodel.mapspace.MapSpace`:

* :func:`forced_plan`: the spatial plan with only the loops the constraints demand (or the
  located error of a spatial constraint no mesh can take);
* :func:`smallest_mapping`: every free factor at the outermost level that may take it, no
  spatial loop a constraint does not demand, only the data spaces a level must keep.  Tiles
  only grow when factors move inwards, so when these tiles do not fit no mapping fits, and
  the error says which level, how many words and which constraints force them;
* :func:`smallest_is_minimal`: whether that argument holds (every dimension with factors to
  place may place them at the outermost level); where a constraint pins a dimension there,
  an outer fan-out may do better than the construction, and the mapper
  (:class:`hwmodel.mapper.Mapper`) lets a search decide before declaring anything impossible;
* :func:`compulsory_bound`: a lower bound of every metric valid for every mapping (the MACs,
  every word crossing the outermost level once, all MACs busy).
"""

from __future__ import annotations

import math

from .mapping import Mapping
from .mapspace import MapSpace, SpatialPlan, divisors
from .model import MappingError, level_tiles
from .objectives import Objective
from .workload import Workload, footprint


def smallest_is_minimal(space: MapSpace) -> bool:
    """Whether no mapping has smaller tiles than :func:`smallest_mapping`'s: every
    dimension whose free factors exceed 1 may put them all at level 0."""
    budget = space.temporal_budget(space.spatial_by_level(forced_plan(space)))
    if budget is None:
        return True
    c = space.arch.levels[0].temporal
    return all(left == 1 or (d not in space.fixed_temporal[0] and
                             (c is None or d not in c.max_factors))
               for d, left in budget.items())


def smallest_mapping(space: MapSpace) -> Mapping:
    """The mapping with the smallest tiles the constraints allow, or the proof that
    no mapping fits (a located :class:`MappingError`)."""
    workload = space.workload
    arch = space.arch
    plan = forced_plan(space)
    spatial = space.spatial_by_level(plan)
    budget = space.temporal_budget(spatial)
    if budget is None:
        raise MappingError(f"no valid mapping of {workload.name} ({_shape(workload)}) "
                           f"on {arch.name}: the fixed factors of the constraints "
                           f"({_fixed_text(space)}) do not divide the problem's bounds")
    factors: list[dict[str, int]] = [{} for _ in range(space.n)]
    for i in range(space.n):
        for d, f in space.fixed_temporal[i].items():
            factors[i][d] = f
    for d, left in budget.items():
        for i in space.free_levels(d):
            if left == 1:
                break
            c = arch.levels[i].temporal
            cap = c.max_factors.get(d) if c is not None else None
            f = left if cap is None else max(x for x in divisors(left) if x <= cap)
            factors[i][d] = factors[i].get(d, 1) * f
            left //= f
        if left != 1:
            raise MappingError(f"no valid mapping of {workload.name} ({_shape(workload)})"
                               f" on {arch.name}: the temporal constraints leave "
                               f"{d}={left} with no level allowed to take it")
    keeps = [frozenset(space.keep_options[0][0])] + list(space.forced_keep[1:])
    orders = [space.loop_orders(i, tuple(d for d in space.dims
                                         if factors[i].get(d, 1) > 1))[0].order
              for i in range(space.n)]
    mapping = space.build(plan, factors, orders, keeps)
    tiles = level_tiles(mapping, workload.bounds)
    for i, lv in enumerate(arch.levels):
        cap = lv.capacity_words
        if cap is None:
            continue
        used = {ds.name: footprint(ds, tiles[i]) for ds in workload.data_spaces
                if ds.name in keeps[i]}
        if sum(used.values()) > cap:
            held = ", ".join(f"{k} {v}" for k, v in used.items())
            forced = _forcing(space, plan, i)
            raise MappingError(
                f"no valid mapping of {workload.name} ({_shape(workload)}) on "
                f"{arch.name}: {lv.name} must keep {', '.join(sorted(used))} and "
                f"even the smallest tiles the constraints allow need "
                f"{sum(used.values())} words ({held}), capacity {cap}"
                + (f"; forced by {forced}" if forced else ""))
    return mapping


def forced_plan(space: MapSpace) -> SpatialPlan:
    """The spatial plan with only the loops the constraints demand."""
    remaining = dict(space.bounds)
    loops = []
    for stage in space.stages:
        c = stage.constraint
        x: list[tuple[str, int]] = []
        y: list[tuple[str, int]] = []
        if c is not None:
            for d, f in c.factors.items():
                if d not in remaining or f == 1:
                    continue
                want = space.bounds[d] if f == 0 else f
                if want == 1:
                    continue
                xs, ys = space.stage_dims(stage, "x"), space.stage_dims(stage, "y")
                if stage.mesh_x > 1 and d in xs and want <= stage.mesh_x:
                    x.append((d, want))
                elif stage.mesh_y > 1 and d in ys and want <= stage.mesh_y:
                    y.append((d, want))
                else:
                    raise MappingError(
                        f"no valid mapping of {space.workload.name} "
                        f"({_shape(space.workload)}) on {space.arch.name}: the spatial "
                        f"constraint of {stage.name or space.arch.levels[stage.level].name}"
                        f" demands {d}={want}, which its {stage.mesh_x}x{stage.mesh_y} "
                        "mesh cannot take")
                if remaining[d] % want:
                    raise MappingError(
                        f"no valid mapping of {space.workload.name} "
                        f"({_shape(space.workload)}): a spatial constraint demands "
                        f"{d}={want}, which does not divide {remaining[d]}")
                remaining[d] //= want
        if math.prod(f for _d, f in x) > stage.mesh_x or \
                math.prod(f for _d, f in y) > stage.mesh_y:
            raise MappingError(f"no valid mapping of {space.workload.name}: the spatial "
                               f"constraints of {stage.name} overfill its mesh")
        loops.append((tuple(x), tuple(y)))
    return SpatialPlan(tuple(loops))


def compulsory_bound(space: MapSpace, energy, objective: Objective) -> tuple[float, ...]:
    """A bound valid for every mapping: the MACs, every word read from (outputs written
    to) the outermost level once, and the cycles of all MACs busy."""
    workload = space.workload
    e = 0.0
    if energy is not None:
        e = energy.mac() * workload.computes
        outer = space.arch.levels[0].name
        for ds in workload.data_spaces:
            action = "update" if ds.read_write else "read"
            e += workload.size(ds) * energy.per_word(outer, action)
    cycles = math.ceil(workload.computes / max(1, space.arch.compute.instances))
    return objective.value(e, float(cycles))


def _fixed_text(space: MapSpace) -> str:
    parts = []
    for i, fixed in enumerate(space.fixed_temporal):
        for d, f in fixed.items():
            parts.append(f"{space.arch.levels[i].name} {d}={f}")
    return ", ".join(parts) or "none"


def _forcing(space: MapSpace, plan: SpatialPlan, level: int) -> str:
    """The constraints that put factors at or below ``level`` (what makes its tile big)."""
    parts = []
    for i in range(level, space.n):
        lv = space.arch.levels[i]
        for d, f in space.fixed_temporal[i].items():
            if f != 1:
                where = f" (line {lv.temporal.line})" if lv.temporal and lv.temporal.line else ""
                parts.append(f"{lv.name} temporal {d}={f}{where}")
    for k, stage in enumerate(space.stages):
        if stage.level < level:
            continue
        x, y = plan.loops[k]
        for d, f in x + y:
            parts.append(f"{stage.name or space.arch.levels[stage.level].name} spatial {d}={f}")
    return ", ".join(parts)


def _shape(workload: Workload) -> str:
    return " ".join(f"{d}={b}" for d, b in workload.dims)
