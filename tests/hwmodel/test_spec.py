"""Architecture spec reader: v0.4 and v0.3 agree, bundled specs load, errors say file:line."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from timeloop_texts import gemm_problem

from arch_specs import list_bundled as bundled_names
from core.errors import HwcostError
from hwmodel.arch import Architecture, LoopConstraint
from hwmodel.problem_yaml import load_problem
from hwmodel.spec import check_problem, list_bundled, load_arch, load_inputs, resolve_arch_path

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
    """Everything that defines the hardware, without source lines and file names (the
    lines and files where constraints were written, too)."""
    def lc(c: LoopConstraint | None):
        return None if c is None else (c.factors, c.max_factors, c.permutation, c.split)
    levels = []
    for lv in arch.levels:
        d = dataclasses.asdict(lv)
        d.pop("line")
        d.pop("dataspace_origins")
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
    ("yaml syntax", V04.replace("    name: reg\n", "    name: reg: x\n"), "YAML syntax", 24),
    ("no compute", V04.replace("class: intmac", "class: regfile")
     .replace("attributes: {datawidth: 8}\n", "attributes: {datawidth: 8, depth: 1}\n"),
     "no compute unit", 1),
    ("unsupported key", V04.replace("keep: [Weights]", "keep: [Weights], no_coalesce: [a]"),
     "'no_coalesce' is not supported by hwcost", 28),
    ("typo key", V04.replace("factors: N=1}", "fators: N=1}"), "unknown key 'fators'", 17),
    ("unknown group", V04.replace("      temporal: {permutation", "      temporall: {permutation"),
     "unknown group 'temporall'", 17),
    ("overbooking", V04.replace("      temporal: {perm", "      max_overbooked_proportion: 0.1\n"
                                "      temporal: {perm"), "max_overbooked_proportion", 17),
    ("minimum factor", V04.replace("factors: N=1}", "factors: N>=2}"),
     "minimum factors (N>=2) are not supported", 17),
    ("bad expression", V04.replace("{depth: 1024,", "{depth: GLB * 2,"),
     "buffer: depth: unknown name 'GLB'", 14),
    ("circular", V04.replace("{depth: 1024,", "{depth: w2 * 2, w2: depth,"),
     "in a circle", 14),
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
    assert "misspelling" not in msg      # no other attribute is taken for a typo
    assert needle in msg


CNN = """\
problem:
  shape: cnn-layer
  instance: {C: 4, M: 4, R: 3, S: 3, P: 8, Q: 8, N: 1}
"""


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
    problem = load_problem(_write(tmp_path, "p.yaml", CNN))
    cons.write_text(cons.read_text().replace("  - target: nowhere\n    type: temporal\n", ""))
    with pytest.raises(HwcostError) as exc:
        load_arch(spec, extra=[cons], problem=problem)
    assert str(exc.value).startswith(f"{cons}:5: unknown dimension 'Z' in the spatial "
                                     "factors of 'buffer' (problem"), exc.value
    cons.write_text("constraints:\n  targets:\n  - target: nowhere\n    type: temporal\n")
    with pytest.raises(HwcostError, match=r"c\.yaml:3: .*nowhere"):
        load_arch(spec, extra=[cons])


NAMES_BAD = [
    ("unknown dim", V04.replace("permutation: RSPQ", "permutation: RSPX"), "a.yaml", 17,
     "unknown dimension 'X' in the temporal permutation of 'buffer' (problem 'p' has "
     "dimensions: N G C M P Q R S)"),
    ("unknown data space", V04.replace("keep: [Weights]", "keep: [Weight]"), "a.yaml", 28,
     "unknown data space 'Weight' in keep of 'reg' (problem 'p' has data spaces: Weights, "
     "Inputs, Outputs)"),
    ("container dim", V04.replace("factors: R=1 S=1", "factors: R=1 T=1"), "a.yaml", 22,
     "unknown dimension 'T' in the spatial factors of 'buffer'"),
]


@pytest.mark.parametrize("label,text,file,line,needle", NAMES_BAD, ids=[b[0] for b in NAMES_BAD])
def test_names_are_checked_against_the_problem(tmp_path, label, text, file, line, needle):
    """Without a problem any name is accepted; paired with one, an unknown name is an error
    at the line that wrote it, listing the valid names."""
    arch_file = _write(tmp_path, "a.yaml", text)
    prob_file = _write(tmp_path, "p.yaml", CNN)
    arch = load_arch(arch_file)                     # names are the problem's: not known yet
    with pytest.raises(HwcostError) as exc:
        check_problem(arch, load_problem(prob_file))
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path / file}:{line}: "), msg
    assert needle in msg, msg
    with pytest.raises(HwcostError) as exc2:         # the same when the reader has it
        load_arch(load_inputs([arch_file], [prob_file]))
    assert str(exc2.value) == msg


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


GEMM = gemm_problem(16, 8, 4)

GEMM_ARCH = """\
variables:
  INPUT_WEIGHT_DATAWIDTH: 8
  PSUM_DATAWIDTH: 2 * INPUT_WEIGHT_DATAWIDTH
  technology: "22nm"
