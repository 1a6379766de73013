"""The reader of Timeloop's own outputs against the published reports it reads.

Every fixture of ``timeloop_ref/`` and ``timeloop_designs/`` now holds, verbatim, the
``timeloop-{model,mapper}.stats.txt`` its ``expected.json`` was read from (the commit below,
the one ``expected.json`` names), and, where the stats do not print the container levels that
hold the spatial loops, the ``.map.txt`` of the same run.  :func:`read_stats` must give every
figure of ``expected.json`` (two independent readings of the same file), and the mapping
:func:`read_mapping` rebuilds from the printed loop nest must evaluate, in hwcost's model, to
the same counts and energy as the fixture's ``map.yaml``.  The reference runs of
``exercises/*/`` are parsed too: every file their ``case.yaml`` names exists and every stats
file is internally consistent (each level's energies add up to its printed fJ/Compute).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from timeloop_cases import CASES, load_case
from timeloop_stats_reader import (
    directives_from_text,
    parse_stats,
    read_mapping,
    read_mapping_info,
    read_stats,
)

from hwmodel.mapping_yaml import load_mapping
from hwmodel.model import evaluate

HERE = Path(__file__).parent
REPO = "Accelergy-Project/timeloop-accelergy-exercises"
ISPASS = "workspace/tutorial_exercises/01_accelergy_timeloop_2020_ispass/timeloop"
DESIGNS = "workspace/example_designs/example_designs"
C_2FF = "2ffec693ced8e60a46c1131e9e4a387ac007d410"
C_67B = "67b75f24c84350d85c5e2ed7fdd00e2a53251577"
C_B47 = "b47e6cf052a5ad1f35849e10de19c887b6e16644"

# fixture -> {file added to the fixture folder: (path in REPO, commit)}
SOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "timeloop_ref/00_1level": {"timeloop-model.stats.txt": (
        f"{ISPASS}/00-model-conv1d-1level/ref-output/timeloop-model.stats.txt", C_2FF)},
    "timeloop_ref/01_os": {"timeloop-model.stats.txt": (
        f"{ISPASS}/01-model-conv1d-2level/ref-output/os/timeloop-model.stats.txt", C_2FF)},
    "timeloop_ref/01_ws": {"timeloop-model.stats.txt": (
        f"{ISPASS}/01-model-conv1d-2level/ref-output/ws/timeloop-model.stats.txt", C_2FF)},
    "timeloop_ref/02_no_tiling": {"timeloop-model.stats.txt": (
        f"{ISPASS}/02-model-conv1d+oc-2level/ref-output/no-tiling/timeloop-model.stats.txt",
        C_2FF)},
    "timeloop_ref/02_tiling": {"timeloop-model.stats.txt": (
        f"{ISPASS}/02-model-conv1d+oc-2level/ref-output/tiling/timeloop-model.stats.txt", C_2FF)},
    "timeloop_ref/03_bypass": {"timeloop-model.stats.txt": (
        f"{ISPASS}/03-model-conv1d+oc-3level/ref-output/bypass/timeloop-model.stats.txt", C_2FF)},
    "timeloop_ref/03_no_bypass": {"timeloop-model.stats.txt": (
        f"{ISPASS}/03-model-conv1d+oc-3level/ref-output/no-bypass/timeloop-model.stats.txt",
        C_2FF)},
    "timeloop_ref/04_cp": {
        "timeloop-model.stats.txt": (
            f"{ISPASS}/04-model-conv1d+oc-3levelspatial/ref-output/cp/timeloop-model.stats.txt",
            C_2FF),
        # not stored at the tutorial path; the same run's map.txt under the repository's
        # previous folder name
        "timeloop-model.map.txt": (
            "workspace/exercises/01_accelergy_timeloop_2020_ispass/timeloop/"
            "04-model-conv1d+oc-3levelspatial/ref-output/cp/timeloop-model.map.txt", C_B47)},
    "timeloop_ref/04_kp": {
        "timeloop-model.stats.txt": (
            f"{ISPASS}/04-model-conv1d+oc-3levelspatial/ref-output/kp/timeloop-model.stats.txt",
            C_2FF),
        "timeloop-model.map.txt": (
            f"{ISPASS}/04-model-conv1d+oc-3levelspatial/ref-output/kp/timeloop-model.map.txt",
            C_2FF)},
    "timeloop_ref/05_baked": {"timeloop-mapper.stats.txt": (
        f"{ISPASS}/05-mapper-conv1d+oc-3level/ref-output/baked/timeloop-mapper.stats.txt", C_2FF)},
    "timeloop_ref/05_freebypass": {"timeloop-mapper.stats.txt": (
        f"{ISPASS}/05-mapper-conv1d+oc-3level/ref-output/freebypass/timeloop-mapper.stats.txt",
        C_2FF)},
    "timeloop_ref/05_null": {"timeloop-mapper.stats.txt": (
        f"{ISPASS}/05-mapper-conv1d+oc-3level/ref-output/null/timeloop-mapper.stats.txt", C_2FF)},
    "timeloop_ref/06_eyeriss": {
        "timeloop-mapper.stats.txt": (
            f"{ISPASS}/06-mapper-convlayer-eyeriss/ref-output/timeloop-mapper.stats.txt", C_2FF),
        "timeloop-mapper.map.txt": (
            f"{ISPASS}/06-mapper-convlayer-eyeriss/ref-output/timeloop-mapper.map.txt", C_2FF)},
}
for _design in ("eyeriss_like", "simba_like", "simple_output_stationary",
                "simple_weight_stationary"):
    SOURCES[f"timeloop_designs/{_design}"] = {
        name: (f"{DESIGNS}/{_design}/ref_outputs/default_problem/{name}", C_67B)
        for name in ("timeloop-mapper.stats.txt", "timeloop-mapper.map.txt")}

EXERCISES = sorted(p.parent.name for p in (HERE / "exercises").glob("*/case.yaml"))


def _stats_file(case: str) -> Path:
    return next(HERE / case / name for name in SOURCES[case] if name.endswith(".stats.txt"))


def _mapping_file(case: str) -> Path:
    """The map.txt where the fixture has one (container levels), else the stats."""
    maps = [HERE / case / name for name in SOURCES[case] if name.endswith(".map.txt")]
    return maps[0] if maps else _stats_file(case)


def _normalise(expected: dict) -> dict:
    want = {k: v for k, v in expected.items() if k != "source"}
    per_level = want["operational_intensity"].get("per_level")
    if isinstance(per_level, dict):     # some fixtures key it by level name
        want["operational_intensity"] = dict(want["operational_intensity"])
        want["operational_intensity"]["per_level"] = [
            {"name": name, **fields} for name, fields in per_level.items()]
    return want


def _differences(want, got, path="") -> list[str]:
    """Every value of ``want`` must be in ``got`` (``got`` may hold more keys)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected a mapping, got {got!r}"]
        out = []
        for key, value in want.items():
            if key not in got:
                out.append(f"{path}.{key}: missing")
            else:
                out += _differences(value, got[key], f"{path}.{key}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: {want!r} != {got!r}"]
        return [d for i, (a, b) in enumerate(zip(want, got))
                for d in _differences(a, b, f"{path}[{i}]")]
    if isinstance(want, float) or isinstance(got, float):
        # printed with two decimals; the derived total_energy_pj_from_fj was rounded in the json
        if got is None or want is None or abs(want - got) > 1e-3 + 1e-9 * abs(want):
            return [f"{path}: {want!r} != {got!r}"]
        return []
    return [] if want == got else [f"{path}: {want!r} != {got!r}"]


