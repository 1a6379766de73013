"""EvoApprox C-model importer: compile, evaluate in a child, (B, A) argument order, failures.

References are numpy arithmetic written independently of the C sources under test.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from multiplier_lib.errors import ImportFailed
from multiplier_lib.importers import import_file, parse_published

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc)")

A8, B8 = np.meshgrid(np.arange(256, dtype=np.int64), np.arange(256, dtype=np.int64),
                     indexing="ij")

HEADER = """\
/***
* This code is a part of EvoApproxLib library (ehw.fit.vutbr.cz/approxlib)
***/
// MAE% = 0.065 %
// MAE = 42
// WCE% = 0.25 %
// WCE = 161
// WCRE% = 150.00 %
// EP% = 96.37 %
// MRE% = 1.90 %
// MSE = 36892.825e2
// PDK45_PWR = 0.276 mW
// PDK45_AREA = 511.5 um2
// PDK45_DELAY = 1.37 ns
#include <stdint.h>
#include <stdlib.h>
"""


def model(name: str, body: str, header: str = HEADER) -> str:
    return f"{header}\nuint64_t {name}(const uint64_t B,const uint64_t A)\n{{\n{body}\n}}\n"


def write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_exact_model_and_published_header(tmp_path: Path) -> None:
    path = write(tmp_path, model("mul8u_EXA", "  return A * B;"), "mul8u_EXA.c")
    m = import_file(path)
    assert m.name == "mul8u_EXA" and (m.a_bits, m.b_bits, m.signed) == (8, 8, False)
    assert np.array_equal(m.lut, A8 * B8)
    assert m.netlist is None
    assert m.source == str(path) and len(m.source_sha256) == 64
    assert m.published == pytest.approx({
        "mae_pct": 0.065, "mae": 42, "wce_pct": 0.25, "wce": 161, "wcre_pct": 150.0,
        "ep_pct": 96.37, "mre_pct": 1.90, "mse": 3689282.5, "power_mw": 0.276,
        "area_um2": 511.5, "delay_ns": 1.37})


def test_approximate_model(tmp_path: Path) -> None:
    m = import_file(write(tmp_path, model("mul8u_TRN", "  return (A * B) & ~0xFULL;"), "t.c"))
    assert np.array_equal(m.lut, (A8 * B8) & ~0xF)


def test_argument_order_is_b_then_a(tmp_path: Path) -> None:
    body = "  return (A * B + (A << 1)) & 0xFFFF;"
    m = import_file(write(tmp_path, model("mul8u_ASY", body), "asy.c"))
    assert np.array_equal(m.lut, (A8 * B8 + 2 * A8) & 0xFFFF)
    assert m.lut[5, 0] == 10 and m.lut[0, 5] == 0


def test_legacy_evoapprox8b_signature_is_called_a_then_b(tmp_path: Path) -> None:
    text = ("#include <stdint.h>\nuint16_t mul8_777(uint8_t a, uint8_t b)\n"
            "{\n  return (uint16_t)(a * b + a);\n}\n")
    m = import_file(write(tmp_path, text, "mul8_777.c"))
    assert np.array_equal(m.lut, A8 * B8 + A8)
    assert m.lut[5, 0] == 5 and m.lut[0, 5] == 0


def test_signed_model_two_complement_result(tmp_path: Path) -> None:
    body = "  int64_t a = (int8_t)A, b = (int8_t)B;\n  return (uint64_t)(a * b) & 0xFFFF;"
    m = import_file(write(tmp_path, model("mul8s_SGN", body), "s.c"))
    assert m.signed
    vals = np.where(np.arange(256) >= 128, np.arange(256) - 256, np.arange(256))
    assert np.array_equal(m.lut, np.multiply.outer(vals, vals))


def test_widths_from_name(tmp_path: Path) -> None:
    m = import_file(write(tmp_path, model("mul8x4u_W", "  return A * B;"), "w.c"))
    assert (m.a_bits, m.b_bits) == (8, 4)
    assert np.array_equal(m.lut, np.multiply.outer(np.arange(256), np.arange(16)))


def test_unsigned_result_too_wide(tmp_path: Path) -> None:
    text = model("mul8u_BIG", "  return A * B + 65536;")
    with pytest.raises(ImportFailed, match="does not fit"):
        import_file(write(tmp_path, text, "big.c"))


def test_compile_error_is_shown(tmp_path: Path) -> None:
    text = model("mul8u_BAD", "  return A * B +;")
    with pytest.raises(ImportFailed) as exc:
        import_file(write(tmp_path, text, "broken.c"))
    msg = str(exc.value)
    assert "does not compile" in msg and "error" in msg and "broken.c" in msg
    body_line = text.splitlines().index("  return A * B +;") + 1
    assert exc.value.line == body_line


def test_segfault_is_reported(tmp_path: Path) -> None:
    body = "  if (A == 3) { volatile int *p = 0; *p = 1; }\n  return A * B;"
    with pytest.raises(ImportFailed, match="crashed"):
        import_file(write(tmp_path, model("mul8u_SEG", body), "seg.c"))


def test_endless_loop_times_out(tmp_path: Path) -> None:
    body = "  volatile int go = 1;\n  if (A == 7) while (go) {}\n  return A * B;"
    start = time.monotonic()
    with pytest.raises(ImportFailed, match="did not finish within 2 s"):
        import_file(write(tmp_path, model("mul8u_HNG", body), "hang.c"), timeout_s=2)
    assert time.monotonic() - start < 15


def test_no_function_found(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match="no function"):
        import_file(write(tmp_path, "int main(void) { return 0; }\n", "nofunc.c"))


def test_missing_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-hwcost")
    with pytest.raises(ImportFailed, match="no C compiler"):
        import_file(write(tmp_path, model("mul8u_X", "  return A * B;"), "x.c"))


# C model and Verilog twin of the same truncated multiplier: partial products A[j]&B[i]
# with i + j < 4 are dropped.
ZERO = "1'b0"
TRUNC_C = """\
#include <stdint.h>
uint64_t mul8u_TR4(const uint64_t B, const uint64_t A)
{
  uint64_t O = 0;
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 8; j++)
      if (i + j >= 4)
        O += (((A >> j) & 1) & ((B >> i) & 1)) << (i + j);
  return O;
}
"""


def truncated_verilog() -> str:
    """Column-compression Verilog of the same function, written with half/full adders."""
    lines: list[str] = []
    wires: list[str] = []
    count = iter(range(10**6))

    def net() -> str:
        name = f"w{next(count)}"
        wires.append(name)
        return name

    cols: list[list[str]] = [[] for _ in range(17)]
    for i in range(8):
        for j in range(8):
            if i + j >= 4:
                p = net()
                lines.append(f"assign {p} = A[{j}] & B[{i}];")
                cols[i + j].append(p)
    for k in range(16):
        while len(cols[k]) > 1:
            if len(cols[k]) >= 3:
                x, y, z = cols[k].pop(), cols[k].pop(), cols[k].pop()
                s, c = net(), net()
                lines += [f"assign {s} = {x} ^ {y} ^ {z};",
                          f"assign {c} = ({x} & {y}) | ({z} & ({x} ^ {y}));"]
            else:
                x, y = cols[k].pop(), cols[k].pop()
                s, c = net(), net()
                lines += [f"assign {s} = {x} ^ {y};", f"assign {c} = {x} & {y};"]
            cols[k].append(s)
            cols[k + 1].append(c)
    outs = [f"assign O[{k}] = {cols[k][0] if cols[k] else ZERO};"
            for k in range(16)]
    return "\n".join(["module mul8u_TR4(A, B, O);", "input [7:0] A;", "input [7:0] B;",
                      "output [15:0] O;", f"wire {', '.join(wires)};", *lines, *outs,
                      "endmodule", ""])


def test_c_model_and_verilog_twin_agree(tmp_path: Path) -> None:
    from_c = import_file(write(tmp_path, TRUNC_C, "mul8u_TR4.c"))
    from_v = import_file(write(tmp_path, truncated_verilog(), "mul8u_TR4.v"))
    ref = np.zeros((256, 256), dtype=np.int64)
    for i in range(8):
        for j in range(8):
            if i + j >= 4:
                ref += (((A8 >> j) & 1) & ((B8 >> i) & 1)) << (i + j)
    assert np.array_equal(from_c.lut, ref)
    assert np.array_equal(from_v.lut, ref)
    assert not np.array_equal(ref, A8 * B8)  # the truncation really changes the table


def test_header_parser_reads_comments_only() -> None:
    text = """/* PDK45_AREA = 12.5 um2
     * EP% = 50 %
     */
    // PDK45_PWR = 276 uW
    // PDK45_DELAY = 900 ps
    // Something else = 3
    int MAE = 99;  /* code, not a comment line: ignored */
    // WCE = 7
    // WCE = 8
    // MRE = 0.79 %
    """
    assert parse_published(text) == pytest.approx(
        {"area_um2": 12.5, "ep_pct": 50.0, "power_mw": 0.276, "delay_ns": 0.9, "wce": 7.0,
         "mre_pct": 0.79})
