"""hwcost's mapper against the mappings Timeloop's mapper published for the same problems.

The cases are Timeloop's own mapper runs with their ERTs: the example designs (Eyeriss-like,
Simba-like with nested containers, ``!Parallel`` buffers and vector MACs, simple output- and
weight-stationary, each with its dataflow constraints) and the mapper exercises of the
tutorial (05, 06).  hwcost's mapper must find a mapping whose energy, priced by the same
model that reproduces Timeloop's figures for Timeloop's mapping (test_timeloop_reference),
is at or below Timeloop's, at Timeloop's utilization or better; and its mapping must go
out to Timeloop mapping YAML, container pseudo-targets included, and come back the same.
"""

from __future__ import annotations

import pytest
from test_timeloop_reference import load_case

from hwmodel.mapper import Mapper, MapResult
from hwmodel.mapping_yaml import load_mapping, write_mapping
from hwmodel.model import evaluate

MAPPER_RUNS = ["timeloop_designs/eyeriss_like", "timeloop_designs/simba_like",
               "timeloop_designs/simple_output_stationary",
               "timeloop_designs/simple_weight_stationary", "timeloop_ref/05_baked",
               "timeloop_ref/05_freebypass", "timeloop_ref/05_null",
               "timeloop_ref/06_eyeriss"]


@pytest.mark.parametrize("case", MAPPER_RUNS)
def test_no_worse_than_timeloops_mapper(case, tmp_path):
    arch, workload, timeloop_mapping, energy, expected = load_case(case)
    theirs = evaluate(arch, workload, timeloop_mapping, energy)
    summary = expected["summary"]
    # the model prices Timeloop's own mapping as Timeloop did
    assert theirs.energy_pj == pytest.approx(
        summary["fj_per_compute"]["Total"] * summary["computes"] / 1000, rel=1e-4)
    found = Mapper(arch, energy).map(workload)
    ours = found.result
    assert ours.energy_pj <= theirs.energy_pj
    assert ours.utilization >= theirs.utilization
    assert found.underused is None
    # Timeloop YAML out and back: containers as inter_<name>_spatial, same counts
    out = tmp_path / "best.map.yaml"
    write_mapping(found.mapping, arch, out, workload)
    again = load_mapping(out, arch, workload)
    assert evaluate(arch, workload, again, energy).energy_pj == pytest.approx(ours.energy_pj)
    for lm in found.mapping.levels:
        for stage in lm.stages:
            assert f"target: inter_{stage.name}_spatial" in out.read_text()


def test_simba_like_fills_its_pe_mesh_and_vector_lanes():
    """The case that used to map onto one PE (utilization 0.004): the PE mesh, the
    distributed buffers and the MAC vectors each take a dimension."""
    arch, workload, _m, energy, expected = load_case("timeloop_designs/simba_like")
    found = Mapper(arch, energy).map(workload)
    stages = {st.name: st.loops for lm in found.mapping.levels for st in lm.stages}
    assert set(stages) == {"PE", "distributed_buffers", "reg_mac"}
    assert found.result.macs_utilized >= expected["arithmetic"]["utilized_instances"]


def test_underuse_warning():
    mapped = MapResult(mapping=None, result=None, evaluated=0, exhaustive=False)
    assert mapped.underused is None

    class Used:
        macs_utilized = 3

    assert "uses 3 MACs" in MapResult(None, Used(), 0, False, spatial_bound=16).underused
    assert MapResult(None, Used(), 0, False, spatial_bound=6).underused is None