def test_every_fixture_has_its_reference_report():
    assert sorted(SOURCES) == sorted(CASES)
    for case, files in SOURCES.items():
        for name in files:
            assert (HERE / case / name).is_file(), f"{case}/{name}"
        expected = json.loads((HERE / case / "expected.json").read_text())
        path, commit = next(v for k, v in files.items() if k.endswith(".stats.txt"))
        # the stored file is the exact version expected.json was read from
        assert expected["source"]["stats"] == {**expected["source"]["stats"],
                                               "path": path, "commit": commit}


@pytest.mark.parametrize("case", CASES)
def test_read_stats_gives_every_figure_of_expected_json(case):
    expected = json.loads((HERE / case / "expected.json").read_text())
    assert _differences(_normalise(expected), read_stats(_stats_file(case))) == []


@pytest.mark.parametrize("case", CASES)
def test_read_mapping_evaluates_like_the_fixture_mapping(case, tmp_path):
    arch, workload, mapping, energy, _expected = load_case(case)
    info = read_mapping_info(_mapping_file(case))
    assert info["spatial_complete"]
    out = tmp_path / "from_timeloop.map.yaml"
    yaml = YAML()
    yaml.default_flow_style = None
    with out.open("w") as f:
        yaml.dump({"mapping": info["directives"]}, f)
    theirs = evaluate(arch, workload, load_mapping(out, arch, workload), energy)
    ours = evaluate(arch, workload, mapping, energy)

    def counts(result):
        return {(lv.name, ds): (s.reads_per_instance, s.fills_per_instance,
                                s.updates_per_instance, s.utilized_instances)
                for lv in result.levels for ds, s in lv.dataspaces.items()}

    assert counts(theirs) == counts(ours)
    assert theirs.energy_pj == pytest.approx(ours.energy_pj, rel=1e-12)
    assert theirs.cycles == ours.cycles


