"""The analytical model: access counts per level and data space, then energy, cycles, utilization.

Semantics follow Timeloop's nest analysis:

* The loop nest is, from the outside in, each storage level's temporal loops followed by its
  spatial loops (which fan the work out over the level's children), down to the MACs.
* A level keeping a data space holds, per instance, the *tile* touched by every loop at and
  below it.  Over time its tile moves as the temporal loops above it iterate; what it must
  receive is the *delta* between consecutive tiles: nothing when only loops irrelevant to the
  data space advance (stationarity), the non-overlapping part when a sliding window advances
  (input halos), the whole tile otherwise, including whenever loops relevant to the data
  space restart (Timeloop gives no credit across a loop restart).  Every advance of loop
  ``k`` moves the tile the same way, so the sum over all time steps is
  ``tile + sum_k events_k * delta_k``.
* Reads of a level serve the next inner level keeping the same data space (or the MACs).
  Children that need the same words at the same time are served by one read (multicast over
  spatial loops irrelevant to the data space); for outputs the dual holds: partial sums of
  children working on the same outputs are reduced spatially before being written.
* Outputs are read-modify-write.  A level's updates are the partial sums arriving from below;
  its reads are its updates minus the distinct outputs it ever holds (its *partition*),
  because the first accumulation into an output never reads the old partial sum (Timeloop's
  first-read elision).  Its fills, likewise, are only the partial sums that come *back* from
  its parent after an eviction: the tile deltas minus the partition (0 when every output
  tile is finished before it leaves).  This is Timeloop's convention; the first arrival of
  an output tile is counted by nobody, since nothing has to be read to create it.
* Energy is charged as Timeloop charges it: per instance, data space and action, whole
  vector accesses of ``block_size`` words (``ceil(words / block_size)``) at the row energy
  of the ERT or estimator, times the utilized instances; plus leakage (an ERT's ``leak``,
  per utilized instance and cycle) and MACs times the MAC energy.  Like Timeloop's defaults,
  network (NoC) energy is not charged separately.
* Cycles are the larger of the compute cycles (temporal iterations per MAC) and, per level,
  the compute cycles stretched by the bandwidth the level's accesses per instance demand
  (read, write and shared bandwidth, words/cycle, where given), rounded up as Timeloop does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from core.errors import HwcostError

from .arch import Architecture, StorageLevel
from .mapping import Mapping
from .workload import DataSpace, Workload, axis_overlap, footprint, points

ACTIONS = ("reads", "fills", "updates")


@dataclass
class DataSpaceStats:
    """Counts for one data space at one level, per instance and totalled over instances."""

    reads: float = 0.0
    fills: float = 0.0
    updates: float = 0.0
    tile_words: int = 0
    reads_per_instance: float = 0.0
    fills_per_instance: float = 0.0
    updates_per_instance: float = 0.0
    energy_pj: float = 0.0
    utilized_instances: int = 1
    partition_words: int = 0     # distinct words one instance ever holds (Timeloop's partition)


@dataclass
class LevelStats:
    name: str
    instances: int
    instances_utilized: int
    dataspaces: dict[str, DataSpaceStats] = field(default_factory=dict)
    energy_pj: float = 0.0
    capacity_words: int | None = None
    words_used: int = 0
    cycles: float = 0.0
    leakage_pj: float = 0.0
    bandwidth_throttling: float = 1.0


@dataclass
class EvalResult:
    """What the model says about one mapping of one workload on one architecture."""

    computes: int
    cycles: float
    utilization: float
    energy_pj: float
    mac_energy_pj: float
    multiply_energy_pj: float
    add_energy_pj: float
    levels: list[LevelStats]            # outermost first
    macs_utilized: int
    compute_cycles: float

    @property
    def memory_energy_pj(self) -> float:
        return sum(lv.energy_pj for lv in self.levels)

    @property
    def edp(self) -> float:
        return self.energy_pj * self.cycles


class MappingError(HwcostError):
    """A mapping that cannot run on the architecture (capacity, fan-out, factors)."""


@lru_cache(maxsize=200_000)
def _axis_overlap(axis: tuple[tuple[int, int], ...], shift: int) -> int:
    """``|S & (S + shift)|`` for the value set S of one data-space axis over a tile."""
    if len(axis) <= 1:
        c, n = axis[0] if axis else (1, 1)
        steps, rem = divmod(abs(shift), abs(c))
        return max(0, n - steps) if rem == 0 else 0
    return axis_overlap(axis, shift)


def _axes(ds: DataSpace, tile: dict[str, int]) -> list[tuple[tuple[int, int], ...]]:
    return [tuple((c, tile.get(d, 1)) for c, d in axis if tile.get(d, 1) > 1 and c)
            for axis in ds.projection]


def transfers(ds: DataSpace, tile: dict[str, int], loops_above: list[tuple[str, int]]) -> int:
    """Words one instance receives over time: first tile plus the delta of every advance.

    ``loops_above`` are the temporal loops above the level, outermost first, and ``tile`` the
    level's per-instance tile extent per dimension.  Every advance of loop ``k`` moves the
    tile the same way, so the sum over all time steps is ``tile + sum_k events_k * delta_k``
    with Timeloop's deltas:

    * a loop irrelevant to the data space moves nothing (stationarity), wherever it is;
    * when a loop relevant to the data space sits inside loop ``k``, it restarts at every
      advance of ``k`` and the whole tile is charged;
    * a sliding window keeps its overlap only along the innermost (non-trivial) loop above
      the level; a relevant loop with only irrelevant loops inside it is charged the whole
      tile.  (Timeloop's Eyeriss VGG exercise: ``for P7 { for M4 }`` above the global
      buffer refetches the whole input tile at every ``P`` step, halo included.)
    """
    loops = [(d, f) for d, f in loops_above if f > 1]
    axes = _axes(ds, tile)
    full = math.prod(points(a) for a in axes)
    total = full
    outer_iters = 1
    last = len(loops) - 1
    for k, (dim_k, f_k) in enumerate(loops):
        events = (f_k - 1) * outer_iters
        outer_iters *= f_k
        if any(ds.relevant(d) for d, _ in loops[k + 1:]):
            total += events * full          # relevant inner loops restart: no credit
            continue
        if not ds.relevant(dim_k):
            continue                        # stationary across this loop
        if k < last:
            total += events * full          # only irrelevant loops inside: no halo credit
            continue
        # the innermost loop moves the tile: a sliding window keeps what overlaps
        total += events * (full - sliding_overlap(ds, tile, dim_k, axes))
    return total


def sliding_overlap(ds: DataSpace, tile: dict[str, int], dim: str,
                    axes: list[tuple[tuple[int, int], ...]] | None = None) -> int:
    """Words of ``ds`` a tile shares with itself moved one step of its extent along
    ``dim`` (what a sliding window keeps when ``dim`` is the innermost loop above it)."""
    axes = _axes(ds, tile) if axes is None else axes
    overlap = 1
    step = tile.get(dim, 1)
    for axis_terms, axis in zip(ds.projection, axes):
        value_shift = sum(c * step for c, d in axis_terms if d == dim)
        overlap *= _axis_overlap(axis, value_shift)
        if overlap == 0:
            break
    return overlap


def mac_transfers(ds: DataSpace, loops: list[tuple[str, int]], compute_iters: int,
                  hold: bool) -> int:
    """Operands of ``ds`` one MAC receives over the run (``loops``: every temporal loop,
    outermost first).

    Timeloop's nest analysis (``nest-analysis.cpp``) bottoms out at the innermost loop of
    the whole nest.  When it is temporal, every compute accesses every operand (one per
    compute, ``compute_iters``).  When it is spatial (a fan-out straight into the MACs),
    the temporal loops above count deltas of each MAC's operand between consecutive cycles:
    an operand the innermost temporal loops do not change is fetched once and *held*
    (``hold``), i.e. the MAC is a keeper with a one-word tile.  Timeloop's
    ``interface2024`` exercise (``buffer: for M8`` innermost above an 8-MAC fan-out over M)
    reads its Inputs once per 8 cycles; every design whose innermost loop is temporal
    reads once per compute.  (Kept in one place: the search prices the MACs through it.)"""
    if not hold:
        return compute_iters
    return transfers(ds, {}, loops)


def innermost_is_spatial(mapping: Mapping) -> bool:
    """Whether the innermost non-trivial loop of the nest is a spatial one (each level's
    temporal loops sit above its spatial loops; loops of bound 1 are no loops)."""
    for lm in reversed(mapping.levels):
        if any(f > 1 for _d, f in lm.spatial):
            return True
        if any(f > 1 for _d, f in lm.temporal):
            return False
    return False


def distinct_children(ds: DataSpace, unit: dict[str, int], loops: list[tuple[str, int]]) -> int:
    """How many different pieces of ``ds`` the children of one fan-out stage hold.

    Children whose tiles are equal are served by one parent access (multicast; for outputs,
    their partial sums are reduced on the way up).  Tiles of siblings are translations of
    each other, equal exactly when the translation is 0 on every axis of the data space;
    overlapping but unequal tiles (sliding-window halos) count separately, as in Timeloop.
    ``unit`` is the extent of one child's tile per dimension; ``loops`` the stage's loops.
    """
    relevant = tuple(sorted((d, e) for d, e in unit.items() if ds.relevant(d)))
    return _distinct(ds, relevant, tuple(loops))


@lru_cache(maxsize=100_000)
def _distinct(ds: DataSpace, unit: tuple[tuple[str, int], ...],
              loops: tuple[tuple[str, int], ...]) -> int:
    """Distinct translations ``sum_k i_k * shift_k`` (``i_k`` in ``range(f_k)``).

    Axes that no loop links to another are independent, so the count is a product over
    groups of linked axes; a group of one axis is a 1-D sum counted run by run
    (:func:`points`), and only loops moving several axes at once are enumerated.  (Listing
    every translation of a 1024x1024 mesh took seconds per call.)
    """
    ext = dict(unit)
    shifts: list[tuple[tuple[int, ...], int]] = []
    for d, f in loops:
        if f <= 1:
            continue
        step = ext.get(d, 1)
        shift = tuple(sum(c * step for c, dd in axis if dd == d) for axis in ds.projection)
        if any(shift):
            shifts.append((shift, f))
        ext[d] = step * f
    total = 1
    for group in _linked_axes([[k for k, v in enumerate(sh) if v] for sh, _f in shifts]):
        moving = [(tuple(sh[k] for k in group), f) for sh, f in shifts
                  if any(sh[k] for k in group)]
        if len(group) == 1:
            total *= points(tuple((sh[0], f) for sh, f in moving))
            continue
        offsets = {tuple(0 for _ in group)}
        for sh, f in moving:
            offsets = {tuple(o + i * x for o, x in zip(off, sh))
                       for off in offsets for i in range(f)}
        total *= len(offsets)
    return total


def _linked_axes(supports: list[list[int]]) -> list[list[int]]:
    """Groups of axes connected by a common loop (``supports``: the axes each loop moves)."""
    groups: list[set[int]] = []
    for axes in supports:
        merged = set(axes)
        for g in [g for g in groups if g & merged]:
            groups.remove(g)
            merged |= g
        groups.append(merged)
    return [sorted(g) for g in groups]


def access_energy(s: DataSpaceStats, level: StorageLevel, energy) -> float:
    """pJ of one data space at one level, all utilized instances, Timeloop's way.

    A storage level is accessed a row (``block_size`` words) at a time, and Timeloop charges
    every action of every instance in whole rows: ``ceil(words / block_size)`` row accesses
    at the row energy, separately for reads, fills and updates.  A small tile in a wide
    memory (3 weights in a 64-bit DRAM row) therefore pays a full row, which per-word
    pricing would miss by up to the block size.  Where ``cluster_size`` instances share a
    physical row, the utilized instances share the row accesses of the clusters they use.
    """
    block_size = getattr(energy, "block_size", None)     # per-word tables price words
    block = 1 if block_size is None else block_size(level.name)
    total = 0.0
    for count, action in ((s.reads_per_instance, "read"), (s.fills_per_instance, "write"),
                          (s.updates_per_instance, "update")):
        if count > 0:
            rows = math.ceil(count / block - 1e-9)
            total += rows * block * energy.per_word(level.name, action)
    used = s.utilized_instances
    if level.cluster_size > 1 and used:
        clusters = max(1, level.instances // level.cluster_size)
        total /= used / min(used, clusters)
    return total * used


def _throttling(lv, st: LevelStats, compute_cycles: int) -> float:
    """Timeloop's bandwidth slowdown of a level: 1, or the share of the demand it can serve."""
    if not compute_cycles:
        return 1.0
    reads = sum(s.reads_per_instance for s in st.dataspaces.values()) / compute_cycles
    writes = sum(s.fills_per_instance + s.updates_per_instance
                 for s in st.dataspaces.values()) / compute_cycles
    slow = 1.0
    for bw, demand in ((lv.read_bandwidth, reads), (lv.write_bandwidth, writes),
                       (lv.shared_bandwidth, reads + writes)):
        if bw and demand > bw:
            slow = min(slow, bw / demand)
    return slow


