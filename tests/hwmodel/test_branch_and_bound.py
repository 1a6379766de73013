"""The branch and bound's own invariants, on the whole tree of small random map spaces.

Pruning is sound only if every node's bound is at most the best leaf below it, and the search
picks correctly only if its closed-form price of a leaf is the model's.  Both are checked here
by walking every node of every tree, without pruning; loop-order classes are checked by
pricing every permutation of a level with the model.  (The mapper's answers against an
independent brute force are ``test_mapper_optimal.py``.)
"""

from __future__ import annotations

import itertools
import random

import pytest

from hwmodel.arch import Architecture, ComputeUnit, Container, LoopConstraint, StorageLevel
from hwmodel.mapping import LevelMapping, Mapping
from hwmodel.mapspace import MapSpace
from hwmodel.model import evaluate
from hwmodel.objectives import parse_objective
from hwmodel.search import BranchAndBound
from hwmodel.workload import DataSpace, Workload


class RandomEnergy:
    """Per-level, per-action energies, block sizes and leakage drawn from a seed."""

    def __init__(self, names: list[str], rng: random.Random, leak: bool):
        self.pj = {(n, a): rng.choice([0.5, 1, 2, 3, 6, 10, 50, 100])
                   for n in names for a in ("read", "write", "update")}
        self.blocks = {n: rng.choice([1, 1, 2, 4]) for n in names}
        self.leaks = {n: (rng.choice([0.0, 0.01, 0.1]) if leak else 0.0) for n in names}

    def per_word(self, level: str, action: str) -> float:
        return self.pj[(level, action)]

    def block_size(self, level: str) -> int:
        return self.blocks[level]

    def leak_per_cycle(self, level: str) -> float:
        return self.leaks[level]

    def mac(self) -> float:
        return 1.0

    def multiply(self) -> float:
        return 0.8

    def add(self) -> float:
        return 0.2


def random_case(seed: int):
    """A small architecture (2-3 levels, fan-outs, containers, bypass, constraints,
    bandwidths) and a problem with random dimension names and projections."""
    rng = random.Random(seed)
    names = rng.sample(["A", "B", "K", "X", "Y", "Z"], rng.randint(1, 3))
    bounds = {d: rng.choice([1, 2, 3, 4, 6, 8]) for d in names}
    spaces = []
    for k in range(rng.randint(2, 3)):
        axes = []
        for _ in range(rng.randint(1, 2)):
            if rng.random() < 0.3 and len(names) >= 2:
                a, b = rng.sample(names, 2)
                axes.append(((rng.randint(1, 2), a), (1, b)))
            else:
                axes.append(((1, rng.choice(names)),))
        spaces.append(DataSpace(f"D{k}", tuple(axes), read_write=(k == 0)))
    workload = Workload("w", tuple(bounds.items()), tuple(spaces))
    n = rng.randint(2, 3)
    levels, instances = [], 1
    for i in range(n):
        fx, fy = rng.choice([1, 1, 2, 3, 4]), rng.choice([1, 1, 2])
        lv = StorageLevel(f"L{i}", "SRAM", {}, None if i == 0 else rng.choice([2, 4, 8, 16, 32]),
                          8, 8, instances=instances, fanout_x=fx, fanout_y=fy)
        instances *= fx * fy
        if i > 0 and rng.random() < 0.3:
            lv.bypass = frozenset([rng.choice(spaces).name])
        if i > 0 and rng.random() < 0.2:
            lv.keep = frozenset([rng.choice(spaces).name]) - lv.bypass
        if rng.random() < 0.25:
            d = rng.choice(names)
            lv.temporal = LoopConstraint(factors={d: rng.choice([1, bounds[d]])})
        if rng.random() < 0.2 and len(names) > 1:
            lv.temporal = LoopConstraint(permutation=rng.sample(names, 2))
        if fx > 1 and fy > 1 and rng.random() < 0.3:
            lv.containers = [Container("C", fx, 1, None), Container("R", 1, fy, None)]
        if rng.random() < 0.25:
            lv.read_bandwidth = rng.choice([1, 2])
        levels.append(lv)
    arch = Architecture("r", levels, ComputeUnit("mac", "intmac", {}, instances))
    energy = RandomEnergy([lv.name for lv in levels], rng, leak=rng.random() < 0.3)
    return arch, workload, energy


def _walk(bnb: BranchAndBound, node, check):
    """The best leaf value below ``node`` (every node visited, nothing pruned)."""
    space = bnb.space
    if node.depth == space.n:
        leaf = bnb.price(node.plan, list(node.factors), list(node.keeps), list(node.orders))
        if leaf is not None:
            check(leaf)
        return leaf.value if leaf is not None else None
    values = [v for v in (_walk(bnb, c, check) for c in bnb._children(node)) if v is not None]
    if not values:
        return None
    best = min(values)
    bound = bnb.bound(node)
    assert bound[0] <= best[0] * (1 + 1e-9), (node.depth, bound, best)
    return best


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("objective", ["energy", "delay", "edp"])
def test_bounds_never_exceed_the_best_leaf_below(seed, objective):
    arch, workload, energy = random_case(seed)
    space = MapSpace(arch, workload)
    bnb = BranchAndBound(space, energy, parse_objective(objective), None)

    def check(leaf):
        result = evaluate(arch, workload, leaf.mapping, energy)
        assert result.energy_pj == pytest.approx(leaf.energy_pj, rel=1e-9)
        assert result.cycles == leaf.cycles
        assert not space.violations(leaf.mapping)

    for plan in space.spatial_plans():
        root = bnb._plan_root(plan)
        if root is not None:
            _walk(bnb, root, check)


def _permutations_of(mapping: Mapping, level: int):
    lm = mapping.levels[level]
    for order in itertools.permutations(lm.temporal):
        levels = list(mapping.levels)
        levels[level] = LevelMapping(list(order), lm.spatial_x, lm.spatial_y, lm.keep,
                                     lm.stages)
        yield Mapping(levels)


@pytest.mark.parametrize("seed", range(40))
def test_each_level_order_the_search_picks_is_the_best_permutation(seed):
    """At a leaf the search picks every level's order class on its own; no permutation of
    one level's loops (the others kept) may then be cheaper in the model."""
    arch, workload, energy = random_case(seed)
    arch = Architecture(arch.name, [_no_bandwidth(lv) for lv in arch.levels], arch.compute)
    space = MapSpace(arch, workload)
    bnb = BranchAndBound(space, energy, parse_objective("energy"), None)
    leaves = []

    def keep(leaf):
        leaves.append(leaf)

    for plan in itertools.islice(space.spatial_plans(), 3):
        root = bnb._plan_root(plan)
        if root is not None:
            _walk(bnb, root, keep)
    for leaf in leaves[:: max(1, len(leaves) // 20)]:
        for level, lm in enumerate(leaf.mapping.levels):
            if len(lm.temporal) < 2 or space.arch.levels[level].temporal is not None:
                continue
            for other in _permutations_of(leaf.mapping, level):
                cost = evaluate(arch, workload, other, energy).energy_pj
                assert cost >= leaf.energy_pj * (1 - 1e-9)


def _no_bandwidth(lv: StorageLevel) -> StorageLevel:
    import dataclasses

    return dataclasses.replace(lv, read_bandwidth=None, write_bandwidth=None,
                               shared_bandwidth=None)
