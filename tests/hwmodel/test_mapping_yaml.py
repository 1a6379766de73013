"""Timeloop mapping YAML: order conventions, split, keep/bypass, validation, round trip."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from timeloop_texts import gemm_problem

from core.errors import HwcostError
from hwmodel.mapping import LevelMapping, Mapping
from hwmodel.mapping_yaml import drop_trivial_loops, load_mapping, write_mapping
from hwmodel.spec import load_arch
from hwmodel.workload import Layer

ARCH = """\
architecture:
  version: 0.4
  nodes:
  - !Container
    name: tiny
  - !Component
    name: DRAM
    class: DRAM
    attributes: {width: 64, datawidth: 8}
  - !Component
    name: buffer
    class: SRAM
    attributes: {depth: 1024, width: 64, datawidth: 8}
    constraints:
      dataspace: {keep: [Inputs, Outputs], bypass: [Weights]}
  - !Container
    name: PE
    spatial: {meshX: 4, meshY: 2}
  - !Component
    name: reg
    class: regfile
    attributes: {depth: 16, width: 8, datawidth: 8}
  - !Component
    name: mac
    class: intmac
"""

# C4 M8 P4 R3 (N = G = Q = S = 1)
MAPPING = """\
mapping:
- target: DRAM
  type: temporal
  factors: M=2 C=1 P=1
  permutation: MCP
- target: buffer
  type: temporal
  factors: P=4 R=3
  permutation: RP
- target: buffer
  type: spatial
  factors: C=4 M=2
  permutation: CM
  split: 1
- target: reg
  type: temporal
  factors: M2
- target: reg
  type: bypass
  bypass: [Inputs]
- target: mac
  type: temporal
  factors: C=1
