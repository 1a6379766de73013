"""Access counts of the analytical model, worked by hand from Timeloop's counting semantics.

Each case is a small design of the kind Timeloop's tutorials use (conv1d, one to three
levels, bypass, spatial fan-out); the expected counts are derived in the comments from the
rules: tile deltas (stationarity, sliding windows along the innermost loop only, no credit
across a loop restart), multicast and spatial reduction per fan-out stage, first-read
elision of partial sums (reads and fills).  ``test_timeloop_reference.py`` holds Timeloop's
own published outputs for the same kinds of design.
"""

from __future__ import annotations

import math

import pytest

from hwmodel.arch import Architecture, ComputeUnit, StorageLevel
from hwmodel.energy import ActionEnergy, EnergyTable
from hwmodel.mapping import LevelMapping, Mapping, SpatialStage
from hwmodel.model import MappingError, evaluate, transfers
from hwmodel.workload import DataSpace, Layer, Workload

W, I, O = "Weights", "Inputs", "Outputs"  # noqa: E741 (Timeloop letters)
ALL = frozenset({W, I, O})


def conv1d(dims: dict[str, int]) -> Workload:
    """Weights[K][C][R], Inputs[C][R+P], Outputs[K][P] (dims absent are simply 1)."""
    return Workload("conv1d", tuple(dims.items()), (
        DataSpace(W, (((1, "K"),), ((1, "C"),), ((1, "R"),))),
        DataSpace(I, (((1, "C"),), ((1, "R"), (1, "P")))),
        DataSpace(O, (((1, "K"),), ((1, "P"),)), read_write=True)))


def level(name: str, depth: int | None = None, instances: int = 1, fanout: int = 1,
          keep=None) -> StorageLevel:
    return StorageLevel(name, "SRAM", {}, depth, 8, 8, instances=instances,
                        fanout_x=fanout, keep=keep)


def counts(result, name: str, ds: str) -> tuple[float, float, float]:
    lv = next(lv for lv in result.levels if lv.name == name)
    s = lv.dataspaces[ds]
    return s.reads, s.fills, s.updates


def test_one_level_first_partial_sum_is_not_read():
    arch = Architecture("a", [level("Buffer")], ComputeUnit("mac", "intmac", {}, 1))
    wl = conv1d({"R": 3, "P": 16})
    r = evaluate(arch, wl, Mapping([LevelMapping([("P", 16), ("R", 3)], keep=ALL)]))
    assert r.computes == 48 and r.cycles == 48 and r.utilization == 1
    assert counts(r, "Buffer", W) == (48, 0, 0)
    assert counts(r, "Buffer", I) == (48, 0, 0)
    # 48 accumulations, the first of each of the 16 outputs reads nothing
    assert counts(r, "Buffer", O) == (32, 0, 48)


@pytest.mark.parametrize("outer,inner", [
    ([("R", 3)], [("P", 16)]),   # weight stationary: one weight at a time in the buffer
    ([("P", 16)], [("R", 3)]),   # output stationary
])
def test_two_levels_weight_and_output_stationary(outer, inner):
    arch = Architecture("a", [level("Main"), level("Buffer", 64)],
                        ComputeUnit("mac", "intmac", {}, 1))
    r = evaluate(arch, conv1d({"R": 3, "P": 16}),
                 Mapping([LevelMapping(outer, keep=ALL), LevelMapping(inner, keep=ALL)]))
    # every weight and input word crosses once (sliding windows: 16 + 1 + 1 or 3 + 15 x 1)
    assert counts(r, "Buffer", W) == (48, 3, 0)
    assert counts(r, "Buffer", I) == (48, 18, 0)
    # every output is finished before it leaves the buffer: no partial sum comes back, so
    # no fills (Timeloop does not count the first arrival of an output tile)
    assert counts(r, "Buffer", O) == (32, 0, 48)
    assert counts(r, "Main", W) == (3, 0, 0)
    assert counts(r, "Main", I) == (18, 0, 0)
    assert counts(r, "Main", O) == (0, 0, 16)


