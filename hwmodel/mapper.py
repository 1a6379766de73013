"""The mapper: find a good mapping of a workload onto an architecture, fast and deterministically.

Two regimes, chosen by the size of the map space:

* **Exhaustive** when every way of splitting every dimension over the levels' temporal and
  spatial slots, times every loop order and bypass choice, is small (small problems, the
  tutorial designs): the result is optimal by construction.
* **Pruned search** otherwise, in the order a hardware designer would reason:
  1. spatial: fill each fan-out with the dims that divide it best (the few most utilizing
     choices per level are kept);
  2. temporal, innermost level first: the *maximal* tiles that fit the level's capacity
     (no dim could grow without overflowing), ranked by reuse (MACs per word held), a small
     beam kept per level, the remainder going to the outermost level;
  3. loop orders: per level, one candidate order per data space that makes that data space
     stationary (its irrelevant loops innermost);
  4. a local search that re-tries each level's order and each optional bypass on the best
     mapping until nothing improves.

Constraints from the spec (fixed factors, permutations, spatial dims and splits, keep and
bypass) are honoured in both regimes.  Results are cached by (architecture, workload shape,
objective).  The search is deterministic: no random sampling.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from multiplier_lib.errors import HwcostError

from .arch import Architecture, LoopConstraint
from .mapping import LevelMapping, Mapping
from .model import EvalResult, MappingError, evaluate
from .workload import Workload, footprint

OBJECTIVES = ("energy", "delay", "edp")
EXHAUSTIVE_LIMIT = 2_000
BEAM = 2
SPATIAL_OPTIONS = 4


@dataclass
class MapResult:
    mapping: Mapping
    result: EvalResult
    evaluated: int
    exhaustive: bool


def score(result: EvalResult, objective: str) -> float:
    if objective == "energy":
        return result.energy_pj + 1e-9 * result.cycles
    if objective == "delay":
        return result.cycles + 1e-12 * result.energy_pj
    return result.edp


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _ordered_factorizations(n: int, slots: int) -> list[tuple[int, ...]]:
    if slots == 1:
        return [(n,)]
    out = []
    for d in _divisors(n):
        for rest in _ordered_factorizations(n // d, slots - 1):
            out.append((d, *rest))
    return out


def _fixed(constraint: LoopConstraint | None, dim: str, remaining: int) -> int | None:
    """A constraint's fixed factor for ``dim`` (0 means all that remains), or None if free."""
    if constraint is None or dim not in constraint.factors:
        return None
    value = constraint.factors[dim]
    return remaining if value == 0 else value


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
    """Outermost-first loop order: a constraint's permutation, else ``stationary`` ds's
    irrelevant dims innermost."""
    if constraint is not None and constraint.permutation:
        inner_first = [d for d in constraint.permutation if d in dims]
        rest = [d for d in dims if d not in inner_first]
        return list(reversed(inner_first)) + rest[::-1] if rest else list(reversed(inner_first))
    if stationary is None:
        return list(dims)
    ds = workload.data_space(stationary)
    relevant = [d for d in dims if ds.relevant(d)]
    irrelevant = [d for d in dims if not ds.relevant(d)]
    return relevant + irrelevant


