"""Architecture spec reader: v0.4 and v0.3 agree, bundled specs load, errors say file:line."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from arch_specs import list_bundled as bundled_names
from hwmodel.arch import Architecture, LoopConstraint
from hwmodel.spec import list_bundled, load_arch, resolve_arch_path
from multiplier_lib.errors import HwcostError

V04 = """\
architecture:
  version: 0.4
  nodes:
  - !Container
    name: tiny
    attributes: {technology: 45nm}
  - !Component
    name: DRAM
    class: DRAM
    attributes: {type: LPDDR4, width: 64, datawidth: 8}
  - !Component
    name: buffer
    class: SRAM
    attributes: {depth: 1024, width: 64, datawidth: 8, n_banks: 4, read_bandwidth: 8}
    constraints:
      dataspace: {keep: [Inputs, Outputs], bypass: [Weights]}
      temporal: {permutation: RSPQ, factors: N=1}
  - !Container
    name: PE
    spatial: {meshX: 4, meshY: 2}
    constraints:
      spatial: {permutation: [C, M], split: 1, factors: R=1 S=1}
  - !Component
    name: reg
    class: regfile
    attributes: {depth: 16, width: 8, datawidth: 8}
    constraints:
      dataspace: {keep: [Weights]}
  - !Component
    name: mac
    class: intmac
    attributes: {datawidth: 8}
"""

V03 = """\
architecture:
  version: 0.3
  subtree:
  - name: tiny
    attributes: {technology: 45nm}
    local:
    - name: DRAM
      class: DRAM
      attributes: {type: LPDDR4, width: 64, word-bits: 8}
    - name: buffer
      class: SRAM
      attributes: {memory_depth: 1024, block-size: 8, word-bits: 8, n_banks: 4,
                   read_bandwidth: 8}
    subtree:
    - name: PE[0..7]
      attributes: {meshX: 4}
      local:
      - name: reg
        class: regfile
        attributes: {memory_depth: 16, memory_width: 8, word-bits: 8}
      - name: mac
        class: intmac
        attributes: {datawidth: 8}
"""

V03_CONSTRAINTS = """\
architecture_constraints:
  targets:
  - target: buffer
    type: dataspace
    keep: [Inputs, Outputs]
    bypass: [Weights]
  - target: buffer
    type: temporal
    permutation: RSPQ
    factors: N=1
  - target: buffer
    type: spatial
    permutation: CM
    split: 1
    factors: R=1 S=1
  - target: reg
    type: bypass
    keep: [Weights]
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def _shape(arch: Architecture) -> dict:
    """Everything that defines the hardware, without source lines and file names."""
    def lc(c: LoopConstraint | None):
        return None if c is None else (c.factors, c.max_factors, c.permutation, c.split)
    levels = []
    for lv in arch.levels:
        d = dataclasses.asdict(lv)
        d.pop("line")
        d["temporal"], d["spatial"] = lc(lv.temporal), lc(lv.spatial)
        d["containers"] = [(c.name, c.mesh_x, c.mesh_y, lc(c.spatial)) for c in lv.containers]
        d["block_size"], d["capacity"] = lv.block_size, lv.capacity_words
        levels.append(d)
    comp = dataclasses.asdict(arch.compute)
    comp.pop("line")
    return {"name": arch.name, "technology": arch.technology, "levels": levels,
            "compute": comp}