def test_restarting_loop_gets_no_window_credit():
    # Main: for K32 { for P16 }, Buffer: for R3.  Inputs: window of 3, +1 per P step, but
    # every K restarts P, so the full window is fetched again: 32 x (3 + 15) = 576.
    arch = Architecture("a", [level("Main"), level("Buffer", 64)],
                        ComputeUnit("mac", "intmac", {}, 1))
    wl = conv1d({"K": 32, "R": 3, "P": 16})
    r = evaluate(arch, wl, Mapping([LevelMapping([("K", 32), ("P", 16)], keep=ALL),
                                    LevelMapping([("R", 3)], keep=ALL)]))
    assert counts(r, "Buffer", I) == (1536, 576, 0)
    # weights change only with K: 32 x 3 (P is irrelevant to them and innermost)
    assert counts(r, "Buffer", W) == (1536, 96, 0)
    # one output per (K, P), finished in the buffer: 1536 updates, 1024 reads, no fills
    assert counts(r, "Buffer", O) == (1024, 0, 1536)
    assert counts(r, "Main", O) == (0, 0, 512)


def test_three_levels_with_and_without_bypass():
    wl = conv1d({"K": 32, "R": 3, "P": 16})

    def arch():
        return Architecture("a", [level("DRAM"), level("GLB", 8192), level("RF", 64)],
                            ComputeUnit("mac", "intmac", {}, 1))

    loops = [[], [("K", 16), ("P", 16)], [("K", 2), ("R", 3)]]
    full = evaluate(arch(), wl, Mapping([LevelMapping(t, keep=ALL) for t in loops]))
    assert counts(full, "RF", W) == (1536, 96, 0)
    assert counts(full, "RF", I) == (1536, 288, 0)   # 16 x (3 + 15 x 1)... per K16 tile
    assert counts(full, "RF", O) == (1024, 0, 1536)
    assert counts(full, "GLB", W) == (96, 96, 0)
    assert counts(full, "GLB", I) == (288, 18, 0)
    assert counts(full, "GLB", O) == (0, 0, 512)
    assert counts(full, "DRAM", I) == (18, 0, 0)
    # the GLB keeps only Weights and Inputs, the RF only Outputs
    keeps = [ALL, frozenset({W, I}), frozenset({O})]
    byp = evaluate(arch(), wl, Mapping([LevelMapping(t, keep=k) for t, k in zip(loops, keeps)]))
    assert counts(byp, "GLB", W) == (1536, 96, 0)    # now read by every MAC
    assert counts(byp, "GLB", I) == (1536, 18, 0)
    assert counts(byp, "RF", O) == (1024, 0, 1536)
    assert counts(byp, "DRAM", O) == (0, 0, 512)
    assert O not in next(lv for lv in byp.levels if lv.name == "GLB").dataspaces


def _spatial_arch() -> Architecture:
    return Architecture("s", [level("DRAM"), level("GLB", 8192, fanout=16),
                              level("RF", 64, instances=16)],
                        ComputeUnit("mac", "intmac", {}, 16))


def test_spatial_multicast_of_inputs_over_k():
    wl = conv1d({"K": 32, "C": 32, "R": 3, "P": 16})
    m = Mapping([LevelMapping([], keep=ALL),
                 LevelMapping([("C", 32), ("K", 2), ("R", 3)], spatial_x=[("K", 16)], keep=ALL),
                 LevelMapping([("P", 16)], keep=ALL)])
    r = evaluate(_spatial_arch(), wl, m)
    assert r.cycles == 3072 and r.utilization == 1
    # per RF: a window of 16, +1 per R step (128 steps), full refetch at each K and C step
    assert counts(r, "RF", I) == (3072 * 16, 1152 * 16, 0)
    assert counts(r, "GLB", I) == (1152, 576, 0)          # multicast: K is irrelevant
    assert counts(r, "RF", W) == (3072 * 16, 192 * 16, 0)
    assert counts(r, "GLB", W) == (3072, 3072, 0)
    # each RF's 32 outputs come back 31 times (C is outermost): 31 x 32 fills
    assert counts(r, "RF", O) == (3040 * 16, 992 * 16, 3072 * 16)
    assert counts(r, "GLB", O) == (15872, 0, 16384)       # 16384 updates - 512 first ones
    assert counts(r, "DRAM", O) == (0, 0, 512)


def test_spatial_reduction_of_outputs_over_c():
    wl = conv1d({"K": 32, "C": 32, "R": 3, "P": 16})
    m = Mapping([LevelMapping([], keep=ALL),
                 LevelMapping([("C", 2), ("K", 32), ("R", 3)], spatial_x=[("C", 16)], keep=ALL),
                 LevelMapping([("P", 16)], keep=ALL)])
    r = evaluate(_spatial_arch(), wl, m)
    assert counts(r, "GLB", I) == (18432, 576, 0)         # C splits inputs: no multicast
    # each RF holds 16 outputs; every K step and the C step bring a tile (64 x 16); the
    # second C step brings back the 32 x 16 partial sums of the first
    assert counts(r, "RF", O) == (2560 * 16, 512 * 16, 3072 * 16)
    assert counts(r, "GLB", O) == (512, 0, 1024)          # 16 partial sums reduced to one
    # with K outside C the RF keeps its outputs across the C step: nothing comes back
    m.levels[1].temporal = [("K", 32), ("C", 2), ("R", 3)]
    r2 = evaluate(_spatial_arch(), wl, m)
    assert counts(r2, "RF", O) == (2560 * 16, 0, 3072 * 16)
    assert counts(r2, "GLB", O) == (0, 0, 512)


