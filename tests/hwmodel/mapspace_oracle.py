"""A brute-force oracle for the mapper: Timeloop's map space, walked point by point.

The mapper (issue 18) claims optimality; the only convincing check of such a claim is an
independent enumeration of the *whole* space on cases small enough to walk.  This module
defines that space from the architecture and workload objects alone (it shares no code
with ``hwmodel.mapper``) and prices every point with ``hwmodel.model.evaluate``, the
ground truth for a mapping's cost.  It also generates small random architectures,
workloads and energy tables (seeded) for the property test.

The space (Timeloop's, as hwcost implements it):

* *slots*: per storage level one temporal slot, and one spatial slot per fan-out stage and
  axis whose mesh extent on that axis is > 1.  A level's fan-out is one stage per container
  when its containers' meshes multiply to the fan-out, else one plain stage;
* per dimension, a perfect ordered factorization of its bound over all slots; the product
  of the factors on one spatial axis may not exceed the stage's mesh on that axis (loops
  within one axis are listed in canonical order, by dim name: the model does not see it);
* one axis per dimension and stage: within one fan-out stage (a container or a plain
  fan-out) a dimension's spatial factor lies entirely on X or entirely on Y, never on
  both, whether or not the stage has a constraint.  This follows Timeloop, whose spatial
  level places every dimension through the level's permutation and split, so each one
  lands on one side of the split.  Different stages (two containers of a level, or two
  levels) may still each take a share of the same dimension;
* per level, any order of its temporal loops with factor > 1;
* per level below the outermost, the kept data spaces, read as Timeloop's mapspace reads a
  dataspace constraint: ``keep`` lists those the level must keep, ``bypass`` those it must
  not keep, and every other data space is free, so the options are ``keep - bypass``
  united with any subset of the data spaces in neither list (``"*"`` in a list: all of
  them); the outermost level keeps everything;
* constraints (``LoopConstraint``): ``factors`` and ``max_factors`` on a level's temporal
  factor or a stage's spatial factor (the product over its two axes); a fixed factor of 0
  means the whole problem dimension (Timeloop's current ``ParseFactors``: "Interpreting 0
  to mean full problem dimension instead of residue"), a fixed factor of 1 keeps a dim off
  that nest; a temporal ``permutation`` (innermost first) puts the listed dims that have
  factor > 1 innermost in that order;
* a spatial ``permutation`` admits only its dims (those with factor > 1 on the stage), and
  puts them on the axes as Timeloop's spatial split does: with ``split`` given,
  ``perm[:split]`` may go on X only and ``perm[split:]`` on Y only, whatever the mesh (an
  axis of extent 1 takes nothing, so a one-axis mesh takes only the dims the split gives
  its axis); without ``split`` the mapper tries every split, so the stage's loops are legal
  iff for some ``k`` in ``0..len(perm)`` every dim on X is in ``perm[:k]`` and every dim on
  Y in ``perm[k:]`` (a joint condition over the stage's dims; on a one-axis mesh: any
  listed dim).  Without a permutation any dim may go on either axis (but, as above, not
  on both);
* valid: every kept tile fits its level (``model.overflow``), fan-out limits per stage.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from hwmodel.arch import (
    ALL_DATA_SPACES,
    Architecture,
    ComputeUnit,
    Container,
    LoopConstraint,
    StorageLevel,
)
from hwmodel.mapping import LevelMapping, Loop, Mapping, SpatialStage
from hwmodel.model import EvalResult, MappingError, evaluate, overflow
from hwmodel.workload import DataSpace, Workload

Objective = str | Sequence[str]
METRICS = ("energy", "delay", "edp")
#: relative tolerance for "equal objective values" (float sums in different orders)
REL_TOL = 1e-9


# --------------------------------------------------------------------------- the space
@dataclass(frozen=True)
class Stage:
    """One fan-out stage of a level: a container, or the level's plain fan-out (name None)."""

    name: str | None
    mesh_x: int
    mesh_y: int
    constraint: LoopConstraint | None


