"""Verilog importer: the three styles, mangled EvoApprox cell names, and located errors.

Reference truth tables come from numpy arithmetic (``np.outer``), and expected gate counts
from counting what the test's own generator emitted, never from the importer itself.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multiplier_lib.errors import ImportFailed
from multiplier_lib.importers import decode_cell, import_file

EXACT_8x8 = np.multiply.outer(np.arange(256), np.arange(256))


# ------------------------------------------------------------------ circuit generator
def array_multiplier(a_bits: int, b_bits: int, drop_below: int = 0):
    """An array multiplier as abstract cells: (kind, input nets, output nets).

    Nets are strings: ``A[i]``, ``B[j]``, ``"0"`` for a dropped partial product, or ``tN``.
    Partial products ``A[j] & B[i]`` with ``i + j < drop_below`` are replaced by 0 (a
    truncated multiplier); rows are added with ripple-carry chains of half and full adders.
    """
    cells: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    counter = iter(range(10**6))

    def net() -> str:
        return f"t{next(counter)}"

    pp = []
    for i in range(b_bits):
        row = []
        for j in range(a_bits):
            if i + j < drop_below:
                row.append("0")
            else:
                out = net()
                cells.append(("AND", (f"A[{j}]", f"B[{i}]"), (out,)))
                row.append(out)
        pp.append(row)
    acc = list(pp[0])
    for i in range(1, b_bits):
        x, y = acc[i:], pp[i]
        res: list[str] = []
        carry = None
        for k in range(max(len(x), len(y))):
            bits = [v for v in (x[k] if k < len(x) else None, y[k] if k < len(y) else None,
                                carry) if v is not None]
            if len(bits) == 1:
                res.append(bits[0])
                carry = None
                continue
            s, c = net(), net()
            cells.append(("HA" if len(bits) == 2 else "FA", tuple(bits), (s, c)))
            res.append(s)
            carry = c
        if carry is not None:
            res.append(carry)
        acc = acc[:i] + res
    outputs = (acc + ["0"] * (a_bits + b_bits))[: a_bits + b_bits]
    return cells, outputs


def _ref(net: str) -> str:
    return "1'b0" if net == "0" else net


def expression_verilog(name: str, a_bits: int, b_bits: int, cells, outputs) -> str:
    """EvoApproxLib expression style: one assign per net, adders spelled out in gates."""
    wires = sorted({o for _, _, outs in cells for o in outs} | {f"x{k}" for k in range(len(cells))})
    body = []
    for n, (kind, ins, outs) in enumerate(cells):
        a, b, *rest = (_ref(v) for v in ins)
        if kind == "AND":
            body.append(f"assign {outs[0]} = {a} & {b};")
        elif kind == "HA":
            body += [f"assign {outs[0]} = {a} ^ {b};", f"assign {outs[1]} = {a} & {b};"]
        else:
            c = rest[0]
            body += [f"assign x{n} = {a} ^ {b};", f"assign {outs[0]} = x{n} ^ {c};",
                     f"assign {outs[1]} = ({a} & {b}) | ({c} & x{n});"]
    body += [f"assign O[{k}] = {_ref(v)};" for k, v in enumerate(outputs)]
    return "\n".join([
        f"module {name} (A, B, O);",
        f"  input [{a_bits - 1}:0] A;", f"  input [{b_bits - 1}:0] B;",
        f"  output [{a_bits + b_bits - 1}:0] O;",
        "  wire " + ", ".join(wires) + ";",
        *body, "endmodule", ""])


CELL_SPELLING = {"AND": "PDKGEPDKGENNAND2X1", "HA": "PDKGENHAX1", "FA": "PDKGENFAX1"}


def cell_verilog(name: str, a_bits: int, b_bits: int, cells, outputs, seed: int) -> str:
    """EvoApprox ``_pdk45`` style: vector wire N, buffer assigns, shuffled cell instances."""
    index: dict[str, int] = {}

    def n(v: str) -> str:
        if v == "0":
            return "1'b0"
        if v not in index:
            index[v] = len(index)
        return f"N[{index[v]}]"

    stmts = []
    for v in [f"A[{i}]" for i in range(a_bits)] + [f"B[{j}]" for j in range(b_bits)]:
        stmts.append(f"assign {n(v + '_buf')} = {v};")
    for k, (kind, ins, outs) in enumerate(cells):
        pins = [f".{p}({n(v + '_buf') if v.startswith(('A[', 'B[')) else n(v)})"
                for p, v in zip("ABC", ins)]
        pins += [f".{p}({n(v)})" for p, v in zip(("Y",) if kind == "AND" else ("YS", "YC"),
                                                 outs)]
        stmts.append(f"{CELL_SPELLING[kind]} n{k}({', '.join(pins)});")
    stmts += [f"assign O[{k}] = {n(v)};" for k, v in enumerate(outputs)]
    random.Random(seed).shuffle(stmts)
    return "\n".join([
        f"module {name}(A, B, O);", f"  input [{a_bits - 1}:0] A, B;" if a_bits == b_bits
        else f"  input [{a_bits - 1}:0] A;\n  input [{b_bits - 1}:0] B;",
        f"  output [{a_bits + b_bits - 1}:0] O;", f"  wire [{len(index) + 10}:0] N;",
        *stmts, "endmodule", ""])


def write(tmp_path: Path, text: str, name: str = "m.v") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ valid designs
SMALL_2x2 = """\
// MAE% = 0.00 %
// WCE = 0
module mul2u_hand (A, B, O);
  input [1:0] A;
  input [1:0] B;
  output [3:0] O;
  wire p00, p01, p10, p11, c;
  assign O[0] = p00;          // output assigned before its driver
  assign p00 = A[0] & B[0];
  assign p01 = A[1] & B[0];
  assign p10 = A[0] & B[1];
  assign p11 = A[1] & B[1];
  assign O[1] = p01 ^ p10;
  assign c = p01 & p10;
  assign O[2] = p11 ^ c;
  assign O[3] = ~(~(p11 & c));
