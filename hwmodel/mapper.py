"""The mapper: the best mapping of a workload onto an architecture, with the evidence for it.

Three steps, each with a job:

1. **Feasibility.**  The smallest tiles the constraints allow (every free factor at the
   outermost level that may take it, no spatial loop a constraint does not demand, only the
   data spaces a level must keep) fit wherever any mapping fits, because tiles only grow
   when factors move inwards.  If they do not fit, no mapping exists and the error says
   which level, how many words and which constraints force them.  If they do, that mapping
   is valid, so the mapper always has an answer.  (Where a constraint pins a dimension at
   the outermost level, an outer fan-out may do better than the construction; then a
   search decides before anything is declared impossible.)  The constructions, which
   search nothing, are :mod:`hwmodel.feasibility`'s.
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

from dataclasses import dataclass

from core.errors import HwcostError

from .arch import Architecture
from .constraints import check_problem
from .feasibility import compulsory_bound, smallest_is_minimal, smallest_mapping
from .heuristic import SPATIAL_OPTIONS, HeuristicMapper
from .mapping import Mapping
from .mapspace import MapSpace
from .model import EvalResult, MappingError, evaluate
from .objectives import METRICS, Objective, better, parse_objective
from .search import BranchAndBound, Leaf
from .workload import Workload

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
        check_problem(self.arch, workload)     # names the spec's constraints use exist
        space = MapSpace(self.arch, workload)
        best = self._first_mapping(space)
        floor = compulsory_bound(space, self.energy, self.objective)  # whatever happens
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

        The smallest-tile mapping (:func:`hwmodel.feasibility.smallest_mapping`) is valid
        whenever any mapping is, provided every dimension with factors to place may place
        them at the outermost level (whose tile is the whole problem anyway).  Where a
        constraint fixes a dimension there, an outer fan-out may absorb factors the
        construction pushes inwards; then an unbudgeted search (pruned by capacities alone
        until it finds a mapping) decides: it finds one or proves that none fits."""
        try:
            return self._leaf(space.workload, smallest_mapping(space))
        except MappingError as exc:
            if smallest_is_minimal(space):
                raise
            reason = exc
        search = BranchAndBound(space, self.energy, self.objective, None, None,
                                first_only=True)
        outcome = search.run()
        if outcome.best is None:
            raise reason
        return outcome.best