@dataclass(frozen=True)
class Slot:
    """Where one factor of a dimension goes: a level's temporal nest (``axis`` "t") or one
    axis ("x"/"y") of one fan-out stage of the level."""

    level: int
    axis: str
    stage: int = -1
    limit: int = 0


def fanout_stages(lv: StorageLevel) -> list[Stage]:
    """The stages of a level's fan-out, outermost first (see the module docstring)."""
    if (lv.containers and math.prod(c.mesh_x for c in lv.containers) == lv.fanout_x
            and math.prod(c.mesh_y for c in lv.containers) == lv.fanout_y):
        return [Stage(c.name, c.mesh_x, c.mesh_y, c.spatial) for c in lv.containers]
    return [Stage(None, lv.fanout_x, lv.fanout_y, lv.spatial)]


def space_slots(arch: Architecture) -> list[Slot]:
    slots: list[Slot] = []
    for i, lv in enumerate(arch.levels):
        slots.append(Slot(i, "t"))
        for s, st in enumerate(fanout_stages(lv)):
            if st.mesh_x > 1:
                slots.append(Slot(i, "x", s, st.mesh_x))
            if st.mesh_y > 1:
                slots.append(Slot(i, "y", s, st.mesh_y))
    return slots


def ordered_factorizations(n: int, k: int) -> list[tuple[int, ...]]:
    """Every ordered k-tuple of positive integers whose product is n."""
    if k == 0:
        return [()] if n == 1 else []
    if k == 1:
        return [(n,)]
    return [(d, *rest) for d in range(1, n + 1) if n % d == 0
            for rest in ordered_factorizations(n // d, k - 1)]


def _listed(spec: frozenset[str] | None, names: Sequence[str]) -> set[str]:
    """The data spaces a keep or bypass list names (``"*"``: all of them)."""
    if not spec:
        return set()
    return set(names) if ALL_DATA_SPACES in spec else set(names) & set(spec)


def keep_rule(lv: StorageLevel, names: Sequence[str]) -> tuple[set[str], set[str]]:
    """(must keep, free) for a level below the outermost: ``keep - bypass`` must be kept,
    the data spaces in neither list are the mapper's choice, the bypassed ones never."""
    keep, bypass = _listed(lv.keep, names), _listed(lv.bypass, names)
    return keep - bypass, set(names) - keep - bypass


def keep_options(arch: Architecture, workload: Workload) -> list[list[frozenset[str]]]:
    """Per level, every data-space set it may keep."""
    names = [ds.name for ds in workload.data_spaces]
    out = [[frozenset(names)]]
    for lv in arch.levels[1:]:
        must, free = keep_rule(lv, names)
        free_names = [n for n in names if n in free]
        out.append([frozenset(must | set(c)) for k in range(len(free_names) + 1)
                    for c in itertools.combinations(free_names, k)])
    return out


def factor_ok(constraint: LoopConstraint | None, dim: str, factor: int, bound: int) -> bool:
    """``factors``/``max_factors`` of one constraint on one slot's (or stage's) factor of
    ``dim`` (whose problem bound is ``bound``; a fixed 0 means the whole bound)."""
    if constraint is None:
        return True
    fixed = constraint.factors.get(dim)
    if fixed == 0:
        fixed = bound
    if fixed is not None and factor != fixed:
        return False
    cap = constraint.max_factors.get(dim)
    return cap is None or factor <= cap


def _splits(c: LoopConstraint) -> list[int]:
    """The split points of a spatial permutation: the given one, else every one."""
    assert c.permutation is not None
    return [c.split] if c.split is not None else list(range(len(c.permutation) + 1))


def one_axis(fx: int, fy: int) -> bool:
    """A dim's factors on one stage's X and Y axes lie on one axis (or on none): the rule
    of one axis per dimension and stage (see the module docstring)."""
    return fx == 1 or fy == 1


def spatial_ok(stage: Stage, dim: str, fx: int, fy: int, bound: int) -> bool:
    """May ``dim`` (of problem bound ``bound``) take factors ``fx`` x ``fy`` on this stage's
    axes, whatever the stage's other dims do?  Never on both axes; then the constraint.
    (Necessary; :func:`stage_ok` is the joint condition.)"""
    if not one_axis(fx, fy):
        return False
    c = stage.constraint
    if not factor_ok(c, dim, fx * fy, bound):
        return False
    if c is None or c.permutation is None or fx * fy == 1:
        return True
    return stage_ok(stage, {dim: (fx, fy)}, {dim: bound})


def stage_ok(stage: Stage, placed: dict[str, tuple[int, int]],
             bounds: dict[str, int]) -> bool:
    """May the stage carry these loops (``placed``: dim -> (X factor, Y factor); absent
    dims: 1 x 1)?  One axis per dim, factors per dim, and the permutation/split jointly
    over the dims."""
    if not all(one_axis(fx, fy) for fx, fy in placed.values()):
        return False
    c = stage.constraint
    if c is None:
        return True
    if not all(factor_ok(c, d, math.prod(placed.get(d, (1, 1))), b)
               for d, b in bounds.items()):
        return False
    if c.permutation is None:
        return True
    perm = list(c.permutation)
    on_x = {d for d, (fx, _) in placed.items() if fx > 1}
    on_y = {d for d, (_, fy) in placed.items() if fy > 1}
    return any(on_x <= set(perm[:k]) and on_y <= set(perm[k:]) for k in _splits(c))


def temporal_order_ok(constraint: LoopConstraint | None, order: Sequence[str]) -> bool:
    """``order`` is outermost first; the constraint's permutation is innermost first."""
    if constraint is None or constraint.permutation is None:
        return True
    listed = [d for d in constraint.permutation if d in order]
    return list(reversed(order))[:len(listed)] == listed


def _dim_options(arch: Architecture, slots: list[Slot], dim: str,
                 bound: int) -> list[tuple[int, ...]]:
    """The factorizations of one dim over the slots that its own constraints allow."""
    stages = [fanout_stages(lv) for lv in arch.levels]
    out = []
    for fac in ordered_factorizations(bound, len(slots)):
        spatial: dict[tuple[int, int], list[int]] = {}
        ok = True
        for sl, f in zip(slots, fac):
            if sl.axis == "t":
                ok = factor_ok(arch.levels[sl.level].temporal, dim, f, bound)
            else:
                ok = f <= sl.limit
                xy = spatial.setdefault((sl.level, sl.stage), [1, 1])
                xy[sl.axis == "y"] *= f
            if not ok:
                break
        if ok:
            ok = all(spatial_ok(st, dim, *spatial.get((i, s), (1, 1)), bound)
                     for i, level_stages in enumerate(stages)
                     for s, st in enumerate(level_stages))
        if ok:
            out.append(fac)
    return out


@dataclass
class Tiling:
    """One choice of factors for every (dim, slot): a mapping but for orders and keeps."""

    temporal: list[dict[str, int]]                       # per level, dims with factor > 1
    spatial: list[list[tuple[list[Loop], list[Loop]]]]   # per level, per stage: (x, y)


def tilings(arch: Architecture, workload: Workload) -> Iterator[Tiling]:
    """Every factor assignment within constraints and fan-out limits."""
    slots = space_slots(arch)
    dims = list(workload.dim_names)
    bounds = dict(workload.dims)
    options = [_dim_options(arch, slots, d, b) for d, b in workload.dims]
    stages = [fanout_stages(lv) for lv in arch.levels]
    axis_slots = [k for k, sl in enumerate(slots) if sl.axis != "t"]
    # the stages whose permutation ties their dims together (the per-dim conditions are
    # already in ``options``): per stage, its slots
    joint = [(st, [k for k in axis_slots if (slots[k].level, slots[k].stage) == (i, s)])
             for i, level_stages in enumerate(stages) for s, st in enumerate(level_stages)
             if st.constraint is not None and st.constraint.permutation is not None]
    for combo in itertools.product(*options):
        if any(math.prod(fac[k] for fac in combo) > slots[k].limit for k in axis_slots):
            continue
        if not all(stage_ok(st, _placed(dims, combo, slots, ks), bounds)
                   for st, ks in joint):
            continue
        temporal: list[dict[str, int]] = [{} for _ in arch.levels]
        spatial = [[([], []) for _ in level_stages] for level_stages in stages]
        for d, fac in sorted(zip(dims, combo)):         # canonical: by dim name
            for sl, f in zip(slots, fac):
                if f == 1:
                    continue
                if sl.axis == "t":
                    temporal[sl.level][d] = f
                else:
                    spatial[sl.level][sl.stage][sl.axis == "y"].append((d, f))
        yield Tiling(temporal, spatial)


def _placed(dims: Sequence[str], combo: Sequence[tuple[int, ...]], slots: list[Slot],
            stage_slots: list[int]) -> dict[str, tuple[int, int]]:
    """dim -> (X factor, Y factor) on one stage, from the factor of every dim and slot."""
    out = {}
    for d, fac in zip(dims, combo):
        xy = [1, 1]
        for k in stage_slots:
            xy[slots[k].axis == "y"] *= fac[k]
        if xy != [1, 1]:
            out[d] = (xy[0], xy[1])
    return out


def temporal_orders(arch: Architecture, tiling: Tiling) -> list[list[tuple[str, ...]]]:
    """Per level, every admissible order (outermost first) of its temporal loops."""
    return [[o for o in itertools.permutations(sorted(t))
             if temporal_order_ok(lv.temporal, o)]
            for lv, t in zip(arch.levels, tiling.temporal)]


def build_mapping(arch: Architecture, tiling: Tiling, orders: Sequence[Sequence[str]],
                  keeps: Sequence[frozenset[str]]) -> Mapping:
    levels = []
    for i, lv in enumerate(arch.levels):
        lm = LevelMapping([(d, tiling.temporal[i][d]) for d in orders[i]], keep=keeps[i])
        st = fanout_stages(lv)
        if st[0].name is None:
            lm.spatial_x, lm.spatial_y = (list(a) for a in tiling.spatial[i][0])
        else:
            lm.stages = [SpatialStage(s.name, list(x), list(y))
                         for s, (x, y) in zip(st, tiling.spatial[i]) if x or y]
        levels.append(lm)
    return Mapping(levels)


def mappings(arch: Architecture, workload: Workload,
             check_capacity: bool = True) -> Iterator[Mapping]:
    """Every mapping of the space; with ``check_capacity`` only those whose tiles fit
    (checked once per tiling and keep choice: capacity does not depend on loop order)."""
    keeps_all = list(itertools.product(*keep_options(arch, workload)))
    for tiling in tilings(arch, workload):
        orders_all = list(itertools.product(*temporal_orders(arch, tiling)))
        if not orders_all:
            continue
        for keeps in keeps_all:
            if check_capacity:
                probe = build_mapping(arch, tiling, orders_all[0], keeps)
                if overflow(arch, workload, probe) is not None:
                    continue
            for orders in orders_all:
                yield build_mapping(arch, tiling, orders, keeps)


def space_size(arch: Architecture, workload: Workload, limit: int | None = None) -> int:
    """How many mappings the space has before capacity checks (stops past ``limit``)."""
    keeps = math.prod(len(k) for k in keep_options(arch, workload))
    if limit is not None:
        slots = space_slots(arch)
        crude = math.prod(len(_dim_options(arch, slots, d, b)) for d, b in workload.dims)
        if crude > 50 * limit:       # too many factor combinations even to filter
            return limit + 1
    total = 0
    for tiling in tilings(arch, workload):
        total += keeps * math.prod(len(o) for o in temporal_orders(arch, tiling))
        if limit is not None and total > limit:
            break
    return total


# --------------------------------------------------------------------------- objectives
def metrics(objective: Objective) -> tuple[str, ...]:
    """``"edp"``, ``"delay,energy"`` or ``("delay", "energy")`` -> the metric names."""
    names = objective.split(",") if isinstance(objective, str) else list(objective)
    names = [n.strip() for n in names]
    if not names or any(n not in METRICS for n in names):
        raise ValueError(f"bad objective {objective!r}")
    return tuple(names)


def metric(result: EvalResult, name: str) -> float:
    if name == "energy":
        return result.energy_pj
    if name == "delay":
        return result.cycles
    return result.energy_pj * result.cycles


def value(result: EvalResult, objective: Objective) -> tuple[float, ...]:
    """The objective's value(s) of one evaluation, one per metric."""
    return tuple(metric(result, m) for m in metrics(objective))


def close(a: float, b: float, rel: float = REL_TOL) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


@dataclass
class Point:
    """One valid mapping and what it costs."""

    mapping: Mapping
    energy_pj: float
    cycles: float

    def value(self, objective: Objective) -> tuple[float, ...]:
        out = []
        for m in metrics(objective):
            out.append(self.energy_pj if m == "energy" else self.cycles if m == "delay"
                       else self.energy_pj * self.cycles)
        return tuple(out)


@dataclass
class Space:
    """Every valid mapping of one (architecture, workload, energy) and its cost."""

    points: list[Point] = field(default_factory=list)
    walked: int = 0          # mappings generated, capacity-rejected ones included

    def best(self, objective: Objective) -> tuple[tuple[float, ...], Mapping] | None:
        """The optimum: lexicographic, metric by metric, ties within ``REL_TOL``."""
        pool = self.points
        if not pool:
            return None
        n = len(metrics(objective))
        for k in range(n):
            low = min(p.value(objective)[k] for p in pool)
            pool = [p for p in pool if p.value(objective)[k] <= low + REL_TOL * abs(low)]
        winner = min(pool, key=lambda p: p.value(objective))
        return winner.value(objective), winner.mapping


def walk(arch: Architecture, workload: Workload, energy) -> Space:
    """Evaluate every mapping of the space (invalid ones are skipped, nothing pruned)."""
    space = Space()
    for m in mappings(arch, workload, check_capacity=False):
        space.walked += 1
        try:
            r = evaluate(arch, workload, m, energy)
        except MappingError:
            continue
        space.points.append(Point(m, r.energy_pj, r.cycles))
    return space


def walk_fast(arch: Architecture, workload: Workload, energy) -> Space:
    """:func:`walk`, but tilings that overflow are rejected once for all their orders."""
    space = Space()
    for m in mappings(arch, workload, check_capacity=True):
        space.walked += 1
        r = evaluate(arch, workload, m, energy)
        space.points.append(Point(m, r.energy_pj, r.cycles))
    return space


def brute_force(arch: Architecture, workload: Workload, energy,
                objective: Objective) -> tuple[tuple[float, ...], Mapping] | None:
    """The optimum of ``objective`` over the whole space, or None when nothing is valid."""
    return walk_fast(arch, workload, energy).best(objective)


# --------------------------------------------------------------------------- legality
def violations(arch: Architecture, workload: Workload, mapping: Mapping) -> list[str]:
    """Why ``mapping`` is not a point of the space (empty: it is one).

    Written against the space's definition rather than the enumerator, so that the two
    check each other.  Loops with factor 1 are ignored wherever they are.
    """
    out: list[str] = []
    n = len(arch.levels)
    if len(mapping.levels) != n:
        return [f"{len(mapping.levels)} levels, expected {n}"]
    bounds = workload.bounds
    names = [ds.name for ds in workload.data_spaces]
    total = dict.fromkeys(bounds, 1)
    for i, (lv, lm) in enumerate(zip(arch.levels, mapping.levels)):
        kept = set(lm.keep)
        if i == 0:
            if kept != set(names):
                out.append(f"{lv.name}: keeps {sorted(kept)}, not everything")
        else:
            must, free = keep_rule(lv, names)
            if not must <= kept:
                out.append(f"{lv.name}: keeps {sorted(kept)}, must keep {sorted(must)}")
            if not kept <= must | free:
                out.append(f"{lv.name}: keeps {sorted(kept - must - free)}, which it may not")
        loops = [(d, f) for d, f in lm.temporal if f > 1]
        order = [d for d, _ in loops]
        if len(set(order)) != len(order):
            out.append(f"{lv.name}: a dim twice in the temporal loops {lm.temporal}")
        for d, f in loops:
            if d not in bounds:
                out.append(f"{lv.name}: unknown dim {d}")
            elif not factor_ok(lv.temporal, d, f, bounds[d]):
                out.append(f"{lv.name}: temporal {d}{f} breaks its constraint")
        for d in bounds:
            if d not in order and not factor_ok(lv.temporal, d, 1, bounds[d]):
                out.append(f"{lv.name}: temporal {d}1 breaks its constraint")
        if not temporal_order_ok(lv.temporal, order):
            out.append(f"{lv.name}: loop order {order} breaks its permutation")
        stages = fanout_stages(lv)
        plain = [(lm.spatial_x, lm.spatial_y)]
        named = {st.name: (st.x, st.y) for st in lm.stages}
        if stages[0].name is None:
            if any(f > 1 for st in lm.stages for _, f in st.loops):
                out.append(f"{lv.name}: container stages on a plain fan-out")
            placed = plain
        else:
            if any(f > 1 for _, f in lm.spatial_x + lm.spatial_y):
                out.append(f"{lv.name}: plain spatial loops on a container fan-out")
            stage_names = [st.name for st in lm.stages]
            expected = [st.name for st in stages]
            if (len(set(stage_names)) != len(stage_names) or set(stage_names) - set(expected)
                    or stage_names != [s for s in expected if s in stage_names]):
                out.append(f"{lv.name}: stages {stage_names}, containers {expected}")
            placed = [named.get(st.name, ([], [])) for st in stages]
        for st, (xs, ys) in zip(stages, placed):
            per_dim: dict[str, list[int]] = {}
            for axis, loops_ax, limit in (("x", xs, st.mesh_x), ("y", ys, st.mesh_y)):
                loops_ax = [(d, f) for d, f in loops_ax if f > 1]
                if math.prod(f for _, f in loops_ax) > limit:
                    out.append(f"{lv.name}/{st.name}: {axis} factors {loops_ax} exceed "
                               f"the mesh {limit}")
                if len({d for d, _ in loops_ax}) != len(loops_ax):
                    out.append(f"{lv.name}/{st.name}: a dim twice on {axis}")
                for d, f in loops_ax:
                    if d not in bounds:
                        out.append(f"{lv.name}/{st.name}: unknown dim {d} on {axis}")
                    per_dim.setdefault(d, [1, 1])[axis == "y"] *= f
                    total[d] = total.get(d, 1) * f
            per_dim_ok = True
            for d in bounds:
                fx, fy = per_dim.get(d, (1, 1))
                if not one_axis(fx, fy):
                    out.append(f"{lv.name}/{st.name}: spatial {d} on both axes of one stage "
                               f"(X {fx}, Y {fy}); a dim lies on X or on Y of a stage")
                    per_dim_ok = False
                elif not spatial_ok(st, d, fx, fy, bounds[d]):
                    out.append(f"{lv.name}/{st.name}: spatial {d} {fx}x{fy} breaks "
                               "its constraint")
                    per_dim_ok = False
            on_stage = {d: (xy[0], xy[1]) for d, xy in per_dim.items()}
            if per_dim_ok and not stage_ok(st, on_stage, bounds):
                c = st.constraint
                assert c is not None and c.permutation is not None
                xs_, ys_ = ([d for d, xy in on_stage.items() if xy[a] > 1] for a in (0, 1))
                out.append(f"{lv.name}/{st.name}: spatial X {sorted(xs_)} Y {sorted(ys_)} "
                           f"fit no split of {c.permutation} (split {c.split})")
        for d, f in loops:
            total[d] = total.get(d, 1) * f
    for d, b in bounds.items():
        if total.get(d, 1) != b:
            out.append(f"factors of {d} multiply to {total.get(d, 1)}, bound {b}")
    if not out:
        over = overflow(arch, workload, mapping)
        if over is not None:
            out.append(f"level {over[0]} needs {over[1]} words, capacity {over[2]}")
    return out


# --------------------------------------------------------------------------- generators
DIM_NAMES = ("K", "P", "R", "X", "y", "t", "h2", "ch", "Row", "n_b", "Z9", "Q", "C", "M")
DS_NAMES = ("A", "B", "Out", "Psum", "Wt", "Feat", "Z", "Inputs", "Weights", "Outputs")
ACTIONS = ("read", "write", "update")


@dataclass
class FakeEnergy:
    """An energy table with random figures, shaped like ``hwmodel.energy.EnergyTable``."""

    words: dict[tuple[str, str], float]
    blocks: dict[str, int]
    leaks: dict[str, float]
    mac_pj: float
    multiply_pj: float
    add_pj: float

    def per_word(self, level: str, action: str) -> float:
        return self.words[(level, action)]

    def block_size(self, level: str) -> int:
        return self.blocks[level]

    def leak_per_cycle(self, level: str) -> float:
        return self.leaks[level]

    def mac(self) -> float:
        return self.mac_pj

    def multiply(self) -> float:
        return self.multiply_pj

    def add(self) -> float:
        return self.add_pj


@dataclass
class Case:
    """One generated mapping problem."""

    seed: int
    arch: Architecture
    workload: Workload
    energy: FakeEnergy
    size: int                 # mappings in the space before capacity checks

    def describe(self) -> str:
        lines = [f"seed {self.seed}: {self.size} mappings; workload {self.workload.dims}"]
        lines += [f"  {ds.name}{'*' if ds.read_write else ''} {ds.projection}"
                  for ds in self.workload.data_spaces]
        for lv in self.arch.levels:
            lines.append(
                f"  {lv.name}: cap {lv.capacity_words} block {lv.block_size} fan-out "
                f"{lv.fanout_x}x{lv.fanout_y} containers "
                f"{[(c.name, c.mesh_x, c.mesh_y, c.spatial) for c in lv.containers]} "
                f"keep {lv.keep} bypass {set(lv.bypass)} temporal {lv.temporal} "
                f"spatial {lv.spatial} bw {lv.read_bandwidth}/{lv.write_bandwidth}/"
                f"{lv.shared_bandwidth}")
        return "\n".join(lines)


def random_workload(rng: random.Random) -> Workload:
    """1-4 dims with random names and bounds 1-12; 2-3 data spaces of random projections
    (single-dim axes, sometimes a window ``c1*a + c2*b``); one output mostly, else none."""
    n_dims = rng.choice((1, 2, 2, 3, 3, 4))
    dims = rng.sample(DIM_NAMES, n_dims)
    bounds = [rng.choice((1, 2, 2, 3, 4, 4, 5, 6, 6, 8, 9, 12, 7, 10, 11)) for _ in dims]
    ds_names = rng.sample(DS_NAMES, rng.choice((2, 3, 3)))
    spaces = []
    for name in ds_names:
        used = rng.sample(dims, rng.randint(1, n_dims))
        axes: list[tuple[tuple[int, str], ...]] = []
        if len(used) >= 2 and rng.random() < 0.35:
            a, b = used[:2]
            used = used[2:]
            axes.append(((rng.choice((1, 1, 2)), a), (rng.choice((1, 1, 2)), b)))
        axes += [((1, d),) for d in used]
        rng.shuffle(axes)
        spaces.append([name, tuple(axes)])
    out = rng.randrange(len(spaces)) if rng.random() < 0.85 else None
    return Workload(f"w{n_dims}", tuple(zip(dims, bounds)),
                    tuple(DataSpace(n, p, read_write=k == out)
                          for k, (n, p) in enumerate(spaces)))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _constraint(rng: random.Random, workload: Workload,
                spatial: bool) -> LoopConstraint | None:
    """A random temporal or spatial constraint, or None (most of the time); a spatial one
    gets a split sometimes, whatever its mesh (a split binds one-axis meshes too)."""
    if rng.random() < 0.55:
        return None
    c = LoopConstraint()
    for d, b in workload.dims:
        r = rng.random()
        if r < 0.18:
            c.factors[d] = rng.choice(_divisors(b))
        elif r < 0.22:
            c.factors[d] = 0
        elif r < 0.35:
            c.max_factors[d] = rng.randint(1, max(1, b))
    if rng.random() < (0.6 if spatial else 0.45):
        dims = list(workload.dim_names)
        c.permutation = rng.sample(dims, rng.randint(1, len(dims)))
        if spatial and rng.random() < 0.5:
            c.split = rng.randint(0, len(c.permutation))
    return c


def _mesh_split(rng: random.Random, n: int) -> tuple[int, int]:
    """``n`` as an ordered product of two factors."""
    return rng.choice([(a, n // a) for a in _divisors(n)])


def random_architecture(rng: random.Random, workload: Workload) -> Architecture:
    """2-4 storage levels (the outermost unbounded), small capacities, blocks of 1-4 words,
    fan-outs of 1-4 per axis (sometimes two containers), keep/bypass, constraints and
    bandwidths at random."""
    n = rng.choice((2, 2, 3, 3, 4))
    names = [ds.name for ds in workload.data_spaces]
    levels = []
    instances = 1
    for i in range(n):
        block = rng.randint(1, 4)
        datawidth = rng.choice((8, 16))
        depth = None if i == 0 else rng.choice((1, 1, 2, 3, 4, 6, 8, 16, 64))
        lv = StorageLevel(f"L{i}", "SRAM", {}, depth, datawidth * block, datawidth,
                          instances=instances)
        if rng.random() < 0.45:
            lv.fanout_x = rng.randint(1, 4)
            lv.fanout_y = rng.choice((1, 1, 2, 3, 4))
        if lv.fanout > 1 and rng.random() < 0.35:
            (ax, bx), (ay, by) = _mesh_split(rng, lv.fanout_x), _mesh_split(rng, lv.fanout_y)
            if rng.random() < 0.15:
                bx += 1                  # meshes that do not multiply up: plain fan-out
            lv.containers = [
                Container(f"c{i}a", ax, ay, _constraint(rng, workload, True)),
                Container(f"c{i}b", bx, by, _constraint(rng, workload, True))]
        lv.spatial = _constraint(rng, workload, True)
        if i > 0:
            if rng.random() < 0.25:
                lv.keep = frozenset(rng.sample(names, rng.randint(0, len(names))))
            rest = [n for n in names if lv.keep is None or n not in lv.keep]
            if rest and rng.random() < 0.25:     # a spec may not keep and bypass one name
                lv.bypass = frozenset(rng.sample(rest, rng.randint(1, len(rest))))
        lv.temporal = _constraint(rng, workload, False)
        if rng.random() < 0.3:
            bw = (0.25, 0.5, 1.0, 2.0, 3.0)
            lv.read_bandwidth = rng.choice((None, *bw))
            lv.write_bandwidth = rng.choice((None, *bw))
            lv.shared_bandwidth = rng.choice((None, None, *bw))
        levels.append(lv)
        instances *= lv.fanout
    return Architecture("rand", levels, ComputeUnit("mac", "intmac", {}, instances))


def random_energy(rng: random.Random, arch: Architecture) -> FakeEnergy:
    """Per-word energies either growing outwards (a memory hierarchy) or in no order at all
    (harder for bounds that assume one), leakage sometimes."""
    hierarchical = rng.random() < 0.5
    words = {}
    for i, lv in enumerate(arch.levels):
        scale = 4.0 ** (len(arch.levels) - i) if hierarchical else 1.0
        for a in ACTIONS:
            words[(lv.name, a)] = scale * rng.uniform(0.05, 3.0)
    leaks = {lv.name: (rng.uniform(0.01, 2.0) if rng.random() < 0.3 else 0.0)
             for lv in arch.levels}
    multiply, add = rng.uniform(0.1, 3.0), rng.uniform(0.05, 1.0)
    return FakeEnergy(words, {lv.name: lv.block_size for lv in arch.levels}, leaks,
                      multiply + add, multiply, add)


def random_case(seed: int, max_size: int = 20_000, min_size: int = 1) -> Case:
    """A seeded random case whose space has ``min_size``..``max_size`` mappings (before
    capacity checks); regenerated from the same stream until it does."""
    rng = random.Random(seed)
    while True:
        workload = random_workload(rng)
        arch = random_architecture(rng, workload)
        size = space_size(arch, workload, limit=max_size)
        if min_size <= size <= max_size:
            return Case(seed, arch, workload, random_energy(rng, arch), size)