architecture:
  version: 0.4
  nodes:
  - !Container
    name: chip
    attributes: {datawidth: INPUT_WEIGHT_DATAWIDTH}
  - !Component
    name: DRAM
    class: DRAM
    attributes: {type: LPDDR4, width: 64}
  - !Component
    name: buf
    class: SRAM
    attributes:
      depth: 2 ** 10
      width: max(INPUT_WEIGHT_DATAWIDTH, 16) * 4
      datawidth: datawidth * 2
    constraints:
      dataspace: {keep: ['*']}
      temporal: {factors: [K=2, R<=2], permutation: [P, K, R]}
  - !Container
    name: PE
    spatial: {meshX: spec.problem.instance.R}
    constraints:
      spatial: {factors: K=1 P=1, permutation: RKP, split: len(spec.problem.instance)}
  - !Component
    name: acc
    class: regfile
    attributes: {depth: 16, width: PSUM_DATAWIDTH, datawidth: PSUM_DATAWIDTH}
    constraints:
      dataspace: {keep: [Z], bypass: [A, B]}
  - !Component
    name: mac
    class: intmac
    attributes: {multiplier_width: INPUT_WEIGHT_DATAWIDTH, datawidth: 16}
"""


def test_problem_defined_names_and_timeloop_expressions(tmp_path):
    """The issue's case: a problem declaring ``dimensions: [K, P, R]`` and data spaces
    A, B, Z, constrained by name; attributes, meshes and splits as Timeloop evaluates them."""
    arch_file = _write(tmp_path, "arch.yaml", GEMM_ARCH)
    prob_file = _write(tmp_path, "prob.yaml", GEMM)
    arch = load_arch(load_inputs([arch_file], [prob_file]))
    buf, acc = arch.level("buf"), arch.level("acc")
    assert buf.temporal.factors == {"K": 2} and buf.temporal.max_factors == {"R": 2}
    assert buf.temporal.permutation == ["P", "K", "R"]
    assert buf.keep == {"*"} and all(buf.may_keep(ds) for ds in "ABZ")
    assert (buf.depth, buf.width, buf.datawidth, buf.block_size) == (1024, 64, 16, 4)
    assert buf.fanout_x == 4                                     # meshX: spec.problem...R
    assert buf.spatial.permutation == ["R", "K", "P"] and buf.spatial.split == 3
    assert (acc.width, acc.datawidth) == (16, 16) and acc.keep == {"Z"}
    assert not acc.may_keep("A") and acc.may_keep("Z")
    assert arch.technology == "22nm" and acc.attributes["technology"] == "22nm"
    assert arch.compute.attributes["multiplier_width"] == 8
    dram = arch.level("DRAM")
    assert dram.datawidth == 8 and dram.attributes["type"] == "LPDDR4"


def test_multi_letter_dimension_names(tmp_path):
    prob = _write(tmp_path, "prob.yaml", GEMM.replace("K", "K1").replace("P", "P2").replace(
        "R]", "R3]").replace("[[R]]", "[[R3]]").replace("R: 4", "R3: 4"))
    arch_text = GEMM_ARCH.replace("[K=2, R<=2], permutation: [P, K, R]",
                                  "[K1=2], permutation: P2K1R3").replace(
        "K=1 P=1, permutation: RKP", "K1=1 P2=1, permutation: [R3, K1, P2]").replace(
        "instance.R}", "instance.R3}")
    arch = load_arch(load_inputs([_write(tmp_path, "a.yaml", arch_text)], [prob]))
    assert arch.level("buf").temporal.permutation == ["P2", "K1", "R3"]
    assert arch.level("buf").temporal.factors == {"K1": 2}


def test_spec_problem_needs_the_problem(tmp_path):
    arch_file = _write(tmp_path, "arch.yaml", GEMM_ARCH)
    with pytest.raises(HwcostError) as exc:
        load_arch(arch_file)
    msg = str(exc.value)
    assert msg.startswith(f"{arch_file}:27: meshX: expected an integer, got "
                          "'spec.problem.instance.R' (spec.problem is not available"), msg
    with pytest.raises(HwcostError, match="not available in estimate"):
        load_arch(arch_file, no_problem="spec.problem is not available in estimate")


def test_problem_object_stands_in_for_a_problem_file(tmp_path):
    arch_file = _write(tmp_path, "arch.yaml", GEMM_ARCH)
    workload = load_problem(_write(tmp_path, "prob.yaml", GEMM))
    arch = load_arch(arch_file, problem=workload)
    assert arch.level("buf").fanout_x == 4 and arch.level("buf").spatial.split == 3
    with pytest.raises(HwcostError, match=r"unknown dimension 'K' .*\(problem 'conv'"):
        load_arch(arch_file, problem=load_problem(_write(tmp_path, "c.yaml", CNN.replace(
            "cnn-layer", "cnn-layer\n  name: conv").replace("R: 3", "R: 4"))))


def test_bad_variable_is_located_in_its_file(tmp_path):
    arch_file = _write(tmp_path, "arch.yaml", GEMM_ARCH)
    var_file = _write(tmp_path, "vars.yaml", "variables:\n  X: 1 / 0\n")
    with pytest.raises(HwcostError, match=rf"^{var_file}:2: variable X: division by zero"):
        load_arch(arch_file, extra=[var_file, _write(tmp_path, "p.yaml", GEMM)])


@pytest.mark.parametrize("keep_nothing", ["keep: []", "bypass: ['*']",
                                          "bypass: [Weights, Inputs, Outputs]"])
def test_a_level_that_keeps_nothing_is_legal(tmp_path, keep_nothing):
    """Timeloop designs carry such levels (the exercises' eyeriss_like ``DummyBuffer``, a
    register bypassed by a dataflow): loops may sit there, no data does.  The level must
    load, pass the problem's name checks, and map with no access at it."""
    from hwmodel.mapper import Mapper
    from hwmodel.workload import Layer

    arch = load_arch(_write(tmp_path, "a.yaml", V04.replace("keep: [Weights]", keep_nothing)))
    workload = Layer("conv", "conv", C=4, M=4, P=4, Q=4).workload()
    check_problem(arch, workload)
    found = Mapper(arch, effort="fast").map(workload)
    reg = arch.names.index("reg")
    assert found.mapping.levels[reg].keep == frozenset()
    stats = found.result.levels[reg]
    assert not stats.dataspaces and stats.words_used == 0 and stats.energy_pj == 0.0