endmodule
"""


def test_small_expression_multiplier(tmp_path: Path) -> None:
    m = import_file(write(tmp_path, SMALL_2x2))
    assert m.name == "mul2u_hand"
    assert (m.a_bits, m.b_bits, m.signed) == (2, 2, False)
    assert np.array_equal(m.lut, np.multiply.outer(np.arange(4), np.arange(4)))
    # ~(~(x & y)): the inner ~(&) fuses into one NAND, the outer ~ is a NOT.
    assert m.netlist.gate_counts() == {"AND": 5, "XOR": 2, "NAND": 1, "NOT": 1}
    assert m.published == {"mae_pct": 0.0, "wce": 0.0}
    assert "Verilog" in m.description


def test_byte_order_mark_and_legacy_evoapprox8b_header(tmp_path: Path) -> None:
    legacy = ("// Library = cgp-evoapproxlib\n// Area   (45) = 662.000000\n"
              "// Delay  (45) = 1.190000\n// Power  (45) = 0.428700\n"
              "// MRE = 1.990000 %\n// EP = 86.500000 %\n")
    path = tmp_path / "bom.v"
    path.write_bytes(b"\xef\xbb\xbf" + (legacy + SMALL_2x2).encode())
    m = import_file(path)
    assert np.array_equal(m.lut, np.multiply.outer(np.arange(4), np.arange(4)))
    assert m.published["area_um2"] == 662.0 and m.published["power_mw"] == 0.4287
    assert m.published["delay_ns"] == 1.19
    assert m.published["mre_pct"] == 1.99 and m.published["ep_pct"] == 86.5


def test_operator_fusion_and_precedence(tmp_path: Path) -> None:
    # 1x1 "multiplier" with a two-bit output; each O bit is a checked boolean function.
    text = """module m(A, B, O);
      input A; input B; output [1:0] O;
      wire n1, n2, n3, n4;
      assign n1 = ~(A | B);
      assign n2 = ~(A ^ B);
      assign n3 = A ~^ B;
      assign n4 = A | B & ~A ^ B;
      assign O[0] = n1 ^ n2 ^ n3;
      assign O[1] = n4;
    endmodule"""
    m = import_file(write(tmp_path, text))
    counts = m.netlist.gate_counts()
    assert counts["NOR"] == 1 and counts["XNOR"] == 2 and counts.get("NOT", 0) == 1
    for a in range(2):
        for b in range(2):
            n1, n2 = 1 - (a | b), 1 - (a ^ b)
            o0 = n1 ^ n2 ^ n2
            o1 = a | ((b & (1 - a)) ^ b)  # & binds tighter than ^, ^ tighter than |
            assert m.lut[a, b] == o0 | (o1 << 1)


def test_ansi_ports_concat_and_constants(tmp_path: Path) -> None:
    text = """module mul2u_ansi(input [1:0] A, input [1:0] B, output [3:0] O);
      wire p0, p1, p2, p3, c;
      assign p0 = A[0] & B[0], p1 = A[1] & B[0];
      assign p2 = A[0] & B[1];
      assign p3 = A[1] & B[1];
      assign c = p1 & p2;
      assign O = {p3 & c, p3 ^ c, p1 ^ p2, p0};
    endmodule"""
    m = import_file(write(tmp_path, text))
    assert np.array_equal(m.lut, np.multiply.outer(np.arange(4), np.arange(4)))


def test_constant_and_input_outputs(tmp_path: Path) -> None:
    # O bits straight from inputs and constants: LUT = a + 2*b + 8 for 1x2... checked bitwise
    text = """module m(A, B, O);
      input [0:0] A; input [1:0] B; output [2:0] O;
      assign O[0] = A[0];
      assign O[1] = 1'b1;
      assign O[2] = B[1];
    endmodule"""
    m = import_file(write(tmp_path, text))
    for a in range(2):
        for b in range(4):
            assert m.lut[a, b] == a | 2 | ((b >> 1) << 2)
    assert len(m.netlist.gates) == 0


def test_exact_8x8_expression_style(tmp_path: Path) -> None:
    cells, outs = array_multiplier(8, 8)
    kinds = Counter(k for k, _, _ in cells)
    assert kinds == {"AND": 64, "FA": 48, "HA": 8}  # the textbook array multiplier
    m = import_file(write(tmp_path, expression_verilog("mul8u_arr", 8, 8, cells, outs)))
    assert np.array_equal(m.lut, EXACT_8x8)
    # Generator: AND per partial product, HA = XOR + AND, FA = 2 XOR + 2 AND + OR.
    assert m.netlist.gate_counts() == {
        "AND": kinds["AND"] + kinds["HA"] + 2 * kinds["FA"],
        "XOR": kinds["HA"] + 2 * kinds["FA"], "OR": kinds["FA"]}


@pytest.mark.parametrize("seed", [1, 2])
def test_exact_8x8_cell_style_shuffled(tmp_path: Path, seed: int) -> None:
    cells, outs = array_multiplier(8, 8)
    text = cell_verilog("mul8u_cells", 8, 8, cells, outs, seed)
    m = import_file(write(tmp_path, text, "mul8u_cells_pdk45.v"))
    assert np.array_equal(m.lut, EXACT_8x8)
    assert m.netlist.gate_counts() == dict(Counter(k for k, _, _ in cells))
    assert "cell instances" in m.description


def test_truncated_cell_style_4x3(tmp_path: Path) -> None:
    cells, outs = array_multiplier(4, 3, drop_below=2)
    m = import_file(write(tmp_path, cell_verilog("mul4x3u_tr", 4, 3, cells, outs, 7)))
    a, b = np.meshgrid(np.arange(16), np.arange(8), indexing="ij")
    ref = np.zeros((16, 8), dtype=np.int64)
    for i in range(3):
        for j in range(4):
            if i + j >= 2:
                ref += (((a >> j) & 1) & ((b >> i) & 1)) << (i + j)
    assert np.array_equal(m.lut, ref)


def test_mangled_cell_names_decode() -> None:
    expected = {"NPDKGEPDKGENNAND2X1": "NAND", "PDKGEPDKGENNAND2X1": "AND",
                "PDKGENXPDKGENOR2X1": "XOR", "XPDKGEPDKGENNOR2X1": "XOR",
                "PDKGENNPDKGENOR2X1": "NOR", "XNPDKGEPDKGENNOR2X1": "XNOR",
                "PDKGENBUFX2": "BUF", "PDKGENFAX1": "FA", "PDKGENHAX1": "HA",
                "PDKGENINVX1": "NOT", "NAND2X1": "NAND", "FA_X1": "FA", "MX2X1": "MUX2",
                "PDKGENAOI21X1": "AOI21", "PDKGENMUX2X1": "MUX2", "DFFX1": None, "X1": None}
    assert {name: decode_cell(name) for name in expected} == expected


MANGLED_2x2 = """\
module mul2u_mangled(A, B, O);
  input [1:0] A;
  input [1:0] B;
  output [3:0] O;
  wire [20:0] N;
  assign O[3] = N[9];
  PDKGENNPDKGENOR2X1 n9(.A(N[8]), .B(N[6]), .Y(N[9]));
  PDKGENINVX1 n8(.A(N[3]), .Y(N[8]));
  assign N[0] = A[0];
  assign N[1] = A[1];
  PDKGEPDKGENNAND2X1 n2(.A(N[0]), .B(B[0]), .Y(N[2]));
  PDKGEPDKGENNAND2X1 n3(.A(N[1]), .B(B[1]), .Y(N[3]));
  PDKGEPDKGENNAND2X1 n4(.A(N[1]), .B(B[0]), .Y(N[4]));
  PDKGEPDKGENNAND2X1 n5(.A(N[0]), .B(B[1]), .Y(N[5]));
  NPDKGEPDKGENNAND2X1 n6(.A(N[4]), .B(N[5]), .Y(N[6]));
  XPDKGEPDKGENNOR2X1 n7(.A(N[4]), .B(N[5]), .Y(N[7]));
  XNPDKGEPDKGENNOR2X1 n10(.A(N[3]), .B(N[6]), .Y(N[10]));
  PDKGENBUFX2 n11(.A(N[2]), .Y(N[11]));
  assign O[0] = N[11];
  assign O[1] = N[7];
  assign O[2] = N[10];
