"""The estimator registry: plug-ins registered through the public API price storage levels
and compute units of a spec; clashes, unknown classes and backends are clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import HwcostError
from hwmodel.energy import build_energy_table
from hwmodel.estimators import (
    ESTIMATORS,
    Estimator,
    NoEstimate,
    multiplier_energy,
    register_estimator,
    registered_estimators,
    unregister_estimator,
)
from hwmodel.spec import load_arch
from multiplier_lib import generate

#: A three-level spec whose buffer and MAC are of classes no built-in estimator knows.
SPEC = """\
architecture:
  version: 0.4
  nodes:
  - !Container
    name: System
    attributes: {technology: "45nm"}
  - !Component
    name: MainMemory
    class: DRAM
    attributes: {type: "LPDDR4", width: 64, datawidth: 8}
  - !Component
    name: Crystal
    class: crystal_ram
    attributes: {depth: 512, width: 32, datawidth: 8, facets: 6}
  - !Container
    name: PE
    spatial: {meshX: 4}
  - !Component
    name: QMAC
    class: quantum_mac
    attributes: {datawidth: 8, qubits: 3}
"""


class CrystalRAM(Estimator):
    """Test-only storage: 1 pJ per facet and row, writes twice a read."""

    name = "test-crystal-ram"
    accuracy = "made up for the tests"
    classes = ("crystal_ram",)
    actions = ("read", "write", "update")

    def __init__(self):
        self.asked: list[tuple[str, str, float, dict[str, Any]]] = []

    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        self.asked.append((component_class, action, technology_nm, dict(attributes)))
        if action not in self.actions:
            return None
        facets = float(attributes["facets"])
        return facets * (1.0 if action == "read" else 2.0)


class QuantumMAC(Estimator):
    """Test-only compute unit: 0.5 pJ per qubit to multiply, 0.25 pJ to add."""

    name = "test-quantum-mac"
    accuracy = "made up for the tests"
    classes = ("quantum_mac",)
    actions = ("mac", "multiply", "add")

    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        mul, add = 0.5 * attributes["qubits"], 0.25
        return {"mac": mul + add, "multiply": mul, "add": add}.get(action)


class WholeMAC(QuantumMAC):
    """Test-only compute unit priced as a whole MAC, without a multiply/add split."""

    name = "test-whole-mac"

    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        return 1.75 if action == "mac" else None


@pytest.fixture
def spec(tmp_path: Path):
    path = tmp_path / "arch.yaml"
    path.write_text(SPEC)
    return load_arch(path)


@pytest.fixture
def plugins():
    """Register the test plug-ins through the public API; unregister them afterwards."""
    made = [register_estimator(CrystalRAM()), register_estimator(QuantumMAC)]
    try:
        yield made
    finally:
        for est in made:
            unregister_estimator(est.name)


def test_a_plugin_prices_a_specs_storage_level_and_compute_unit(spec, plugins):
    crystal, qmac = plugins
    assert isinstance(qmac, QuantumMAC)             # a class is registered as an instance
    table = build_energy_table(spec)
    # per word = per row / block size (32-bit rows of 8-bit words)
    assert table.per_word("Crystal", "read") == pytest.approx(6.0 / 4)
    assert table.per_word("Crystal", "write") == pytest.approx(12.0 / 4)
    assert table.per_word("Crystal", "update") == pytest.approx(12.0 / 4)
    assert table.source("Crystal", "read") == "test-crystal-ram"
    assert "leak" not in table["Crystal"]
    cls, _action, nm, attrs = crystal.asked[0]
    assert (cls, nm, attrs["depth"], attrs["width"], attrs["facets"]) == (
        "crystal_ram", 45.0, 512, 32, 6)
    assert (table.mac(), table.multiply(), table.add()) == pytest.approx((1.75, 1.5, 0.25))
    assert table.source("QMAC", "multiply") == "test-quantum-mac"
    assert table.exact_compute == table["QMAC"]
    # the built-in estimators still price the DRAM
    assert table.source("MainMemory", "read") == "hwcost-dram"


def test_an_approximate_multiplier_scales_a_plugins_multiply_share(spec, plugins):
    mult = generate("trunc8u_k6c")
    rel = multiplier_energy(mult).rel_exact
    table = build_energy_table(spec, mult)
    assert table.multiply() == pytest.approx(1.5 * rel)
    assert table.add() == pytest.approx(0.25)
    assert table.mac() == pytest.approx(1.5 * rel + 0.25)
    assert "trunc8u_k6c" in table.source("QMAC", "multiply")
    assert table.exact_compute["multiply"].energy_pj == pytest.approx(1.5)


def test_an_ert_mac_is_split_by_the_plugins_exact_split(spec, plugins, tmp_path):
    ert = tmp_path / "ERT.yaml"
    ert.write_text("ERT:\n  version: 0.3\n  tables:\n  - name: System.PE[0..3].QMAC\n"
                   "    actions:\n    - name: mac_random\n      arguments: null\n"
                   "      energy: 3.5\n")
    mult = generate("trunc8u_k6c")
    rel = multiplier_energy(mult).rel_exact
    table = build_energy_table(spec, mult, ert=ert)
    share = 1.5 / 1.75
    assert table.multiply() == pytest.approx(3.5 * share * rel)
    assert table.add() == pytest.approx(3.5 * (1 - share))
    assert "test-quantum-mac's exact split" in table.source("QMAC", "multiply")


def test_unknown_classes_are_still_one_clear_error(spec):
    with pytest.raises(HwcostError, match="storage level Crystal: no energy estimator handles "
                                          "component class 'crystal_ram'") as info:
        build_energy_table(spec)
    assert str(info.value).startswith(f"{spec.source}:")
    assert "\n" not in str(info.value)
    spec.levels[1].component_class = "SRAM"              # the buffer priced, the MAC not
    with pytest.raises(HwcostError, match=r"compute unit QMAC: no energy estimator handles "
                                          r"class 'quantum_mac'.*give an ERT"):
        build_energy_table(spec)


def test_registered_classes_join_the_known_classes_of_the_error(spec, plugins):
    spec.levels[1].component_class = "edram_macro"
    with pytest.raises(HwcostError, match=r"known classes: .*crystal_ram"):
        build_energy_table(spec)


def test_a_clashing_name_is_a_clear_error(plugins):
    class Impostor(CrystalRAM):
        pass

    with pytest.raises(HwcostError, match=r"an estimator named 'test-crystal-ram' is already "
                                          r"registered.*unregister it first"):
        register_estimator(Impostor())
    with pytest.raises(HwcostError, match="'hwcost-sram' is already registered"):
        register_estimator(type("SRAMAgain", (CrystalRAM,), {"name": "hwcost-sram"})())
    assert [e.name for e in registered_estimators()].count("test-crystal-ram") == 1


@pytest.mark.parametrize("bad,match", [
    (object(), "must be an hwmodel.estimators.Estimator"),
    (type("NoClasses", (CrystalRAM,), {"name": "t-none", "classes": ()})(), "'classes'"),
    (type("NoActions", (CrystalRAM,), {"name": "t-act", "actions": ("glow",)})(),
     "neither storage actions"),
])
def test_what_is_not_a_plugin_is_refused(bad, match):
    with pytest.raises(HwcostError, match=match):
        register_estimator(bad)
    assert all(e.name not in ("t-none", "t-act") for e in registered_estimators())


def test_unregistering_an_unknown_name_is_a_clear_error():
    with pytest.raises(HwcostError, match="no estimator named 'nope' is registered"):
        unregister_estimator("nope")


def test_first_takes_a_class_over_from_the_builtin_estimators():
    arch = load_arch("eyeriss")            # its DRAM: class DRAM

    class CheapDRAM(CrystalRAM):
        name = "test-cheap-dram"
        classes = ("DRAM",)

        def estimate(self, component_class, attributes, action, technology_nm):
            return 1.0 if action in self.actions else None

    register_estimator(CheapDRAM())
    try:       # appended: the built-in DRAM estimator is still asked first
        assert build_energy_table(arch).source("DRAM", "read") == "hwcost-dram"
    finally:
        unregister_estimator("test-cheap-dram")
    register_estimator(CheapDRAM(), first=True)
    try:
        table = build_energy_table(arch)
        assert table.source("DRAM", "read") == "test-cheap-dram"
        assert table.per_vector("DRAM", "read") == pytest.approx(1.0)
    finally:
        unregister_estimator("test-cheap-dram")
    assert [e.name for e in registered_estimators()] == [e.name for e in ESTIMATORS]


def test_a_backend_asks_its_own_estimators_first_and_passes_on_what_they_decline(spec):
    class Declining(CrystalRAM):
        name = "test-declining"
        classes = ("crystal_ram", "DRAM")

        def estimate(self, component_class, attributes, action, technology_nm):
            if component_class == "DRAM":
                raise NoEstimate("DRAM", "the test library has no DRAM",
                                 "no test model for DRAM")
            return 100.0

    register_estimator(Declining(), "Test-Backend")           # backend names: any case
    register_estimator(QuantumMAC())
    try:
        assert [e.name for e in registered_estimators("test-backend")][:1] == ["test-declining"]
        table = build_energy_table(spec, backend="test-backend")
        assert table.backend == "test-backend"
        assert table.source("Crystal", "read") == "test-declining"
        assert table.source("MainMemory", "read") == "hwcost-dram (no test model for DRAM)"
        assert table.notes == ["MainMemory: the test library has no DRAM (class DRAM); "
                               "built-in estimator used"]
        with pytest.raises(HwcostError, match="crystal_ram"):    # builtin: not asked
            build_energy_table(spec)
    finally:
        unregister_estimator("test-declining")
        unregister_estimator("test-quantum-mac")


def test_a_whole_mac_cannot_take_a_multiplier(spec, plugins):
    unregister_estimator("test-quantum-mac")
    register_estimator(WholeMAC())
    try:
        table = build_energy_table(spec)
        assert (table.mac(), table.multiply(), table.add()) == (1.75, 1.75, 0.0)
        assert table.source("QMAC", "add") == "test-whole-mac, not split"
        with pytest.raises(HwcostError, match=r"compute unit QMAC: estimator test-whole-mac "
                                              r"does not split .* trunc8u_k6c cannot"):
            build_energy_table(spec, generate("trunc8u_k6c"))
    finally:
        unregister_estimator("test-whole-mac")
        register_estimator(plugins[1])


def test_the_accelergy_estimators_are_registered_under_their_backend():
    from hwmodel import accelergy_estimators as acc

    names = [e.name for e in registered_estimators("accelergy")]
    assert names[:2] == [acc.STORAGE_ESTIMATOR.name, acc.COMPUTE_ESTIMATOR.name]
    assert names[2:] == [e.name for e in registered_estimators()]   # then the built-in ones
    assert acc.STORAGE_ESTIMATOR not in registered_estimators()
    with pytest.raises(HwcostError, match="already registered"):
        register_estimator(acc.HwcomponentsStorage())
