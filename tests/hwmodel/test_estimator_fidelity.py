"""The built-in estimators against Accelergy's own models (hwcomponents), row by row.

The references are checked-in tables that ``benchmarks/accelergy_table.py`` generated with
hwcomponents (Python 3.12); these tests run on any Python, without hwcomponents:

* ``hwmodel/data/accelergy_reference.json``: the issue's table (SRAM and smart-buffer depths,
  widths and banks, register files, registers, DRAM types, integer MACs of 4-32 bits).
* ``hwmodel/data/accelergy_heldout.json``: SRAM rows at sizes whose CACTI array is *not* a
  point of the grid the built-in SRAM estimator interpolates
  (``hwmodel/data/cacti_sram_grid.json``): depths off and between the grid's, widths
  between its widths, bank counts hwcomponents rounds up, and nodes between CACTI's.

Every dynamic figure of the reference table (read, write, MAC, multiply, add) must be within
25 % of the table's (ratio 0.8-1.25), and so must every held-out write.  Held-out *reads*
are within 25 % but for :data:`HELDOUT_READ_MISSES` (7 of 743): sizes between two grid
sizes where CACTI picks an organisation that neither neighbour has (a 3000-row array at
65 nm keeps ``Nspd`` 4 where 2048 and 4096 rows use 8 and 16), which no interpolation of its
answers can know (hwmodel.estimators' docstring); those are held to 45 %, and the list is
exactly the set of misses, so a change either way shows.  Leakage is in the table for the
accelergy backend; the built-in estimators model none.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import pytest

from core.errors import HwcostError
from hwmodel.arch import Architecture, ComputeUnit, StorageLevel
from hwmodel.energy import build_energy_table
from hwmodel.estimators import (
    DRAM_PJ_PER_BIT,
    MACEstimator,
    exact_multiplier_pj,
    find_estimator,
    multiplier_energy,
    sram_array_pj,
    sram_grid,
)
from multiplier_lib import generate

TOLERANCE = 1.25
MISS_TOLERANCE = 1.45
#: Held-out SRAM reads outside 25 % (module docstring): built-in / hwcomponents.
HELDOUT_READ_MISSES = {
    "SRAM[depth=3000,width=24,n_banks=2]@65nm.read": 1.425,
    "SRAM[depth=384,width=192,n_banks=1]@32nm.read": 0.744,
    "SRAM[depth=1000,width=24,n_banks=1]@32nm.read": 1.306,
    "SRAM[depth=3000,width=24,n_banks=8]@22nm.read": 1.281,
    "SRAM[depth=384,width=192,n_banks=1]@28nm.read": 0.783,
    "SRAM[depth=3000,width=24,n_banks=1]@32nm.read": 0.786,
    "SRAM[depth=13824,width=40,n_banks=2]@45nm.read": 1.253,
}


def _load(name: str) -> dict[str, Any]:
    return json.loads(resources.files("hwmodel").joinpath(f"data/{name}").read_text())


TABLE = _load("accelergy_reference.json")
ROWS = [r for r in TABLE["rows"] if r["action"] != "leak"]
HELDOUT = _load("accelergy_heldout.json")
HELDOUT_ROWS = HELDOUT["rows"]
GRID = sram_grid()


def builtin_figure(row: dict[str, Any]) -> float:
    """The built-in estimator's figure for one reference row (per row access / operation)."""
    cls, attrs, nm, action = (row["component"], dict(row["attributes"]), row["technology_nm"],
                              row["action"])
    if cls in ("intmac", "intmultiplier", "intadder"):
        b = MACEstimator(None).breakdown(cls, attrs, nm)
        return {"mac": b.mac_pj, "multiply": b.multiply_pj, "add": b.add_pj}[action]
    est, c = find_estimator(cls, attrs)
    value = est.estimate(c, attrs, action, nm)
    assert value is not None
    return value


def _row_id(row: dict[str, Any]) -> str:
    attrs = ",".join(f"{k}={v}" for k, v in row["attributes"].items())
    return f"{row['component']}[{attrs}]@{row['technology_nm']:g}nm.{row['action']}"


def _array_point(attrs: dict[str, Any]) -> tuple[int, int, int]:
    """The CACTI array hwcomponents-cacti runs for a memory (whole bytes, >= 32 bits, >= 64
    rows per bank, banks rounded up to a power of two)."""
    w, d, b = int(attrs["width"]), int(attrs["depth"]), int(attrs.get("n_banks", 1))
    return (max(8 * math.ceil(w / 8), 32), max(d, 64 * b), 2 ** math.ceil(math.log2(b)))