"""


@pytest.fixture()
def setup(tmp_path: Path):
    a = tmp_path / "arch.yaml"
    a.write_text(ARCH)
    w = Layer("conv", "conv", C=4, M=8, P=4, R=3).workload()
    return load_arch(a), w


def _write(tmp_path: Path, text: str, name: str = "map.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_reading_reverses_permutations_and_splits_x_y(tmp_path, setup):
    arch, w = setup
    m = load_mapping(_write(tmp_path, MAPPING), arch, w)
    dram, buf, reg = m.levels
    assert dram.temporal == [("M", 2)]                 # factor-1 loops are dropped
    assert buf.temporal == [("P", 4), ("R", 3)]        # "RP": R innermost -> P outermost
    assert buf.spatial_x == [("C", 4)] and buf.spatial_y == [("M", 2)]
    assert reg.temporal == [("M", 2)]
    assert dram.keep == {"Weights", "Inputs", "Outputs"}
    assert buf.keep == {"Inputs", "Outputs"}           # the arch bypasses Weights there
    assert reg.keep == {"Weights", "Outputs"}
    for d, b in w.dims:
        assert m.dim_product(d) == b


def test_split_default_and_unlisted_dims(tmp_path, setup):
    arch, w = setup
    text = MAPPING.replace("  permutation: CM\n  split: 1\n", "  permutation: M\n")
    text = text.replace("factors: C=4 M=2", "factors: C=2 M=2").replace(
        "factors: M=2 C=1 P=1\n  permutation: MCP", "factors: M=2 C=2 P=1\n  permutation: MP")
    m = load_mapping(_write(tmp_path, text), arch, w)
    buf = m.levels[1]
    assert buf.spatial_x == [("C", 2), ("M", 2)] and buf.spatial_y == []  # no split: all X
    assert m.levels[0].temporal == [("M", 2), ("C", 2)]   # C not permuted: innermost


def test_write_then_read_is_identity(tmp_path, setup):
    arch, w = setup
    m = Mapping([
        LevelMapping(temporal=[("C", 2), ("M", 2)], keep=frozenset({"Weights", "Inputs",
                                                                    "Outputs"})),
        LevelMapping(temporal=[("R", 3), ("P", 2)], spatial_x=[("M", 2), ("C", 2)],
                     spatial_y=[("P", 2)], keep=frozenset({"Inputs"})),
        LevelMapping(temporal=[("M", 2)], keep=frozenset({"Weights", "Outputs"})),
    ])
    out = tmp_path / "sub" / "written.yaml"
    write_mapping(m, arch, out, workload=w)
    assert load_mapping(out, arch, w) == m
    text = out.read_text()
    assert "permutation: MC" in text             # outermost-first C, M -> innermost-first
    # factor-1 loops survive only as Timeloop padding
    padded = Mapping([LevelMapping(temporal=lm.temporal + [("N", 1)], spatial_x=lm.spatial_x,
                                   spatial_y=lm.spatial_y, keep=lm.keep) for lm in m.levels])
    write_mapping(padded, arch, out)
    assert load_mapping(out, arch, w) == drop_trivial_loops(padded) == m


def test_same_dim_on_both_axes_round_trips(tmp_path, setup):
    arch, w = setup
    m = Mapping([
        LevelMapping(temporal=[("C", 4)], keep=frozenset({"Weights", "Inputs", "Outputs"})),
        LevelMapping(temporal=[("P", 4), ("R", 3)], spatial_x=[("M", 2)],
                     spatial_y=[("M", 2)], keep=frozenset({"Inputs", "Outputs"})),
        LevelMapping(temporal=[("M", 2)], keep=frozenset({"Weights", "Outputs"})),
    ])
    out = tmp_path / "both.yaml"
    write_mapping(m, arch, out, workload=w)
    assert load_mapping(out, arch, w) == m


def test_timeloop_container_targets(tmp_path, setup):
    arch, w = setup
    text = MAPPING.replace("- target: buffer\n  type: spatial",
                           "- target: inter_PE_spatial\n  type: spatial")
    text += "- target: PE\n  type: datatype\n  keep: []\n"
    m = load_mapping(_write(tmp_path, text), arch, w)
    # the container's loops form a fan-out stage of their own below the buffer
    assert m.levels[1].spatial_x == [] and m.levels[1].all_x == [("C", 4)]
    assert [(st.name, st.x, st.y) for st in m.levels[1].stages] == [
        ("PE", [("C", 4)], [("M", 2)])]
    out = tmp_path / "again.yaml"
    write_mapping(m, arch, out, workload=w)
    assert "target: inter_PE_spatial" in out.read_text()
    assert load_mapping(out, arch, w) == drop_trivial_loops(m)


@pytest.mark.parametrize("label,old,new,needle,line", [
    ("wrong product", "factors: P=4 R=3", "factors: P=2 R=3",
     "factors of P multiply to 2 over all levels but the workload bound of P is 4", 4),
    ("unknown target", "target: reg\n  type: temporal", "target: regs\n  type: temporal",
     "unknown mapping target 'regs'", 15),
    ("unknown dim", "factors: M2", "factors: M2 Z3", "unknown dimension 'Z'", 17),
    ("too wide", "factors: C=4 M=2\n  permutation: CM\n  split: 1",
     "factors: C=4 M=2\n  permutation: CM\n  split: 2", "fan-out is 4 x 2", 10),
    ("keep bypassed", "target: reg\n  type: bypass\n  bypass: [Inputs]",
     "target: buffer\n  type: bypass\n  keep: [Weights]", "cannot keep Weights", 20),
    ("compute loops", "factors: C=1\n", "factors: C=2\n", "no temporal loops", 23),
    ("temporal twice", "- target: reg\n  type: bypass",
     "- target: reg\n  type: temporal\n- target: reg\n  type: bypass",
     "given twice", 18),
])
def test_mapping_errors_are_located(tmp_path, setup, label, old, new, needle, line):
    arch, w = setup
    assert old in MAPPING
    p = _write(tmp_path, MAPPING.replace(old, new), "bad.yaml")
    with pytest.raises(HwcostError) as exc:
        load_mapping(p, arch, w)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert needle in msg


def test_mapping_that_overflows_a_buffer_is_refused_with_its_line(tmp_path, setup):
    # everything below the buffer moved into the 16-word register: its weights (M4 R3 = 12)
    # and outputs (M4 P4 = 16) need 28 words
    arch, w = setup
    text = (MAPPING.replace("factors: M=2 C=1 P=1", "factors: M=1 C=1 P=1")
            .replace("factors: P=4 R=3", "factors: P=1 R=1")
            .replace("factors: M2", "factors: M4 P4 R3"))
    p = _write(tmp_path, text, "over.yaml")
    with pytest.raises(HwcostError) as exc:
        load_mapping(p, arch, w)
    assert str(exc.value) == (f"{p}:15: level 'reg' cannot hold its tiles: Weights, Outputs "
                              "need 28 words, its capacity is 16")


def test_unknown_pseudo_target_lists_the_containers(tmp_path, setup):
    arch, w = setup
    text = MAPPING.replace("- target: buffer\n  type: spatial",
                           "- target: inter_PX_spatial\n  type: spatial")
    p = _write(tmp_path, text, "pseudo.yaml")
    with pytest.raises(HwcostError, match=r"pseudo.yaml:10: unknown mapping target "
                       r"'inter_PX_spatial' \(levels: DRAM, buffer, reg; containers: PE, "
                       r"inter_PE_spatial; compute: mac\)"):
        load_mapping(p, arch, w)


GEMM_PROBLEM = gemm_problem(8, 4, 3)

GEMM_ARCH = ARCH.replace("keep: [Inputs, Outputs], bypass: [Weights]",
                         "keep: [A, Z], bypass: [B]")

GEMM_MAPPING = """\
mapping:
- {target: DRAM, type: temporal, factors: K=2 P=1 R=1, permutation: KPR}
- {target: buffer, type: temporal, factors: P=4 R=3, permutation: RP}
- {target: buffer, type: spatial, factors: K=4, permutation: K}
- {target: buffer, type: datatype, keep: [A], bypass: [Z]}
- {target: reg, type: temporal, factors: K=1 P=1 R=1}
- {target: reg, type: bypass, keep: [B, Z], bypass: [A]}
"""


def test_problem_defined_names_in_mappings(tmp_path):
    """A problem that declares its own dimensions (K P R) and data spaces (A B Z) is
    mapped and kept/bypassed by those names; the CNN names are not special."""
    from hwmodel.inputs import SpecInputs
    from hwmodel.problem_yaml import load_problem

    prob = load_problem(_write(tmp_path, GEMM_PROBLEM, "prob.yaml"))
    arch = load_arch(_write(tmp_path, GEMM_ARCH, "arch.yaml"), problem=prob)
    m = load_mapping(_write(tmp_path, GEMM_MAPPING), arch, prob)
    assert m.levels[0].temporal == [("K", 2)] and m.levels[1].spatial_x == [("K", 4)]
    assert [sorted(lm.keep) for lm in m.levels] == [["A", "B", "Z"], ["A"], ["B", "Z"]]
    out = tmp_path / "out.yaml"
    write_mapping(m, arch, out, prob)
    assert load_mapping(out, arch, prob) == drop_trivial_loops(m)
    write_mapping(m, arch, out)                           # names from the mapping itself
    assert "bypass: [B, Z]" in out.read_text() and load_mapping(out, arch, prob) == m
    inputs = SpecInputs.load([_write(tmp_path, GEMM_MAPPING, "m2.yaml")])
    assert load_mapping(inputs, arch, prob) == m
    for old, new, needle in (
            ("keep: [A], bypass: [Z]", "keep: [Weights]", "unknown data space 'Weights' in "
             "keep (workload data spaces: A, B, Z)"),
            ("factors: K=4, permutation: K", "factors: M=4, permutation: M",
             "unknown dimension 'M' in factors (workload dimensions: K P R)"),
            ("factors: K=4, permutation: K", "factors: K<=4", "factor bounds (K<=4) are "
             "not allowed here")):
        bad = _write(tmp_path, GEMM_MAPPING.replace(old, new), "bad.yaml")
        with pytest.raises(HwcostError) as exc:
            load_mapping(bad, arch, prob)
        assert needle in str(exc.value) and str(exc.value).startswith(f"{bad}:")


def test_mapping_template(tmp_path, setup):
    arch, workload = setup
    text = MAPPING.replace("factors: P=4 R=3", "factors: P={{ p }} R=3")
    m = load_mapping(_write(tmp_path, text, "map.yaml.j2"), arch, workload,
                     template_vars={"p": 4})
    assert m == load_mapping(_write(tmp_path, MAPPING), arch, workload)
    with pytest.raises(HwcostError, match="template variable 'p' is undefined"):
        load_mapping(_write(tmp_path, text, "map2.j2"), arch, workload)