def test_v04_and_v03_describe_the_same_machine(tmp_path):
    a4 = load_arch(_write(tmp_path, "v04.yaml", V04))
    a3 = load_arch(_write(tmp_path, "v03.yaml", V03),
                   extra=[_write(tmp_path, "cons.yaml", V03_CONSTRAINTS)])
    assert (a4.version, a3.version) == ("0.4", "0.3")
    assert _shape(a4) == _shape(a3)
    assert a4.names == ["DRAM", "buffer", "reg"]
    dram, buf, reg = a4.levels
    assert dram.depth is None and dram.instances == 1
    assert (buf.depth, buf.width, buf.datawidth, buf.block_size, buf.n_banks) == (1024, 64, 8,
                                                                                  8, 4)
    assert buf.read_bandwidth == 8.0 and buf.write_bandwidth is None
    assert (buf.fanout_x, buf.fanout_y) == (4, 2)
    assert (reg.instances, reg.mesh_x, reg.mesh_y) == (8, 4, 2)
    assert (reg.depth, reg.width, reg.block_size) == (16, 8, 1)
    assert buf.keep == {"Inputs", "Outputs"} and buf.bypass == {"Weights"}
    assert not buf.may_keep("Weights") and reg.may_keep("Weights")
    assert not reg.may_keep("Inputs")
    assert buf.temporal.permutation == list("RSPQ") and buf.temporal.factors == {"N": 1}
    assert buf.spatial.permutation == ["C", "M"] and buf.spatial.split == 1
    assert buf.spatial.factors == {"R": 1, "S": 1}
    assert a4.compute.instances == 8 and a4.compute.datawidth == 8
    assert a4.technology == "45nm" and buf.technology == "45nm"


def test_eyeriss_geometry():
    a = load_arch("eyeriss")
    glb = a.level("shared_glb")
    assert a.compute.instances == 168 and (a.compute.mesh_x, a.compute.mesh_y) == (14, 12)
    assert glb.capacity_words * glb.datawidth // 8 == 110592          # 108 KB
    assert (glb.fanout_x, glb.fanout_y) == (14, 12) and glb.instances == 1
    spads = [a.level(n) for n in ("ifmap_spad", "weights_spad", "psum_spad")]
    assert [s.depth for s in spads] == [12, 224, 24]
    assert all(s.width == 16 and s.instances == 168 for s in spads)
    assert [s.keep for s in spads] == [{"Inputs"}, {"Weights"}, {"Outputs"}]
    assert not glb.may_keep("Weights")
    assert a.levels[0].name == "DRAM" and a.levels[0].depth is None
    assert a.compute.datawidth == 8


def test_all_bundled_specs_load_and_resolve():
    names = list_bundled()
    assert names == bundled_names() == ["edge", "eyeriss", "simba", "systolic"]
    for n in names:
        a = load_arch(n)
        assert a.compute.datawidth == 8
        assert a.levels[0].depth is None
        # fan-outs chain up to the compute array
        inst = 1
        for lv in a.levels:
            assert lv.instances == inst
            inst *= lv.fanout
        assert inst == a.compute.instances
    assert resolve_arch_path("eyeriss").name == "eyeriss.yaml"
    assert resolve_arch_path("eyeriss").is_file()
    assert load_arch("systolic").compute.instances == 1024
    assert load_arch("simba").level("weight_reg").fanout_x == 8


def test_timeloop_style_two_containers_merge_on_level_above(tmp_path):
    text = V04.replace("""\
  - !Container
    name: PE
    spatial: {meshX: 4, meshY: 2}
    constraints:
      spatial: {permutation: [C, M], split: 1, factors: R=1 S=1}
""", """\
  - !Container
    name: PE_column
    spatial: {meshX: 4}
    constraints:
      spatial: {permutation: [N, C, Q, M], factors: [N=1, C=1], split: 4}
  - !Container
    name: PE
    spatial: {meshY: 2}
    constraints:
      spatial: {permutation: [N, Q, C, M], factors: [N=1, Q=1], split: 2}
""")
    a = load_arch(_write(tmp_path, "two.yaml", text))
    buf = a.level("buffer")
    assert (buf.fanout_x, buf.fanout_y) == (4, 2)
    assert buf.spatial.permutation == ["Q", "M", "C", "M"] and buf.spatial.split == 2
    assert buf.spatial.factors == {"N": 1}
    assert buf.attributes["spatial_containers"] == ["PE_column", "PE"]


def test_extra_constraint_file_targets_container_alias(tmp_path):
    spec = _write(tmp_path, "a.yaml", V04)
    cons = _write(tmp_path, "c.yaml", """\
mapspace_constraints:
  targets:
  - target: inter_PE_spatial
    type: spatial
    factors: P=1
  - target: reg
    type: temporal
    factors: C=0 M=2
""")
    a = load_arch(spec, extra=[cons])
    assert a.level("buffer").spatial.factors == {"R": 1, "S": 1, "P": 1}
    assert a.level("reg").temporal.factors == {"C": 0, "M": 2}     # 0 = all remaining


