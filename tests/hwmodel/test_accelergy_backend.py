"""``--estimators accelergy``: component energies from hwcomponents (Accelergy's own models).

The tests that price through hwcomponents need the ``[accelergy]`` extra (Python >= 3.12,
CACTI rebuilt: ``python -m hwmodel.accelergy_estimators build-cacti``) and skip with that
reason elsewhere; CI runs them in a second virtual environment.  Their expectations are
hwcomponents' own answers, asked for directly here with the documented class mapping.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import pytest

from core.errors import HwcostError
from hwmodel import accelergy_estimators as acc
from hwmodel.energy import build_energy_table, write_energy_ert
from hwmodel.ert import load_ert_tables
from hwmodel.estimators import multiplier_energy
from hwmodel.float_formats import float_variant
from hwmodel.spec import list_bundled, load_arch
from multiplier_lib import generate

ROOT = Path(__file__).resolve().parents[2]
HAVE_HWC = acc.available()
needs_hwc = pytest.mark.skipif(
    not HAVE_HWC, reason="hwcomponents is not importable here: the [accelergy] extra needs "
                         "Python >= 3.12 (pip install -e '.[accelergy]'); CI runs these in its "
                         "second venv")

ARCHS = sorted([f"arch_specs/{n}.yaml" for n in list_bundled()]
               + [str(Path(p).relative_to(ROOT)) for p in
                  glob.glob(str(ROOT / "tests/hwmodel/timeloop_ref/*/arch.yaml"))
                  + glob.glob(str(ROOT / "tests/hwmodel/timeloop_designs/*/arch.yaml"))])

#: The documented mapping (hwmodel.accelergy_estimators), restated independently here.
EXPECTED_NAME = {"sram": "SRAM", "smartbuffer_sram": "SmartBufferSRAM",
                 "smartbuffer_rf": "SmartBufferSRAM", "regfile": "SmartBufferSRAM",
                 "storage": "SmartBufferSRAM", "reg": "Register", "intmac": "IntMAC"}


def test_unknown_backend_is_one_line():
    with pytest.raises(HwcostError, match="unknown estimators 'cacti'"):
        build_energy_table(load_arch("eyeriss"), backend="cacti")


@pytest.mark.skipif(HAVE_HWC, reason="hwcomponents is installed here")
def test_without_hwcomponents_the_error_says_how_to_install():
    with pytest.raises(HwcostError) as info:
        build_energy_table(load_arch("eyeriss"), backend="accelergy")
    msg = str(info.value)
    assert "\n" not in msg and "pip install -e '.[accelergy]'" in msg and "3.12" in msg


# --- with hwcomponents ------------------------------------------------------------------------


def _hwc_pj(name: str, attrs: dict[str, Any], action: str, args: dict | None = None) -> float:
    import hwcomponents

    return hwcomponents.get_action_cost(name, attrs, action, args or {}).energy * 1e12


def _tech_m(arch, comp) -> float:
    text = str(comp.technology or arch.technology)
    return float(text.removesuffix("nm")) * 1e-9


def _expected_storage(arch, lv) -> tuple[float, float]:
    cls = lv.component_class.lower()
    if "dram" in cls:
        kind = lv.attributes.get("type") or "LPDDR4"
        return (_hwc_pj(kind, {}, "read", {"bits_per_action": lv.width}),
                _hwc_pj(kind, {}, "write", {"bits_per_action": lv.width}))
    name = EXPECTED_NAME[cls]
    if name == "Register":
        q = {"tech_node": _tech_m(arch, lv), "width": lv.width}
    else:
        q = {"tech_node": _tech_m(arch, lv), "width": lv.width, "depth": lv.depth,
             "size": lv.width * lv.depth}
        if lv.n_banks:
            q["n_banks"] = lv.n_banks
    return _hwc_pj(name, q, "read"), _hwc_pj(name, q, "write")


@needs_hwc
@pytest.mark.parametrize("path", ARCHS)
def test_energies_equal_hwcomponents_own_answers(path):
    arch = load_arch(ROOT / path)
    table = build_energy_table(arch, backend="accelergy")
    assert table.backend == "accelergy" and not table.notes
    for lv in arch.levels:
        read, write = _expected_storage(arch, lv)
        assert table.per_vector(lv.name, "read") == pytest.approx(read, rel=1e-12)
        assert table.per_vector(lv.name, "write") == pytest.approx(write, rel=1e-12)
        assert table.per_vector(lv.name, "update") == pytest.approx(write, rel=1e-12)
        assert table.source(lv.name, "read").startswith("hwcomponents:")
        assert table.leak_per_cycle(lv.name) >= 0.0
    cu = arch.compute
    mw = int(cu.attributes.get("multiplier_width", cu.datawidth))
    aw = int(cu.attributes.get("adder_width", 2 * mw + 8))
    mac = _hwc_pj("IntMAC", {"tech_node": _tech_m(arch, cu), "multiplier_width": mw,
                             "adder_width": aw}, "mac")
    assert table.mac() == pytest.approx(mac, rel=1e-12)
    assert table.add() == pytest.approx(
        _hwc_pj("IntAdder", {"tech_node": _tech_m(arch, cu), "width": aw}, "add"), rel=1e-9)
    assert table.multiply() + table.add() == pytest.approx(mac, rel=1e-12)


@needs_hwc
def test_leak_is_leak_power_times_cycle():
    import hwcomponents

    arch = load_arch("eyeriss")
    table = build_energy_table(arch, backend="accelergy")
    glb = arch.level("shared_glb")
    model = hwcomponents.get_model("SmartBufferSRAM", {
        "tech_node": 45e-9, "width": glb.width, "depth": glb.depth,
        "size": glb.width * glb.depth, "n_banks": glb.n_banks})
    assert table.leak_per_cycle("shared_glb") == pytest.approx(model.leak_power * 1e-9 * 1e12)
    assert table.leak_per_cycle("shared_glb") > 0


@needs_hwc
@pytest.mark.parametrize("path", ["arch_specs/eyeriss.yaml", "arch_specs/simba.yaml",
                                  "tests/hwmodel/timeloop_designs/eyeriss_like/arch.yaml",
                                  "tests/hwmodel/timeloop_ref/04_kp/arch.yaml"])
def test_written_ert_reads_back_equal(tmp_path, path):
    arch = load_arch(ROOT / path)
    table = build_energy_table(arch, backend="accelergy")
    out = write_energy_ert(tmp_path / "ERT.yaml", arch, table)
    assert "hwcomponents packages" in out.read_text().splitlines()[1]
    names = {t.name for t in load_ert_tables(out)}
    assert all(n.startswith("system_top_level.") for n in names)
    back = build_energy_table(arch, ert=out)
    for comp, actions in table.entries.items():
        for action, ae in actions.items():
            assert back.energy(comp, action) == pytest.approx(ae.energy_pj, rel=1e-9), \
                (comp, action)
            assert back.source(comp, action).startswith("ERT:ERT.yaml")


@needs_hwc
def test_approximate_multiplier_scales_hwcomponents_multiply(tmp_path):
    arch = load_arch("eyeriss")
    mult = generate("trunc8u_k6c")
    rel = multiplier_energy(mult).rel_exact
    exact = build_energy_table(arch, backend="accelergy")
    approx = build_energy_table(arch, mult, backend="accelergy")
    assert approx.multiply() == pytest.approx(exact.multiply() * rel)
    assert approx.add() == pytest.approx(exact.add())
    assert "hwcomponents:AladdinIntMAC" in approx.source("mac", "multiply")
    assert "trunc8u_k6c" in approx.source("mac", "multiply")
    # the written ERT holds the exact MAC; reading it back with the multiplier applies it once
    out = write_energy_ert(tmp_path / "ERT.yaml", arch, approx)
    back = build_energy_table(arch, mult, ert=out)
    assert back.multiply() == pytest.approx(approx.multiply(), rel=1e-9)
    assert back.mac() == pytest.approx(approx.mac(), rel=1e-9)


@needs_hwc
def test_classes_hwcomponents_lacks_fall_back_with_provenance():
    arch = float_variant(load_arch("eyeriss"), "fp32")
    table = build_energy_table(arch, backend="accelergy")
    assert "no hwcomponents model" in table.source("mac", "mac")
    assert table.source("mac", "mac").startswith("hwcost-mac")
    assert any("fpmac" in n for n in table.notes)
    assert table.source("shared_glb", "read").startswith("hwcomponents:")
    arch = load_arch("eyeriss")
    arch.level("DRAM").attributes["type"] = "GDDR5"
    table = build_energy_table(arch, backend="accelergy")
    assert "no hwcomponents model for GDDR5" in table.source("DRAM", "read")


@needs_hwc
def test_a_model_that_refuses_is_one_located_line():
    arch = load_arch("eyeriss")
    arch.level("DRAM").attributes["type"] = "HBM2"   # fine: bits_per_action scales the access
    assert build_energy_table(arch, backend="accelergy").per_vector("DRAM", "read") == \
        pytest.approx(6.25 * arch.level("DRAM").width)
    arch.compute.attributes["multiplier_width"] = 0
    with pytest.raises(HwcostError) as info:
        build_energy_table(arch, backend="accelergy")
    assert "multiplier_width" in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(arch.source))


@needs_hwc
def test_cacti_runs_after_the_rebuild():
    ok, why = acc.cacti_runs()
    assert ok, why


@needs_hwc
def test_costing_prices_with_hwcomponents_and_writes_its_ert(tmp_path):
    from hwmodel.costing import CostContext, price, write_context_ert
    from hwmodel.workload import Layer

    arch = load_arch("eyeriss")
    layers = [Layer("conv", "conv", C=16, M=16, P=8, Q=8, R=3, S=3),
              Layer("pool", "pool", C=16, M=16, P=4, Q=4, R=2, S=2, stride=(2, 2))]
    ert = tmp_path / "used.ERT.yaml"
    context = CostContext(arch, estimators="accelergy", effort="fast")
    result = price(layers, generate("trunc8u_k6c"), context)
    write_context_ert(ert, context)
    assert result.estimators == "accelergy"
    assert result.energy_sources["shared_glb"]["read"]["source"].startswith("hwcomponents:")
    assert "trunc8u_k6c" in result.energy_sources["mac"]["multiply"]["source"]
    assert ert.exists()
    # the same mapping priced from the written ERT gives the same memory energy
    again = price(layers, generate("trunc8u_k6c"), CostContext(arch, ert=ert, effort="fast"))
    assert again.total("energy_pj") == pytest.approx(result.total("energy_pj"), rel=1e-6)
    fl = price(layers[:1], "fp16", context)
    assert fl.energy_sources["mac"]["mac"]["source"].startswith("hwcost-mac")
    assert fl.energy_sources["shared_glb"]["read"]["source"].startswith("hwcomponents:")


@needs_hwc
def test_checked_in_table_is_what_hwcomponents_answers_now():
    """A sample of the reference table's rows, asked again (same queries as the backend);
    with other package versions the table needs regenerating, which is said, not failed."""
    import json
    from importlib import resources

    from hwmodel.arch import StorageLevel

    table = json.loads(resources.files("hwmodel").joinpath(
        "data/accelergy_reference.json").read_text())
    if table["provenance"]["packages"] != acc.package_versions():
        pytest.skip(f"table made with {table['provenance']['packages']}, installed "
                    f"{acc.package_versions()}: rerun benchmarks/accelergy_table.py")
    rows = table["rows"][::37]
    assert len(rows) >= 15
    for row in rows:
        cls, attrs, nm = row["component"], row["attributes"], row["technology_nm"]
        if cls in ("intmac", "intmultiplier", "intadder"):
            parts = acc.compute_parts(cls, dict(attrs), nm, int(attrs.get("multiplier_width", 8)))
            got = {"mac": parts.mac.energy_pj, "multiply": parts.multiply_pj,
                   "add": parts.add_pj}.get(row["action"], parts.mac.energy_pj)
        else:
            lv = StorageLevel("x", cls, dict(attrs), attrs.get("depth"), attrs["width"], 8,
                              n_banks=attrs.get("n_banks", 1))
            got = acc.storage_actions(lv, dict(attrs), nm).actions[row["action"]][0]
        assert got == pytest.approx(row["energy_pj"], rel=1e-9), row
