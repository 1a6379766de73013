"""Write a multiplier out as Verilog, a TFApprox ``.bin`` table or a ``.npy`` table.

Verilog is written in the EvoApprox cell-instance style (``PDKGENFAX1 g12(.A(..), ...)``)
so that each gate of the netlist is exactly one instance: reading the file back with
:mod:`multiplier_lib.importers` yields the same truth table *and* the same gate counts, which
is what lets a design leave hwcost for synthesis and come back unchanged.  A multiplier known
only by its truth table becomes a ``case`` ROM.  Every file is written atomically, so a
failed export never leaves a half-written or clobbered target.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from core.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from core.errors import HwcostError

from .multiplier import Multiplier
from .netlist import CELLS, CONST0, CONST1, Netlist

TOOL = "hwcost"

#: Our cell kind -> generic library cell name (imports back through ``decode_cell``).
CELL_NAMES: dict[str, str] = {
    "BUF": "PDKGENBUFX2", "NOT": "PDKGENINVX1", "AND": "PDKGENAND2X1", "OR": "PDKGENOR2X1",
    "XOR": "PDKGENXOR2X1", "NAND": "PDKGENNAND2X1", "NOR": "PDKGENNOR2X1",
    "XNOR": "PDKGENXNOR2X1", "AND3": "PDKGENAND3X1", "OR3": "PDKGENOR3X1",
    "NAND3": "PDKGENNAND3X1", "NOR3": "PDKGENNOR3X1", "MUX2": "PDKGENMUX2X1",
    "AOI21": "PDKGENAOI21X1", "OAI21": "PDKGENOAI21X1", "AOI22": "PDKGENAOI22X1",
    "OAI22": "PDKGENOAI22X1", "HA": "PDKGENHAX1", "FA": "PDKGENFAX1",
}

_PUBLISHED_LINES = (("mae_pct", "MAE%", " %"), ("mae", "MAE", ""), ("wce_pct", "WCE%", " %"),
                    ("wce", "WCE", ""), ("wcre_pct", "WCRE%", " %"), ("ep_pct", "EP%", " %"),
                    ("mre_pct", "MRE%", " %"), ("mse", "MSE", ""),
                    ("power_mw", "PDK45_PWR", " mW"), ("area_um2", "PDK45_AREA", " um2"),
                    ("delay_ns", "PDK45_DELAY", " ns"))


def _module_name(name: str) -> str:
    """A legal Verilog identifier for ``name`` (our names may contain '-')."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return ident if re.match(r"[A-Za-z_]", ident) else f"m_{ident}"


def _header(mult: Multiplier, style: str) -> list[str]:
    """Comment lines naming the tool and multiplier, plus its published figures.

    The published figures use the EvoApprox line format so they survive a round trip, and
    the ``Operands`` line lets the importer recover signedness when the name does not say.
    """
    lines = [f"// Multiplier {mult.name}, written by {TOOL} ({style})",
             f"// Operands = {'signed' if mult.signed else 'unsigned'} "
             f"{mult.a_bits}x{mult.b_bits}"]
    if mult.description:
        lines.append(f"// Description: {mult.description}")
    for key, label, unit in _PUBLISHED_LINES:
        if key in mult.published:
            lines.append(f"// {label} = {float(mult.published[key])!r}{unit}")
    return lines


def _ports(module: str, mult: Multiplier, reg: bool) -> list[str]:
    out_bits = mult.a_bits + mult.b_bits
    return [f"module {module} (A, B, O);",
            f"  input [{mult.a_bits - 1}:0] A;",
            f"  input [{mult.b_bits - 1}:0] B;",
            f"  output {'reg ' if reg else ''}[{out_bits - 1}:0] O;"]