endmodule
"""


def test_mangled_cells_small_multiplier(tmp_path: Path) -> None:
    m = import_file(write(tmp_path, MANGLED_2x2))
    assert np.array_equal(m.lut, np.multiply.outer(np.arange(4), np.arange(4)))
    assert m.netlist.gate_counts() == {"AND": 4, "NAND": 1, "XOR": 1, "XNOR": 1, "NOR": 1,
                                       "NOT": 1, "BUF": 1}


def test_pin_expressions_emit_gates(tmp_path: Path) -> None:
    # Pins carrying expressions, as in some EvoApprox files: an FA fed by partial products.
    text = """module m(A, B, O);
      input [1:0] A; input [0:0] B; output [2:0] O;
      wire s, c;
      PDKGENFAX1 f(.A((A[0] & B[0])), .B(~(A[1] & B[0])), .C(1'b1), .YS(s), .YC(c));
      assign O[0] = s; assign O[1] = c; assign O[2] = 1'b0;
    endmodule"""
    m = import_file(write(tmp_path, text))
    assert m.netlist.gate_counts() == {"AND": 1, "NAND": 1, "FA": 1}
    for a in range(4):
        for b in range(2):
            x, y = (a & 1) & b, 1 - (((a >> 1) & 1) & b)
            total = x + y + 1
            assert m.lut[a, b] == total


def test_signed_from_module_name(tmp_path: Path) -> None:
    text = SMALL_2x2.replace("mul2u_hand", "mul2s_hand")
    m = import_file(write(tmp_path, text))
    assert m.signed
    # Same gates read as two's complement: raw pattern of the unsigned product, 4 bits.
    raw = np.multiply.outer(np.arange(4), np.arange(4)) & 0xF
    assert np.array_equal(m.lut, np.where(raw >= 8, raw - 16, raw))
    assert not import_file(write(tmp_path, text, "x.v"), signed=False).signed


ROM = """\
module rom2(A, B, O);
  input [1:0] A;
  input [0:0] B;
  output reg [2:0] O;
  always @(*) begin
    case ({B, A})
      3'h5: O = 3'd6;
      3'b111, 3'h6: O = 3'h7;
      default: O = 3'h1;
    endcase
  end
endmodule
"""


def test_case_rom_selector_order_and_default(tmp_path: Path) -> None:
    m = import_file(write(tmp_path, ROM))
    assert m.netlist is None
    # selector {B, A}: code = b << 2 | a
    expected = np.ones((4, 2), dtype=np.int64)
    expected[1, 1] = 6  # code 5 = b1 a1
    expected[3, 1] = 7  # code 7
    expected[2, 1] = 7  # code 6
    assert np.array_equal(m.lut, expected)


def test_case_rom_missing_entry_without_default(tmp_path: Path) -> None:
    text = ROM.replace("      default: O = 3'h1;\n", "")
    with pytest.raises(ImportFailed) as exc:
        import_file(write(tmp_path, text, "rom.v"))
    assert "rom.v:6:" in str(exc.value) and "no default" in str(exc.value)


# ------------------------------------------------------------------ errors
def _error(tmp_path: Path, text: str, name: str = "bad.v") -> str:
    with pytest.raises(ImportFailed) as exc:
        import_file(write(tmp_path, text, name))
    return str(exc.value)


def _replace_line(text: str, line: int, new: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def test_syntax_error_missing_semicolon(tmp_path: Path) -> None:
    text = SMALL_2x2.replace("assign p01 = A[1] & B[0];", "assign p01 = A[1] & B[0]")
    msg = _error(tmp_path, text)
    assert "bad.v:10:" in msg and "expected ';'" in msg


def test_syntax_error_missing_operand(tmp_path: Path) -> None:
    text = _replace_line(SMALL_2x2, 12, "  assign p11 = A[1] & ;")
    msg = _error(tmp_path, text)
    assert "bad.v:12:" in msg and "expected a net" in msg


def test_undeclared_net(tmp_path: Path) -> None:
    text = _replace_line(SMALL_2x2, 13, "  assign O[1] = p01 ^ p_10;")
    msg = _error(tmp_path, text)
    assert "bad.v:13:" in msg and "undeclared" in msg and "p_10" in msg


def test_net_driven_twice(tmp_path: Path) -> None:
    text = _replace_line(SMALL_2x2, 14, "  assign p01 = A[0] | B[1];")
    msg = _error(tmp_path, text)
    assert "bad.v:14:" in msg and "driven twice" in msg and "line 10" in msg


def test_combinational_loop_through_gates(tmp_path: Path) -> None:
    text = _replace_line(SMALL_2x2, 14, "  assign c = p01 & O[2];")
    msg = _error(tmp_path, text)
    assert "loop" in msg
    assert "bad.v:14:" in msg or "bad.v:15:" in msg  # the two gates forming the loop


def test_combinational_loop_through_aliases(tmp_path: Path) -> None:
    text = SMALL_2x2.replace("assign c = p01 & p10;", "assign c = p10;")
    text = text.replace("assign p10 = A[0] & B[1];", "assign p10 = c;")
    msg = _error(tmp_path, text)
    assert "loop" in msg and ("bad.v:11:" in msg or "bad.v:14:" in msg)


def test_undriven_output_bit(tmp_path: Path) -> None:
    text = _replace_line(SMALL_2x2, 16, "")
    msg = _error(tmp_path, text)
    assert "bad.v:6:" in msg and "O[3]" in msg


def test_wire_read_but_never_driven(tmp_path: Path) -> None:
    text = _replace_line(SMALL_2x2, 14, "")
    msg = _error(tmp_path, text)
    assert "bad.v:15:" in msg and "never driven" in msg


def test_output_bus_of_wrong_width(tmp_path: Path) -> None:
    cells, outs = array_multiplier(8, 8)
    text = expression_verilog("mul8u_w", 8, 8, cells, outs).replace(
        "output [15:0] O;", "output [14:0] O;")
    msg = _error(tmp_path, text)
    assert "bad.v:4:" in msg and "[15:0]" in msg


def test_index_out_of_declared_range(tmp_path: Path) -> None:
    text = _replace_line(SMALL_2x2, 12, "  assign p11 = A[2] & B[1];")
    msg = _error(tmp_path, text)
    assert "bad.v:12:" in msg and "A[2]" in msg and "[1:0]" in msg


def test_operand_too_wide(tmp_path: Path) -> None:
    text = """module m(A, B, O);
      input [8:0] A; input [7:0] B; output [16:0] O;
    endmodule"""
    assert "bad.v:2:" in _error(tmp_path, text)


def test_unknown_cell(tmp_path: Path) -> None:
    text = MANGLED_2x2.replace("PDKGENBUFX2 n11", "PDKGENDFFX1 n11")
    msg = _error(tmp_path, text)
    assert "bad.v:18:" in msg and "PDKGENDFFX1" in msg


def test_unknown_pin(tmp_path: Path) -> None:
    text = MANGLED_2x2.replace(".A(N[2]), .Y(N[11])", ".A(N[2]), .Q(N[11])")
    msg = _error(tmp_path, text)
    assert "bad.v:18:" in msg and "Q" in msg


def test_gate_driving_an_input(tmp_path: Path) -> None:
    text = MANGLED_2x2.replace(".Y(N[8])", ".Y(A[1])")
    assert "bad.v:8:" in _error(tmp_path, text)


def test_unterminated_module_and_garbage(tmp_path: Path) -> None:
    msg = _error(tmp_path, SMALL_2x2.replace("endmodule\n", ""))
    assert "endmodule" in msg and "bad.v:" in msg
    msg = _error(tmp_path, _replace_line(SMALL_2x2, 9, "  assign p00 = A[0] $ B[0];"))
    assert "bad.v:9:" in msg


# ------------------------------------------------------------------ robustness
_PIECES = ["(", ")", ";", "[", "]", "{", "}", "~", "&", "^", "|", "?", ":", "1'b1", "16'hffff",
           "A", "O", "N[3]", "assign", "wire", "module", "endmodule", "case", "begin", ".A(",
           "PDKGENFAX1", "999999999", "'", "/*", "//", "\n", "3{", "x", ""]


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from([SMALL_2x2, MANGLED_2x2, ROM]),
       edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 8), st.sampled_from(_PIECES)),
                      min_size=1, max_size=3))
def test_mangled_input_never_escapes_as_raw_exception(tmp_path: Path, base: str,
                                                      edits: list) -> None:
    text = base
    for where, cut, piece in edits:
        i = int(where * (len(text) - 1))
        text = text[:i] + piece + text[i + cut:]
    try:
        import_file(write(tmp_path, text, "fuzz.v"))
    except ImportFailed as err:
        assert err.file is not None and "fuzz.v" in str(err)


# EvoApprox files append behavioural definitions of their cells after the multiplier.
CELL_DEFS = """
/* mod */
module PDKGEPDKGENNAND2X1(input A, input B, output Y );
     assign Y = A & B;
endmodule
/* mod */
module NPDKGEPDKGENNAND2X1(input A, input B, output Y );
     assign Y = ~(A & B);
endmodule
module XNPDKGEPDKGENNOR2X1(input A, input B, output Y );
     assign Y = ~(A ^ B);
endmodule
module PDKGENFAX1( input A, input B, input C, output YS, output YC );
    assign YS = (A ^ B) ^ C;
    assign YC = (A & B) | (B & C) | (A & C);
endmodule
"""


def test_appended_cell_definitions_are_accepted(tmp_path: Path) -> None:
    m = import_file(write(tmp_path, MANGLED_2x2 + CELL_DEFS))  # PDKGENFAX1 defined, unused
    assert m.name == "mul2u_mangled"
    assert np.array_equal(m.lut, np.multiply.outer(np.arange(4), np.arange(4)))
    assert m.netlist.gate_counts()["XNOR"] == 1


def test_cell_definition_in_file_decides_the_function(tmp_path: Path) -> None:
    # The file says its "XNOR" cell is an XOR: simulation must follow the file, so O[2]
    # becomes p11 ^ ~c instead of p11 ^ c.
    defs = CELL_DEFS.replace("assign Y = ~(A ^ B);", "assign Y = A ^ B;")
    m = import_file(write(tmp_path, MANGLED_2x2 + defs))
    assert m.netlist.gate_counts()["XOR"] == 2 and "XNOR" not in m.netlist.gate_counts()
    for a in range(4):
        for b in range(4):
            p01, p10, p11 = (a >> 1) & b & 1, a & (b >> 1) & 1, (a >> 1) & (b >> 1) & 1
            c = p01 & p10
            o = (a & b & 1) | ((p01 ^ p10) << 1) | ((p11 ^ (1 - c)) << 2) | ((p11 & c) << 3)
            assert m.lut[a, b] == o


def test_cell_definition_with_unknown_function(tmp_path: Path) -> None:
    text = MANGLED_2x2 + CELL_DEFS.replace("assign Y = ~(A ^ B);", "assign Y = A & ~B;")
    line = text.splitlines().index("module XNPDKGEPDKGENNOR2X1(input A, input B, output Y );")
    msg = _error(tmp_path, text)
    assert f"bad.v:{line + 1}:" in msg and "XNPDKGEPDKGENNOR2X1" in msg


def test_two_multiplier_modules_refused(tmp_path: Path) -> None:
    second = SMALL_2x2.replace("mul2u_hand", "mul2u_other")
    msg = _error(tmp_path, SMALL_2x2 + second)
    assert "bad.v:20:" in msg and "top-level" in msg