def test_stats_without_container_levels_are_flagged():
    """v0.4 container levels (inter_*_spatial) are not printed in a stats report, so the
    spatial loops they hold are missing there: read_mapping says so instead of guessing."""
    info = read_mapping_info(HERE / "timeloop_ref/06_eyeriss/timeloop-mapper.stats.txt")
    assert not info["spatial_complete"]
    assert [d["type"] for d in info["directives"]].count("spatial") == 0
    full = read_mapping_info(HERE / "timeloop_ref/06_eyeriss/timeloop-mapper.map.txt")
    assert full["spatial_complete"]
    spatial = {d["target"]: d for d in full["directives"] if d["type"] == "spatial"}
    assert spatial["inter_PE_column_spatial"]["factors"] == "Q=14"
    assert spatial["inter_PE_column_spatial"]["split"] == 1          # X
    assert spatial["inter_PE_spatial"]["factors"] == "M=4 S=3"
    assert spatial["inter_PE_spatial"]["split"] == 0                 # Y only
    temporal = {d["target"]: d for d in full["directives"] if d["type"] == "temporal"}
    assert temporal["DRAM"] == {"target": "DRAM", "type": "temporal",
                                "factors": "Q=4 C=4 P=7 M=4", "permutation": "MPCQ"}
    keep = {d["target"]: d["keep"] for d in full["directives"] if d["type"] == "bypass"}
    assert keep["shared_glb"] == ["Inputs", "Outputs"] and keep["ifmap_spad"] == ["Inputs"]


def test_read_mapping_of_a_stats_report_with_every_level_printed():
    directives = read_mapping(HERE / "timeloop_ref/05_freebypass/timeloop-mapper.stats.txt")
    assert directives == [
        {"target": "MainMemory", "type": "temporal"},
        {"target": "MainMemory", "type": "bypass", "keep": ["Weights", "Inputs", "Outputs"],
         "bypass": []},
        {"target": "GlobalBuffer", "type": "temporal", "factors": "K=16 P=16",
         "permutation": "PK"},
        {"target": "GlobalBuffer", "type": "bypass", "keep": ["Inputs"],
         "bypass": ["Weights", "Outputs"]},
        {"target": "RegisterFile", "type": "temporal", "factors": "R=3 K=2",
         "permutation": "KR"},
        {"target": "RegisterFile", "type": "bypass", "keep": ["Weights", "Inputs", "Outputs"],
         "bypass": []},
    ]


# -- the reference runs of exercises/ -------------------------------------------------------


def _case(name: str) -> dict:
    return YAML(typ="safe").load((HERE / "exercises" / name / "case.yaml").read_text())


def _files(node) -> list[str]:
    """Every 'file' entry of a case manifest."""
    if isinstance(node, dict):
        out = [node["file"]] if isinstance(node.get("file"), str) else []
        return out + [f for key, value in node.items() if key != "file" for f in _files(value)]
    if isinstance(node, list):
        return [f for item in node for f in _files(item)]
    return []