def _on_grid(row: dict[str, Any]) -> bool:
    w, d, b = _array_point(row["attributes"])
    return (w in GRID.widths and d in GRID.depths and b in GRID.banks
            and row["technology_nm"] in GRID.nodes)


def test_table_has_its_provenance():
    prov = TABLE["provenance"]
    assert prov["command"].startswith("python benchmarks/accelergy_table.py")
    assert prov["packages"]["hwcomponents"] and prov["packages"]["hwcomponents-cacti"]
    assert prov["cacti"]["binary_runs"] is True and "rebuilt" in prov["cacti"]["how"]
    assert prov["date"][:2] == "20" and prov["python"].startswith("3.1")


@pytest.mark.parametrize("prov", [GRID.provenance, HELDOUT["provenance"]],
                         ids=["grid", "heldout"])
def test_grid_and_heldout_come_from_the_same_hwcomponents(prov):
    assert prov["command"].startswith("python benchmarks/accelergy_table.py --")
    assert prov["packages"] == TABLE["provenance"]["packages"]
    assert prov["cacti"]["binary_runs"] is True


def test_table_covers_what_the_issue_asks_for():
    def values(component: str, key: str) -> set:
        return {r["attributes"].get(key) for r in ROWS if r["component"] == component}

    assert {64, 1024, 16384, 65536} <= values("SRAM", "depth")
    assert {16, 64, 256} <= values("SRAM", "width")
    assert {1, 4, 32} <= values("SRAM", "n_banks")
    assert values("smartbuffer_RF", "depth") >= {4, 16, 256}
    assert {"LPDDR4", "DDR3", "HBM2"} <= values("DRAM", "type")
    assert {4, 8, 16, 32} <= values("intmac", "multiplier_width")
    assert {r["technology_nm"] for r in ROWS} >= {22.0, 32.0, 45.0}
    assert {r["action"] for r in TABLE["rows"]} >= {"read", "write", "leak", "mac"}
    # what hwcomponents cannot price is listed, not silently left out
    assert {u["component"] for u in TABLE["unsupported"]} >= {"fpmac", "DRAM"}


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_builtin_within_25_percent(row):
    ratio = builtin_figure(row) / row["energy_pj"]
    assert 1 / TOLERANCE <= ratio <= TOLERANCE, (
        f"built-in {builtin_figure(row):.4g} pJ vs hwcomponents {row['energy_pj']:.4g} pJ")


def test_log_error_is_small_on_average():
    # a fit that hugs the 25 % bounds everywhere would pass the row tests and still be poor
    errs = [abs(math.log(builtin_figure(r) / r["energy_pj"])) for r in ROWS]
    assert sum(errs) / len(errs) < math.log(1.12)


def test_dram_per_bit_figures_are_hwcomponents():
    for row in ROWS:
        if row["component"] == "DRAM":
            kind, width = row["attributes"]["type"], row["attributes"]["width"]
            assert DRAM_PJ_PER_BIT[kind] * width == pytest.approx(row["energy_pj"])


# --- SRAM: the grid and the held-out sizes ---------------------------------------------------


def test_grid_is_cacti_native_and_complete():
    for action in ("read", "write"):
        assert set(GRID.values[action]) == set(GRID.nodes)
        for node in GRID.nodes:
            for bi, b in enumerate(GRID.banks):
                for wi in range(len(GRID.widths)):
                    for di, d in enumerate(GRID.depths):
                        value = GRID.values[action][node][bi][wi][di]
                        native = d >= GRID.min_rows_per_bank * b
                        assert (value is not None and value > 0) == native


def test_reference_rows_on_the_grid_are_its_own_figures():
    # the grid holds hwcomponents' answers: a reference SRAM row whose CACTI array is a grid
    # point at a grid node is priced exactly (6 significant digits)
    on = [r for r in ROWS if r["component"] == "SRAM" and _on_grid(r)
          and _array_point(r["attributes"])[:2] == (r["attributes"]["width"],
                                                    r["attributes"]["depth"])]
    assert len(on) >= 60
    for r in on:
        a = r["attributes"]
        got = sram_array_pj(a["depth"], a["width"], a.get("n_banks", 1), r["action"],
                            r["technology_nm"])
        assert got == pytest.approx(r["energy_pj"], rel=1e-5), _row_id(r)


