"""Exporters: Verilog (netlist and ROM), TFApprox .bin and .npy, round trips and atomicity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import HwcostError
from multiplier_lib.export import write_bin, write_npy, write_verilog
from multiplier_lib.importers import import_file
from multiplier_lib.multiplier import Multiplier
from multiplier_lib.netlist import Builder, Netlist


def exact_array(a_bits: int, b_bits: int) -> Netlist:
    bld = Builder(a_bits, b_bits)
    cols: list[list[int]] = [[] for _ in range(a_bits + b_bits)]
    for i, x in enumerate(bld.a):
        for j, y in enumerate(bld.b):
            cols[i + j].append(bld.and_(x, y))
    return bld.finish(bld.reduce_columns(cols, a_bits + b_bits))


def every_cell_netlist() -> Netlist:
    """A 2x2 circuit that uses every cell kind once, outputs mixing them all."""
    nl = Netlist(2, 2)
    a0, a1, b0, b1 = nl.a(0), nl.a(1), nl.b(0), nl.b(1)
    n = {k: nl.add(k, *ins) for k, ins in [
        ("BUF", (a0,)), ("NOT", (a1,)), ("AND", (a0, b0)), ("OR", (a1, b1)),
        ("XOR", (a0, b1)), ("NAND", (a1, b0)), ("NOR", (a0, b0)), ("XNOR", (a1, b1)),
        ("AND3", (a0, a1, b0)), ("OR3", (a0, b0, b1)), ("NAND3", (a1, b0, b1)),
        ("NOR3", (a0, a1, b1)), ("MUX2", (a0, b0, b1)), ("AOI21", (a0, b0, a1)),
        ("OAI21", (a1, b1, a0)), ("AOI22", (a0, b1, a1, b0)), ("OAI22", (a0, a1, b0, b1))]}
    s, c = nl.add("HA", n["BUF"], n["NOT"])
    fs, fc = nl.add("FA", n["AND"], n["OR"], n["XOR"])
    x1 = nl.add("XOR", n["NAND"], n["NOR"])
    x2 = nl.add("XOR", n["XNOR"], n["AND3"])
    x3 = nl.add("XOR", n["OR3"], n["NAND3"])
    x4 = nl.add("XOR", n["NOR3"], n["MUX2"])
    x5 = nl.add("XOR", n["AOI21"], n["OAI21"])
    x6 = nl.add("XOR", n["AOI22"], n["OAI22"])
    y1 = nl.add("OR", nl.add("AND", x1, x2), x3)
    y2 = nl.add("XOR", nl.add("XOR", x4, x5), x6)
    for k, net in enumerate([y1, y2, nl.add("XOR", s, fs), nl.add("OR", c, fc)]):
        nl.set_output(k, net)
    return nl.validate()


def test_netlist_round_trip_8x8(tmp_path: Path) -> None:
    m = Multiplier.from_netlist("mul8u_bld", exact_array(8, 8), False,
                                published={"power_mw": 0.391, "area_um2": 729.8})
    assert np.array_equal(m.lut, np.multiply.outer(np.arange(256), np.arange(256)))
    path = tmp_path / "out" / "mul8u_bld.v"
    write_verilog(m, path)
    back = import_file(path)
    assert back.name == "mul8u_bld" and not back.signed
    assert np.array_equal(back.lut, m.lut)
    assert back.netlist.gate_counts() == m.netlist.gate_counts()
    assert back.published == m.published
    text = path.read_text()
    assert "hwcost" in text.splitlines()[0] and "mul8u_bld" in text.splitlines()[0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["mul8u_bld.v"]


def test_every_cell_kind_round_trips(tmp_path: Path) -> None:
    nl = every_cell_netlist()
    m = Multiplier.from_netlist("odd-cells", nl, signed=True)
    path = tmp_path / "odd.v"
    write_verilog(m, path)
    back = import_file(path)
    assert back.name == "odd_cells"  # '-' is not legal in a Verilog module name
    assert back.signed  # recovered from the header, the name does not say
    assert back.netlist.gate_counts() == nl.gate_counts()
    assert len(nl.gate_counts()) == 19
    assert np.array_equal(back.lut, m.lut)


def test_signed_netlist_round_trip(tmp_path: Path) -> None:
    m = Multiplier.from_netlist("mul3s_x", exact_array(3, 3), True)  # raw patterns, signed
    path = tmp_path / "s.v"
    write_verilog(m, path)
    back = import_file(path)
    assert back.signed and np.array_equal(back.lut, m.lut)


@pytest.mark.parametrize("a_bits, b_bits, signed", [(4, 3, False), (3, 3, True), (8, 8, False)])
def test_lut_only_round_trip_as_rom(tmp_path: Path, a_bits: int, b_bits: int,
                                    signed: bool) -> None:
    rng = np.random.default_rng(a_bits * 10 + b_bits)
    out = a_bits + b_bits
    lo, hi = (-(1 << (out - 1)), 1 << (out - 1)) if signed else (0, 1 << out)
    lut = rng.integers(lo, hi, size=(1 << a_bits, 1 << b_bits))
    m = Multiplier("rom_mult", a_bits, b_bits, signed, lut, published={"mae": 1.5})
    path = tmp_path / "rom.v"
    write_verilog(m, path)
    assert "case" in path.read_text()
    back = import_file(path)
    assert back.netlist is None and back.signed == signed
    assert (back.a_bits, back.b_bits) == (a_bits, b_bits)
    assert np.array_equal(back.lut, lut)
    assert back.published == {"mae": 1.5}


def test_npy_round_trip(tmp_path: Path) -> None:
    lut = np.random.default_rng(1).integers(-1024, 1024, size=(64, 32))
    m = Multiplier("t", 6, 5, True, lut)
    path = tmp_path / "t.npy"
    write_npy(m, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npy"]
    back = import_file(path)
    assert back.signed and np.array_equal(back.lut, lut)


def test_bin_refuses_non_8x8_and_keeps_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.bin"
    path.write_bytes(b"original")
    m = Multiplier("m8x4", 8, 4, False, np.zeros((256, 16), dtype=np.int64))
    with pytest.raises(HwcostError, match="8x8"):
        write_bin(m, path)
    assert path.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bin"]


def test_bin_refuses_values_out_of_range(tmp_path: Path) -> None:
    lut = np.zeros((256, 256), dtype=np.int64)
    lut[3, 4] = -1
    with pytest.raises(HwcostError, match=r"\[3, 4\]"):
        write_bin(Multiplier("neg", 8, 8, False, lut), tmp_path / "x.bin")


def test_failed_verilog_write_keeps_existing_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.v"
    path.write_text("old")
    m = Multiplier.from_netlist("mul2u_k", exact_array(2, 2), False)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", boom)
    with pytest.raises(OSError):
        write_verilog(m, path)
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.v"]
