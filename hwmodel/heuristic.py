"""The constructive mapper: a good mapping fast, in the order a hardware designer reasons.

1. spatial: fill each fan-out with the dims that divide it best (a beam over the fan-out
   stages from the outside in, the most parallel plans kept);
2. temporal, innermost level first: the *maximal* tiles that fit the level's capacity (no
   dim could grow without overflowing), ranked by reuse (MACs per word held), a small beam
   kept per level, the remainder going to the outermost level;
3. loop orders: per level, one candidate order per data space that makes that data space
   stationary (its irrelevant loops innermost);
4. effort ``thorough``: seeded random tilings of the best plan and a hill climb that moves
   one prime factor of one dimension between two levels while the objective falls;
5. a local search that re-tries each level's order and each optional bypass.

It gives no guarantee; :class:`hwmodel.mapper.Mapper` uses its answer as the first incumbent
of the branch and bound (:mod:`hwmodel.search`), which prunes against it and proves or
bounds the result.  Constraints from the spec (fixed factors, permutations, spatial dims and
splits, keep and bypass) are honoured.  Deterministic: the random tilings use a fixed seed.

Its work is bounded whatever the input: divisors and prime factors cost O(sqrt n), a fan-out
slot considers at most :data:`SLOT_CANDIDATES` loops and a level's tiling search at most
about :data:`TILE_TRIALS` capacity checks once it has a tile; the readers limit the rest
(dimensions, bounds, levels, instances).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .arch import Architecture, LoopConstraint
from .mapping import LevelMapping, Mapping, SpatialStage
from .mapspace import distinct_primes, divisors, prime_factors
from .model import EvalResult, MappingError, evaluate
from .objectives import Objective, better
from .workload import Workload, compiled_footprint, footprint

#: capacity checks one level's maximal-tile search may spend once it has found a tile; real
#: layers need a few hundred (ResNet/VGG/AlexNet layers on the bundled designs: < 2,000),
#: but five dims with hundreds of divisors each (bounds like 8,648,640) make the tree of
#: candidate tiles astronomically large
TILE_TRIALS = 5_000
#: loops one fan-out slot may consider: real designs offer at most ~50 (bundled specs and
#: reference designs on ResNet/VGG/AlexNet/DARTS layers), a 1024x1024 mesh over bounds with
#: hundreds of divisors hundreds of thousands, each grown into every plan of the beam
SLOT_CANDIDATES = 512
BEAM = 2
SPATIAL_OPTIONS = 4     # spatial plans whose temporal tilings are searched
SPATIAL_BEAM = 48       # partial spatial plans kept per fan-out slot
MOVE_BUDGET = 40       # evaluations each factor-moving hill climb may spend
RANDOM_TILINGS = 30     # seeded random tilings tried per spatial plan (two plans)
RANDOM_SEED = 20241   # fixed: the mapper is deterministic


@dataclass(frozen=True)
class Slot:
    """One place a loop can go: a level's temporal nest, or one axis of one fan-out stage
    (a container below the level, or the level's plain fan-out when it has none)."""

    level: int
    kind: str                      # "t", "x" or "y"
    stage: int = -1                # container index; -1: the level's own fan-out
    limit: int = 0                 # spatial: the mesh along this axis
    both_axes: bool = False        # spatial: the stage has a mesh along the other axis too
    constraint: LoopConstraint | None = field(default=None, compare=False, hash=False)


def _value(result: EvalResult, objective: Objective) -> tuple[float, ...]:
    return objective.value(result.energy_pj, result.cycles)


def _divisors(n: int) -> list[int]:
    """Divisors of ``n``, ascending (:func:`hwmodel.mapspace.divisors`, cached)."""
    return list(divisors(n))


def _fixed(constraint: LoopConstraint | None, dim: str, remaining: int) -> int | None:
    """A constraint's fixed factor for ``dim`` (0 means all that remains), or None if free."""
    if constraint is None or dim not in constraint.factors:
        return None
    value = constraint.factors[dim]
    return remaining if value == 0 else value


def _axis_dims(sl: Slot, dims: list[str]) -> list[str]:
    """Dims a spatial slot may take.  A constraint's ``split`` divides its permutation
    between X and Y only where the stage has both; a one-axis mesh takes any of them."""
    xs, ys = _spatial_dims(sl.constraint, dims)
    if not sl.both_axes:
        return xs + [d for d in ys if d not in xs]
    return xs if sl.kind == "x" else ys


def _spatial_dims(constraint: LoopConstraint | None, dims: list[str]) -> tuple[list[str],
                                                                                 list[str]]:
    """Dims allowed along X and along Y at a fan-out, from the spatial constraint."""
    if constraint is None or constraint.permutation is None:
        return dims, dims
    perm = list(constraint.permutation)
    split = constraint.split if constraint.split is not None else len(perm)
    return ([d for d in perm[:split] if d in dims], [d for d in perm[split:] if d in dims])


def _order(dims: list[str], workload: Workload, stationary: str | None,
           constraint: LoopConstraint | None) -> list[str]:
    """Outermost-first loop order: a constraint's permutation (innermost first, as
    Timeloop writes it) innermost, the other dims outside it with ``stationary``'s
    irrelevant dims inner (that data space stays put while they iterate)."""
    inner_first = ([d for d in constraint.permutation if d in dims]
                   if constraint is not None and constraint.permutation else [])
    rest = [d for d in dims if d not in inner_first]
    names = [ds.name for ds in workload.data_spaces]
    if stationary is not None and stationary in names:
        ds = workload.data_space(stationary)
        rest = [d for d in rest if ds.relevant(d)] + [d for d in rest if not ds.relevant(d)]
    return rest + inner_first[::-1]


class HeuristicMapper:
    """The constructive search: fast, good, without a guarantee (the branch and bound of
    :mod:`hwmodel.search` starts from its answer)."""

    def __init__(self, arch: Architecture, energy, objective: Objective, effort: str,
                 spatial_options: int = SPATIAL_OPTIONS):
        self.effort = effort
        #: spatial plans whose tilings are built; fewer when a branch and bound follows,
        #: since it searches the spatial plans itself
        self.spatial_options = spatial_options
        self.arch = arch
        self.energy = energy
        self.objective = objective
        self.spatial_bound = 1
        self._fp_key: tuple | None = None
        self._fp: dict[str, Callable] = {}

    def _keep_options(self, workload: Workload) -> list[frozenset[str]]:
        """Per level, the data spaces it keeps in the constructive search: the spec's
        choice where it makes one, otherwise everything allowed (the local search then
        tries bypassing each)."""
        names = [ds.name for ds in workload.data_spaces]
        options = []
        for i, lv in enumerate(self.arch.levels):
            if i == 0:
                options.append(frozenset(names))
            else:
                options.append(frozenset(d for d in names if lv.may_keep(d)))
        return options

    def _evaluate(self, workload: Workload, mapping: Mapping) -> EvalResult | None:
        key = _mapping_key(mapping)
        if key in self._seen:
            return self._seen[key]
        self._evals += 1
        try:
            res = evaluate(self.arch, workload, mapping, self.energy)
        except MappingError:
            res = None
        self._seen[key] = res
        return res

    def search(self, workload: Workload) -> tuple[Mapping, EvalResult] | None:
        """The best mapping the constructive search finds, or None (none found is no
        proof that none exists)."""
        self._evals = 0
        self._seen: dict[tuple, EvalResult | None] = {}
        keep = self._keep_options(workload)
        plans = self._spatial_plans(workload)
        self.spatial_bound = self._spatial_bound
        best = None
        for plan in plans:
            found = False
            for plan_keep in (keep, self._fitting_keep(workload, plan, keep)):
                if found or plan_keep is None:
                    break       # the fitted keeps only where keeping everything fails
                for temporal in self._temporal_plans(workload, plan, plan_keep):
                    for stationary in _stationarity(workload):
                        mapping = self._assemble(workload, plan, temporal, plan_keep,
                                                 [stationary] * len(self.arch.levels))
                        res = self._evaluate(workload, mapping)
                        if res is None:
                            continue
                        found = True
                        if best is None or better(_value(res, self.objective),
                                                  _value(best[1], self.objective)):
                            best = (mapping, res, plan, temporal, [stationary] * len(keep),
                                    plan_keep)
        if best is None:
            return None
        *best, keep = best
        if self.effort == "fast":
            return self._local_search(workload, *best, keep)
        # seeded random tilings of the best spatial plans, as a second opinion for the
        # hill climb (the constructive beam ranks tiles by reuse, not by energy)
        starts = [best]
        rng = random.Random(RANDOM_SEED)
        for plan in [best[2]]:
            sampled = []
            for temporal in self._random_temporals(workload, plan, keep, rng, RANDOM_TILINGS):
                st = [rng.choice(_stationarity(workload)) for _ in keep]
                mapping = self._assemble(workload, plan, temporal, keep, st)
                res = self._evaluate(workload, mapping)
                if res is not None:
                    sampled.append((mapping, res, plan, temporal, st))
            sampled.sort(key=lambda b: _value(b[1], self.objective))
            starts += sampled[:1]
        climbed = []
        for _m, res, plan, temporal, stationary in starts:
            temporal, stationary = self._move_factors(workload, plan, temporal, keep,
                                                      stationary, res)
            mapping = self._assemble(workload, plan, temporal, keep, stationary)
            res = self._evaluate(workload, mapping)
            climbed.append((_value(res, self.objective), mapping, res, plan, temporal,
                            stationary))
        _s, mapping, res, plan, temporal, stationary = min(climbed, key=lambda c: c[0])
        return self._local_search(workload, mapping, res, plan, temporal, stationary, keep)

    def _fitting_keep(self, workload: Workload, plan,
                      keep: list[frozenset[str]]) -> list[frozenset[str]] | None:
        """Keeps for ``plan`` when keeping everything allowed overflows a level even at the
        smallest tiles (a 16-word buffer above 12 PEs, say): per level, the data spaces the
        spec forces, then the others smallest first while the plan's smallest tile (its
        fan-out below the level) fits.  None when that changes nothing.  The local search
        may then keep or bypass each data space again."""
        n = len(self.arch.levels)
        below = {d: 1 for d in workload.bounds}
        spatial_at = _spatial_at(plan, n)
        fitted = list(keep)
        for i in reversed(range(1, n)):
            for d, f in spatial_at[i].items():
                below[d] *= f
            lv = self.arch.levels[i]
            cap = lv.capacity_words
            if cap is None:
                continue
            words = {ds.name: footprint(ds, below) for ds in workload.data_spaces
                     if ds.name in keep[i]}
            chosen = {name for name in words if lv.must_keep(name)}
            used = sum(words[name] for name in chosen)
            for name in sorted(words, key=lambda nm: (words[nm], nm)):
                if name not in chosen and used + words[name] <= cap:
                    chosen.add(name)
                    used += words[name]
            fitted[i] = frozenset(chosen)
        return None if fitted == list(keep) else fitted

    # ------------------------------------------------------------------ slots
    def _fanouts(self) -> list[Slot]:
        """The spatial slots, outermost first: per level, per container stage, per axis.

        A level whose containers make up its whole fan-out (Timeloop's nested containers:
        a column container then a PE container, or a PE mesh then a vector of MACs) gets one
        stage per container with that container's mesh and constraint; any other level one
        plain stage with its fan-out and its (merged) spatial constraint."""
        out = []
        for i, lv in enumerate(self.arch.levels):
            cs = lv.containers
            if cs and math.prod(c.mesh_x for c in cs) == lv.fanout_x and \
                    math.prod(c.mesh_y for c in cs) == lv.fanout_y:
                stages = [(k, c.mesh_x, c.mesh_y, c.spatial) for k, c in enumerate(cs)]
            else:
                stages = [(-1, lv.fanout_x, lv.fanout_y, lv.spatial)]
            for k, mx, my, cons in stages:
                for axis, limit in (("x", mx), ("y", my)):
                    if limit > 1:
                        out.append(Slot(i, axis, k, limit, mx > 1 and my > 1, cons))
        return out

    def _slots(self) -> list[Slot]:
        fan = self._fanouts()
        out = []
        for i in range(len(self.arch.levels)):
            out.append(Slot(i, "t"))
            out += [sl for sl in fan if sl.level == i]
        return out

    def _level_mapping(self, i: int, temporal: list[tuple[str, int]],
                       spatial: dict[Slot, dict[str, int]], keep: frozenset[str]) -> LevelMapping:
        """Level ``i``'s mapping from its temporal loops and its slots' spatial factors."""
        lm = LevelMapping(temporal=list(temporal), keep=keep)
        containers = self.arch.levels[i].containers
        stages: dict[int, SpatialStage] = {}
        for sl, choice in spatial.items():
            if sl.level != i:
                continue
            loops = [(d, f) for d, f in choice.items() if f > 1]
            if not loops:
                continue
            if sl.stage < 0:
                target = lm.spatial_x if sl.kind == "x" else lm.spatial_y
            else:
                st = stages.setdefault(sl.stage, SpatialStage(containers[sl.stage].name))
                target = st.x if sl.kind == "x" else st.y
            target.extend(loops)
        lm.stages = [stages[k] for k in sorted(stages)]
        return lm

    # ------------------------------------------------------------------ pruned search
    def _slot_candidates(self, sl: Slot, remaining: dict[str, int],
                         dims: list[str]) -> list[dict[str, int]]:
        """Loops one fan-out slot may take: nothing, one dim or two, each factor dividing
        what is left of the dim, within the mesh and the stage's constraint."""
        allowed = [d for d in _axis_dims(sl, dims) if remaining.get(d, 1) > 1]
        c = sl.constraint
        required: dict[str, int] = {}
        if c is not None:
            allowed = [d for d in allowed if c.factors.get(d) != 1]
            for d, f in c.factors.items():
                if d in allowed and f != 1:
                    required[d] = remaining[d] if f == 0 else f

        def ok(f: int, d: str) -> bool:
            if remaining[d] % f:
                return False
            if c is not None and d in c.max_factors and f > c.max_factors[d]:
                return False
            return required.get(d, f) == f

        cands: list[dict[str, int]] = [] if required else [{}]

        def add(cand: dict[str, int]) -> bool:
            """Keep ``cand`` if it has the required factors; False once there are enough."""
            if all(cand.get(d) == f for d, f in required.items()):
                cands.append(cand)
            return len(cands) < SLOT_CANDIDATES

        for d in allowed:
            for f in _divisors(remaining[d]):       # ascending: stop past the mesh
                if f > sl.limit:
                    break
                if f > 1 and ok(f, d) and not add({d: f}):
                    return cands
        for d1, d2 in itertools.combinations(allowed, 2):
            for f1 in _divisors(remaining[d1]):
                if f1 > sl.limit:
                    break
                if f1 <= 1 or not ok(f1, d1):
                    continue
                for f2 in _divisors(remaining[d2]):
                    if f1 * f2 > sl.limit:
                        break
                    if f2 > 1 and ok(f2, d2) and not add({d1: f1, d2: f2}):
                        return cands
        return cands

    def _spatial_plans(self, workload: Workload) -> list[dict[Slot, dict[str, int]]]:
        """Spatial assignments slot -> {dim: factor}, most parallel first.

        A beam over the fan-out slots from the outermost in, each choosing among the
        loops it may take given what the outer slots left of every dimension, so the
        plans are legal together (a per-slot choice would have nested containers fight over
        the same dimension and leave the outer mesh idle)."""
        dims = [d for d, b in workload.dims if b > 1]
        self._spatial_bound = 1
        beams: list[tuple[dict[Slot, dict[str, int]], dict[str, int], int]] = [
            ({}, dict(workload.bounds), 1)]
        for sl in self._fanouts():
            grown = []
            for plan, remaining, used in beams:
                for cand in self._slot_candidates(sl, remaining, dims):
                    rem = dict(remaining)
                    for d, f in cand.items():
                        rem[d] //= f
                    grown.append(({**plan, sl: cand}, rem, used * math.prod(cand.values())))
            if not grown:
                return []
            grown.sort(key=lambda b: (-b[2], _plan_key(b[0])))
            beams = _dedupe_plans(grown)[:SPATIAL_BEAM]
        self._spatial_bound = max((b[2] for b in beams), default=1)
        return [b[0] for b in beams[:self.spatial_options]] or [{}]

    def _temporal_plans(self, workload: Workload, plan, keep) -> list[list[dict[str, int]]]:
        """Beam over levels, innermost first: per level the maximal tiles that fit."""
        n = len(self.arch.levels)
        bounds = workload.bounds
        spatial_at = _spatial_at(plan, n)
        # state: (factors per level for levels > current, tile below, remaining per dim)
        beams: list[tuple[list[dict[str, int]], dict[str, int], dict[str, int]]] = []
        remaining0 = dict(bounds)
        for i in range(n):
            for d, f in spatial_at[i].items():
                remaining0[d] //= f
        beams.append(([dict() for _ in range(n)], {d: 1 for d in bounds}, remaining0))
        for i in reversed(range(1, n)):
            new_beams = []
            for factors, below, remaining in beams:
                lv = self.arch.levels[i]
                base = {d: below[d] * spatial_at[i].get(d, 1) for d in bounds}
                outer = self._outer_checks(workload, i, keep, spatial_at)
                options = self._maximal_tiles(workload, lv, keep[i], base, remaining, outer)
                for opt in options:
                    f2 = [dict(x) for x in factors]
                    f2[i] = opt
                    tile = {d: base[d] * opt.get(d, 1) for d in bounds}
                    rem = {d: remaining[d] // opt.get(d, 1) for d in bounds}
                    new_beams.append((f2, tile, rem))
            if not new_beams:
                return []
            new_beams.sort(key=lambda b: -_reuse(workload, b[1]))
            beams = _dedupe(new_beams)[:BEAM * 2]
        plans = []
        for factors, _below, remaining in beams:
            factors[0] = {d: r for d, r in remaining.items() if r > 1}
            plans.append(factors)
        return plans

    def _outer_checks(self, workload: Workload, i: int, keep, spatial_at):
        """Capacity checks of the levels outside level ``i``: their tiles contain level i's
        tile times the spatial loops in between, so a tile that overflows them is useless."""
        checks = []
        grow: dict[str, int] = {}
        for j in reversed(range(i)):
            for d, f in spatial_at[j].items():
                grow[d] = grow.get(d, 1) * f
            cap = self.arch.levels[j].capacity_words
            if cap is not None:
                kept = [ds for ds in workload.data_spaces if ds.name in keep[j]]
                checks.append((cap, kept, dict(grow)))
        return checks

    def _footprints(self, workload: Workload, order: tuple[str, ...]) -> dict[str, Callable]:
        """Compiled footprints of the workload's data spaces over tiles in ``order``, kept
        for the whole search of the workload (their memos are shared)."""
        key = (workload.key(), order)
        if self._fp_key != key:
            self._fp_key = key
            self._fp = {ds.name: compiled_footprint(ds, order) for ds in workload.data_spaces}
        return self._fp

    def _maximal_tiles(self, workload: Workload, lv, keep_i, base, remaining, outer=()):
        cap = lv.capacity_words
        dims = [d for d, r in remaining.items() if r > 1]
        fixed = {}
        for d in list(dims):
            f = _fixed(lv.temporal, d, remaining[d])
            if f is not None:
                if remaining[d] % f:
                    return []
                fixed[d] = f
        free = [d for d in dims if d not in fixed]
        kept = [ds for ds in workload.data_spaces if ds.name in keep_i]

        trials = [0]

        known: dict[tuple, bool] = {}

        def fits(fac: dict[str, int]) -> bool:
            trials[0] += 1          # repeats count too: TILE_TRIALS bounds the walk
            key = tuple(sorted(fac.items()))
            if key not in known:
                known[key] = _fits(fac)
            return known[key]

        # the checks run on tile tuples (in ``order``) with compiled footprints
        order = tuple(base)
        fps = self._footprints(workload, order)
        kept_fps = [fps[ds.name] for ds in kept]
        outer_fps = [(cap_j, [fps[ds.name] for ds in kept_j],
                      tuple(grow.get(d, 1) for d in order)) for cap_j, kept_j, grow in outer]

        def _fits(fac: dict[str, int]) -> bool:
            tile = tuple(base[d] * fac.get(d, 1) for d in order)
            if cap is not None and sum(fp(tile) for fp in kept_fps) > cap:
                return False
            for cap_j, fps_j, grow in outer_fps:
                tile_j = tuple(t * g for t, g in zip(tile, grow))
                if sum(fp(tile_j) for fp in fps_j) > cap_j:
                    return False
            return True

        if not fits(fixed):
            return []
        results: list[dict[str, int]] = []

        def grow(idx: int, fac: dict[str, int]) -> None:
            if len(results) > 64 or (trials[0] > TILE_TRIALS and results):
                return
            if idx == len(free):
                # maximal: no free dim can take its next divisor
                for d in free:
                    nxt = [x for x in _divisors(remaining[d]) if x > fac.get(d, 1)]
                    if nxt:
                        trial = dict(fac)
                        trial[d] = nxt[0]
                        if fits(trial):
                            return
                results.append(dict(fac))
                return
            d = free[idx]
            for f in reversed(_divisors(remaining[d])):
                if lv.temporal and d in lv.temporal.max_factors and \
                        f > lv.temporal.max_factors[d]:
                    continue
                trial = dict(fac)
                if f > 1:
                    trial[d] = f
                if fits(trial):
                    grow(idx + 1, trial)
                    if idx == len(free) - 1:
                        # tiles only grow in footprint: with a smaller last factor the
                        # next divisor up would still fit, so no smaller one is maximal
                        break

        if cap is None and not outer:
            return [{**fixed, **{d: remaining[d] for d in free}}]
        grow(0, dict(fixed))
        results.sort(key=lambda f: -_reuse(workload, {d: base[d] * f.get(d, 1) for d in base}))
        return results[:BEAM]

    def _assemble(self, workload: Workload, plan, temporal, keep, stationary) -> Mapping:
        levels = []
        for i, _lv in enumerate(self.arch.levels):
            tf = temporal[i]
            dims = [d for d in workload.dim_names if tf.get(d, 1) > 1]
            order = _order(dims, workload, stationary[i], self.arch.levels[i].temporal)
            levels.append(self._level_mapping(i, [(d, tf[d]) for d in order], plan, keep[i]))
        return Mapping(levels)

    def _random_temporals(self, workload: Workload, plan, keep, rng: random.Random,
                          count: int) -> list[list[dict[str, int]]]:
        """Up to ``count`` tilings that fit every level: each prime factor of what the
        spatial plan leaves of a dimension goes to a random level (pinned factors stay)."""
        n = len(self.arch.levels)
        spatial_at = _spatial_at(plan, n)
        remaining = dict(workload.bounds)
        pinned: list[dict[str, int]] = [dict() for _ in range(n)]
        for i in range(n):
            for d, f in spatial_at[i].items():
                remaining[d] //= f
        for i, lv in enumerate(self.arch.levels):
            for d in workload.dim_names:
                f = _fixed(lv.temporal, d, remaining[d])
                if f is not None and f > 0 and remaining[d] % f == 0:
                    pinned[i][d] = f
                    remaining[d] //= f
        out = []
        for _ in range(count * 4):
            if len(out) >= count:
                break
            temporal = [dict(p) for p in pinned]
            for d, r in remaining.items():
                for p in prime_factors(r):
                    free = [i for i in range(n) if not _pinned(self.arch.levels[i], d)]
                    i = rng.choice(free or [0])
                    temporal[i][d] = temporal[i].get(d, 1) * p
            if self._fits(workload, temporal, spatial_at, keep):
                out.append(temporal)
        return out

    def _fits(self, workload: Workload, temporal, spatial_at, keep) -> bool:
        tile = {d: 1 for d in workload.dim_names}
        for i in reversed(range(len(self.arch.levels))):
            for part in (temporal[i], spatial_at[i]):
                for d, f in part.items():
                    tile[d] *= f
            cap = self.arch.levels[i].capacity_words
            if cap is not None and sum(footprint(ds, tile) for ds in workload.data_spaces
                                       if ds.name in keep[i]) > cap:
                return False
        return True

    def _move_factors(self, workload, plan, temporal, keep, stationary, res):
        """Hill-climb over where the temporal factors sit: move one prime factor of one
        dimension from one level to another (re-choosing that level's stationarity), keep
        the first move that lowers the objective, repeat until none does or the budget of
        evaluations is spent.  The constructive search picks tiles by reuse alone; this
        corrects it where energies per level disagree with reuse (a register file whose
        fills are free, a DRAM whose partial-sum round trips are not)."""
        best_score = _value(res, self.objective)
        temporal = [dict(t) for t in temporal]
        stationary = list(stationary)
        n = len(self.arch.levels)
        budget = MOVE_BUDGET
        improved = True
        while improved and budget > 0:
            improved = False
            for d in workload.dim_names:
                for i in range(n):
                    f_i = temporal[i].get(d, 1)
                    if f_i <= 1 or _pinned(self.arch.levels[i], d):
                        continue
                    for p in distinct_primes(f_i):
                        for j in range(n):
                            if j == i or _pinned(self.arch.levels[j], d) or budget <= 0:
                                continue
                            trial = [dict(t) for t in temporal]
                            trial[i][d] = f_i // p
                            trial[j][d] = trial[j].get(d, 1) * p
                            for st in (stationary[j], *(x for x in _stationarity(workload)
                                                        if x != stationary[j])):
                                budget -= 1
                                trial_st = [*stationary[:j], st, *stationary[j + 1:]]
                                r = self._evaluate(workload, self._assemble(
                                    workload, plan, trial, keep, trial_st))
                                if r is not None and better(_value(r, self.objective),
                                                            best_score):
                                    temporal, stationary = trial, trial_st
                                    best_score = _value(r, self.objective)
                                    improved = True
                                    break
                                if st == stationary[j] and r is None:
                                    break       # does not fit: other orders fit no better
                            if improved:
                                break
                        if improved:
                            break
                    if improved:
                        break
                if improved:
                    break
        return temporal, stationary

    def _local_search(self, workload, mapping, res, plan, temporal, stationary, keep):
        best = [mapping, res]
        stationary = list(stationary)
        keep = list(keep)
        keep_opts = self._keep_options(workload)

        def improves(trial_keep, trial_st) -> bool:
            m = self._assemble(workload, plan, temporal, trial_keep, trial_st)
            r = self._evaluate(workload, m)
            if r is not None and better(_value(r, self.objective),
                                        _value(best[1], self.objective)):
                best[:] = [m, r]
                return True
            return False

        improved = True
        while improved:
            improved = False
            for i in range(len(self.arch.levels)):
                for st in _stationarity(workload):
                    trial_st = [*stationary[:i], st, *stationary[i + 1:]]
                    if st != stationary[i] and improves(keep, trial_st):
                        stationary, improved = trial_st, True
                if i == 0 or self.arch.levels[i].keep is not None:
                    continue
                for ds in keep_opts[i]:
                    trial_keep = list(keep)
                    trial_keep[i] = keep[i] - {ds} if ds in keep[i] else keep[i] | {ds}
                    if improves(trial_keep, stationary):
                        keep, improved = trial_keep, True
        return best[0], best[1]


def _spatial_at(plan: dict, n: int) -> list[dict[str, int]]:
    """Per level, the product of the spatial factors ``plan`` puts on its slots."""
    spatial_at: list[dict[str, int]] = [dict() for _ in range(n)]
    for sl, choice in plan.items():
        for d, f in choice.items():
            spatial_at[sl.level][d] = spatial_at[sl.level].get(d, 1) * f
    return spatial_at


def _stationarity(workload: Workload) -> list[str | None]:
    """The data spaces a level's loop order can make stationary, and no preference."""
    return [ds.name for ds in workload.data_spaces] + [None]


def _reuse(workload: Workload, tile: dict[str, int]) -> float:
    words = sum(footprint(ds, tile) for ds in workload.data_spaces)
    return math.prod(tile.values()) / max(1, words)


def _pinned(level, dim: str) -> bool:
    """Whether the level's temporal constraint fixes the factor of ``dim``."""
    c = level.temporal
    return c is not None and dim in c.factors


def _mapping_key(mapping: Mapping) -> tuple:
    return tuple((tuple(lm.temporal), tuple(lm.spatial_x), tuple(lm.spatial_y), lm.keep,
                  tuple((st.name, tuple(st.x), tuple(st.y)) for st in lm.stages))
                 for lm in mapping.levels)


def _plan_key(plan: dict) -> tuple:
    return tuple(sorted((sl.level, sl.stage, sl.kind, tuple(sorted(c.items())))
                        for sl, c in plan.items()))


def _dedupe_plans(beams):
    seen = set()
    out = []
    for b in beams:
        key = _plan_key(b[0])
        if key not in seen:
            seen.add(key)
            out.append(b)
    return out


def _dedupe(beams):
    seen = set()
    out = []
    for b in beams:
        key = tuple(tuple(sorted(f.items())) for f in b[0])
        if key not in seen:
            seen.add(key)
            out.append(b)
    return out