def _dims_product(loops: list[tuple[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d, f in loops:
        out[d] = out.get(d, 1) * f
    return out


def level_tiles(mapping: Mapping, bounds: dict[str, int]) -> list[dict[str, int]]:
    """Per level, the extent of every dim over the loops at and below it."""
    tiles: list[dict[str, int]] = []
    acc: dict[str, int] = {d: 1 for d in bounds}
    for lm in reversed(mapping.levels):
        for d, f in lm.temporal + lm.spatial:
            acc[d] = acc.get(d, 1) * f
        tiles.append(dict(acc))
    return tiles[::-1]


def overflow(arch: Architecture, workload: Workload, mapping: Mapping,
             tiles: list[dict[str, int]] | None = None) -> tuple[int, int, int] | None:
    """The first level (index, words needed, capacity) whose kept tiles do not fit."""
    tiles = tiles if tiles is not None else level_tiles(mapping, workload.bounds)
    for i, lv in enumerate(arch.levels):
        cap = lv.capacity_words
        if cap is None:
            continue
        kept = mapping.levels[i].keep
        words = sum(footprint(ds, tiles[i]) for ds in workload.data_spaces if ds.name in kept)
        if words > cap:
            return i, words, cap
    return None


def evaluate(arch: Architecture, workload: Workload, mapping: Mapping, energy=None,
             check: bool = True) -> EvalResult:
    """Counts, energy, cycles and utilization of ``mapping`` (see the module docstring).

    ``energy`` is an :class:`hwmodel.energy.EnergyTable`-like object with
    ``per_word(level_name, action)`` and ``mac()`` / ``multiply()`` / ``add()``; without it
    energies are zero (counts only).
    """
    n = len(arch.levels)
    if len(mapping.levels) != n:
        raise MappingError(f"mapping has {len(mapping.levels)} levels, the architecture {n}")
    bounds = workload.bounds
    tiles = level_tiles(mapping, bounds)
    if check:
        for d, b in bounds.items():
            if tiles[0].get(d, 1) != b:
                raise MappingError(f"factors of {d} multiply to {tiles[0].get(d, 1)}, but "
                                   f"the workload has {d}={b}")
        # capacity first: it is cheap, and the mapper asks about many tilings that overflow
        over = overflow(arch, workload, mapping, tiles)
        if over is not None:
            i, words, cap = over
            raise MappingError(f"tiles at {arch.levels[i].name} need {words} words, "
                               f"capacity is {cap}")
    temporal_above: list[list[tuple[str, int]]] = []
    loops: list[tuple[str, int]] = []
    for i in range(n):
        temporal_above.append(list(loops))
        loops = loops + mapping.levels[i].temporal
    all_temporal = loops
    hold = innermost_is_spatial(mapping)
    utilized = [1] * (n + 1)
    for i in range(n):
        lm = mapping.levels[i]
        sx = math.prod(f for _, f in lm.all_x)
        sy = math.prod(f for _, f in lm.all_y)
        lv = arch.levels[i]
        if check and (sx > lv.fanout_x or sy > lv.fanout_y):
            raise MappingError(f"spatial factors {sx}x{sy} at {lv.name} exceed its fan-out "
                               f"{lv.fanout_x}x{lv.fanout_y}")
        utilized[i + 1] = utilized[i] * sx * sy
    macs_utilized = utilized[n]
    compute_iters = math.prod(f for _, f in all_temporal)
    computes = workload.computes

    stats = [LevelStats(lv.name, lv.instances, utilized[i], capacity_words=lv.capacity_words)
             for i, lv in enumerate(arch.levels)]
    for ds in workload.data_spaces:
        keepers = [i for i in range(n) if ds.name in mapping.levels[i].keep]
        if not keepers or keepers[0] != 0:
            raise MappingError(f"the outermost level {arch.levels[0].name} must keep "
                               f"{ds.name}")
        per_inst_transfers = {i: transfers(ds, tiles[i], temporal_above[i]) for i in keepers}
        distinct = {}
        for i in keepers:
            dom = dict(tiles[i])
            for d, f in temporal_above[i]:
                dom[d] = dom.get(d, 1) * f
            distinct[i] = footprint(ds, dom)
        for idx, i in enumerate(keepers):
            st = DataSpaceStats(tile_words=footprint(ds, tiles[i]), utilized_instances=utilized[i],
                                partition_words=distinct[i])
            child = keepers[idx + 1] if idx + 1 < len(keepers) else None
            # what one instance of level i sends down, before multicast / after reduction
            if child is None:
                child_tile = {d: 1 for d in bounds}
                child_transfers = mac_transfers(ds, all_temporal, compute_iters, hold)
                span_levels = range(i, n)
            else:
                child_tile = tiles[child]
                child_transfers = per_inst_transfers[child]
                span_levels = range(i, child)
            # fan-out stages between the two levels, innermost first: each multiplies the
            # traffic by the number of distinct tiles among its children
            stages = [loops for j in span_levels
                      for loops in mapping.levels[j].spatial_stages()][::-1]
            spread = 1
            unit = dict(child_tile)
            for loops in stages:
                spread *= distinct_children(ds, unit, loops)
                for d, f in loops:
                    unit[d] = unit.get(d, 1) * f
            if ds.read_write:
                st.updates_per_instance = child_transfers * spread
                st.reads_per_instance = max(0.0, st.updates_per_instance - distinct[i])
                if idx > 0:
                    st.fills_per_instance = max(0, per_inst_transfers[i] - distinct[i])
            else:
                st.reads_per_instance = child_transfers * spread
                if idx > 0:
                    st.fills_per_instance = per_inst_transfers[i]
            u = utilized[i]
            st.reads = st.reads_per_instance * u
            st.fills = st.fills_per_instance * u
            st.updates = st.updates_per_instance * u
            stats[i].dataspaces[ds.name] = st
            stats[i].words_used += st.tile_words
    # cycles: compute-bound unless a level's bandwidth throttles it
    compute_cycles = compute_iters
    cycles = float(compute_cycles)
    for i, lv in enumerate(arch.levels):
        st_level = stats[i]
        st_level.bandwidth_throttling = _throttling(lv, st_level, compute_cycles)
        st_level.cycles = float(math.ceil(compute_cycles / st_level.bandwidth_throttling))
        cycles = max(cycles, st_level.cycles)
    if energy is not None:
        for i, lv in enumerate(arch.levels):
            st_level = stats[i]
            for s in st_level.dataspaces.values():
                s.energy_pj = access_energy(s, lv, energy)
            leak = getattr(energy, "leak_per_cycle", None)
            st_level.leakage_pj = (0.0 if leak is None else
                                   leak(lv.name) * cycles * st_level.instances_utilized)
            st_level.energy_pj = (sum(s.energy_pj for s in st_level.dataspaces.values())
                                  + st_level.leakage_pj)
    mult = energy.multiply() * computes if energy is not None else 0.0
    add = energy.add() * computes if energy is not None else 0.0
    mac = energy.mac() * computes if energy is not None else 0.0
    total = mac + sum(s.energy_pj for s in stats)
    total_macs = arch.compute.instances
    utilization = computes / (cycles * total_macs) if cycles else 0.0
    return EvalResult(computes=computes, cycles=cycles, utilization=utilization,
                      energy_pj=total, mac_energy_pj=mac, multiply_energy_pj=mult,
                      add_energy_pj=add, levels=stats, macs_utilized=macs_utilized,
                      compute_cycles=compute_cycles)


def result_json(result: EvalResult, mapping_text: str | None = None) -> dict:
    """The Timeloop-compatible JSON view, levels ordered from the compute unit outwards.

    Counts are given as Timeloop prints them (``*_per_instance`` with the utilized
    instances) and as totals over the utilized instances (``reads``, ``fills``,
    ``updates``), which are the per-instance counts times ``utilized_instances``.
    """
    def dataspace(s: DataSpaceStats) -> dict:
        return {"reads": s.reads, "fills": s.fills, "updates": s.updates,
                "reads_per_instance": s.reads_per_instance,
                "fills_per_instance": s.fills_per_instance,
                "updates_per_instance": s.updates_per_instance,
                "utilized_instances": s.utilized_instances,
                "tile_words": s.tile_words, "partition_words": s.partition_words,
                "energy_pj": s.energy_pj}

    return {
        "computes": result.computes,
        "cycles": result.cycles,
        "utilization": result.utilization,
        "energy_pj": result.energy_pj,
        "mac_energy_pj": result.mac_energy_pj,
        "macs_utilized": result.macs_utilized,
        "levels": [
            {"name": lv.name, "instances_utilized": lv.instances_utilized,
             "energy_pj": lv.energy_pj, "leakage_pj": lv.leakage_pj, "cycles": lv.cycles,
             "bandwidth_throttling": lv.bandwidth_throttling,
             "dataspaces": {name: dataspace(s) for name, s in lv.dataspaces.items()}}
            for lv in reversed(result.levels)],
        "mapping": mapping_text,
    }
