"""Energy table: built-in estimators against their published anchors, multipliers, ERTs."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from hwmodel.arch import Architecture, ComputeUnit, StorageLevel
from hwmodel.energy import (
    COMPUTE_ACTIONS,
    ESTIMATORS,
    STORAGE_ACTIONS,
    DRAMEstimator,
    MACEstimator,
    RegfileEstimator,
    SRAMEstimator,
    build_energy_table,
    describe_estimators,
    load_ert,
    parse_technology,
    technology_scale,
)
from hwmodel.estimators import (
    ADDER_PJ_PER_BIT,
    DRAM_PJ_PER_BIT,
    NOMINAL_VOLTAGE,
    MULTIPLIER_PJ_8x8,
)
from multiplier_lib import HwcostError, Multiplier, characterize, exact_lut, generate

SRAM = SRAMEstimator()
RF = RegfileEstimator()
DRAM = DRAMEstimator()


def sram(depth: int, width: int, banks: int = 1, nm: float = 45,
         cls: str = "SRAM") -> float:
    e = SRAM.estimate(cls, {"depth": depth, "width": width, "n_banks": banks}, "read", nm)
    assert e is not None
    return e


def regfile(depth: int, width: int = 16, nm: float = 45) -> float:
    e = RF.estimate("regfile", {"depth": depth, "width": width}, "read", nm)
    assert e is not None
    return e


def eyeriss_like(compute_class: str = "intmac", datawidth: int = 8,
                 technology: str = "45nm") -> Architecture:
    """A small Eyeriss-like hierarchy built directly from the model objects."""
    levels = [
        StorageLevel("DRAM", "DRAM", {"type": "LPDDR4"}, None, 64, datawidth),
        StorageLevel("shared_glb", "smartbuffer_SRAM", {}, 16384, 64, datawidth, n_banks=32),
        StorageLevel("DummyBuffer[0..13]", "regfile", {}, 16, datawidth, datawidth),
        StorageLevel("weights_spad", "storage", {"subclass": "smartbuffer_RF"}, 192,
                     datawidth, datawidth),
        StorageLevel("psum_spad", "smartbuffer_RF", {}, 16, 2 * datawidth, 2 * datawidth),
    ]
    return Architecture("tiny", levels, ComputeUnit("mac", compute_class, {}, 168, datawidth),
                        technology=technology)


# ------------------------------------------------------------------------------------ DRAM


@pytest.mark.parametrize("kind", sorted(DRAM_PJ_PER_BIT))
@pytest.mark.parametrize("datawidth", [8, 16])
def test_dram_per_word_is_pj_per_bit_times_bits(kind, datawidth):
    arch = eyeriss_like(datawidth=datawidth)
    arch.levels[0].attributes["type"] = kind
    table = build_energy_table(arch)
    for action in STORAGE_ACTIONS:
        assert table.per_word("DRAM", action) == pytest.approx(
            DRAM_PJ_PER_BIT[kind] * datawidth)
        assert table.source("DRAM", action) == DRAM.name


def test_dram_matches_timeloop_eyeriss_vector_access():
    # Timeloop's Eyeriss-like example: LPDDR4, 64-bit rows -> 512 pJ per access.
    assert DRAM.estimate("DRAM", {"width": 64}, "read", 45) == pytest.approx(512.0)


def test_unknown_dram_type_is_an_error():
    with pytest.raises(HwcostError, match="DRAM type 'SDR'"):
        DRAM.estimate("DRAM", {"type": "SDR", "width": 64}, "read", 45)


# ---------------------------------------------------------------------------- SRAM and RF


def test_sram_grows_with_depth_and_width():
    assert sram(256, 64) < sram(1024, 64) < sram(4096, 64) < sram(16384, 64)
    assert sram(1024, 16) < sram(1024, 32) < sram(1024, 64) < sram(1024, 128)


def test_sram_per_word_shrinks_with_block_size():
    # Same 64 KB of 16-bit words, organised with 1, 4 and 8 words per row.
    bits = 64 * 1024 * 8
    per_word = [sram(bits // (16 * b), 16 * b) / b for b in (1, 4, 8)]
    assert per_word[0] > per_word[1] > per_word[2]


# hwcomponents 1.0.114 (CACTI through hwcomponents-cacti 1.0.40) at 45 nm, pJ per 64-bit read;
# every row of the reference table is checked in tests/hwmodel/test_estimator_fidelity.py.
@pytest.mark.parametrize("depth,banks,hwc", [(1024, 1, 6.137), (4096, 1, 17.04),
                                             (16384, 32, 27.79), (65536, 4, 65.81)])
def test_sram_fit_lands_on_hwcomponents_cacti(depth, banks, hwc):
    assert sram(depth, 64, banks) == pytest.approx(hwc, rel=0.25)


def test_smart_buffer_adds_its_address_generator():
    # two 14-bit registers and a 14-bit adder (Aladdin): 0.396 pJ at 45 nm, as hwcomponents
    extra = sram(16384, 64, 32, cls="smartbuffer_SRAM") - sram(16384, 64, 32)
    assert extra == pytest.approx(0.3959, rel=0.01)


# hwcomponents prices register files as SmartBufferSRAM (16-bit entries, 45 nm, pJ per read)
@pytest.mark.parametrize("depth,hwc", [(12, 0.2314), (16, 0.2611), (192, 0.8539)])
def test_regfile_fit_lands_on_hwcomponents(depth, hwc):
    assert regfile(depth) == pytest.approx(hwc, rel=0.25)


def test_rf_sram_dram_order_and_eyeriss_ratios():
    rf = regfile(224)                               # Eyeriss filter spad, 224 x 16 b
    glb = sram(108 * 1024 * 8 // 64, 64, 32) / 4    # 108 KB GLB, per 16-bit word
    dram = DRAM.estimate("DRAM", {"width": 16}, "read", 45)
    assert dram is not None
    assert regfile(16) < rf < glb < dram
    assert 0.2 <= regfile(16) <= 2.0 and 0.2 <= rf <= 2.0   # ~ the MAC energy unit
    assert 3 <= glb / rf <= 20                      # Eyeriss: 6x
    assert 50 <= dram / rf <= 500                   # Eyeriss: 200x


def test_storage_class_with_subclass_uses_the_subclass_estimator():
    table = build_energy_table(eyeriss_like(datawidth=16))
    assert table.source("weights_spad", "read") == RF.name
    assert table.per_word("weights_spad", "read") == pytest.approx(regfile(192), rel=1e-12)
    assert table.source("shared_glb", "read") == SRAM.name
    assert table.per_word("shared_glb", "read") == pytest.approx(
        sram(16384, 64, 32, cls="smartbuffer_SRAM") / 4)


# ------------------------------------------------------------------------------ technology


@pytest.mark.parametrize("text", ["45nm", "45 nm", 45, 45.0, "45", "45NM"])
def test_parse_technology_forms(text):
    assert parse_technology(text) == 45.0


@pytest.mark.parametrize("bad", ["33nm", "forty-five", "", None, True, "45um"])
def test_unknown_technology_is_an_error(bad):
    with pytest.raises(HwcostError, match="unknown technology"):
        parse_technology(bad)


def test_technology_scaling_is_monotone_with_45nm_identity():
    assert technology_scale(45) == 1.0
    assert technology_scale("65nm") > 1.0 > technology_scale("22nm")
    nodes = sorted(NOMINAL_VOLTAGE)
    factors = [technology_scale(n) for n in nodes]
    assert all(a < b for a, b in itertools.pairwise(factors))
    # SRAM follows CACTI's own figures at each of its nodes (the SRAM grid), not this factor;
    # between CACTI's nodes it is linear in the node, as hwcomponents-cacti interpolates
    e = [sram(1024, 64, nm=n) for n in (22, 32, 40, 45, 65, 90)]
    assert all(a < b for a, b in itertools.pairwise(e))
    assert e[2] == pytest.approx((5 * e[1] + 8 * e[3]) / 13)


def test_architecture_technology_scales_on_chip_but_not_dram():
    t45 = build_energy_table(eyeriss_like())
    t65 = build_energy_table(eyeriss_like(technology="65nm"))
    k = technology_scale(65)
    # the SRAM array is CACTI's 65 nm figure (the SRAM grid), its address generator scales by k
    assert t65.per_word("shared_glb", "read") == pytest.approx(
        sram(16384, 64, 32, nm=65, cls="smartbuffer_SRAM") / 8)
    assert t65.per_word("shared_glb", "read") > t45.per_word("shared_glb", "read")
    assert t65.mac() == pytest.approx(k * t45.mac())
    assert t65.per_word("DRAM", "read") == t45.per_word("DRAM", "read")


def test_unset_technology_minus_one_falls_back_to_the_architecture():
    arch = eyeriss_like(technology="65nm")
    arch.levels[1].technology = "-1nm"
    arch.levels[2].technology = "22nm"
    t = build_energy_table(arch)
    assert t.per_word("shared_glb", "read") == pytest.approx(
        sram(16384, 64, 32, nm=65, cls="smartbuffer_SRAM") / 8)
    assert t.per_word("DummyBuffer[0..13]", "read") == pytest.approx(regfile(16, 8, nm=22))


# ------------------------------------------------------------------------------ multipliers


def test_intmac_saving_is_the_characterized_multiplier_saving_on_the_accelergy_scale():
    exact, trunc = generate("exact8u"), generate("trunc8u_k8")
    e_exact = characterize(exact)["energy_pj"]
    e_trunc = characterize(trunc)["energy_pj"]
    t_exact = build_energy_table(eyeriss_like(), exact)
    t_trunc = build_energy_table(eyeriss_like(), trunc)
    assert e_trunc < e_exact
    # the gate-level ratio carries over to Accelergy's (Aladdin's) 8x8 multiplier energy
    assert t_trunc.multiply() / t_exact.multiply() == pytest.approx(e_trunc / e_exact, rel=1e-9)
    assert t_exact.multiply() == pytest.approx(MULTIPLIER_PJ_8x8)
    assert t_exact.mac() - t_trunc.mac() == pytest.approx(
        MULTIPLIER_PJ_8x8 * (1 - e_trunc / e_exact), rel=1e-9)
    assert t_trunc.add() == pytest.approx(t_exact.add())
    assert t_trunc.mac() == pytest.approx(t_trunc.multiply() + t_trunc.add())
    src = t_trunc.source("mac", "multiply")
    assert "multiplier_lib:trunc8u_k8 (gate-level estimate) / exact" in src


def test_default_multiplier_is_the_exact_one_and_adder_is_aladdin_linear():
    t = build_energy_table(eyeriss_like())
    assert t.multiply() == pytest.approx(MULTIPLIER_PJ_8x8)
    assert MULTIPLIER_PJ_8x8 == pytest.approx(0.912, rel=1e-3)   # hwcomponents' IntMAC
    assert t.add() == pytest.approx(ADDER_PJ_PER_BIT * (2 * 8 + 8))   # 24-bit accumulator
    arch = eyeriss_like()
    arch.compute.attributes["adder_width"] = 32
    assert build_energy_table(arch).add() == pytest.approx(0.2417, rel=1e-3)


def test_lut_only_multiplier_uses_its_published_power():
    lut_only = Multiplier("mul8u_NGR", 8, 8, False, exact_lut(8, 8, False),
                          published={"power_mw": 0.276})
    rel = 0.276 / characterize(generate("exact8u"))["energy_pj"]
    t = build_energy_table(eyeriss_like(), lut_only)
    assert t.multiply() == pytest.approx(MULTIPLIER_PJ_8x8 * rel)
    assert "multiplier_lib:mul8u_NGR (published power) / exact" in t.source("mac", "multiply")
    t65 = build_energy_table(eyeriss_like(technology="65nm"), lut_only)
    assert t65.multiply() == pytest.approx(MULTIPLIER_PJ_8x8 * rel * technology_scale(65))


def test_multiplier_without_netlist_or_power_is_an_error():
    bare = Multiplier("mystery8u", 8, 8, False, exact_lut(8, 8, False))
    with pytest.raises(HwcostError, match="mystery8u has neither a netlist nor published power"):
        build_energy_table(eyeriss_like(), bare)


def test_multiplier_wider_than_the_datapath_is_an_error():
    arch = eyeriss_like()
    arch.compute.datawidth = 4
    with pytest.raises(HwcostError, match="multiplier is 4 bits wide"):
        build_energy_table(arch, generate("exact8u"))


def test_fpmac_is_the_horowitz_fp32_baseline():
    t = build_energy_table(eyeriss_like(compute_class="fpmac", datawidth=32))
    assert t.multiply() == pytest.approx(3.7)
    assert t.add() == pytest.approx(0.9)
    assert t.mac() == pytest.approx(4.6)
    with pytest.raises(HwcostError, match="floating-point"):
        build_energy_table(eyeriss_like(compute_class="fpmac", datawidth=32),
                           generate("exact8u"))


def test_wide_integer_mac_follows_the_quadratic_law():
    m8 = MACEstimator().estimate("intmac", {"datawidth": 8}, "multiply", 45)
    m16 = MACEstimator().estimate("intmac", {"datawidth": 16}, "multiply", 45)
    assert m8 is not None and m16 is not None
    assert m16 == pytest.approx(4 * m8)


# -------------------------------------------------------------------------------------- ERT

ERT_V03 = """\
ERT:
  version: 0.3
  tables:
  - name: system.eyeriss.PE[0..167].weights_spad
    actions:
    - name: read
      arguments: null
      energy: 1.0
    - name: write
      arguments: null
      energy: 2.0
    - name: idle
      arguments: null
      energy: 0.01
  - name: system.eyeriss.shared_glb
    actions:
    - name: read
      arguments: null
      energy: 80.0
  - name: system.eyeriss.PE[0..167].mac
    actions:
    - name: mac_random
      arguments: null
      energy: 2.2
    - name: mac_reused
      arguments: null
      energy: 1.8