def test_capacity_fanout_and_factor_errors():
    wl = conv1d({"R": 3, "P": 16})
    small = Architecture("a", [level("Main"), level("Buffer", 8)],
                         ComputeUnit("mac", "intmac", {}, 1))
    with pytest.raises(MappingError, match="capacity"):
        evaluate(small, wl, Mapping([LevelMapping([], keep=ALL),
                                     LevelMapping([("P", 16), ("R", 3)], keep=ALL)]))
    with pytest.raises(MappingError, match="multiply to 8"):
        evaluate(small, wl, Mapping([LevelMapping([("P", 8)], keep=ALL),
                                     LevelMapping([("R", 3)], keep=ALL)]))
    with pytest.raises(MappingError, match="fan-out"):
        evaluate(small, wl, Mapping([LevelMapping([("P", 4)], spatial_x=[("P", 4)], keep=ALL),
                                     LevelMapping([("R", 3)], keep=ALL)]))


def test_transfers_of_a_strided_window():
    # stride-2 conv rows: tile P=2 (R=3) touches 2*1+3 = 5 rows; next P tile starts 4 rows on
    ds = Layer("l", "conv", P=8, R=3, stride=(2, 1)).workload().data_space(I)
    tile = {"P": 2, "R": 3}
    assert transfers(ds, tile, [("P", 4)]) == 5 + 3 * 4


def test_bandwidth_bound_cycles():
    arch = Architecture("a", [level("Main"), level("Buffer", 64)],
                        ComputeUnit("mac", "intmac", {}, 1))
    arch.levels[1].read_bandwidth = 1.0  # 1 word/cycle, but each MAC needs 3 reads
    r = evaluate(arch, conv1d({"R": 3, "P": 16}),
                 Mapping([LevelMapping([], keep=ALL), LevelMapping([("P", 16), ("R", 3)],
                                                                  keep=ALL)]))
    assert r.cycles == 48 + 48 + 32 and r.utilization == pytest.approx(48 / 128)


def test_eyeriss_like_alexnet_conv1_agrees_with_timeloop_reference(
        eyeriss_like, alexnet_conv1, timeloop_alexnet_mapping):
    """Timeloop's Eyeriss-like example (AlexNet conv1, its published mapping): the counts
    behind its published 8.22 pJ/MAC.  That figure predates Timeloop's current convention
    for partial-sum fills (only partial sums that come back count, see the 06 tutorial
    exercise in test_timeloop_reference.py): psum_spad fills are 48,400 = 2 x 24,200 (the
    C=3 loop at DRAM brings each psum tile back twice), not 72,600, and the global buffer,
    which never evicts an output, has none."""
    arch, wl, m = eyeriss_like, alexnet_conv1, timeloop_alexnet_mapping
    r = evaluate(arch, wl, m)
    assert r.macs_utilized == 132 and r.cycles == 798600
    assert r.utilization == pytest.approx(0.79, abs=0.005)

    def per_instance(name, ds):
        s = next(x for x in r.levels if x.name == name).dataspaces[ds]
        return s.reads_per_instance, s.fills_per_instance, s.updates_per_instance

    assert per_instance("psum_spad", O) == (774400, 48400, 798600)
    assert per_instance("weights_spad", W) == (798600, 14520, 0)
    assert per_instance("ifmap_spad", I) == (798600, 37455, 0)
    assert per_instance("shared_glb", I) == (412005, 412005, 0)
    assert per_instance("shared_glb", O) == (580800, 0, 871200)
    assert per_instance("DRAM", W) == (1916640, 0, 0)
    assert per_instance("DRAM", I) == (412005, 0, 0)
    assert per_instance("DRAM", O) == (0, 0, 290400)


