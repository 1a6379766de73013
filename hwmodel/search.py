"""Branch and bound over the map space: the best mapping and a proof of how good it is.

The tree decides a mapping from the outside in, in the order that fixes the most expensive
traffic first: a spatial plan (:meth:`MapSpace.spatial_plans`), then level 0's temporal
factors (DRAM), then level 1's data spaces kept and temporal factors, and so on to the
innermost level, which takes what is left.  Loop orders are not branched on: at a leaf every
level's order is chosen on its own (:mod:`hwmodel.nestcost`: a level's order changes only the
terms it is the *order level* of), jointly where bandwidth limits couple them.

Every node carries a lower bound of the objective over all its completions; a node whose
bound cannot beat the best mapping found so far is pruned, so the search is exact.  The
bound is the sum of

* the cost of every keeper the decided levels fix (its fills, its parent's reads), priced
  per word, each level's order taken at its cheapest for all of its terms together;
* for each data space, what it must still cost below the decided levels: its next keeper
  receives at least its per-instance partition times the decided loops irrelevant to it
  that no loop order can hide (the relevant sweep below repeats for each of their
  iterations); the keeper feeding the MACs serves at least what the MACs take, at the
  cheapest level that can be it; the keepers the spec forces receive their partitions;
* the MAC energy, and leakage at the compute-bound cycle count.

The same closed forms price a leaf exactly (whole rows; ``tests/hwmodel/test_branch_and_bound.py``
checks them against :func:`hwmodel.model.evaluate` and every bound against the best leaf
below it).  Nodes are expanded best bound first, each expansion diving greedily to a leaf so
that good mappings are found early (the pruning needs them).  With a node budget the search
may stop before the tree is closed: its answer then comes with the smallest bound of the open
nodes, a valid lower bound of the optimum.  Everything is deterministic.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from .mapping import Mapping
from .mapspace import LoopOrder, MapSpace, OrderSpaceTooLarge, SpatialPlan, distinct_primes
from .model import distinct_children, sliding_overlap
from .nestcost import NestCost, PlanCost, tiles_of
from .objectives import Objective, better, cannot_beat
from .workload import compiled_footprint, footprint

#: orders enumerated jointly at a leaf when bandwidth limits make cycles depend on them
JOINT_ORDER_LIMIT = 4096
#: children of a node whose bounds are computed at once (most promising first); the rest
#: wait in the queue under their parent's bound, a valid bound of each of them
CHUNK = 32
#: dives between two chunks of spatial plans entering the queue
PLAN_DIVES = 4
#: how a node's children are ranked before their bounds are computed (see _rank_key)
RANK = "fill"
#: the smallest work budget with probes and the closing hill climb
POLISH_BUDGET = 1000
#: spatial plans (the most parallel first) that get a greedy probe before their bound
PROBE_PLANS = 8
#: prices the closing local search may spend (about a millisecond each), how many of them
#: each kicked climb may take, and how many starts it has (the best mapping, then the best of
#: each other spatial plan).  One start with kicks beat three plain climbs of the same total
#: on the Timeloop mapper runs (benchmarks/timeloop_mapper_runs.py)
MOVE_BUDGET = 450
KICK_CLIMB = 60
CLIMB_STARTS = 1
#: children of one node screened at most (five dimensions with hundreds of divisors each
#: would otherwise be a product of 10**13); beyond it a node's children are a sample, the
#: node's bound stays the bound of the rest and the search can no longer claim optimality
MAX_CHILDREN = 20_000


@dataclass
class Leaf:
    """A complete mapping found by the search, priced exactly."""

    value: tuple[float, ...]
    energy_pj: float
    cycles: float
    mapping: Mapping
    exact_orders: bool = True
    #: the assignment it was priced from (plan index, factors, keeps), for local moves
    assignment: tuple | None = None


@dataclass(order=True)
class _Entry:
    bound: tuple[float, ...]
    seq: int
    node: _Node | _Deferred = field(compare=False)


@dataclass
class _Deferred:
    """Children of one node not bounded yet, most promising first."""

    children: Iterator[_Node]


@dataclass
class _Node:
    plan: int                               # index into the search's plans
    depth: int                              # levels < depth are decided
    keeps: tuple[frozenset[str], ...]
    factors: tuple[dict[str, int], ...]
    left: dict[str, int]                    # free temporal factor still to place, per dim
    tile: dict[str, int]                    # extent per dim held at level `depth`
    orders: tuple[tuple[LoopOrder, ...], ...]   # loop-order classes of decided levels
    #: bound terms already fixed: per order level, one energy per order class
    exact: dict[int, tuple[float, ...]]
    exact_fixed: float                      # ... and those no order changes
    #: per level, (reads, writes) per instance the fixed terms make at least (any order)
    counts: tuple[tuple[float, float], ...] = ()


class _Plan:
    """A spatial plan and what the bounds need of it, computed once."""

    def __init__(self, search: BranchAndBound, plan: SpatialPlan, pc: PlanCost,
                 budget: dict[str, int]):
        cost, space = search.cost, search.space
        n = space.n
        self.plan = plan
        self.pc = pc
        self.budget = budget
        # (every plan of every layer builds these, so each is computed in one pass)
        extents = [tuple(space.bounds[d] // pc.spatial_above[c].get(d, 1) for d in space.dims)
                   for c in range(n)]
        self.part = [[fp(extents[c]) for c in range(n)] for fp in search.footprints]
        #: a lower bound of the words keeper ``c`` receives per sweep of the relevant loops:
        #: the partition, where the footprint is a product of independent axes (every
        #: dimension on one axis, as in convolutions); where a dimension spans several axes
        #: the footprint's bounding box outgrows the tiles it is made of, so only 1
        self.sweep = [[self.part[k][c] if search.axis_disjoint[k] else 1 for c in range(n)]
                      for k in range(len(space.data_spaces))]
        self.spread_mac = [_spreads_to_macs(ds, pc, n, space.bounds)
                           for ds in space.data_spaces]
        #: a lower bound of the distinct child tiles one parent access serves between
        #: levels p and c, whatever the child's tile: only loops of dims that lie on
        #: single-dim axes of the data space count (each of their steps moves to new words)
        self.spread_lb = [_spread_lbs(moving, pc, n) for moving in search.moving]
        self.mac_hold = [math.prod(f for d, f in pc.temporal_total.items()
                                   if d in cost.relevant[k])
                         for k in range(len(space.data_spaces))]
        self.unit = [{a: cost.action_pj(pc, lv, a, 1.0, exact=False)
                      for a in ("read", "write", "update")} for lv in range(n)]
        #: the deepest level with a spatial loop: operands can be held only if no level
        #: below it has a temporal loop (then the nest's innermost loop is spatial)
        spatial_levels = [i for i in range(n) if any(f > 1 for f in pc.spatial[i].values())]
        self.deepest_spatial = spatial_levels[-1] if spatial_levels else None


@dataclass
class Outcome:
    best: Leaf | None
    complete: bool                          # the whole tree was closed
    bound: tuple[float, ...] | None         # smallest bound of what was left open
    nodes: int
    leaves: int
    exact_orders: bool = True


class BranchAndBound:
    """One search of one workload's map space."""

    def __init__(self, space: MapSpace, energy, objective: Objective, work_budget: int | None,
                 incumbent: Leaf | None = None, first_only: bool = False):
        #: greedy probes and the closing hill climb pay off from a budget of a thousand or
        #: so; below it (the NAS and network defaults) they would be most of the time
        self.polish = work_budget is None or work_budget >= POLISH_BUDGET
        self.space = space
        self.cost = NestCost(space, energy)
        self.objective = objective
        self.budget = work_budget
        #: stop at the first valid mapping (a feasibility search)
        self.first_only = first_only
        self.best = incumbent
        self.nodes = 0
        self.leaves = 0
        #: bounds computed plus leaves priced: what the budget counts (nodes of large
        #: spaces cost many bounds each, those of small ones few)
        self.work = 0
        self.exact_orders = True
        self.plans: list[_Plan] = []
        self._seq = itertools.count()
        n = space.n
        self.last_free = {d: (space.free_levels(d) or [-1])[-1] for d in space.dims}
        self.may_keep = [[any(ds in opt for opt in space.keep_options[i]) for i in range(n)]
                         for ds in space.ds_names]
        self.forced = [[ds in space.forced_keep[i] for i in range(n)] for ds in space.ds_names]
        self.rw = [ds.read_write for ds in space.data_spaces]
        self.axis_disjoint = [_axis_disjoint(ds) for ds in space.data_spaces]
        self._below_cache: dict[tuple, float] = {}
        self.probes = 0
        #: the best complete mapping found under each spatial plan (starts of the climb)
        self.best_per_plan: dict[int, Leaf] = {}
        #: the smallest bound of a node whose children were thinned (None: none was)
        self.cut_bound: tuple[float, ...] | None = None
        self.ds_index = {name: k for k, name in enumerate(space.ds_names)}
        self.footprints = [compiled_footprint(ds, space.dims) for ds in space.data_spaces]
        #: (level, read, write, shared bandwidth) of the levels with a bandwidth limit
        self._limited = [(i, lv.read_bandwidth, lv.write_bandwidth, lv.shared_bandwidth)
                         for i, lv in enumerate(space.arch.levels)
                         if lv.read_bandwidth or lv.write_bandwidth or lv.shared_bandwidth]
        #: per data space, the dims whose every step moves its tile to new words
        self.moving = [_moving_dims(ds) for ds in space.data_spaces]

    # ------------------------------------------------------------------ driver
    def run(self, floor: tuple[float, ...] | None = None) -> Outcome:
        """Search until the tree is closed or the node budget is spent.

        Spatial plans enter the queue a chunk at a time, the most parallel first, between
        dives; ``floor`` (a bound valid for every mapping) stands for the plans not yet
        entered."""
        heap: list[_Entry] = []
        plans = sorted(self.space.spatial_plans(), key=_parallelism, reverse=True)
        cut = self.space.spatial_cut
        entered = 0
        dives = 0
        while not (self.first_only and self.best is not None):
            if entered < len(plans) and (not heap or dives >= PLAN_DIVES):
                dives = 0
                while entered < len(plans):
                    self._enter_plans(plans[entered:entered + CHUNK], heap)
                    entered += CHUNK
                    if heap:
                        break
            if not heap:
                break
            entry = heapq.heappop(heap)
            if cannot_beat(entry.bound, self._best_value()):
                continue
            if self.budget is not None and self.work >= self.budget:
                heapq.heappush(heap, entry)
                break
            self._dive(entry, heap)
            dives += 1
        if heap and self.polish:             # the tree is open: polish the answer
            starts = sorted(self.best_per_plan.values(), key=lambda leaf: leaf.value)
            if self.best is not None and self.best.assignment is not None:
                starts = [self.best] + starts
            for start in starts[:CLIMB_STARTS]:
                self._improve(start)
        best = self._best_value()
        open_bounds = [e.bound for e in heap if not cannot_beat(e.bound, best)]
        if entered < len(plans):
            open_bounds.append(floor if floor is not None else
                               self.objective.value(0.0, 0.0))
        if self.cut_bound is not None and not cannot_beat(self.cut_bound, best):
            open_bounds.append(self.cut_bound)
        if cut or self.space.cut:
            open_bounds.append(floor if floor is not None else
                               self.objective.value(0.0, 0.0))
        # per metric, the least any open node allows: a lexicographically smallest bound's
        # second metric is no bound of the optimum's (another open node may hold it)
        open_bound = (tuple(min(b[k] for b in open_bounds) for k in range(len(open_bounds[0])))
                      if open_bounds else None)
        complete = open_bound is None
        return Outcome(self.best, complete, open_bound, self.nodes, self.leaves,
                       self.exact_orders)

    def _improve(self, start: Leaf) -> None:
        """Iterated local search from the best mapping when the budget ran out before the
        tree closed.  A climb moves one prime factor of one dimension between two levels,
        or keeps / bypasses one data space at one level, re-prices (every level's loop
        order re-chosen) and keeps the first better move, until none is better.  Its local
        optimum is then kicked: each neighbour in turn, worse or not, starts a short climb
        of its own (:data:`KICK_CLIMB` prices), and the first that ends better than the
        optimum replaces it.  A kick reaches what one move cannot, e.g. bypassing a data
        space at a buffer *and* moving the loops that then fit below it.  All within
        :data:`MOVE_BUDGET` prices: the search spent its budget proving, this spends a
        little finding."""
        plan_index, factors, keeps = start.assignment
        budget = [MOVE_BUDGET]
        factors, keeps, value = self._climb(plan_index, factors, keeps, start.value, budget)
        kicked = True
        while kicked and budget[0] > 0:
            kicked = False
            for trial_factors, trial_keeps in list(self._moves(factors, keeps)):
                if budget[0] <= 0:
                    break
                leaf = self._price_move(plan_index, trial_factors, trial_keeps, budget)
                if leaf is None:
                    continue
                short = [min(budget[0], KICK_CLIMB)]
                spent = short[0]
                found = self._climb(plan_index, trial_factors, trial_keeps, leaf.value, short)
                budget[0] -= spent - short[0]
                if better(found[2], value):
                    factors, keeps, value = found
                    kicked = True
                    break

    def _climb(self, plan_index: int, factors: list[dict[str, int]],
               keeps: list[frozenset[str]], value: tuple[float, ...],
               budget: list[int]) -> tuple[list[dict[str, int]], list[frozenset[str]],
                                           tuple[float, ...]]:
        """First-improvement hill climb; ``budget`` (a one-element list) is spent in place."""
        improved = True
        while improved and budget[0] > 0:
            improved = False
            for trial_factors, trial_keeps in self._moves(factors, keeps):
                if budget[0] <= 0:
                    break
                leaf = self._price_move(plan_index, trial_factors, trial_keeps, budget)
                if leaf is not None and better(leaf.value, value):
                    value, factors, keeps = leaf.value, trial_factors, trial_keeps
                    improved = True
                    break
        return factors, keeps, value

    def _price_move(self, plan_index: int, factors: list[dict[str, int]],
                    keeps: list[frozenset[str]], budget: list[int]) -> Leaf | None:
        """A neighbour priced (one unit of ``budget``), or None when it is invalid; the
        search's best mapping is updated on the way."""
        space = self.space
        if not self._valid(self.plans[plan_index], factors, keeps):
            return None
        budget[0] -= 1
        try:
            cands = [space.loop_orders(j, tuple(factors[j])) for j in range(space.n)]
        except OrderSpaceTooLarge:
            return None
        leaf = self.price(plan_index, factors, keeps, cands)
        self.leaves += 1
        self.work += 1        # reported work includes the polish (it is not budgeted)
        if leaf is not None and better(leaf.value, self._best_value()):
            self.best = leaf
        return leaf

    def _moves(self, factors: list[dict[str, int]], keeps: list[frozenset[str]]):
        """Neighbouring assignments: a prime factor (or the whole factor) of a dimension
        moved between two levels free for it, or one optional data space kept or bypassed
        at one level."""
        space = self.space
        n = space.n
        for d in space.dims:
            free = [i for i in range(n) if d not in space.fixed_temporal[i]]
            for i in free:
                f_i = factors[i].get(d, 1)
                primes = distinct_primes(f_i)
                steps = primes + ([f_i] if f_i > 1 and f_i not in primes else [])
                for p in steps:          # one prime factor, or the whole factor at once
                    for j in free:
                        if j == i:
                            continue
                        trial = [dict(f) for f in factors]
                        trial[i][d] = f_i // p
                        if trial[i][d] == 1:
                            del trial[i][d]
                        trial[j][d] = trial[j].get(d, 1) * p
                        yield trial, keeps
        for i in range(1, n):
            for option in space.keep_options[i]:
                if len(option ^ keeps[i]) == 1:
                    yield factors, [*keeps[:i], option, *keeps[i + 1:]]

    def _valid(self, pd: _Plan, factors: list[dict[str, int]],
               keeps: list[frozenset[str]]) -> bool:
        """Whether an assignment respects maximum factors and every capacity."""
        space = self.space
        for i, lv in enumerate(space.arch.levels):
            c = lv.temporal
            if c is not None and any(factors[i].get(d, 1) > m for d, m in c.max_factors.items()):
                return False
        tiles = tiles_of(space, pd.pc, factors)
        return all(self._fits(i, keeps[i], tiles[i]) for i in range(1, space.n))

    def _probe(self, root: _Node) -> None:
        """One greedy descent without bounds: at every level the first-ranked child (the one
        that fills the next level best).  A good mapping per spatial plan for the price of
        screening one child list per level; the bounded search prunes against it."""
        node = root
        while node.depth < self.space.n and not self._spent():
            self.work += 1
            child = next(iter(self._ranked_children(node)), None)
            if child is None:
                return
            node = child
        if node.depth == self.space.n:
            self._leaf(node)

    def _enter_plans(self, chunk: list[SpatialPlan], heap: list[_Entry]) -> None:
        """Bound a chunk of spatial plans into the queue, each after a greedy probe."""
        for plan in chunk:
            root = self._plan_root(plan)
            if root is None:
                continue
            if self.polish and self.probes < PROBE_PLANS and not self._spent():
                self.probes += 1
                self._probe(root)
            bound = self.bound(root)
            if not cannot_beat(bound, self._best_value()):
                heapq.heappush(heap, _Entry(bound, next(self._seq), root))

    def _spent(self) -> bool:
        return self.budget is not None and self.work >= self.budget

    def _best_value(self) -> tuple[float, ...] | None:
        return self.best.value if self.best is not None else None

    def _dive(self, entry: _Entry, heap: list[_Entry]) -> None:
        """Expand an entry and follow its best child down to a leaf, queueing the others
        (and the children not bounded yet, under their parent's bound)."""
        n = self.space.n
        bound, item = entry.bound, entry.node
        while True:
            self.nodes += 1
            children = item.children if isinstance(item, _Deferred) else \
                iter(self._ranked_children(item))
            inner = []
            for child in itertools.islice(children, CHUNK):
                if child.depth == n:
                    self._leaf(child)
                    continue
                child_bound = self.bound(child)
                if not cannot_beat(child_bound, self._best_value()):
                    inner.append((child_bound, next(self._seq), child))
            rest = _peek(children)
            if rest is not None:
                heapq.heappush(heap, _Entry(bound, next(self._seq), _Deferred(rest)))
            inner = [c for c in inner if not cannot_beat(c[0], self._best_value())]
            if not inner:
                return
            inner.sort(key=lambda c: c[:2])
            for child_bound, seq, child in inner[1:]:
                heapq.heappush(heap, _Entry(child_bound, seq, child))
            bound, _seq, item = inner[0]
            if self.budget is not None and self.work >= self.budget:
                heapq.heappush(heap, _Entry(bound, _seq, item))
                return

    def _ranked_children(self, node: _Node) -> Iterator[_Node]:
        """A node's children, lazily, the ones whose next level holds the most first (they
        leave the least traffic to the levels above), then by reuse.

        The factor choices are screened and ranked on tuples with compiled footprints; a
        child becomes a node only when its turn comes (most are never bounded)."""
        space = self.space
        i = node.depth
        nxt = i + 1
        pd = self.plans[node.plan]
        dims = space.dims
        per_dim = []
        for d in dims:
            choices = space.factor_choices(i, d, node.left[d], self.last_free[d] == i)
            if not choices:
                return
            step = pd.pc.spatial[i].get(d, 1)
            per_dim.append([(f, node.tile[d] // (f * step)) for f in choices])
        keeps = [k for k in space.keep_options[i] if self._fits(i, k, node.tile)]
        if not keeps:
            return
        if math.prod(len(c) for c in per_dim) > MAX_CHILDREN:
            per_dim = _thinned(per_dim, MAX_CHILDREN)
            self.cut_bound = (self.bound(node) if self.cut_bound is None
                              else min(self.cut_bound, self.bound(node)))
        last = nxt >= space.n
        cap = None if last else space.arch.levels[nxt].capacity_words
        forced = [] if last else [self.ds_index[name] for name in space.forced_keep[nxt]]
        may = [] if last else [k for k, name in enumerate(space.ds_names)
                               if self.may_keep[k][nxt]]
        specs = []
        footprints = self.footprints
        # the tiles walk in step with the choices (one product each: no tuple per combo)
        tiles = itertools.product(*[[t for _f, t in choices] for choices in per_dim])
        for combo, tile in zip(itertools.product(*per_dim), tiles):
            if last:
                specs.append(((0, 0.0, 0.0), combo))
                continue
            words = [fp(tile) for fp in footprints]
            if cap is not None and sum(words[k] for k in forced) > cap:
                continue
            held = sum(words[k] for k in may)
            usage = held / cap if cap else 0.0
            reuse = math.prod(tile) / max(1, sum(words))
            specs.append((_rank_key(RANK, usage, reuse, tile), combo))
        self.work += len(specs) // CHUNK     # screening costs about a bound per chunk
        specs.sort(key=lambda sc: sc[0])
        terms: dict[frozenset[str], tuple] = {}
        if len(keeps) == 1:
            ordered = [(combo, keeps[0]) for _r, combo in specs]
        else:   # more kept is more reuse: the larger keep sets first among equal tiles
            ranked = sorted(((r[:2] + (-len(k),) + r[2:], n, k) for n, (r, _c) in
                             enumerate(specs) for k in keeps), key=lambda x: x[:2])
            ordered = [(specs[n][1], k) for _r, n, k in ranked]
        for combo, keep in ordered:
            if keep not in terms:
                terms[keep] = self._add_keeper_terms(node, pd, keep)
            child = self._make_child(node, pd, keep, combo, terms[keep])
            if child is not None:
                yield child

    def _make_child(self, node: _Node, pd: _Plan, keep, combo, terms) -> _Node | None:
        space = self.space
        i = node.depth
        fixed = space.fixed_temporal[i]
        tile = {}
        left = dict(node.left)
        factors = {}
        for d, (f, t) in zip(space.dims, combo):
            tile[d] = t
            if f > 1:
                factors[d] = f
                if d not in fixed:
                    left[d] //= f
        try:
            orders = space.loop_orders(i, tuple(factors))
        except OrderSpaceTooLarge:
            self.exact_orders = False
            return None
        exact, fixed_e, counts = terms
        return _Node(node.plan, i + 1, node.keeps + (keep,), node.factors + (factors,), left,
                     tile, node.orders + (tuple(orders),), exact, fixed_e, counts)

    # ------------------------------------------------------------------ tree
    def _plan_root(self, plan: SpatialPlan) -> _Node | None:
        space = self.space
        pc = self.cost.plan_cost(plan)
        budget = space.temporal_budget(pc.spatial)
        if budget is None:
            return None
        # the smallest tiles this plan allows (fixed factors, spatial loops) must fit
        tile = {d: 1 for d in space.bounds}
        for i in range(space.n - 1, 0, -1):
            for d, f in pc.spatial[i].items():
                tile[d] *= f
            for d, f in space.fixed_temporal[i].items():
                tile[d] *= f
            if not self._fits(i, space.forced_keep[i], tile):
                return None
        self.plans.append(_Plan(self, plan, pc, budget))
        return _Node(len(self.plans) - 1, 0, (), (), dict(budget), dict(space.bounds), (), {},
                     0.0, ((0.0, 0.0),) * space.n)

    def _fits(self, level: int, keep: frozenset[str], tile: dict[str, int]) -> bool:
        cap = self.space.arch.levels[level].capacity_words
        if cap is None:
            return True
        return sum(footprint(ds, tile) for ds in self.space.data_spaces
                   if ds.name in keep) <= cap

    def _children(self, node: _Node) -> Iterator[_Node]:
        """Every child of ``node`` (the tests walk whole trees with it)."""
        return self._ranked_children(node)

    # ------------------------------------------------------------------ closed forms
    def _order_level(self, k: int, factors, below: int) -> int | None:
        rel = self.cost.relevant[k]
        for j in range(below - 1, -1, -1):
            if any(d in rel for d in factors[j]):
                return j
        return None

    def _transfers(self, k: int, c: int, tile: dict[str, int] | None, factors, j: int | None,
                   order: LoopOrder | None) -> int:
        """``T(ds, c)`` in closed form (see :func:`hwmodel.model.transfers`): the first
        tile times every loop above ``c`` down to the innermost relevant one, the order
        level ``j``'s irrelevant innermost loops excluded; a sliding window keeps its
        overlap when that loop is the innermost of all.  ``tile`` None: one MAC."""
        ds = self.cost.data_spaces[k]
        full = footprint(ds, tile) if tile is not None else 1
        if j is None:
            return full
        above = 1
        for lv in range(j + 1):
            for f in factors[lv].values():
                above *= f
        trail_set, inner = order.signature[k]
        trail = 1
        for d in trail_set:
            trail *= factors[j][d]
        if tile is not None and not trail_set and inner is not None and \
                not any(factors[lv] for lv in range(j + 1, c)):
            overlap = sliding_overlap(ds, tile, inner)
            if overlap:
                f_r = factors[j][inner]
                p_out = above // f_r
                return full * p_out + (f_r - 1) * p_out * (full - overlap)
        return full * (above // trail)

    def _keeper_energy(self, pd: _Plan, k: int, c: int, parent: int, t: int, spread: int,
                       exact: bool, acc=None) -> float:
        """Energy of one keeper's incoming words: its fills (``c`` < n) and its parent's
        reads or updates; ``acc`` collects per-level reads and writes for cycles."""
        cost, n = self.cost, self.space.n
        pc = pd.pc
        e = 0.0
        if c < n:
            fills = max(0, t - pd.part[k][c]) if self.rw[k] else t
            e += (cost.action_pj(pc, c, "write", fills) if exact
                  else self._rows(pd, c, "write", fills))
            if acc is not None:
                acc[c][1] += fills
        moved = t * spread
        if self.rw[k]:
            reads = max(0, moved - pd.part[k][parent])
            if exact:
                e += cost.action_pj(pc, parent, "update", moved)
                e += cost.action_pj(pc, parent, "read", reads)
            else:
                e += (self._rows(pd, parent, "update", moved)
                      + self._rows(pd, parent, "read", reads))
            if acc is not None:
                acc[parent][0] += reads
                acc[parent][1] += moved
        else:
            e += (cost.action_pj(pc, parent, "read", moved) if exact
                  else self._rows(pd, parent, "read", moved))
            if acc is not None:
                acc[parent][0] += moved
        return e

    def _add_keeper_terms(self, node: _Node, pd: _Plan, keep: frozenset[str]):
        """The bound's fixed terms once level ``node.depth`` keeps ``keep``: every data
        space it keeps now has a known parent and known incoming words per order class.
        Returns them with the per-level access counts they make at least."""
        i = node.depth
        if i == 0:
            return node.exact, node.exact_fixed, node.counts
        exact = dict(node.exact)
        fixed = node.exact_fixed
        counts = [list(c) for c in node.counts]
        factors = node.factors
        n = self.space.n
        for k, name in enumerate(self.space.ds_names):
            if name not in keep:
                continue
            parent = max(lv for lv in range(i) if name in node.keeps[lv])
            spread = self.cost.spread(pd.pc, k, parent, i, node.tile)
            j = self._order_level(k, factors, i)
            options = [None] if j is None else node.orders[j]
            energies = []
            least = None
            for order in options:
                acc = [[0.0, 0.0] for _ in range(n)]
                t = self._transfers(k, i, node.tile, factors, j, order)
                energies.append(self._keeper_energy(pd, k, i, parent, t, spread, False, acc))
                least = acc if least is None else [[min(a, b) for a, b in zip(x, y)]
                                                   for x, y in zip(least, acc)]
            for lv in (parent, i):
                counts[lv][0] += least[lv][0]
                counts[lv][1] += least[lv][1]
            if j is None:
                fixed += energies[0]
                continue
            old = exact.get(j) or (0.0,) * len(options)
            exact[j] = tuple(e + x for e, x in zip(old, energies))
        return exact, fixed, tuple(tuple(c) for c in counts)

    # ------------------------------------------------------------------ bounds
    def bound(self, node: _Node) -> tuple[float, ...]:
        """A lower bound of the objective over every completion of ``node``."""
        self.work += 1
        pd = self.plans[node.plan]
        depth = node.depth
        factors = node.factors
        # operands can be held at the MACs only if nothing decided rules it out
        js = pd.deepest_spatial
        hold_possible = js is not None and not any(factors[lv] for lv in range(js + 1, depth))
        per_level: dict[int, list] = {}
        total = node.exact_fixed
        counts = [list(c) for c in node.counts]
        held_at_most: list[tuple[int, int]] = []      # (last keeper, most hidden) per ds
        for k, name in enumerate(self.space.ds_names):
            last = max((lv for lv in range(depth) if name in node.keeps[lv]), default=0)
            j = self._order_level(k, factors, depth)
            if j is None:
                held_at_most.append((last, 1))
                e, reads, writes = self._below(pd, k, depth, last, 1, hold_possible)
                total += e
                counts[last][0] += reads
                counts[last][1] += writes
                continue
            rel = self.cost.relevant[k]
            irr_above = 1
            for lv in range(j):
                for d, f in factors[lv].items():
                    if d not in rel:
                        irr_above *= f
            irr_j = 1
            for d, f in factors[j].items():
                if d not in rel:
                    irr_j *= f
            per_level.setdefault(j, []).append((k, last, irr_above * irr_j))
            held_at_most.append((last, irr_above * irr_j))
        for j in set(per_level) | set(node.exact):
            orders = node.orders[j]
            base = node.exact.get(j) or (0.0,) * len(orders)
            best = None
            least: dict[int, list[float]] = {}
            for idx, order in enumerate(orders):
                e = base[idx]
                for k, last, irr in per_level.get(j, ()):
                    trail = 1
                    for d in order.signature[k][0]:
                        trail *= factors[j][d]
                    e_k, reads, writes = self._below(pd, k, depth, last, irr // trail,
                                                     hold_possible)
                    e += e_k
                    key = (k, last)
                    if key in least:
                        least[key] = [min(least[key][0], reads), min(least[key][1], writes)]
                    else:
                        least[key] = [reads, writes]
                if best is None or e < best:
                    best = e
            total += best or 0.0
            for (_k, last), (reads, writes) in least.items():
                counts[last][0] += reads
                counts[last][1] += writes
        if hold_possible:
            total += self._innermost_correction(pd, depth, held_at_most)
        cycles = (self._cycles(pd.pc, counts) if self.cost.has_bandwidth
                  else float(pd.pc.compute_iters))
        total += self.cost.ev.mac_pj * self.space.workload.computes
        total += self._leakage(pd.pc, cycles)
        return self.objective.value(total, cycles)

    def _innermost_correction(self, pd: _Plan, depth: int, held_at_most) -> float:
        """What the bound may add for the innermost loop of the whole nest.

        Where MACs may hold operands, :meth:`_below` prices every data space as if it
        changed only when a relevant index does.  But the innermost loop is relevant to
        some data spaces, and those change at every compute: their keepers feed the MACs
        ``compute_iters`` operands.  The least any choice of innermost dimension adds over
        the held pricing (taken at its largest) is a valid addition to the bound."""
        pc = pd.pc
        extra = []
        for k, (last, hidden) in enumerate(held_at_most):
            key = ("innermost", id(pd), k, depth, last, hidden)
            value = self._below_cache.get(key)
            if value is None:
                feeders = self._feeders(k, depth, last)
                full = min(self._serve(pd, k, lv, pc.compute_iters * pd.spread_mac[k][lv])
                           for lv in feeders)
                held = max(self._serve(pd, k, lv, pd.mac_hold[k] * hidden *
                                       pd.spread_mac[k][lv]) for lv in feeders)
                value = self._below_cache[key] = max(0.0, full - held)
            extra.append(value)
        dims = [d for d, f in pc.temporal_total.items() if f > 1]
        if not dims:
            return 0.0
        return min(sum(x for k, x in enumerate(extra) if d in self.cost.relevant[k])
                   for d in dims)

    def _feeders(self, k: int, depth: int, last: int) -> list[int]:
        """Levels that may be data space ``k``'s keeper feeding the MACs."""
        n = self.space.n
        first_open = max(depth, last + 1)
        may = [lv for lv in range(first_open, n) if self.may_keep[k][lv]]
        forced = [lv for lv in range(first_open, n) if self.forced[k][lv]]
        out = [] if forced else [last]
        return out + [lv for lv in may if not forced or lv >= forced[-1]]

    def _serve(self, pd: _Plan, k: int, level: int, words: float) -> float:
        """Per-word energy of ``level`` serving ``words`` of data space ``k`` to the level
        below (reads; updates and the reads they imply for outputs)."""
        if self.rw[k]:
            return (self._rows(pd, level, "update", words) +
                    self._rows(pd, level, "read", max(0.0, words - pd.part[k][level])))
        return self._rows(pd, level, "read", words)

    def _rows(self, pd: _Plan, level: int, action: str, words: float) -> float:
        """pJ of ``words`` per instance in whole rows, all instances in use: a count's
        lower bound rounded up to rows is a lower bound of its rows (rounding is monotone),
        and near the leaves it is what makes equal mappings tie exactly."""
        if words <= 0:
            return 0.0
        block = self.cost.ev.block[level]
        if block > 1:
            words = math.ceil(words / block - 1e-9) * block
        return words * pd.unit[level][action]

    def _below(self, pd: _Plan, k: int, depth: int, last: int, hidden: int,
               hold_possible: bool) -> tuple[float, float, float]:
        """What data space ``k`` must still cost below the decided levels, its last
        decided keeper being ``last`` and ``hidden`` the decided loops no order hides."""
        key = (id(pd), k, depth, last, hidden, hold_possible)
        value = self._below_cache.get(key)
        if value is None:
            value = self._below_cache[key] = self._below_uncached(pd, k, depth, last, hidden,
                                                                  hold_possible)
        return value

    def _below_uncached(self, pd: _Plan, k: int, depth: int, last: int, hidden: int,
                        hold_possible: bool) -> tuple[float, float, float]:
        """(energy, reads, writes at ``last``) lower bounds; see :meth:`_below`."""
        n = self.space.n
        first_open = max(depth, last + 1)      # level 0 keeps everything, decided or not
        may = [lv for lv in range(first_open, n) if self.may_keep[k][lv]]
        forced = [lv for lv in range(first_open, n) if self.forced[k][lv]]
        mac = pd.mac_hold[k] * hidden if hold_possible else pd.pc.compute_iters
        rw = self.rw[k]
        part = pd.part[k]
        sweep = pd.sweep[k]

        def serve(level: int, words: float) -> float:
            return self._serve(pd, k, level, words)

        def at_last(words: float) -> tuple[float, float]:
            """(reads, writes) per instance at ``last`` serving ``words``."""
            return (max(0.0, words - part[last]), words) if rw else (words, 0.0)

        options = []
        if not forced:      # the last decided keeper may feed the MACs itself
            words = mac * pd.spread_mac[k][last]
            options.append((serve(last, words), *at_last(words)))
        if may:
            first = forced[0] if forced else n
            spread_lb = pd.spread_lb[k][last]
            words = min(sweep[c] * spread_lb[c] for c in may if c <= first) * hidden
            e = serve(last, words)
            for f in forced[:-1] if rw else forced:
                e += self._rows(pd, f, "update" if rw else "write", sweep[f] * hidden)
            feeders = [lv for lv in may if not forced or lv >= forced[-1]]
            e += min(serve(lv, mac * pd.spread_mac[k][lv]) for lv in feeders)
            options.append((e, *at_last(words)))
        if not options:
            return 0.0, 0.0, 0.0
        return (min(o[0] for o in options), min(o[1] for o in options),
                min(o[2] for o in options))

    # ------------------------------------------------------------------ leaves
    def _leaf(self, node: _Node) -> None:
        self.leaves += 1
        self.work += 1
        leaf = self.price(node.plan, list(node.factors), list(node.keeps),
                          list(node.orders))
        if leaf is None:
            return
        held = self.best_per_plan.get(node.plan)
        if held is None or better(leaf.value, held.value):
            self.best_per_plan[node.plan] = leaf
        if better(leaf.value, self._best_value()):
            self.best = leaf

    def price(self, plan_index: int, factors: list[dict[str, int]],
              keeps: list[frozenset[str]], cands: list) -> Leaf | None:
        """The best loop orders of a complete assignment and its exact cost."""
        space, cost = self.space, self.cost
        pd = self.plans[plan_index]
        pc = pd.pc
        n = space.n
        tiles = tiles_of(space, pc, factors)
        js = pd.deepest_spatial
        hold = js is not None and not any(factors[lv] for lv in range(js + 1, n))
        const_e = cost.ev.mac_pj * space.workload.computes
        const_acc = [[0.0, 0.0] for _ in range(n)]
        groups: dict[int, list] = {}
        for k, name in enumerate(space.ds_names):
            keepers = [i for i in range(n) if name in keeps[i]]
            for idx in range(1, len(keepers) + 1):
                parent = keepers[idx - 1]
                c = keepers[idx] if idx < len(keepers) else n
                tile = tiles[c] if c < n else None
                spread = (pd.spread_mac[k][parent] if c == n
                          else cost.spread(pc, k, parent, c, tile))
                if c == n and not hold:
                    const_e += self._keeper_energy(pd, k, c, parent, pc.compute_iters,
                                                   spread, True, const_acc)
                    continue
                j = self._order_level(k, factors, c)
                if j is None:
                    t = self._transfers(k, c, tile, factors, None, None)
                    const_e += self._keeper_energy(pd, k, c, parent, t, spread, True,
                                                   const_acc)
                    continue
                groups.setdefault(j, []).append((k, c, parent, tile, spread))
        tables: dict[int, list[tuple[float, list[list[float]]]]] = {}
        for j, terms in groups.items():
            table = []
            for order in cands[j]:
                acc = [[0.0, 0.0] for _ in range(n)]
                e = sum(self._keeper_energy(pd, k, c, parent,
                                            self._transfers(k, c, tile, factors, j, order),
                                            spread, True, acc)
                        for k, c, parent, tile, spread in terms)
                table.append((e, acc))
            tables[j] = table
        levels = sorted(tables)
        picks, energy_pj, cycles, exact = self._pick_orders(pc, levels, tables, const_e,
                                                            const_acc)
        orders = [cands[j][0].order for j in range(n)]
        for j, p in zip(levels, picks):
            orders[j] = cands[j][p].order
        mapping = space.build(pd.plan, factors, orders, keeps)
        return Leaf(self.objective.value(energy_pj, cycles), energy_pj, cycles, mapping,
                    exact, (plan_index, [dict(f) for f in factors], list(keeps)))

    def _pick_orders(self, pc: PlanCost, levels, tables, const_e, const_acc):
        """Each order level's class, and the resulting (energy, cycles).

        Energy is a sum over order levels, so without bandwidth limits each level's
        cheapest class is optimal on its own (cycles do not depend on orders); with them,
        cycles (and leakage) couple the levels and small products of classes are
        enumerated jointly, larger ones improved coordinate-wise (and flagged inexact)."""
        if not self.cost.has_bandwidth:
            picks = [min(range(len(tables[j])), key=lambda p, j=j: tables[j][p][0])
                     for j in levels]
            energy = const_e + sum(tables[j][p][0] for j, p in zip(levels, picks))
            cycles = float(pc.compute_iters)
            return picks, energy + self._leakage(pc, cycles), cycles, True
        sizes = [len(tables[j]) for j in levels]
        if math.prod(sizes) <= JOINT_ORDER_LIMIT:
            best = None
            for picks in itertools.product(*(range(s) for s in sizes)):
                e, cyc = self._combine(pc, levels, tables, picks, const_e, const_acc)
                value = self.objective.value(e, cyc)
                if best is None or better(value, best[0]):
                    best = (value, list(picks), e, cyc)
            return best[1], best[2], best[3], True
        picks = [min(range(len(tables[j])), key=lambda p, j=j: tables[j][p][0])
                 for j in levels]
        e, cyc = self._combine(pc, levels, tables, picks, const_e, const_acc)
        value = self.objective.value(e, cyc)
        improved = True
        while improved:
            improved = False
            for idx, j in enumerate(levels):
                for p in range(len(tables[j])):
                    trial = picks[:idx] + [p] + picks[idx + 1:]
                    e2, c2 = self._combine(pc, levels, tables, trial, const_e, const_acc)
                    v2 = self.objective.value(e2, c2)
                    if better(v2, value):
                        picks, e, cyc, value, improved = trial, e2, c2, v2, True
        self.exact_orders = False
        return picks, e, cyc, False

    def _combine(self, pc, levels, tables, picks, const_e, const_acc):
        n = self.space.n
        acc = [list(a) for a in const_acc]
        e = const_e
        for j, p in zip(levels, picks):
            e_j, acc_j = tables[j][p]
            e += e_j
            for lv in range(n):
                acc[lv][0] += acc_j[lv][0]
                acc[lv][1] += acc_j[lv][1]
        cycles = self._cycles(pc, acc)
        return e + self._leakage(pc, cycles), cycles

    def _cycles(self, pc: PlanCost, acc) -> float:
        """Timeloop's bandwidth throttling (hwmodel.model._throttling), from per-instance
        reads and writes per level."""
        compute = pc.compute_iters
        cycles = float(compute)
        if not compute:
            return cycles
        for i, read_bw, write_bw, shared_bw in self._limited:
            reads, writes = acc[i]
            slow = 1.0
            for bw, demand in ((read_bw, reads / compute), (write_bw, writes / compute),
                               (shared_bw, (reads + writes) / compute)):
                if bw and demand > bw:
                    slow = min(slow, bw / demand)
            cycles = max(cycles, float(math.ceil(compute / slow)))
        return cycles

    def _leakage(self, pc: PlanCost, cycles: float) -> float:
        if not self.cost.has_leak:
            return 0.0
        return sum(leak * cycles * pc.utilized[i] for i, leak in enumerate(self.cost.ev.leak))


def _axis_disjoint(ds) -> bool:
    """Whether every dimension of ``ds`` appears on at most one axis of its projection."""
    return all(sum(1 for axis in ds.projection if any(d == dd for _c, dd in axis)) <= 1
               for d in ds.dims())


def _peek(it: Iterator[_Node]) -> Iterator[_Node] | None:
    """``it`` unchanged if it has another item, else None."""
    for first in it:
        return itertools.chain([first], it)
    return None


def _parallelism(plan: SpatialPlan) -> int:
    return math.prod(f for x, y in plan.loops for _d, f in x + y)


def _moving_dims(ds) -> frozenset[str]:
    """Dims that appear only on single-dim axes of ``ds``: each of their loops moves its
    tile to new words, whatever the tile's extent."""
    single = {axis[0][1] for axis in ds.projection if len(axis) == 1}
    multi = {d for axis in ds.projection if len(axis) > 1 for _c, d in axis}
    return frozenset(single - multi)


def _spread_lbs(moving: frozenset[str], pc: PlanCost, n: int) -> list[list[int]]:
    """``[parent][child]``: distinct tiles of a data space among the children of the
    fan-out stages of levels ``parent..child-1``, at least (1 where ``child <= parent``):
    the product of the loops of its :func:`_moving_dims` on those stages."""
    per_level = [math.prod(f for loops in pc.stage_loops[lv] for d, f in loops if d in moving)
                 for lv in range(n)]
    table = []
    for parent in range(n):
        row, acc = [1] * (n + 1), 1
        for child in range(parent + 1, n + 1):
            acc *= per_level[child - 1]
            row[child] = acc
        table.append(row)
    return table


def _spreads_to_macs(ds, pc: PlanCost, n: int, bounds: dict[str, int]) -> list[int]:
    """Per level ``lv``, :meth:`NestCost.spread` from ``lv`` to the MACs, all levels in one
    pass: the stages are walked innermost first, so level ``lv``'s figure extends level
    ``lv + 1``'s."""
    unit = {d: 1 for d in bounds}
    total = 1
    out = [1] * n
    for lv in range(n - 1, -1, -1):
        for loops in reversed(pc.stage_loops[lv]):
            if loops:
                total *= distinct_children(ds, unit, loops)
                for d, f in loops:
                    unit[d] = unit.get(d, 1) * f
        out[lv] = total
    return out


def _thinned(per_dim: list[list], limit: int) -> list[list]:
    """Per-dimension choices cut until their product fits ``limit``: each list keeps its
    ends (1 and all that is left: nothing or everything at this level) and evenly spread
    divisors in between, the longest list thinned first."""
    lists = [list(c) for c in per_dim]
    while math.prod(len(c) for c in lists) > limit:
        k = max(range(len(lists)), key=lambda j: len(lists[j]))
        c = lists[k]
        if len(c) <= 2:
            break
        keep = max(2, len(c) // 2)
        step = (len(c) - 1) / (keep - 1)
        lists[k] = [c[round(j * step)] for j in range(keep)]
    return lists


def _rank_key(how: str, usage: float, reuse: float, tile: tuple[int, ...]) -> tuple:
    """``fill``: the children that fill the next level best first (usage of what it may
    keep, overflowing ones last), then by reuse; ``volume``: the largest tiles below."""
    if how == "volume":
        return (-math.prod(tile), -reuse)
    return (usage > 1, -usage, -reuse)