"""


def write(tmp_path: Path, text: str, name: str = "ERT.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_ert_v03(tmp_path):
    ert = load_ert(write(tmp_path, ERT_V03))
    assert ert["system.eyeriss.shared_glb"] == {"read": 80.0}
    assert ert["system.eyeriss.PE[0..167].mac"]["mac_random"] == 2.2


def test_load_ert_v04_takes_the_random_data_case(tmp_path):
    text = """\
ERT:
  tables:
    eyeriss_like.PE.ifmap_spad:
      read:
      - arguments: {address_delta: 0, data_delta: 0}
        energy: 0.138
      - arguments: {address_delta: 1, data_delta: 1}
        energy: 0.684
      idle:
        arguments: null
        energy: 0.028
"""
    ert = load_ert(write(tmp_path, text))
    assert ert == {"eyeriss_like.PE.ifmap_spad": {"read": 0.684, "idle": 0.028}}


def test_ert_overrides_matching_components(tmp_path):
    path = write(tmp_path, ERT_V03)
    arch = eyeriss_like(datawidth=16)
    builtin = build_energy_table(arch)
    t = build_energy_table(arch, ert=path)
    # per word = per access / block_size (1 for the spad, 4 for the GLB)
    assert t.per_word("weights_spad", "read") == pytest.approx(1.0)
    assert t.per_word("weights_spad", "write") == pytest.approx(2.0)
    assert t.per_word("weights_spad", "update") == pytest.approx(2.0)   # update <- write
    assert t.source("weights_spad", "read") == "ERT:ERT.yaml"
    assert t.source("weights_spad", "update") == "ERT:ERT.yaml (write)"
    assert t.per_word("shared_glb", "read") == pytest.approx(20.0)
    assert t.source("shared_glb", "read") == "ERT:ERT.yaml"
    # the GLB's missing write falls back to the estimator, and so does everything unnamed
    assert t.source("shared_glb", "write") == SRAM.name
    assert t.per_word("DRAM", "read") == builtin.per_word("DRAM", "read")
    assert t.source("DRAM", "read") == DRAM.name
    assert t.mac() == pytest.approx(2.2)
    assert t.source("mac", "mac").startswith("ERT:ERT.yaml (mac_random)")
    assert t.multiply() + t.add() == pytest.approx(2.2)
    share = builtin.multiply() / builtin.mac()
    assert t.multiply() == pytest.approx(2.2 * share)
    assert "ERT:ERT.yaml" in t.source("mac", "multiply")


def test_ert_mac_with_approximate_multiplier_scales_the_multiply_share(tmp_path):
    path = write(tmp_path, ERT_V03)
    trunc = generate("trunc8u_k8")
    rel = characterize(trunc)["energy_rel_exact"]
    exact_t = build_energy_table(eyeriss_like(), ert=path)
    t = build_energy_table(eyeriss_like(), trunc, ert=path)
    assert t.add() == pytest.approx(exact_t.add())
    assert t.multiply() == pytest.approx(exact_t.multiply() * rel)
    assert t.mac() < 2.2
    assert "ERT:ERT.yaml" in t.source("mac", "mac")
    assert "multiplier_lib:trunc8u_k8 (gate-level estimate)" in t.source("mac", "multiply")


def test_ert_with_unknown_class_covers_the_component(tmp_path):
    # An ERT may price classes hwcost has no estimator for.
    text = ERT_V03.replace("shared_glb", "glb_mystery")
    arch = eyeriss_like()
    arch.levels[1] = StorageLevel("glb_mystery", "edram_macro", {}, 1024, 64, 8)
    with pytest.raises(HwcostError, match="no energy estimator handles"):
        build_energy_table(arch)
    text = text.replace("      energy: 80.0", "      energy: 80.0\n    - name: write\n"
                        "      arguments: null\n      energy: 90.0")
    t = build_energy_table(arch, ert=write(tmp_path, text))
    assert t.per_word("glb_mystery", "update") == pytest.approx(90.0 / 8)


@pytest.mark.parametrize("text,line,match", [
    ("ERT:\n  version: 0.3\n  stuff: []\n", 2, "missing 'tables'"),
    (ERT_V03.replace("energy: 80.0", "energy: lots"), 19, "must be a number"),
    (ERT_V03.replace("energy: 2.2", "energy: [2.2]"), 24, "must be a number"),
    (ERT_V03.replace("    - name: mac_reused\n", "    - nam: mac_reused\n"), 25,
     "needs a 'name'"),
    ("ERT:\n  tables:\n  - name: a\n    actions: [\n", 5, "YAML syntax error"),
])
def test_malformed_ert_errors_name_file_and_line(tmp_path, text, line, match):
    path = write(tmp_path, text, "bad.yaml")
    with pytest.raises(HwcostError, match=match) as info:
        load_ert(path)
    assert info.value.file == str(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_missing_ert_file_is_an_error(tmp_path):
    with pytest.raises(HwcostError, match="cannot read ERT"):
        build_energy_table(eyeriss_like(), ert=tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- whole table


def test_table_covers_every_level_and_the_compute_unit():
    arch = eyeriss_like(datawidth=16)
    t = build_energy_table(arch, generate("drum8u_k4"))
    assert t.components == [*arch.names, "mac"]
    for name in arch.names:
        for action in STORAGE_ACTIONS:
            assert t.per_word(name, action) > 0 and t.source(name, action)
    for action in COMPUTE_ACTIONS:
        e, src = t["mac"][action]
        assert e > 0 and src
    assert t.multiplier == "drum8u_k4"
    rows = t.rows()
    assert len(rows) == 3 * len(arch.levels) + 3
    assert all(isinstance(r["energy_pj"], float) for r in rows)
    with pytest.raises(HwcostError, match="no action 'leak'"):
        t.energy("DRAM", "leak")


def test_eyeriss_per_word_energies_land_near_hwcomponents():
    # hwcomponents 1.0.114 for the Eyeriss-like levels (45 nm, 16-bit words), pJ per word
    # read: DRAM 128, GLB (SmartBufferSRAM 16384 x 64, 32 banks) 28.19 / 4, weights spad
    # (192 x 16) 0.854, psum spad (16 x 16) 0.261; IntMAC 16 x 16 + 40-bit adder 3.95 pJ.
    levels = [
        StorageLevel("DRAM", "DRAM", {"type": "LPDDR4"}, None, 64, 16),
        StorageLevel("shared_glb", "smartbuffer_SRAM", {}, 16384, 64, 16, n_banks=32),
        StorageLevel("weights_spad", "smartbuffer_RF", {}, 192, 16, 16),
        StorageLevel("psum_spad", "smartbuffer_RF", {}, 16, 16, 16),
    ]
    t = build_energy_table(Architecture("e", levels, ComputeUnit("mac", "intmac", {}, 168, 16)))
    expected = {"DRAM": 128.0, "shared_glb": 28.188 / 4, "weights_spad": 0.854,
                "psum_spad": 0.261}
    for name, pj in expected.items():
        assert t.per_word(name, "read") == pytest.approx(pj, rel=0.25), name
    assert t.mac() == pytest.approx(3.950, rel=0.02)


def test_describe_estimators():
    rows = describe_estimators()
    assert [r["name"] for r in rows] == [e.name for e in ESTIMATORS]
    for r in rows:
        assert r["classes"] and r["actions"] and r["accuracy"]
    by_name = {r["name"]: r for r in rows}
    assert "DRAM" in by_name[DRAM.name]["classes"]
    assert "intmac" in by_name[MACEstimator.name]["classes"]
    assert not math.isnan(technology_scale(7))


def test_written_ert_reads_back_equal_with_an_approximate_multiplier(tmp_path):
    from hwmodel.energy import write_energy_ert
    from hwmodel.ert import load_ert_tables

    arch = eyeriss_like(datawidth=16)
    mult = generate("trunc8u_k6c")
    table = build_energy_table(arch, mult)
    out = write_energy_ert(tmp_path / "ERT.yaml", arch, table)
    assert out.read_text().startswith("# Accelergy ERT written by hwcost")
    mac = next(t for t in load_ert_tables(out) if t.name.endswith("mac[1..168]"))
    # the ERT holds the exact MAC (an approximate multiplier is applied when it is read)
    assert mac.actions["compute"] == pytest.approx(build_energy_table(arch).mac())
    back = build_energy_table(arch, mult, ert=out)
    for comp, actions in table.entries.items():
        for action, ae in actions.items():
            assert back.energy(comp, action) == pytest.approx(ae.energy_pj, rel=1e-9)


def test_writing_an_ert_where_it_cannot_be_written_is_one_line(tmp_path):
    from hwmodel.energy import write_energy_ert

    arch = eyeriss_like()
    (tmp_path / "dir").mkdir()
    with pytest.raises(HwcostError, match=r"cannot write the ERT|is a folder, not a regular file"):
        write_energy_ert(tmp_path / "dir", arch, build_energy_table(arch))