def test_halo_credit_only_along_the_innermost_loop():
    # inputs tile of the buffer: R=3 window at one P; Main: for P16 { for K2 }.  K is
    # irrelevant to inputs (no refetch when it advances), but with K inside P Timeloop
    # compares tiles only along K, so every P step brings the whole window: 16 x 3
    arch = Architecture("a", [level("Main"), level("Buffer", 64)],
                        ComputeUnit("mac", "intmac", {}, 1))
    wl = conv1d({"K": 2, "R": 3, "P": 16})
    inner_k = evaluate(arch, wl, Mapping([LevelMapping([("P", 16), ("K", 2)], keep=ALL),
                                          LevelMapping([("R", 3)], keep=ALL)]))
    assert counts(inner_k, "Buffer", I) == (96, 48, 0)
    # with P innermost the window slides: 3 + 15 new words per K step, K restarts P
    inner_p = evaluate(arch, wl, Mapping([LevelMapping([("K", 2), ("P", 16)], keep=ALL),
                                          LevelMapping([("R", 3)], keep=ALL)]))
    assert counts(inner_p, "Buffer", I) == (96, 36, 0)


def test_multicast_is_found_one_fan_out_stage_at_a_time():
    # 4 x 3 PEs; each PE's input tile is one word at w = q + s.  In one stage, PEs with
    # equal q + s share a read: 6 distinct words.  With Q in an outer (column) stage and
    # S in an inner one, columns hold overlapping but unequal windows: 4 x 3 reads.
    wl = Workload("conv_qs", (("Q", 4), ("S", 3)), (
        DataSpace(W, (((1, "S"),),)),
        DataSpace(I, (((1, "Q"), (1, "S")),)),
        DataSpace(O, (((1, "Q"),),), read_write=True)))
    arch = Architecture("a", [level("Main", fanout=12), level("PE", 4, instances=12)],
                        ComputeUnit("mac", "intmac", {}, 12))
    one = Mapping([LevelMapping([], spatial_x=[("Q", 4), ("S", 3)], keep=ALL),
                   LevelMapping([], keep=ALL)])
    assert counts(evaluate(arch, wl, one), "Main", I)[0] == 6
    two = Mapping([LevelMapping([], stages=[SpatialStage("col", x=[("Q", 4)]),
                                            SpatialStage("row", x=[("S", 3)])], keep=ALL),
                   LevelMapping([], keep=ALL)])
    assert counts(evaluate(arch, wl, two), "Main", I)[0] == 12
    # outputs: the 3 PEs of a column (S) reduce into one partial sum in either form
    assert counts(evaluate(arch, wl, two), "Main", O)[2] == 4


def test_vector_accesses_are_whole_rows_per_action():
    # a DRAM row holds 8 words: 3 weight reads cost one row, 18 input reads three rows
    arch = Architecture("a", [level("Main"), level("Buffer", 64)],
                        ComputeUnit("mac", "intmac", {}, 1))
    per_word = {"read": 1.0, "write": 0.5, "update": 0.25}
    entries = {"Main": {a: ActionEnergy(e / 8, "t") for a, e in per_word.items()},
               "Buffer": {a: ActionEnergy(e, "t") for a, e in per_word.items()},
               "mac": {a: ActionEnergy(0.0, "t") for a in ("mac", "multiply", "add")}}
    table = EnergyTable(entries, "mac", 45.0, block_sizes={"Main": 8, "Buffer": 1})
    r = evaluate(arch, conv1d({"R": 3, "P": 16}),
                 Mapping([LevelMapping([("P", 16)], keep=ALL),
                          LevelMapping([("R", 3)], keep=ALL)]), table)
    main = next(lv for lv in r.levels if lv.name == "Main")
    assert main.dataspaces[W].energy_pj == 1.0            # ceil(3/8) rows x 1.0
    assert main.dataspaces[I].energy_pj == 3.0            # ceil(18/8) rows
    assert main.dataspaces[O].energy_pj == 2 * 0.25       # 16 updates: two rows


def test_shared_bandwidth_counts_reads_and_writes_together():
    # one port of 2 words/cycle: 128 reads + 69 writes (fills W 3, I 18; 48 updates)
    arch = Architecture("a", [level("Main"), level("Buffer", 64)],
                        ComputeUnit("mac", "intmac", {}, 1))
    arch.levels[1].shared_bandwidth = 2.0
    r = evaluate(arch, conv1d({"R": 3, "P": 16}),
                 Mapping([LevelMapping([], keep=ALL), LevelMapping([("P", 16), ("R", 3)],
                                                                  keep=ALL)]))
    buf = next(lv for lv in r.levels if lv.name == "Buffer")
    assert buf.cycles == math.ceil(197 / 2) == r.cycles
    assert buf.bandwidth_throttling == pytest.approx(2 / (197 / 48))