def test_heldout_rows_are_off_the_grid():
    assert len(HELDOUT_ROWS) >= 1000
    assert not [r for r in HELDOUT_ROWS if _on_grid(r)]
    nodes = {r["technology_nm"] for r in HELDOUT_ROWS}
    # not 90 nm: hwcomponents-cacti 1.0.40 prices it as 22 nm x sqrt(90/22) (a float slip,
    # benchmarks/accelergy_table.py: hwc_technology_nm); the grid holds CACTI's own 90 nm
    assert nodes == {22.0, 28.0, 32.0, 40.0, 45.0, 65.0}
    assert {r["attributes"]["n_banks"] for r in HELDOUT_ROWS} >= {1, 2, 3, 8, 16, 27}


@pytest.mark.parametrize("row", HELDOUT_ROWS, ids=_row_id)
def test_builtin_sram_within_25_percent_on_heldout_sizes(row):
    ratio = builtin_figure(row) / row["energy_pj"]
    limit = MISS_TOLERANCE if _row_id(row) in HELDOUT_READ_MISSES else TOLERANCE
    assert 1 / limit <= ratio <= limit, (
        f"built-in {builtin_figure(row):.4g} pJ vs hwcomponents {row['energy_pj']:.4g} pJ")


def test_heldout_misses_are_exactly_the_listed_reads():
    misses = {_row_id(r): builtin_figure(r) / r["energy_pj"] for r in HELDOUT_ROWS
              if not 1 / TOLERANCE <= builtin_figure(r) / r["energy_pj"] <= TOLERANCE}
    assert set(misses) == set(HELDOUT_READ_MISSES)
    for row_id, ratio in misses.items():
        assert ratio == pytest.approx(HELDOUT_READ_MISSES[row_id], abs=0.001), row_id
    reads = [r for r in HELDOUT_ROWS if r["action"] == "read"]
    assert len(misses) <= 0.01 * len(reads)


def test_heldout_log_error_is_small_on_average():
    for action, mean_limit in (("read", 1.07), ("write", 1.04)):
        errs = [abs(math.log(builtin_figure(r) / r["energy_pj"])) for r in HELDOUT_ROWS
                if r["action"] == action]
        assert sum(errs) / len(errs) < math.log(mean_limit), action


# --- the MAC width bug and the multiplier_lib link -------------------------------------------


def _arch(compute_attrs: dict[str, Any], datawidth: int) -> Architecture:
    levels = [StorageLevel("DRAM", "DRAM", {"type": "LPDDR4"}, None, 64, datawidth),
              StorageLevel("buf", "regfile", {}, 16, 16, datawidth)]
    cu = ComputeUnit("mac", "intmac", dict(compute_attrs), 1, datawidth)
    return Architecture("t", levels, cu, technology="45nm")


def test_mac_width_comes_from_multiplier_width_not_datawidth():
    # an 8x8 MAC in a design whose words are 16 bits: the multiplier is still 8 bits
    table = build_energy_table(_arch({"datawidth": 16, "multiplier_width": 8,
                                      "adder_width": 24}, 16))
    assert table.multiply() == pytest.approx(exact_multiplier_pj(8, 8))
    assert table.multiply() == pytest.approx(exact_multiplier_pj(16, 16) / 4)
    assert table.add() == pytest.approx(24 / 32 * 0.21 / 0.8689770303)


def test_mac_without_multiplier_width_uses_datawidth():
    table = build_energy_table(_arch({"datawidth": 16}, 16))
    assert table.multiply() == pytest.approx(exact_multiplier_pj(16, 16))


def test_multiplier_wider_than_the_mac_is_refused():
    with pytest.raises(HwcostError, match="multiplier is 4 bits wide"):
        build_energy_table(_arch({"multiplier_width": 4}, 8), generate("exact8u"))


def test_approximate_multiplier_scales_the_accelergy_scale_multiply():
    mult = generate("trunc8u_k6c")
    me = multiplier_energy(mult)
    assert 0 < me.rel_exact < 1
    table = build_energy_table(_arch({"multiplier_width": 8, "adder_width": 24}, 8), mult)
    assert table.multiply() == pytest.approx(exact_multiplier_pj(8, 8) * me.rel_exact)
    assert "trunc8u_k6c" in table.source("mac", "multiply")
    exact = build_energy_table(_arch({"multiplier_width": 8, "adder_width": 24}, 8),
                               generate("exact8u"))
    plain = build_energy_table(_arch({"multiplier_width": 8, "adder_width": 24}, 8))
    assert exact.multiply() == pytest.approx(plain.multiply())