@pytest.mark.parametrize("name", bundled_names())
@pytest.mark.parametrize("typo", ["depht", "dpeth", "deptth", "Depth"])
def test_a_misspelt_depth_is_named_at_its_own_line(tmp_path, name, typo):
    """In every bundled spec, misspelling one storage level's ``depth`` names that level, the
    misspelt key and the line it is on."""
    import re

    text = resolve_arch_path(name).read_text()
    lines = text.splitlines()
    first = next(i for i, ln in enumerate(lines) if re.search(r"\bdepth:", ln))
    lines[first] = re.sub(r"\bdepth:", f"{typo}:", lines[first], count=1)
    path = tmp_path / "arch.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HwcostError, match=f"missing required attribute 'depth'; its attribute "
                                          f"'{typo}' looks like a misspelling") as err:
        load_arch(path)
    assert err.value.line == first + 1


@pytest.mark.parametrize(("typo", "meant"), [("eyeriz", "eyeriss"), ("Eyeriss", "eyeriss"),
                                             ("simbaa", "simba"), ("systollic", "systolic"),
                                             ("egde", "edge")])
def test_a_misspelt_bundled_name_suggests_the_bundled_spec(typo, meant):
    with pytest.raises(HwcostError, match=f"did you mean {meant}\\?$"):
        load_arch(typo)


def test_an_unrelated_name_gets_no_suggestion():
    with pytest.raises(HwcostError) as err:
        load_arch("tpu")
    assert "did you mean" not in str(err.value)