def _consistency(stats: dict) -> list[str]:
    """Each level's data-space energies and leakage add up to its printed energy/compute."""
    computes = stats["summary"]["computes"]
    per_compute = stats["summary"].get("fj_per_compute")
    scale = 1000.0
    if per_compute is None:
        per_compute, scale = stats["summary"]["pj_per_compute"], 1.0
    total = stats["arithmetic"]["energy_total_pj"]
    bad = []
    for level in stats["levels"]:
        energy = sum(ds["energy_total_pj"] for ds in level["dataspaces"].values())
        energy += level["leakage_energy_total_pj"] or 0.0
        total += energy
        printed = per_compute.get(level["name"])
        if printed is not None and abs(energy * scale / computes - printed) > 0.011:
            bad.append(f"{level['name']}: {energy * scale / computes:.3f} != {printed}")
        for ds, fields in level["dataspaces"].items():
            accesses = fields["reads"] + fields["fills"] + fields["updates"]
            if accesses == 0:
                continue
            instances = fields["utilized_instances"]
            if abs(fields["energy_per_instance_pj"] * instances
                   - fields["energy_total_pj"]) > 0.01 * instances:
                bad.append(f"{level['name']}.{ds}: per-instance x instances != total")
    if abs(total * scale / computes - per_compute["Total"]) > 0.02:
        bad.append(f"Total: {total * scale / computes:.3f} != {per_compute['Total']}")
    return bad


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_case_files_are_present_and_consistent(name):
    case = _case(name)
    folder = HERE / "exercises" / name
    assert case["case"] == name
    assert isinstance(case["dense"], bool) and case["kind"] in ("model", "mapper")
    files = _files(case)
    for rel in files:
        assert (folder / rel).is_file(), rel
    stats_files = [rel for rel in files if rel.endswith(".stats.txt")]
    assert stats_files
    for rel in stats_files:
        stats = read_stats(folder / rel)
        assert stats["summary"]["computes"] > 0 and stats["levels"]
        assert _consistency(stats) == [], rel
    for rel in (rel for rel in files if rel.endswith(".map.txt")):
        info = read_mapping_info(folder / rel)
        assert info["spatial_complete"] and info["directives"]


def test_operand_hold_run_is_read_as_printed():
    """The run that shows Timeloop's operand hold: the buffer's Inputs are read once per
    eight MAC cycles (the innermost temporal M8 does not change them)."""
    folder = HERE / "exercises/interface2024_buffer_dram/outputs"
    stats = read_stats(folder / "timeloop-mapper.stats.txt")
    buffer = next(lv for lv in stats["levels"] if lv["name"] == "buffer")
    computes = stats["summary"]["computes"]
    assert buffer["loop_nest"] == ["for C in [0:64)", "for Q in [0:32)", "for M in [0:8)"]
    assert buffer["dataspaces"]["Inputs"]["reads"] * 64 == computes
    assert buffer["dataspaces"]["Weights"]["reads"] == computes
    directives = read_mapping(folder / "timeloop-mapper.map.txt")
    assert {"target": "inter_PE_spatial", "type": "spatial", "factors": "M=8",
            "permutation": "M", "split": 1} in directives


# -- older layouts ----------------------------------------------------------------------------

