"""The mapper: the best mapping of a workload onto an architecture, with the evidence for it.

Three steps, each with a job:

1. **Feasibility.**  The smallest tiles the constraints allow (every free factor at the
   outermost level that may take it, no spatial loop a constraint does not demand, only the
   data spaces a level must keep) fit wherever any mapping fits, because tiles only grow
   when factors move inwards.  If they do not fit, no mapping exists and the error says
   which level, how many words and which constraints force them.  If they do, that mapping
   is valid, so the mapper always has an answer.  (Where a constraint pins a dimension at
   the outermost level, an outer fan-out may do better than the construction; then a
   search decides before anything is declared impossible.)
2. **A constructive search** (:mod:`hwmodel.heuristic`) finds a good mapping in a few
   hundred evaluations.
3. **Branch and bound** (:mod:`hwmodel.search`) over the whole map space
   (:mod:`hwmodel.mapspace`), pruned by lower bounds against the best mapping so far.  When
   it closes the tree the answer is optimal; when its node budget runs out first the answer
   carries a lower bound of the optimum and the gap to it.

Efforts (:data:`WORK_BUDGETS`): ``fast`` stops after a quick step 2 (the NAS energy table
prices hundreds of layer shapes; its bound is the compulsory traffic); ``balanced`` (the
default of whole-network estimates) adds a short step 3; ``thorough`` (the default of one
layer) runs the thorough step 2 and a step 3 that closes every small space it is tested on;
``exhaustive`` runs step 3 to the end.  Results are cached by workload shape; everything is
deterministic: budgets count work, not time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import HwcostError

from .arch import Architecture
from .heuristic import SPATIAL_OPTIONS, HeuristicMapper
from .mapping import Mapping
from .mapspace import MapSpace, SpatialPlan, divisors
from .model import EvalResult, MappingError, evaluate, level_tiles
from .objectives import METRICS, Objective, better, parse_objective
from .search import BranchAndBound, Leaf
from .workload import Workload, footprint

OBJECTIVES = METRICS
EFFORTS = ("fast", "balanced", "thorough", "exhaustive")
#: bounds computed plus leaves priced that the branch and bound may spend per layer shape
#: (deterministic, unlike a time limit), per effort: ``thorough`` (the default of a single
#: layer) closes every space of the random property test and keeps a layer of the bundled
#: designs around a second; ``balanced`` (the default of a whole network, dozens of
#: shapes) mostly refines the bound; ``exhaustive`` has no limit
WORK_BUDGETS = {"fast": 0, "balanced": 200, "thorough": 2000, "exhaustive": None}
WORK_BUDGET = WORK_BUDGETS["thorough"]
#: spatial plans the constructive step tiles at ``balanced`` effort (half its default: the
#: branch and bound that follows ranks spatial plans itself; measured on DARTS_V2 on Eyeriss
#: this costs nothing in energy and a quarter of the time)
BALANCED_SPATIAL_OPTIONS = 2


@dataclass
class MapResult:
    """A mapping, what the model says of it, and how good it is known to be."""

    mapping: Mapping
    result: EvalResult
    evaluated: int
    #: the map space was searched to the end (or pruned soundly): nothing is better
    optimal: bool = False
    #: MACs the most parallel legal spatial split would use (constraints and divisibility
    #: respected, capacities not); ``result.macs_utilized`` far below it deserves a warning
    spatial_bound: int = 0
    #: a lower bound of the optimum, per compared metric (``objective.key_metrics``)
    lower_bound: tuple[float, ...] | None = None
    objective: Objective | None = None
    search: str = ""
    #: the branch and bound's work: lower bounds computed, complete mappings priced
    bounds: int = 0
    leaves: int = 0

    @property
    def exhaustive(self) -> bool:
        """Older name of :attr:`optimal`."""
        return self.optimal

    @property
    def gaps(self) -> tuple[float, ...] | None:
        """Per compared metric, the relative distance of the answer from its lower bound
        (all 0 when optimal, None without a bound)."""
        if self.objective is None or self.result is None:
            return None
        if self.optimal:
            return (0.0,) * len(self.objective.key_metrics)
        if self.lower_bound is None:
            return None
        got = self.objective.value(self.result.energy_pj, self.result.cycles)
        return tuple(max(0.0, (g - b) / g) if g else 0.0 for g, b in zip(got, self.lower_bound))

    @property
    def gap(self) -> float | None:
        """:attr:`gaps` of the first metric: how far from optimal the answer may be."""
        gaps = self.gaps
        return None if gaps is None else gaps[0]

    def evidence(self) -> dict:
        """The ``--format json`` view of how good the answer is known to be."""
        metrics = self.objective.key_metrics if self.objective else ()
        return {
            "optimal": self.optimal,
            "objective": list(self.objective.metrics) if self.objective else None,
            "lower_bound": (dict(zip(metrics, self.lower_bound))
                            if self.lower_bound is not None else None),
            "gap": (dict(zip(metrics, self.gaps)) if self.gaps is not None else None),
            "search": self.search,
            "bounds_computed": self.bounds,
            "mappings_priced": self.leaves,
        }

    def evidence_text(self) -> str:
        """One line for people: "optimal", or per metric of the objective the bound and
        how far the answer may be from it."""
        if self.optimal:
            return f"optimal ({self.search})"
        if self.gaps is None or self.objective is None:
            return f"no bound ({self.search})"
        units = {"energy": "pJ", "delay": "cycles", "edp": "pJ*cycles"}
        parts = [f"{metric} within {gap * 100:.1f} % of optimal (>= {bound:.4g} "
                 f"{units[metric]})"
                 for metric, bound, gap in zip(self.objective.key_metrics, self.lower_bound,
                                               self.gaps)
                 if metric in self.objective.metrics]
        return "; ".join(parts) + f" ({self.search})"

    @property
    def underused(self) -> str | None:
        """A one-line warning when the mapping leaves most of a fillable fan-out idle."""
        if self.result is None or not self.spatial_bound:
            return None
        used = self.result.macs_utilized
        if used * 2 >= self.spatial_bound:
            return None
        why = ("every more parallel mapping costs more or does not fit the buffers"
               if self.optimal else "the more parallel mappings searched cost more or did "
               "not fit the buffers")
        return (f"the best mapping found uses {used} MACs in parallel although a legal "
                f"spatial split uses {self.spatial_bound}: {why}")


class Mapper:
    """Maps workloads onto one architecture with one energy table; caches by shape."""

    def __init__(self, arch: Architecture, energy=None, objective="energy",
                 effort: str = "thorough", work_budget: int | None = None):
        if effort not in EFFORTS:
            raise HwcostError(f"unknown mapper effort {effort!r}; expected one of "
                              f"{', '.join(EFFORTS)}")
        self.arch = arch
        self.energy = energy
        self.objective = parse_objective(objective)
        self.effort = effort
        self.work_budget = work_budget if work_budget is not None else WORK_BUDGETS[effort]
        self._cache: dict[tuple, MapResult | MappingError] = {}

    def map(self, workload: Workload) -> MapResult:
        key = workload.key()
        if key not in self._cache:
            self._cache[key] = self._map_or_error(workload)
        found = self._cache[key]
        if isinstance(found, MappingError):
            raise found
        return found

    def map_many(self, workloads: list[Workload], jobs: int | None = None) -> None:
        """Map every distinct shape of ``workloads`` not mapped yet, on up to ``jobs``
        processes (:mod:`hwmodel.parallel_map`); :meth:`map` then answers from the cache."""
        from .parallel_map import map_all

        todo = list({w.key(): w for w in workloads if w.key() not in self._cache}.values())
        for w, found in zip(todo, map_all(self._map_or_error, todo, jobs)):
            self._cache[w.key()] = found

    def _map_or_error(self, workload: Workload) -> MapResult | MappingError:
        try:
            return self._map(workload)
        except MappingError as exc:
            return exc

    # ------------------------------------------------------------------ steps
    def _map(self, workload: Workload) -> MapResult:
        from .spec import check_problem

        check_problem(self.arch, workload)     # names the spec's constraints use exist
        space = MapSpace(self.arch, workload)
        best = self._first_mapping(space)
        floor = self._compulsory(space)        # a bound of every metric, whatever happens
        heuristic = HeuristicMapper(self.arch, self.energy, self.objective,
                                    "fast" if self.effort in ("fast", "balanced")
                                    else "thorough",
                                    BALANCED_SPATIAL_OPTIONS if self.effort == "balanced"
                                    else SPATIAL_OPTIONS)
        found = heuristic.search(workload)
        if found is not None and not space.violations(found[0]):
            leaf = self._leaf(workload, found[0], found[1])
            if better(leaf.value, best.value):
                best = leaf
        spatial_bound = heuristic.spatial_bound
        if self.effort == "fast":
            return self._result(workload, best, False, floor, "constructive", 0, 0,
                                spatial_bound)
        bnb = BranchAndBound(space, self.energy, self.objective, self.work_budget, best)
        outcome = bnb.run(floor)
        best = outcome.best or best
        optimal = outcome.complete and outcome.exact_orders
        bound = None
        if optimal:
            how = "branch and bound, complete"
        else:
            how = ("branch and bound, work budget reached" if not outcome.complete else
                   "branch and bound; loop orders chosen coordinate-wise")
            # both are bounds of every metric: the larger of each is the tighter
            bound = floor
            if outcome.bound is not None:
                bound = tuple(max(a, b) for a, b in zip(bound, outcome.bound))
        spatial_bound = max(spatial_bound, max((p.pc.utilized[-1] for p in bnb.plans),
                                               default=1))
        return self._result(workload, best, optimal, bound, how, bnb.work, outcome.leaves,
                            spatial_bound)

    def _leaf(self, workload: Workload, mapping: Mapping,
              result: EvalResult | None = None) -> Leaf:
        res = result or evaluate(self.arch, workload, mapping, self.energy)
        return Leaf(self.objective.value(res.energy_pj, res.cycles), res.energy_pj,
                    res.cycles, mapping)

    def _result(self, workload: Workload, best: Leaf, optimal: bool, bound, how: str,
                work: int, leaves: int, spatial_bound: int) -> MapResult:
        result = evaluate(self.arch, workload, best.mapping, self.energy)
        if bound is not None:   # the answer itself is an upper bound of the optimum
            value = self.objective.value(result.energy_pj, result.cycles)
            bound = tuple(min(b, v) for b, v in zip(bound, value))
        return MapResult(best.mapping, result, work, optimal, spatial_bound,
                         None if optimal else bound, self.objective, how, work - leaves, leaves)

    # ------------------------------------------------------------------ feasibility
    def _first_mapping(self, space: MapSpace) -> Leaf:
        """A valid mapping to start from, or the proof that none exists.

        The smallest-tile mapping (:meth:`_smallest_mapping`) is valid whenever any
        mapping is, provided every dimension with factors to place may place them at the
        outermost level (whose tile is the whole problem anyway).  Where a constraint fixes
        a dimension there, an outer fan-out may absorb factors the construction pushes
        inwards; then an unbudgeted search (pruned by capacities alone until it finds a
        mapping) decides: it finds one or proves that none fits."""
        workload = space.workload
        try:
            return self._leaf(workload, self._smallest_mapping(space))
        except MappingError as exc:
            if self._smallest_is_minimal(space):
                raise
            reason = exc
        search = BranchAndBound(space, self.energy, self.objective, None, None,
                                first_only=True)
        outcome = search.run()
        if outcome.best is None:
            raise reason
        return outcome.best

    def _smallest_is_minimal(self, space: MapSpace) -> bool:
        """Whether no mapping has smaller tiles than :meth:`_smallest_mapping`'s: every
        dimension whose free factors exceed 1 may put them all at level 0."""
        budget = space.temporal_budget(space.spatial_by_level(self._forced_plan(space)))
        if budget is None:
            return True
        c = self.arch.levels[0].temporal
        return all(left == 1 or (d not in space.fixed_temporal[0] and
                                 (c is None or d not in c.max_factors))
                   for d, left in budget.items())

    def _smallest_mapping(self, space: MapSpace) -> Mapping:
        """The mapping with the smallest tiles the constraints allow, or the proof that
        no mapping fits (a located :class:`MappingError`)."""
        workload = space.workload
        plan = self._forced_plan(space)
        spatial = space.spatial_by_level(plan)
        budget = space.temporal_budget(spatial)
        if budget is None:
            raise MappingError(f"no valid mapping of {workload.name} ({_shape(workload)}) "
                               f"on {self.arch.name}: the fixed factors of the constraints "
                               f"({_fixed_text(space)}) do not divide the problem's bounds")
        factors: list[dict[str, int]] = [{} for _ in range(space.n)]
        for i in range(space.n):
            for d, f in space.fixed_temporal[i].items():
                factors[i][d] = f
        for d, left in budget.items():
            for i in space.free_levels(d):
                if left == 1:
                    break
                c = self.arch.levels[i].temporal
                cap = c.max_factors.get(d) if c is not None else None
                f = left if cap is None else max(x for x in divisors(left) if x <= cap)
                factors[i][d] = factors[i].get(d, 1) * f
                left //= f
            if left != 1:
                raise MappingError(f"no valid mapping of {workload.name} ({_shape(workload)})"
                                   f" on {self.arch.name}: the temporal constraints leave "
                                   f"{d}={left} with no level allowed to take it")
        keeps = [frozenset(space.keep_options[0][0])] + list(space.forced_keep[1:])
        orders = [space.loop_orders(i, tuple(d for d in space.dims
                                             if factors[i].get(d, 1) > 1))[0].order
                  for i in range(space.n)]
        mapping = space.build(plan, factors, orders, keeps)
        tiles = level_tiles(mapping, workload.bounds)
        for i, lv in enumerate(self.arch.levels):
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
                    f"{self.arch.name}: {lv.name} must keep {', '.join(sorted(used))} and "
                    f"even the smallest tiles the constraints allow need "
                    f"{sum(used.values())} words ({held}), capacity {cap}"
                    + (f"; forced by {forced}" if forced else ""))
        return mapping

    def _forced_plan(self, space: MapSpace) -> SpatialPlan:
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
                            f"({_shape(space.workload)}) on {self.arch.name}: the spatial "
                            f"constraint of {stage.name or self.arch.levels[stage.level].name}"
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

    def _compulsory(self, space: MapSpace) -> tuple[float, ...]:
        """A bound valid for every mapping: the MACs, every word read from (outputs written
        to) the outermost level once, and the cycles of all MACs busy."""
        energy = self.energy
        workload = space.workload
        e = 0.0
        if energy is not None:
            e = energy.mac() * workload.computes
            outer = self.arch.levels[0].name
            for ds in workload.data_spaces:
                action = "update" if ds.read_write else "read"
                e += workload.size(ds) * energy.per_word(outer, action)
        cycles = math.ceil(workload.computes / max(1, self.arch.compute.instances))
        return self.objective.value(e, float(cycles))


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
