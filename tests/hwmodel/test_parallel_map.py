"""Mapping a network's shapes on forked workers gives exactly the serial answers."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys

import pytest

from hwmodel import parallel_map
from hwmodel.arch import Architecture, ComputeUnit, LoopConstraint, StorageLevel
from hwmodel.costing import CostContext, price
from hwmodel.energy import build_energy_table
from hwmodel.mapper import Mapper
from hwmodel.model import MappingError
from hwmodel.spec import load_arch
from hwmodel.workload import DataSpace, Layer, Workload

HAS_FORK = "fork" in mp.get_all_start_methods()


def conv1d(p: int, r: int) -> Workload:
    """Timeloop's tutorial conv1d: ``Outputs[P] += Weights[R] * Inputs[P+R]``."""
    return Workload("conv1d", (("P", p), ("R", r)), (
        DataSpace("Weights", (((1, "R"),),)),
        DataSpace("Inputs", (((1, "P"), (1, "R")),)),
        DataSpace("Outputs", (((1, "P"),),), read_write=True)))


def conv(c: int, m: int, hw: int, r: int = 1) -> Layer:
    return Layer(f"conv{c}_{m}_{hw}_{r}", "conv", N=1, C=c, M=m, P=hw, Q=hw, R=r, S=r)


LAYERS = [conv(3, 16, 16, 3), conv(16, 32, 8), conv(32, 32, 8, 3), conv(32, 64, 4),
          conv(64, 10, 1), conv(16, 16, 8, 3)]


@pytest.fixture
def forking(monkeypatch):
    """The test process has PyTorch loaded by other tests; the mapper code forked here
    uses none of it, so the guard is lifted to exercise the pool."""
    if not HAS_FORK:
        pytest.skip("no fork start method on this platform")
    monkeypatch.setattr(parallel_map, "can_fork", lambda: True)


def _pid(_w) -> int:
    return os.getpid()


def test_workers_are_other_processes(forking):
    pids = parallel_map.map_all(_pid, list(range(8)), jobs=2)
    assert len(pids) == 8 and set(pids) - {os.getpid()}


def test_few_shapes_or_one_job_stay_in_process(forking):
    assert set(parallel_map.map_all(_pid, list(range(8)), jobs=1)) == {os.getpid()}
    few = list(range(parallel_map.MIN_SHAPES - 1))
    assert set(parallel_map.map_all(_pid, few, jobs=2)) == {os.getpid()}


def test_no_fork_with_torch_loaded(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", object())
    assert not parallel_map.can_fork()
    assert set(parallel_map.map_all(_pid, list(range(8)), jobs=2)) == {os.getpid()}


@pytest.mark.parametrize("design", ["eyeriss", "systolic"])
def test_parallel_answers_are_the_serial_ones(forking, design):
    arch = load_arch(design)
    energy = build_energy_table(arch)
    workloads = [layer.workload() for layer in LAYERS]
    serial = Mapper(arch, energy, effort="balanced")
    expected = [serial.map(w) for w in workloads]
    parallel = Mapper(arch, energy, effort="balanced")
    parallel.map_many(workloads + workloads[:2], jobs=2)    # duplicates mapped once
    assert len(parallel._cache) == len(workloads)
    for w, want in zip(workloads, expected):
        got = parallel.map(w)
        assert got.mapping == want.mapping
        assert got.result.energy_pj == want.result.energy_pj
        assert got.result.cycles == want.result.cycles
        assert got.evidence() == want.evidence()


def test_a_shape_without_mapping_fails_only_itself(forking):
    # the buffer must keep everything and hold R3: a 1-tap conv has no mapping, the rest do
    arch = Architecture("two", [StorageLevel("DRAM", "DRAM", {}, None, 64, 8),
                                StorageLevel("Buffer", "SRAM", {}, 64, 8, 8)],
                        ComputeUnit("mac", "intmac", {}, 1))
    arch.levels[1].temporal = LoopConstraint(factors={"R": 3})
    energy = build_energy_table(arch)
    workloads = [conv1d(8, r) for r in (3, 1, 6, 9, 3)] + [conv1d(16, 3)]
    serial = Mapper(arch, energy, effort="fast")
    expected = []
    for w in workloads:
        try:
            expected.append(serial.map(w).result.energy_pj)
        except MappingError as exc:
            expected.append(str(exc))
    assert isinstance(expected[1], str) and all(isinstance(e, float) for e in expected[2:4])
    mapper = Mapper(arch, energy, effort="fast")
    mapper.map_many(workloads, jobs=2)
    for w, want in zip(workloads, expected):
        if isinstance(want, str):
            with pytest.raises(MappingError) as info:
                mapper.map(w)
            assert str(info.value) == want
        else:
            assert mapper.map(w).result.energy_pj == want


def test_network_estimate_is_the_same_on_one_or_two_jobs(forking):
    arch = load_arch("eyeriss")
    one = price(LAYERS, None, CostContext(arch, jobs=1))
    two = price(LAYERS, None, CostContext(arch, jobs=2))
    assert [r.energy_pj for r in one.layers] == [r.energy_pj for r in two.layers]
    assert [r.mapping for r in one.layers] == [r.mapping for r in two.layers]
