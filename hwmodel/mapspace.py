"""The map space of one workload on one architecture, as the decisions a mapping is made of.

A Timeloop mapping, as hwcost models it, is four kinds of decision:

1. a **spatial plan**: for every fan-out stage (a storage level's plain fan-out, or each of
   the containers it is made of) and each mesh axis, which dimensions are split across it
   and by how much (several dimensions may share an axis; their product fits the mesh);
2. per storage level, the **temporal factor** of every dimension (all factors of a
   dimension, spatial and temporal, multiply to its bound: perfect factorization);
3. per storage level, the **data spaces it keeps** (the others bypass it);
4. per storage level, the **order** of its temporal loops.

This module enumerates each kind completely and exactly within the spec's constraints
(fixed and maximum factors, permutations, spatial splits, keep and bypass), so that a
search over it can claim optimality.  Loop orders are enumerated as *classes*: two orders of
one level give the same counts in the model (:mod:`hwmodel.model`) when, for every data
space, the same set of loops irrelevant to it sit innermost (they are what reuse depends on)
and, when that set is empty, the same loop is innermost (a sliding window's overlap depends
on which loop moves it).  That is a handful of classes per level instead of ``n!`` orders.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from .arch import Architecture, LoopConstraint
from .mapping import LevelMapping, Loop, Mapping, SpatialStage
from .workload import DataSpace, Workload

#: Loop-order classes one level may have before the enumeration gives up on exactness
#: (conv layers have at most a few dozen; a 16-dimension problem could have millions).
MAX_ORDER_CLASSES = 5_000
#: partial orders the class enumeration may visit (distinct states, so orders within a run
#: of irrelevant loops are not re-explored)
MAX_ORDER_STATES = 200_000
#: Spatial plans enumerated before the enumeration is cut (a 1024x1024 mesh over bounds
#: with many divisors has millions); a cut space is searched, but not proved.
MAX_SPATIAL_PLANS = 20_000
#: Loop sets one mesh axis may take before its list is cut (real designs: tens).
MAX_AXIS_CHOICES = 2_000
#: Keep choices of one level before they are cut to the largest, the smallest and one data
#: space less than the largest (a CNN layer has 3 data spaces: 8 choices at most).
MAX_KEEP_OPTIONS = 64


@dataclass(frozen=True)
class Stage:
    """One fan-out stage: the plain fan-out of a level, or one container below it."""

    level: int
    index: int                      # container index; -1: the level's own fan-out
    name: str | None                # the container's name (None for a plain fan-out)
    mesh_x: int
    mesh_y: int
    constraint: LoopConstraint | None


@dataclass(frozen=True)
class SpatialPlan:
    """The loops of every stage: ``loops[k] = (x loops, y loops)`` for ``stages[k]``."""

    loops: tuple[tuple[tuple[Loop, ...], tuple[Loop, ...]], ...]

    def factor(self, stage: int, dim: str) -> int:
        x, y = self.loops[stage]
        return math.prod(f for d, f in x + y if d == dim)


@dataclass(frozen=True)
class LoopOrder:
    """A representative loop order of a level (outermost first) and its class."""

    order: tuple[str, ...]
    #: per data space (workload order): (loops irrelevant to it that sit innermost,
    #: the innermost loop when that set is empty)
    signature: tuple[tuple[frozenset[str], str | None], ...]


class MapSpace:
    """Every legal mapping of ``workload`` on ``arch``, decision by decision."""

    def __init__(self, arch: Architecture, workload: Workload):
        self.arch = arch
        self.workload = workload
        self.n = len(arch.levels)
        self.dims = workload.dim_names
        self.bounds = workload.bounds
        self.data_spaces = workload.data_spaces
        self.ds_names = tuple(ds.name for ds in workload.data_spaces)
        #: set when an enumeration was cut short (hostile sizes): the space is then searched
        #: but cannot be proved
        self.cut = False
        self.stages = self._stages()
        self.level_stages = [[k for k, st in enumerate(self.stages) if st.level == i]
                             for i in range(self.n)]
        self.keep_options = self._keep_options()
        self.forced_keep = [frozenset.intersection(*opts) if opts else frozenset()
                            for opts in self.keep_options]
        self.fixed_temporal = [self._fixed_temporal(i) for i in range(self.n)]

    # ------------------------------------------------------------------ structure
    def _stages(self) -> list[Stage]:
        """The fan-out stages, outermost first.  A level whose containers make up its whole
        fan-out gets one stage per container with its own mesh and constraint (Timeloop
        treats each container as a level of its own); any other level one plain stage."""
        out = []
        for i, lv in enumerate(self.arch.levels):
            cs = lv.containers
            if cs and math.prod(c.mesh_x for c in cs) == lv.fanout_x and \
                    math.prod(c.mesh_y for c in cs) == lv.fanout_y:
                for k, c in enumerate(cs):
                    if c.mesh_x * c.mesh_y > 1:
                        out.append(Stage(i, k, c.name, c.mesh_x, c.mesh_y, c.spatial))
            elif lv.fanout_x * lv.fanout_y > 1:
                out.append(Stage(i, -1, None, lv.fanout_x, lv.fanout_y, lv.spatial))
        return out

    def _keep_options(self) -> list[list[frozenset[str]]]:
        """Per level, the sets of data spaces it may keep, as Timeloop's mapspace reads a
        dataspace constraint: level 0 keeps everything; ``keep`` lists what a level must
        keep, ``bypass`` what it must not; the mapper decides the rest."""
        names = self.ds_names
        options = []
        for i, lv in enumerate(self.arch.levels):
            if i == 0:
                options.append([frozenset(names)])
                continue
            must = frozenset(d for d in names if lv.must_keep(d))
            free = sorted(d for d in names if d not in must and not lv.must_bypass(d))
            if 2 ** len(free) > MAX_KEEP_OPTIONS:
                self.cut = True
                everything = must | frozenset(free)
                options.append([everything] + [everything - {d} for d in free] + [must])
                continue
            options.append([must | frozenset(c) for k in range(len(free), -1, -1)
                            for c in itertools.combinations(free, k)])
        return options

    def _fixed_temporal(self, i: int) -> dict[str, int]:
        """Factors a level's temporal constraint fixes (0 is the whole dimension, as
        Timeloop reads it: "interpreting 0 to mean full problem dimension")."""
        c = self.arch.levels[i].temporal
        if c is None:
            return {}
        return {d: (self.bounds[d] if f == 0 else f) for d, f in c.factors.items()
                if d in self.bounds}

    # ------------------------------------------------------------------ spatial plans
    def stage_axes(self, stage: Stage) -> list[tuple[list[str], list[str]]]:
        """The (X dims, Y dims) a stage's constraint allows, one pair per reading.

        A permutation lists the dims that may be spatial; ``split`` gives the first
        ``split`` to X and the rest to Y (an axis of extent 1 then takes none).  Without a
        split a one-axis mesh takes any listed dim, and a two-axis mesh any prefix of the
        permutation on X and the rest on Y (Timeloop's mapper tries every split).  A factor
        of 1 forbids a dim; without a permutation any dim may go on either axis."""
        dims = [d for d in self.dims if self.bounds[d] > 1]
        c = stage.constraint
        if c is not None:
            dims = [d for d in dims if c.factors.get(d) != 1]
        if c is None or c.permutation is None:
            return [(dims, dims)]
        perm = [d for d in c.permutation if d in dims]
        full = list(c.permutation)
        if c.split is not None:
            xs = [d for d in full[:c.split] if d in perm]
            ys = [d for d in full[c.split:] if d in perm]
            return [(xs if stage.mesh_x > 1 else [], ys if stage.mesh_y > 1 else [])]
        if stage.mesh_x == 1 or stage.mesh_y == 1:
            return [(perm if stage.mesh_x > 1 else [], perm if stage.mesh_y > 1 else [])]
        return [([d for d in full[:k] if d in perm], [d for d in full[k:] if d in perm])
                for k in range(len(full) + 1)]

    def stage_dims(self, stage: Stage, axis: str) -> list[str]:
        """Every dim some reading of the constraint lets on ``axis``."""
        out: list[str] = []
        for xs, ys in self.stage_axes(stage):
            out += [d for d in (xs if axis == "x" else ys) if d not in out]
        return out

    def spatial_plans(self) -> Iterator[SpatialPlan]:
        """Every legal spatial plan (at most :data:`MAX_SPATIAL_PLANS`; the caller learns of
        a cut from :attr:`spatial_cut`), stage by stage from the outermost in."""
        self.spatial_cut = False
        count = 0
        for loops in self._stage_plans(0, dict(self.bounds)):
            count += 1
            if count > MAX_SPATIAL_PLANS:
                self.spatial_cut = self.cut = True
                return
            yield SpatialPlan(tuple(loops))

    def _stage_plans(self, k: int, remaining: dict[str, int]):
        if k == len(self.stages):
            yield []
            return
        stage = self.stages[k]
        for x, y in self._stage_choices(stage, remaining):
            rem = dict(remaining)
            for d, f in x + y:
                rem[d] //= f
            for rest in self._stage_plans(k + 1, rem):
                yield [(x, y), *rest]

    def _stage_choices(self, stage: Stage, remaining: dict[str, int]):
        """The (x loops, y loops) one stage may take given what outer stages left."""
        c = stage.constraint
        seen = set()
        for xs, ys in self.stage_axes(stage):
            xcs = self._axis_choices(stage, "x", xs, remaining) if stage.mesh_x > 1 else [()]
            for x in xcs:
                rem = dict(remaining)
                for d, f in x:
                    rem[d] //= f
                on_x = {d for d, _f in x}   # a dim lies wholly on X or on Y (Timeloop's split)
                ycs = self._axis_choices(stage, "y", [d for d in ys if d not in on_x], rem) \
                    if stage.mesh_y > 1 else [()]
                for y in ycs:
                    if (x, y) in seen:
                        continue
                    seen.add((x, y))
                    if c is not None and not self._stage_factors_ok(c, x + y, remaining):
                        continue
                    yield x, y

    def _stage_factors_ok(self, c: LoopConstraint, loops, remaining: dict[str, int]) -> bool:
        got: dict[str, int] = {}
        for d, f in loops:
            got[d] = got.get(d, 1) * f
        for d, f in c.factors.items():
            if d not in remaining or f == 1:
                continue
            if got.get(d, 1) != (self.bounds[d] if f == 0 else f):   # 0: the whole dim
                return False
        for d, f in c.max_factors.items():
            if got.get(d, 1) > f:
                return False
        return True

    def _axis_choices(self, stage: Stage, axis: str, allowed: list[str],
                      remaining: dict[str, int]) -> list[tuple[Loop, ...]]:
        """Every set of (dim, factor) loops whose product fits the axis (dims in order)."""
        limit = stage.mesh_x if axis == "x" else stage.mesh_y
        dims = [d for d in allowed if remaining.get(d, 1) > 1]
        c = stage.constraint
        out: list[tuple[Loop, ...]] = []

        def grow(idx: int, room: int, acc: list[Loop]) -> None:
            if len(out) >= MAX_AXIS_CHOICES:
                self.cut = True
                return
            if idx == len(dims):
                out.append(tuple(acc))
                return
            d = dims[idx]
            grow(idx + 1, room, acc)
            cap = room if c is None or d not in c.max_factors else min(room,
                                                                      c.max_factors[d])
            for f in divisors(remaining[d]):
                if f == 1:
                    continue
                if f > cap:
                    break
                acc.append((d, f))
                grow(idx + 1, room // f, acc)
                acc.pop()

        grow(0, limit, [])
        return out

    def spatial_by_level(self, plan: SpatialPlan) -> list[dict[str, int]]:
        """Per level, the product of its stages' spatial factors per dimension."""
        out: list[dict[str, int]] = [{} for _ in range(self.n)]
        for st, (x, y) in zip(self.stages, plan.loops):
            acc = out[st.level]
            for d, f in x + y:
                acc[d] = acc.get(d, 1) * f
        return out

    def temporal_budget(self, plan_spatial: list[dict[str, int]]) -> dict[str, int] | None:
        """Per dimension, what the temporal loops must multiply to, fixed factors set aside
        (None when the fixed factors cannot be honoured under this spatial plan)."""
        out = {}
        for d, b in self.bounds.items():
            s = math.prod(sp.get(d, 1) for sp in plan_spatial)
            if b % s:
                return None
            t = b // s
            fixed = math.prod(self.fixed_temporal[i].get(d, 1) for i in range(self.n))
            if t % fixed:
                return None
            out[d] = t // fixed
        return out

    def free_levels(self, dim: str) -> list[int]:
        """Levels whose temporal factor of ``dim`` the search chooses (not fixed)."""
        return [i for i in range(self.n) if dim not in self.fixed_temporal[i]]

    def factor_choices(self, i: int, dim: str, left: int, last_free: bool) -> list[int]:
        """Temporal factors level ``i`` may give ``dim`` when ``left`` remains to place
        among the free levels (``last_free``: level i is the innermost of them)."""
        fixed = self.fixed_temporal[i].get(dim)
        if fixed is not None:
            return [fixed]
        c = self.arch.levels[i].temporal
        cap = c.max_factors.get(dim) if c is not None else None
        if last_free:
            return [left] if cap is None or left <= cap else []
        return [f for f in divisors(left) if cap is None or f <= cap]

    # ------------------------------------------------------------------ loop orders
    def loop_orders(self, i: int, dims: tuple[str, ...]) -> list[LoopOrder]:
        """The classes of orders of level ``i``'s loops over ``dims`` (those with factor >
        1), each with a representative order honouring the level's permutation constraint."""
        c = self.arch.levels[i].temporal
        perm = tuple(c.permutation) if c is not None and c.permutation else ()
        return _loop_orders(tuple(sorted(dims)), perm, self.data_spaces)

    # ------------------------------------------------------------------ building
    def level_mapping(self, i: int, plan: SpatialPlan, temporal: list[Loop],
                      keep: frozenset[str]) -> LevelMapping:
        lm = LevelMapping(temporal=list(temporal), keep=keep)
        for k in self.level_stages[i]:
            st = self.stages[k]
            x, y = plan.loops[k]
            if not x and not y:
                continue
            if st.index < 0:
                lm.spatial_x.extend(x)
                lm.spatial_y.extend(y)
            else:
                lm.stages.append(SpatialStage(st.name or "", list(x), list(y)))
        return lm

    def build(self, plan: SpatialPlan, factors: list[dict[str, int]],
              orders: list[tuple[str, ...]], keeps: list[frozenset[str]]) -> Mapping:
        """The :class:`Mapping` of a complete assignment (orders outermost first)."""
        levels = []
        for i in range(self.n):
            temporal = [(d, factors[i][d]) for d in orders[i] if factors[i].get(d, 1) > 1]
            levels.append(self.level_mapping(i, plan, temporal, keeps[i]))
        return Mapping(levels)

    # ------------------------------------------------------------------ checking
    def violations(self, mapping: Mapping) -> list[str]:
        """Why ``mapping`` is not in this map space (empty when it is): its keep sets,
        fixed and maximum factors, permutations and spatial splits against the spec's
        constraints.  Capacities and factor products are the model's to check."""
        out: list[str] = []
        names = self.arch.names
        for i, lm in enumerate(mapping.levels):
            name = names[i]
            if lm.keep not in self.keep_options[i]:
                out.append(f"{name} keeps {sorted(lm.keep)}")
            c = self.arch.levels[i].temporal
            temporal: dict[str, int] = {}
            for d, f in lm.temporal:
                temporal[d] = temporal.get(d, 1) * f
            for d, f in self.fixed_temporal[i].items():
                if temporal.get(d, 1) != f:
                    out.append(f"{name} temporal {d}={temporal.get(d, 1)}, fixed at {f}")
            if c is not None:
                for d, f in c.max_factors.items():
                    if temporal.get(d, 1) > f:
                        out.append(f"{name} temporal {d} above its maximum {f}")
                if c.permutation:
                    inner = [d for d, f in reversed(lm.temporal) if f > 1]
                    listed = [d for d in c.permutation if temporal.get(d, 1) > 1]
                    if inner[:len(listed)] != listed:
                        out.append(f"{name} loop order {inner} breaks permutation "
                                   f"{c.permutation}")
            for k in self.level_stages[i]:
                stage = self.stages[k]
                if stage.index < 0:
                    x, y = lm.spatial_x, lm.spatial_y
                else:
                    found = [st for st in lm.stages if st.name == stage.name]
                    x, y = (found[0].x, found[0].y) if found else ([], [])
                x = [(d, f) for d, f in x if f > 1]
                y = [(d, f) for d, f in y if f > 1]
                if math.prod(f for _d, f in x) > stage.mesh_x or \
                        math.prod(f for _d, f in y) > stage.mesh_y:
                    out.append(f"{stage.name or name} spatial loops exceed its mesh")
                if not any(all(d in xs for d, _f in x) and all(d in ys for d, _f in y)
                           for xs, ys in self.stage_axes(stage)):
                    out.append(f"{stage.name or name} spatial dims X {x} Y {y} not allowed")
                if {d for d, _f in x} & {d for d, _f in y}:
                    out.append(f"{stage.name or name} splits one dim over both axes")
                if stage.constraint is not None and not self._stage_factors_ok(
                        stage.constraint, x + y, self.bounds):
                    out.append(f"{stage.name or name} spatial factors break its constraint")
        return out


@lru_cache(maxsize=4096)
def divisors(n: int) -> tuple[int, ...]:
    """Divisors of ``n`` ascending, in O(sqrt n)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return tuple(small + [n // d for d in reversed(small) if d * d != n])


@lru_cache(maxsize=4096)
def prime_exponents(n: int) -> dict[int, int]:
    """``{p: e}`` with ``n = prod p**e``, by trial division up to sqrt(n) (a large prime
    bound must not be divided by every integer below it)."""
    out: dict[int, int] = {}
    p = 2
    while p * p <= n:
        while n % p == 0:
            out[p] = out.get(p, 0) + 1
            n //= p
        p += 1
    if n > 1:
        out[n] = out.get(n, 0) + 1
    return out


def prime_factors(n: int) -> list[int]:
    """With multiplicity: 12 -> [2, 2, 3]."""
    return [p for p, e in sorted(prime_exponents(n).items()) for _ in range(e)]


def distinct_primes(n: int) -> list[int]:
    """Distinct prime factors: 12 -> [2, 3]."""
    return sorted(set(prime_factors(n)))


@lru_cache(maxsize=8192)
def _loop_orders(dims: tuple[str, ...], perm: tuple[str, ...],
                 data_spaces: tuple[DataSpace, ...]) -> list[LoopOrder]:
    """Order classes of a level's loops (see the module docstring), innermost-first search.

    The permutation constraint's dims present at the level are innermost in its order; the
    others are placed inner to outer one at a time while some data space still has only
    irrelevant loops inside (its reuse is still growing); once every data space has met a
    relevant loop, the order of what is left changes nothing and is fixed arbitrarily."""
    fixed = [d for d in perm if d in dims]
    free = [d for d in dims if d not in fixed]
    relevant = [ds.dims() for ds in data_spaces]
    seen: dict[tuple, LoopOrder] = {}
    visited: set[tuple] = set()

    def state(inner_first: list[str]) -> tuple:
        """What the rest of the search depends on: the dims placed, each data space's
        run of irrelevant innermost loops (None while still open), the innermost dim."""
        runs = tuple(None if len(run) == len(inner_first) else run
                     for run in _irrelevant_runs(inner_first, relevant))
        return frozenset(inner_first), runs, inner_first[0] if inner_first else None

    def open_spaces(inner_first: list[str]) -> bool:
        return any(all(d not in rel for d in inner_first) for rel in relevant)

    def grow(inner_first: list[str], rest: list[str]) -> None:
        key = state(inner_first)
        if key in visited:
            return
        visited.add(key)
        if len(seen) > MAX_ORDER_CLASSES or len(visited) > MAX_ORDER_STATES:
            raise OrderSpaceTooLarge(len(dims))
        if not rest or (inner_first and not open_spaces(inner_first)):
            full = inner_first + rest
            sig = _full_signature(full, relevant)
            if sig not in seen:
                seen[sig] = LoopOrder(tuple(reversed(full)), sig)
            return
        for k, d in enumerate(rest):
            grow(inner_first + [d], rest[:k] + rest[k + 1:])

    grow(fixed, free)
    return list(seen.values())


def _irrelevant_runs(inner_first: list[str],
                     relevant: list[frozenset[str]]) -> list[frozenset[str]]:
    """Per data space, the innermost loops (``inner_first``) irrelevant to it, up to the
    first relevant one."""
    runs = []
    for rel in relevant:
        run = []
        for d in inner_first:
            if d in rel:
                break
            run.append(d)
        runs.append(frozenset(run))
    return runs


def _full_signature(inner_first: list[str], relevant: list[frozenset[str]]) -> tuple:
    """The class of a complete order: per data space its irrelevant innermost run, and the
    innermost loop where that run is empty (a sliding window moves with it)."""
    return tuple((run, inner_first[0] if not run and inner_first else None)
                 for run in _irrelevant_runs(inner_first, relevant))


class OrderSpaceTooLarge(Exception):
    """A level with so many loops that its order classes cannot all be listed."""