def _netlist_verilog(mult: Multiplier, nl: Netlist) -> str:
    """Cell-instance Verilog: internal nets are bits of one vector wire ``N``."""
    nl.validate()
    internal: dict[int, int] = {}

    def ref(net: int) -> str:
        if net == CONST0:
            return "1'b0"
        if net == CONST1:
            return "1'b1"
        if nl.is_primary(net):
            return f"A[{net - nl.a(0)}]" if net < nl.b(0) else f"B[{net - nl.b(0)}]"
        if net not in internal:
            internal[net] = len(internal)
        return f"N[{internal[net]}]"

    body: list[str] = []
    for n, g in enumerate(nl.gates):
        cell = CELLS[g.kind]
        pins = [f".{p}({ref(x)})" for p, x in zip(cell.inputs, g.inputs)]
        pins += [f".{p}({ref(x)})" for p, x in zip(cell.outputs, g.outputs)]
        body.append(f"  {CELL_NAMES[g.kind]} g{n}({', '.join(pins)});")
    for k, net in enumerate(nl.outputs):
        body.append(f"  assign O[{k}] = {ref(net)};")
    lines = _header(mult, "cell instances")
    lines += _ports(_module_name(mult.name), mult, reg=False)
    if internal:
        lines.append(f"  wire [{len(internal) - 1}:0] N;")
    lines += ["", *body, "endmodule", ""]
    return "\n".join(lines)


def _rom_verilog(mult: Multiplier) -> str:
    """A ``case ({A, B})`` ROM listing every operand pair (raw output bit patterns)."""
    out_bits = mult.a_bits + mult.b_bits
    sel_bits = out_bits
    hex_sel = (sel_bits + 3) // 4
    hex_out = (out_bits + 3) // 4
    raw = (mult.lut.astype(np.int64) & ((1 << out_bits) - 1)).ravel()
    lines = _header(mult, "case-statement table")
    lines += _ports(_module_name(mult.name), mult, reg=True)
    lines += ["", "  always @(*) begin", "    case ({A, B})"]
    lines += [f"      {sel_bits}'h{code:0{hex_sel}x}: O = {out_bits}'h{int(v):0{hex_out}x};"
              for code, v in enumerate(raw.tolist())]
    lines += [f"      default: O = {out_bits}'h{0:0{hex_out}x};", "    endcase", "  end",
              "endmodule", ""]
    return "\n".join(lines)


def verilog_text(mult: Multiplier) -> str:
    """The Verilog :func:`write_verilog` writes (gate netlist if known, else a ROM)."""
    if mult.netlist is not None:
        return _netlist_verilog(mult, mult.netlist)
    return _rom_verilog(mult)


def write_verilog(mult: Multiplier, path: str | Path) -> None:
    """Write ``mult`` as Verilog that :func:`multiplier_lib.importers.import_file` reads back."""
    atomic_write_text(path, verilog_text(mult))


def bin_bytes(mult: Multiplier, path: str | Path | None = None) -> bytes:
    """The TFApprox table: 256x256 little-endian uint16, entry ``(a << 8) | b``."""
    where = str(path) if path is not None else None
    if (mult.a_bits, mult.b_bits) != (8, 8):
        raise HwcostError(f"TFApprox .bin tables hold 8x8 multipliers only; {mult.name} is "
                          f"{mult.a_bits}x{mult.b_bits} (use .npy instead)", file=where)
    lut = mult.lut.astype(np.int64)
    low, high = (-(1 << 15), (1 << 15) - 1) if mult.signed else (0, (1 << 16) - 1)
    bad = (lut < low) | (lut > high)
    if bad.any():
        a, b = (int(x[0]) for x in np.nonzero(bad))
        raise HwcostError(f"{mult.name}[{a}, {b}] = {int(lut[a, b])} does not fit a 16-bit "
                          f"{'signed' if mult.signed else 'unsigned'} .bin entry", file=where)
    return (lut & 0xFFFF).astype("<u2").tobytes()


def write_bin(mult: Multiplier, path: str | Path) -> None:
    """Write the TFApprox ``.bin`` table of an 8x8 multiplier (two's complement if signed)."""
    atomic_write_bytes(path, bin_bytes(mult, path))


def write_npy(mult: Multiplier, path: str | Path) -> None:
    """Write the product table as ``.npy`` (int32, indexed by operand codes)."""
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, mult.lut.astype(np.int32), allow_pickle=False)