BAD = [
    ("unknown tag", V04.replace("- !Component\n    name: reg", "- !Componant\n    name: reg"),
     "!Componant", 23),
    ("missing depth", V04.replace("depth: 16, ", ""), "depth", 23),
    ("no class", V04.replace("    class: regfile\n", ""), "no class", 23),
    ("bad number", V04.replace("{depth: 1024,", "{depth: abc,"), "expected an integer", 14),
    ("unknown dim", V04.replace("permutation: RSPQ", "permutation: RSPX"),
     "unknown dimension 'X'", 17),
    ("keeps nothing", V04.replace("keep: [Weights]", "bypass: [Weights, Inputs, Outputs]"),
     "keeps no data space", 23),
    ("yaml syntax", V04.replace("    name: reg\n", "    name: reg: x\n"), "YAML syntax", 24),
    ("no compute", V04.replace("class: intmac", "class: regfile")
     .replace("attributes: {datawidth: 8}\n", "attributes: {datawidth: 8, depth: 1}\n"),
     "no compute unit", 1),
    ("unknown data space", V04.replace("keep: [Weights]", "keep: [Weight]"),
     "unknown data space", 28),
    ("after compute", V04 + """\
  - !Component
    name: late
    class: regfile
    attributes: {depth: 2}
""", "after the compute unit", 33),
]


@pytest.mark.parametrize("label,text,needle,line", BAD, ids=[b[0] for b in BAD])
def test_errors_are_located(tmp_path, label, text, needle, line):
    p = _write(tmp_path, "broken.yaml", text)
    with pytest.raises(HwcostError) as exc:
        load_arch(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert needle in msg


def test_error_in_extra_file_names_that_file(tmp_path):
    spec = _write(tmp_path, "a.yaml", V04)
    cons = _write(tmp_path, "c.yaml", """\
architecture_constraints:
  targets:
  - target: buffer
    type: spatial
    factors: Z=2
  - target: nowhere
    type: temporal
""")
    with pytest.raises(HwcostError) as exc:
        load_arch(spec, extra=[cons])
    assert str(exc.value).startswith(f"{cons}:5: ") and "'Z'" in str(exc.value)
    cons.write_text("constraints:\n  targets:\n  - target: nowhere\n    type: temporal\n")
    with pytest.raises(HwcostError, match=r"c\.yaml:3: .*nowhere"):
        load_arch(spec, extra=[cons])


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(HwcostError) as exc:
        load_arch(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(exc.value) and "not found" in str(exc.value)
    with pytest.raises(HwcostError) as exc:
        load_arch("eyeris")
    assert "eyeriss" in str(exc.value) and "simba" in str(exc.value)


def test_expressions_variables_and_inherited_attributes(tmp_path):
    text = V04.replace("name: tiny\n    attributes: {technology: 45nm}",
                       "name: tiny\n    attributes: {technology: 22, datawidth: 8}")
    text = text.replace("{depth: 1024,", "{depth: glb_kb * 1024 * 8 // 64,")
    text = "variables:\n  glb_kb: 8\n" + text
    a = load_arch(_write(tmp_path, "expr.yaml", text))
    assert a.level("buffer").depth == 1024
    assert a.technology == "22nm" and a.level("reg").technology == "22nm"


def test_mac_mesh_and_its_spatial_constraint(tmp_path):
    p = _write(tmp_path, "mesh.yaml", """\
architecture:
  version: 0.4
  nodes:
  - !Component {name: DRAM, class: DRAM}
  - !Component {name: buf, class: SRAM, attributes: {depth: 64}}
  - !Component
    name: mac
    class: intmac
    spatial: {meshX: 8}
    constraints:
      spatial: {factors: N=1}
""")
    a = load_arch(p)
    buf = a.level("buf")
    assert (buf.fanout_x, buf.fanout_y, a.compute.instances) == (8, 1, 8)
    assert buf.spatial.factors == {"N": 1}
    assert (buf.datawidth, buf.width, buf.block_size) == (8, 8, 1)   # documented defaults
    assert a.name == "mesh" and a.technology == "45nm"