# Excerpt (verbatim lines) of exercises/timeloop+accelergy/ref-output/int16/
# timeloop-mapper.stats.txt @ 19b7fc8ad3be2203a9c4e155ae03ec59ebd2eddb (Timeloop of 2020):
# 'Energy-per-op', no leakage lines, updates printed before fills, a populated Networks section.
OLD_LAYOUT = """\
Buffer and Arithmetic Levels
----------------------------
Level 0
-------
=== mac ===

    SPECS
    -----
    Word bits            : 16
    Instances            : 168 (14*12)
    Energy-per-op        : 2.20 pJ

    STATS
    -----
    Utilized instances   : 168
    Cycles               : 5505024
    Energy (total)       : 2034656870.40 pJ
    Area (total)         : 0.00 um^2

Level 4
-------
=== DummyBuffer ===

    SPECS
    -----
        Technology           : SRAM
        Size                 : 16
        Word bits            : 16
        Block size           : 1
        Cluster size         : 1
        Instances            : 14 (14*1)
        Read bandwidth       : -
        Write bandwidth      : -
        Multiple buffering   : 1.00
        Effective size       : 16
        Min utilization      : 0.00
        Vector access energy : 0.20 pJ
        Area                 : 0.00 um^2

    MAPPING
    -------
    Loop nest:
      for C in [0:4) (Spatial-Y)
        for S in [0:3) (Spatial-Y)

    STATS
    -----
    Cycles               : 5505024
    Bandwidth throttling : 1.00

Level 6
-------
=== DRAM ===

    SPECS
    -----
        Technology           : DRAM
        Size                 : -
        Word bits            : 16
        Block size           : 4
        Cluster size         : 1
        Instances            : 1 (1*1)
        Read bandwidth       : -
        Write bandwidth      : -
        Multiple buffering   : 1.00
        Effective size       : -
        Min utilization      : 0.00
        Vector access energy : 512.00 pJ
        Area                 : 0.00 um^2

    MAPPING
    -------
    Loop nest:
      for Q in [0:4)
        for M in [0:4)
          for C in [0:8)

    STATS
    -----
    Cycles               : 5505024
    Bandwidth throttling : 1.00
    Outputs:
        Partition size                           : 802816
        Utilized capacity                        : 802816
        Utilized instances (max)                 : 1
        Utilized clusters (max)                  : 1
        Scalar reads (per-instance)              : 0
        Scalar updates (per-instance)            : 802816
        Scalar fills (per-instance)              : 0
        Temporal reductions (per-instance)       : 0
        Address generations (per-cluster)        : 802816
        Energy (per-scalar-access)               : 128.00 pJ
        Energy (per-instance)                    : 102760448.00 pJ
        Energy (total)                           : 102760448.00 pJ
        Temporal Reduction Energy (per-instance) : 0.00 pJ
        Temporal Reduction Energy (total)        : 0.00 pJ
        Address Generation Energy (per-cluster)  : 0.00 pJ
        Address Generation Energy (total)        : 0.00 pJ
        Read Bandwidth (per-instance)            : 0.00 words/cycle
        Read Bandwidth (total)                   : 0.00 words/cycle
        Write Bandwidth (per-instance)           : 0.15 words/cycle
        Write Bandwidth (total)                  : 0.15 words/cycle

Networks
--------
Network 0
---------
DRAM <==> shared_glb

    SPECS
    -----
        Type            : Legacy
        Legacy sub-type :
        ConnectionType  : 3
        Word bits       : 16
        Router energy   : - pJ
        Wire energy     : - pJ/b/mm

    STATS
    -----
    Weights:
        Fanout                                  : 1
        Fanout (distributed)                    : 0
        Multicast factor                        : 1
        Ingresses                               : 1179648
            @multicast 1: 1179648
        Link transfers                          : 0
        Spatial reductions                      : 0
        Average number of hops                  : 0.50
        Energy (per-hop)                        : 0.00 fJ
        Energy (per-instance)                   : 0.00 pJ
""".replace("sub-type :\n", "sub-type : \n")    # the report has a trailing blank there


def test_old_layout():
    stats = parse_stats(OLD_LAYOUT)
    mac = stats["arithmetic"]
    assert mac == {"level": 0, "name": "mac", "word_bits": 16, "instances": 168,
                   "mesh": [14, 12], "compute_energy_pj": 2.2, "utilized_instances": 168,
                   "cycles": 5505024, "energy_total_pj": 2034656870.4, "area_total_um2": 0.0}
    dummy, dram = stats["levels"]
    assert dummy["name"] == "DummyBuffer" and dummy["dataspaces"] == {}
    assert dummy["read_bandwidth"] is None and dram["size"] is None
    assert dram["dataspaces"]["Outputs"]["updates"] == 802816
    assert dram["dataspaces"]["Outputs"]["fills"] == 0
    assert dram["dataspaces"]["Outputs"]["write_bandwidth_per_instance"] == 0.15
    net = stats["networks"][0]
    assert net["name"] == "DRAM <==> shared_glb" and net["specs"]["connectiontype"] == 3
    assert net["dataspaces"]["Weights"]["ingresses"] == 1179648
    # the spatial loops are printed on the (v0.3, real) DummyBuffer level
    directives, complete = directives_from_text(OLD_LAYOUT)
    assert not complete                 # levels 1-3 and 5 are not in the excerpt
    assert {"target": "DummyBuffer", "type": "spatial", "factors": "C=4 S=3",
            "permutation": "SC", "split": 0} in directives


def test_pj_per_compute_layout():
    stats = read_stats(HERE / "exercises/sparseloop_dudu_dot_product/ref_outputs/default_problem"
                       "/timeloop-mapper.stats.txt")
    assert stats["summary"]["pj_per_compute"] == {"mac": 0.32, "Buffer": 7.64, "Total": 7.95}
    assert stats["summary"]["total_energy_pj_from_pj"] == pytest.approx(7.95 * 16)
    assert set(stats["levels"][0]["dataspaces"]) == {"A", "B", "Z"}