class Mapper:
    """Maps workloads onto one architecture with one energy table; caches by shape."""

    def __init__(self, arch: Architecture, energy=None, objective: str = "energy",
                 exhaustive_limit: int = EXHAUSTIVE_LIMIT):
        if objective not in OBJECTIVES:
            raise HwcostError(f"unknown objective {objective!r}; expected one of "
                              f"{', '.join(OBJECTIVES)}")
        self.arch = arch
        self.energy = energy
        self.objective = objective
        self.exhaustive_limit = exhaustive_limit
        self._cache: dict[tuple, MapResult] = {}

    # ------------------------------------------------------------------ public
    def map(self, workload: Workload) -> MapResult:
        key = workload.key()
        if key not in self._cache:
            self._cache[key] = self._search(workload)
        cached = self._cache[key]
        if cached.result is None:
            raise MappingError(f"no valid mapping of {workload.name} "
                               f"({_shape(workload)}) fits {self.arch.name}")
        return cached

    # ------------------------------------------------------------------ helpers
    def _keep_options(self, workload: Workload,
                      explore: bool = False) -> list[list[frozenset[str]]]:
        """Per level, the data-space sets it may keep: the spec's choice where it makes one;
        otherwise everything allowed first and, when ``explore``, every subset of it."""
        names = [ds.name for ds in workload.data_spaces]
        options = []
        for i, lv in enumerate(self.arch.levels):
            allowed = frozenset(d for d in names if lv.may_keep(d))
            if i == 0:
                options.append([frozenset(names)])
            elif lv.keep is not None:
                options.append([frozenset(d for d in names if d in lv.keep)])
            elif explore:
                subsets = [frozenset(c) for k in range(len(allowed), -1, -1)
                           for c in itertools.combinations(sorted(allowed), k)]
                options.append(subsets)
            else:
                options.append([allowed])
        return options

    def _evaluate(self, workload: Workload, mapping: Mapping) -> EvalResult | None:
        self._evals += 1
        try:
            return evaluate(self.arch, workload, mapping, self.energy)
        except MappingError:
            return None

    def _search(self, workload: Workload) -> MapResult:
        self._evals = 0
        keep = [opts[0] for opts in self._keep_options(workload)]
        space = self._space_size(workload)
        if space <= self.exhaustive_limit:
            best = self._exhaustive(workload)
            return MapResult(best[0], best[1], self._evals, True) if best else \
                MapResult(None, None, self._evals, True)  # type: ignore[arg-type]
        best = None
        for plan in self._spatial_plans(workload):
            for temporal in self._temporal_plans(workload, plan, keep):
                for stationary in ("Weights", "Inputs", "Outputs", None):
                    mapping = self._assemble(workload, plan, temporal, keep,
                                             [stationary] * len(self.arch.levels))
                    res = self._evaluate(workload, mapping)
                    if res is not None and (best is None or score(res, self.objective)
                                            < score(best[1], self.objective)):
                        best = (mapping, res, plan, temporal, [stationary] * len(keep))
        if best is None:
            return MapResult(None, None, self._evals, False)  # type: ignore[arg-type]
        mapping, res = self._local_search(workload, *best, keep)
        return MapResult(mapping, res, self._evals, False)

    # ------------------------------------------------------------------ exhaustive
    def _slots(self) -> list[tuple[int, str]]:
        slots = []
        for i, lv in enumerate(self.arch.levels):
            slots.append((i, "t"))
            if lv.fanout_x > 1:
                slots.append((i, "x"))
            if lv.fanout_y > 1:
                slots.append((i, "y"))
        return slots

    def _dim_choices(self, workload: Workload) -> dict[str, list[tuple[int, ...]]]:
        slots = self._slots()
        dims = list(workload.dim_names)
        choices = {}
        for d, bound in workload.dims:
            ok = []
            for fac in _ordered_factorizations(bound, len(slots)):
                if self._factors_allowed(d, fac, slots, dims):
                    ok.append(fac)
            choices[d] = ok
        return choices

    def _factors_allowed(self, dim: str, fac: tuple[int, ...], slots, dims) -> bool:
        for (i, kind), f in zip(slots, fac):
            lv = self.arch.levels[i]
            if kind == "t":
                c = lv.temporal
                if c is not None:
                    if dim in c.factors and c.factors[dim] not in (0, f):
                        return False
                    if dim in c.max_factors and f > c.max_factors[dim]:
                        return False
            else:
                c = lv.spatial
                xs, ys = _spatial_dims(c, dims)
                allowed = xs if kind == "x" else ys
                if f > 1 and dim not in allowed:
                    return False
                limit = lv.fanout_x if kind == "x" else lv.fanout_y
                if f > limit:
                    return False
                if c is not None and dim in c.factors and c.factors[dim] not in (0, f) \
                        and f > 1:
                    return False
        return True

    def _space_size(self, workload: Workload) -> int:
        """Exact number of mappings the exhaustive regime would evaluate (capped)."""
        k = len(self._slots())
        upper = math.prod(_count_factorizations(b, k) for _, b in workload.dims)
        if upper > self.exhaustive_limit:
            return upper  # unconstrained count already too large: skip the exact count
        choices = self._dim_choices(workload)
        combos = math.prod(len(v) for v in choices.values())
        keeps = math.prod(len(o) for o in self._keep_options(workload, explore=True))
        if combos * keeps > self.exhaustive_limit:
            return combos * keeps
        slots = self._slots()
        total = 0
        for combo in itertools.product(*choices.values()):
            per_level = [0] * len(self.arch.levels)
            for split in combo:
                for (i, kind), f in zip(slots, split):
                    if kind == "t" and f > 1:
                        per_level[i] += 1
            total += math.prod(math.factorial(k) for k in per_level)
            if total * keeps > self.exhaustive_limit:
                break
        return total * keeps

    def _exhaustive(self, workload: Workload):
        slots = self._slots()
        choices = self._dim_choices(workload)
        dims = list(workload.dim_names)
        keep_opts = self._keep_options(workload, explore=True)
        best = None
        for combo in itertools.product(*(choices[d] for d in dims)):
            levels_t: list[list[str]] = [[] for _ in self.arch.levels]
            fac: dict[tuple[int, str, str], int] = {}
            for d, split in zip(dims, combo):
                for (i, kind), f in zip(slots, split):
                    fac[(i, kind, d)] = f
                    if kind == "t" and f > 1:
                        levels_t[i].append(d)
            for keep in itertools.product(*keep_opts):
                for orders in itertools.product(*(itertools.permutations(t)
                                                  for t in levels_t)):
                    levels = []
                    for i, _lv in enumerate(self.arch.levels):
                        levels.append(LevelMapping(
                            temporal=[(d, fac[(i, "t", d)]) for d in orders[i]],
                            spatial_x=[(d, fac[(i, "x", d)]) for d in dims
                                       if fac.get((i, "x", d), 1) > 1],
                            spatial_y=[(d, fac[(i, "y", d)]) for d in dims
                                       if fac.get((i, "y", d), 1) > 1],
                            keep=keep[i]))
                    mapping = Mapping(levels)
                    res = self._evaluate(workload, mapping)
                    if res is not None and (best is None or score(res, self.objective)
                                            < score(best[1], self.objective)):
                        best = (mapping, res)
        return best

    # ------------------------------------------------------------------ pruned search
    def _spatial_plans(self, workload: Workload) -> list[dict[tuple[int, str], dict[str, int]]]:
        """A few spatial assignments (level, axis) -> {dim: factor}, most utilizing first."""
        bounds = workload.bounds
        dims = [d for d, b in workload.dims if b > 1]
        per_slot: list[tuple[tuple[int, str], list[dict[str, int]]]] = []
        for i, lv in enumerate(self.arch.levels):
            xs, ys = _spatial_dims(lv.spatial, dims)
            for axis, allowed, limit in (("x", xs, lv.fanout_x), ("y", ys, lv.fanout_y)):
                if limit <= 1:
                    continue
                cands: list[dict[str, int]] = [{}]
                fixed = {d: f for d, f in (lv.spatial.factors.items() if lv.spatial else [])
                         if d in allowed and f > 0}
                for d in allowed:
                    for f in _divisors(bounds[d]):
                        if 1 < f <= limit:
                            cands.append({d: f})
                for d1, d2 in itertools.combinations(allowed, 2):
                    for f1 in _divisors(bounds[d1]):
                        for f2 in _divisors(bounds[d2]):
                            if f1 > 1 and f2 > 1 and f1 * f2 <= limit:
                                cands.append({d1: f1, d2: f2})
                if fixed:
                    cands = [c for c in cands if all(c.get(d) == f for d, f in fixed.items())] \
                        or [dict(fixed)]
                cands.sort(key=lambda c: (-math.prod(c.values()), sorted(c.items())))
                per_slot.append(((i, axis), cands[:SPATIAL_OPTIONS]))
        plans = []
        for combo in itertools.product(*(c for _, c in per_slot)):
            plan: dict[tuple[int, str], dict[str, int]] = {}
            used: dict[str, int] = {}
            ok = True
            for (slot, _), choice in zip(per_slot, combo):
                for d, f in choice.items():
                    used[d] = used.get(d, 1) * f
                    if bounds[d] % used[d]:
                        ok = False
                plan[slot] = choice
            if ok:
                plans.append(plan)
        plans.sort(key=lambda p: -math.prod(math.prod(c.values()) for c in p.values()))
        return plans[:SPATIAL_OPTIONS] or [{}]

    def _temporal_plans(self, workload: Workload, plan, keep) -> list[list[dict[str, int]]]:
        """Beam over levels, innermost first: per level the maximal tiles that fit."""
        n = len(self.arch.levels)
        bounds = workload.bounds
        spatial_at: list[dict[str, int]] = [dict() for _ in range(n)]
        for (i, _axis), choice in plan.items():
            for d, f in choice.items():
                spatial_at[i][d] = spatial_at[i].get(d, 1) * f
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

        def fits(fac: dict[str, int]) -> bool:
            tile = {d: base[d] * fac.get(d, 1) for d in base}
            if cap is not None and sum(footprint(ds, tile) for ds in kept) > cap:
                return False
            for cap_j, kept_j, grow in outer:
                tile_j = {d: t * grow.get(d, 1) for d, t in tile.items()}
                if sum(footprint(ds, tile_j) for ds in kept_j) > cap_j:
                    return False
            return True

        if not fits(fixed):
            return []
        results: list[dict[str, int]] = []

        def grow(idx: int, fac: dict[str, int]) -> None:
            if len(results) > 64:
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
            levels.append(LevelMapping(
                temporal=[(d, tf[d]) for d in order],
                spatial_x=[(d, f) for d, f in plan.get((i, "x"), {}).items()],
                spatial_y=[(d, f) for d, f in plan.get((i, "y"), {}).items()],
                keep=keep[i]))
        return Mapping(levels)

    def _local_search(self, workload, mapping, res, plan, temporal, stationary, keep):
        best = [mapping, res]
        stationary = list(stationary)
        keep = list(keep)
        keep_opts = self._keep_options(workload)

        def better(trial_keep, trial_st) -> bool:
            m = self._assemble(workload, plan, temporal, trial_keep, trial_st)
            r = self._evaluate(workload, m)
            if r is not None and score(r, self.objective) < score(best[1], self.objective):
                best[:] = [m, r]
                return True
            return False

        improved = True
        while improved:
            improved = False
            for i in range(len(self.arch.levels)):
                for st in ("Weights", "Inputs", "Outputs", None):
                    trial_st = [*stationary[:i], st, *stationary[i + 1:]]
                    if st != stationary[i] and better(keep, trial_st):
                        stationary, improved = trial_st, True
                if i == 0 or self.arch.levels[i].keep is not None:
                    continue
                for ds in keep_opts[i][0]:
                    trial_keep = list(keep)
                    trial_keep[i] = keep[i] - {ds} if ds in keep[i] else keep[i] | {ds}
                    if better(trial_keep, stationary):
                        keep, improved = trial_keep, True
        return best[0], best[1]


def _count_factorizations(n: int, slots: int) -> int:
    """Ordered factorizations of n into ``slots`` factors: prod over primes C(e+slots-1, e)."""
    count = 1
    p = 2
    while n > 1:
        e = 0
        while n % p == 0:
            n //= p
            e += 1
        if e:
            count *= math.comb(e + slots - 1, e)
        p += 1
    return count


def _reuse(workload: Workload, tile: dict[str, int]) -> float:
    words = sum(footprint(ds, tile) for ds in workload.data_spaces)
    return math.prod(tile.values()) / max(1, words)


def _dedupe(beams):
    seen = set()
    out = []
    for b in beams:
        key = tuple(tuple(sorted(f.items())) for f in b[0])
        if key not in seen:
            seen.add(key)
            out.append(b)
    return out


def _shape(workload: Workload) -> str:
    return " ".join(f"{d}={b}" for d, b in workload.dims)
