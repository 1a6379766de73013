"""Fuzz the multiplier_lib readers the way files from other tools reach them (issue 12).

Each fuzz test takes a *valid* example (Verilog in the cell-instance and expression styles, a
case ROM, an EvoApprox C model, a TFApprox ``.bin``, a ``.npy`` table, operand histograms,
library entries), mutates it with the shared :mod:`fuzzkit` strategies and runs the ``hwcost``
command that reads it.  The rule checked for every case (:func:`fuzzkit.assert_clean`): the
command succeeds, or fails with one ``Error: file[:line]: ...`` line naming the file, without
a traceback or a hang; a refused import leaves the library folder byte-for-byte unchanged,
and an accepted one leaves only loadable entries.  Hand-written hostile inputs (huge
netlists, endless or chatty C models, lying ``.npy`` headers, NaN histograms, special files)
follow, then a test that kills library writers at random moments and checks that no
half-written entry is ever left behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fuzzkit import FUZZ, assert_clean, mutated_bytes, mutated_text, run_cli, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from multiplier_lib.library import Library

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "multipliers"
CELL_V = (EXAMPLES / "bam8u_h2v6.v").read_text()
C_MODEL = (EXAMPLES / "mul8u_trunc6.c").read_text()
BIN = (EXAMPLES / "mul8u_bam26.bin").read_bytes()
ACTS = (EXAMPLES / "acts_hist.npy").read_bytes()
WEIGHTS = (EXAMPLES / "weights_hist.npy").read_bytes()
GENOTYPE = ROOT / "examples" / "small_genotype.json"
HAS_CC = shutil.which(os.environ.get("CC", "cc").split()[0] or "cc") is not None

#: refusals about a Verilog/C file as a whole, which have no line to name
WHOLE_FILE = (r"cannot tell the file format", r"exceeds the limit", r"nested too deeply",
              r"no function .* found", r"did not finish", r"is empty")
#: the entry every import test keeps in its library: a refused import must not touch it
SENTINEL = "zz_sentinel"
#: a resident-memory rise that means a reader loaded what it should have refused
MEMORY_SLACK_MB = 300


# --------------------------------------------------------------------------------------------
# Seeds: valid inputs the mutations start from


def _expression_style(cell_text: str) -> str:
    """The cell-style example rewritten in the EvoApproxLib expression style (``assign``s of
    ``&``, ``^``, ``|``), so that both Verilog styles are fuzzed on the same circuit."""

    def gate(m: re.Match) -> str:
        cell, pins = m.group(1), dict(re.findall(r"\.(\w+)\(([^()]*)\)", m.group(2)))
        a, b, c = pins.get("A"), pins.get("B"), pins.get("C")
        if cell == "AND2X1":
            return f"assign {pins['Y']} = {a} & {b};"
        if cell == "HAX1":
            return f"assign {pins['YS']} = {a} ^ {b}; assign {pins['YC']} = {a} & {b};"
        return (f"assign {pins['YS']} = {a} ^ {b} ^ {c}; "
                f"assign {pins['YC']} = ({a} & {b}) | ({c} & ({a} ^ {b}));")

    return re.sub(r"PDKGEN(\w+) g\d+\((.*)\);", gate, cell_text)


def _rom_4x4() -> str:
    """A small ``case`` ROM (the table style our exporter writes): 4x4 truncated products."""
    items = [f"      8'h{(a << 4) | b:02x}: O = 8'h{(a * b) & 0xF8:02x};"
             for a in range(16) for b in range(16)]
    return "\n".join(["module rom4u (A, B, O);", "  input [3:0] A;", "  input [3:0] B;",
                      "  output reg [7:0] O;", "  always @(*) begin", "    case ({A, B})",
                      *items, "      default: O = 8'h00;", "    endcase", "  end",
                      "endmodule", ""])


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


EXPR_V = _expression_style(CELL_V)
ROM_V = _rom_4x4()
LUT_NPY = _npy_bytes((np.multiply.outer(np.arange(256), np.arange(256)) & ~0x3F)
                     .astype(np.int32))
JOINT_NPY = _npy_bytes(np.multiply.outer(np.load(EXAMPLES / "acts_hist.npy"),
                                         np.load(EXAMPLES / "weights_hist.npy")))


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A fresh folder per fuzz case (pytest's tmp_path is shared by all of a test's cases)."""
    with tempfile.TemporaryDirectory(prefix="hwcost-fuzz-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def entries(tmp_path_factory) -> dict[str, bytes]:
    """Pristine library entries: the sentinel, one with a netlist (Verilog), one LUT-only."""
    lib = tmp_path_factory.mktemp("pristine")
    for src, name in ((EXAMPLES / "bam8u_h2v6.v", None), (EXAMPLES / "mul8u_bam26.bin", None),
                      (EXAMPLES / "mul8u_bam26.bin", SENTINEL)):
        args = ["multipliers", "import", str(src), "--library", str(lib)]
        out = run_cli(args + (["--name", name] if name else []))
        assert out.exit_code == 0, out.stderr
    return {p.stem: p.read_bytes() for p in lib.glob("*.npz")}


def library_with_sentinel(tmp: Path, entries: dict[str, bytes]) -> Path:
    lib = tmp / "lib"
    lib.mkdir()
    (lib / f"{SENTINEL}.npz").write_bytes(entries[SENTINEL])
    return lib


def check_import(path: Path, lib: Path, *, want_line: bool, extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> bool:
    """Import ``path`` into ``lib`` and check the outcome rule; True if it was accepted."""
    before = snapshot(lib)
    outcome = run_cli(["multipliers", "import", str(path), "--library", str(lib), *extra],
                      env=env)
    accepted = assert_clean(outcome, path, want_line=want_line, whole_file=WHOLE_FILE)
    if accepted:
        library = Library(lib)
        for name in library.names():  # an accepted import leaves only loadable entries
            library.load(name)
    else:
        assert snapshot(lib) == before, f"refused import of {path.name} changed the library"
    return accepted


def fuzz_import(entries, name: str, content: str | bytes, *, want_line: bool,
                extra: tuple[str, ...] = ()) -> None:
    """One fuzz case: ``content`` imported as ``name`` into a library holding a sentinel."""
    with workdir() as tmp:
        path = tmp / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        check_import(path, library_with_sentinel(tmp, entries), want_line=want_line,
                     extra=extra)


# --------------------------------------------------------------------------------------------
# Fuzzed imports


@settings(parent=FUZZ, max_examples=30)
@given(text=mutated_text(CELL_V))
def test_fuzz_verilog_cell_style(entries, text: str) -> None:
    fuzz_import(entries, "bam8u_h2v6.v", text, want_line=True)


@settings(parent=FUZZ, max_examples=30)
@given(text=mutated_text(EXPR_V))
def test_fuzz_verilog_expression_style(entries, text: str) -> None:
    fuzz_import(entries, "bam8u_h2v6_expr.v", text, want_line=True)


@settings(parent=FUZZ, max_examples=12)
@given(text=mutated_text(ROM_V))
def test_fuzz_verilog_case_rom(entries, text: str) -> None:
    fuzz_import(entries, "rom4u.v", text, want_line=True)


@pytest.mark.skipif(not HAS_CC, reason="no C compiler")
@settings(parent=FUZZ, max_examples=8)
@given(text=mutated_text(C_MODEL))
def test_fuzz_c_model(entries, text: str) -> None:
    fuzz_import(entries, "mul8u_trunc6.c", text, want_line=True, extra=("--timeout", "5"))


@settings(parent=FUZZ, max_examples=15)
@given(raw=mutated_bytes(BIN))
def test_fuzz_tfapprox_bin(entries, raw: bytes) -> None:
    fuzz_import(entries, "mul8u_bam26.bin", raw, want_line=False)


@settings(parent=FUZZ, max_examples=20)
@given(raw=mutated_bytes(LUT_NPY))
def test_fuzz_npy_table(entries, raw: bytes) -> None:
    fuzz_import(entries, "trunc8u_lut.npy", raw, want_line=False)


# --------------------------------------------------------------------------------------------
# Fuzzed operand histograms

HISTOGRAMS = {"acts": ACTS, "weights": WEIGHTS, "joint": JOINT_NPY}


@settings(parent=FUZZ, max_examples=24)
@given(data=st.data())
def test_fuzz_histograms(data) -> None:
    which = data.draw(st.sampled_from(sorted(HISTOGRAMS)), label="histogram")
    raw = data.draw(mutated_bytes(HISTOGRAMS[which]), label="bytes")
    # a netlist multiplier exercises the energy estimate too, a LUT-only one just the metrics
    spec = data.draw(st.sampled_from(("exact8u", str(EXAMPLES / "mul8u_bam26.bin"))))
    with workdir() as tmp:
        path = tmp / f"{which}_hist.npy"
        path.write_bytes(raw)
        args = ["characterize", spec, f"--{which}-hist", str(path)]
        if which == "acts":
            args += ["--weights-hist", str(EXAMPLES / "weights_hist.npy")]
        assert_clean(run_cli(args), path)


# --------------------------------------------------------------------------------------------
# Fuzzed library entries: cut and flipped files, and valid zips holding mutated members


def _read_commands(name: str, out: Path) -> list[list[str]]:
    return [["multipliers", "show", name], ["characterize", name], ["multipliers", "list"],
            ["multipliers", "export", name, "--npy", str(out / "x.npy")]]


def check_entry(lib: Path, name: str, command: list[str]) -> None:
    """Run a reading command on a (corrupted) entry; an export must write nothing on failure."""
    out = lib.parent / "out"
    out.mkdir(exist_ok=True)
    before = snapshot(out, lib)
    outcome = run_cli([*command, "--library", str(lib)])
    if not assert_clean(outcome, lib / f"{name}.npz"):
        assert snapshot(out, lib) == before, "a failed read wrote files"


def fuzz_entry(name: str, blob: bytes, command: Callable[[Path], list[str]]) -> None:
    """One fuzz case: ``blob`` stored as library entry ``name``, then read by
    ``command(case_folder)``."""
    with workdir() as tmp:
        lib = tmp / "lib"
        lib.mkdir()
        (lib / f"{name}.npz").write_bytes(blob)
        check_entry(lib, name, command(tmp))


@settings(parent=FUZZ, max_examples=30)
@given(data=st.data())
def test_fuzz_library_entry_bytes(entries, data) -> None:
    name = data.draw(st.sampled_from(("bam8u_h2v6", "mul8u_bam26")), label="entry")
    raw = data.draw(mutated_bytes(entries[name]), label="bytes")
    fuzz_entry(name, raw, lambda tmp: data.draw(
        st.sampled_from(_read_commands(name, tmp / "out")), label="cmd"))


def _members(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _pack(members: dict[str, np.ndarray | bytes]) -> bytes:
    """A well-formed entry zip (valid CRCs) holding the given, possibly mutated, members:
    arrays go through ``np.savez_compressed``, raw bytes are stored as ``NAME.npy`` as is."""
    buf = io.BytesIO()
    arrays = {k: v for k, v in members.items() if isinstance(v, np.ndarray)}
    np.savez_compressed(buf, **arrays)
    raw = {k: v for k, v in members.items() if isinstance(v, bytes)}
    if raw:
        with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf:
            for key, payload in raw.items():
                zf.writestr(f"{key}.npy", payload)
    return buf.getvalue()


def _json_member(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), np.uint8)


def _netlist_lines(netlist: dict) -> str:
    """The stored netlist JSON with one gate per line, so line edits hit single gates."""
    head = ",\n".join(f'"{k}": {json.dumps(v)}' for k, v in netlist.items() if k != "gates")
    gates = ",\n".join(json.dumps(g) for g in netlist["gates"])
    return "{" + head + ',\n"gates": [\n' + gates + "\n]}\n"


@settings(parent=FUZZ, max_examples=20)
@given(data=st.data())
def test_fuzz_library_entry_meta(entries, data) -> None:
    name = data.draw(st.sampled_from(("bam8u_h2v6", "mul8u_bam26")), label="entry")
    members = _members(entries[name])
    meta = json.dumps(json.loads(bytes(members["meta"]).decode()), indent=1)
    members["meta"] = _json_member(data.draw(mutated_text(meta), label="meta"))
    fuzz_entry(name, _pack(members), lambda tmp: data.draw(
        st.sampled_from(_read_commands(name, tmp / "out")), label="cmd"))


@settings(parent=FUZZ, max_examples=20)
@given(data=st.data())
def test_fuzz_library_entry_netlist(entries, data) -> None:
    members = _members(entries["bam8u_h2v6"])
    text = _netlist_lines(json.loads(bytes(members["netlist"]).decode()))
    members["netlist"] = _json_member(data.draw(mutated_text(text), label="netlist"))
    fuzz_entry("bam8u_h2v6", _pack(members), lambda tmp: data.draw(st.sampled_from(
        [["characterize", "bam8u_h2v6"], ["multipliers", "show", "bam8u_h2v6"]])))


@settings(parent=FUZZ, max_examples=15)
@given(data=st.data())
def test_fuzz_library_entry_lut_member(entries, data) -> None:
    name = data.draw(st.sampled_from(("bam8u_h2v6", "mul8u_bam26")), label="entry")
    members: dict = _members(entries[name])
    members["lut"] = data.draw(mutated_bytes(_npy_bytes(members["lut"])), label="lut")
    fuzz_entry(name, _pack(members), lambda tmp: data.draw(
        st.sampled_from(_read_commands(name, tmp / "out")), label="cmd"))


@settings(parent=FUZZ, max_examples=3)
@given(data=st.data())
def test_fuzz_library_entry_in_estimate(entries, data) -> None:
    """``estimate`` reads entries through the NAS cost model: a few cases, it is slow."""
    raw = data.draw(mutated_bytes(entries["bam8u_h2v6"]), label="bytes")
    fuzz_entry("bam8u_h2v6", raw, lambda tmp: ["estimate", str(GENOTYPE), "--arch", "eyeriss",
                                              "--multiplier", "bam8u_h2v6"])


def test_seeds_are_valid(entries, tmp_path: Path) -> None:
    """The fuzz seeds must themselves be accepted, or the fuzzing tests only the refusals."""
    for name, text in (("expr.v", EXPR_V), ("rom4u.v", ROM_V)):
        (tmp_path / name).write_text(text)
    (tmp_path / "lut.npy").write_bytes(LUT_NPY)
    (tmp_path / "joint.npy").write_bytes(JOINT_NPY)
    lib = tmp_path / "lib"
    for name in ("expr.v", "rom4u.v", "lut.npy"):
        out = run_cli(["multipliers", "import", str(tmp_path / name), "--library", str(lib),
                       "--name", Path(name).stem])
        assert out.exit_code == 0, out.stderr
    library = Library(lib)
    cell = Library(lib.parent / "cell")
    run_cli(["multipliers", "import", str(EXAMPLES / "bam8u_h2v6.v"), "--library",
             str(cell.root)])
    assert np.array_equal(library.load("expr").lut, cell.load("bam8u_h2v6").lut)
    out = run_cli(["characterize", "exact8u", "--joint-hist", str(tmp_path / "joint.npy")])
    assert out.exit_code == 0, out.stderr


# --------------------------------------------------------------------------------------------
# Hand-written hostile inputs


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cell_lines(count: int) -> str:
    return "".join(f"  PDKGENAND2X1 g{k}(.A(A[{k % 8}]), .B(B[{k % 8}]), .Y(N[{k}]));\n"
                   for k in range(count))


def _module(body: str, wires: str = "  wire [9999:0] N;\n") -> str:
    return ("module mul8u_big (A, B, O);\n  input [7:0] A;\n  input [7:0] B;\n"
            f"  output [15:0] O;\n{wires}{body}endmodule\n")


def _with_cell_definition(cell_body: str) -> str:
    """The cell-style example with a definition of its AND cell appended (EvoApprox files
    append their cells' definitions, and the importer simulates them)."""
    ports = ", ".join(re.findall(r"(?:input|output) (\w+)", cell_body))
    return CELL_V + f"module PDKGENAND2X1({ports});\n{cell_body}endmodule\n"


#: case -> (file text, what the refusal must say; None: the file is valid and accepted)
HOSTILE_VERILOG: dict[str, tuple[object, str | None]] = {
    # 10**6 gates (~60 MB): refused on its size before it is read
    "million_gates": (lambda: _module(_cell_lines(10**6)), "HWCOST_MAX_MULTIPLIER_FILE_BYTES"),
    # a generate loop of 10**9 iterations: not in the supported subset, refused at once
    "generate_loop": (lambda: _module(
        "  genvar i;\n  generate for (i = 0; i < 1000000000; i = i + 1) begin : g\n"
        "    assign O[0] = A[0] & B[0];\n  end endgenerate\n"), "syntax error"),
    # replication nested to 2**40 bits
    "nested_replication": (lambda: _module("  assign N = {1048576{{1048576{A[0]}}}};\n"),
                           "replication count: .*HWCOST_MAX_NETS"),
    "nested_replication_small_counts": (
        lambda: _module("  assign N = {1000{{1000{{1000{A[0]}}}}}};\n"),
        "expression width: .*HWCOST_MAX_NETS"),
    # a concatenation of many wide replications
    "wide_concat": (lambda: _module("  assign N = {" + ", ".join(["{90000{A[0]}}"] * 64)
                                    + "};\n"), "expression width: .*HWCOST_MAX_NETS"),
    # a few lines declaring millions of bits
    "wide_buses": (lambda: _module(
        "".join(f"  assign W{k} = {{60000{{A[0]}}}};\n" for k in range(40)),
        "".join(f"  wire [59999:0] W{k};\n" for k in range(40))), "HWCOST_MAX_NETS"),
    # one expression of 300,000 gates: stopped while parsing
    "long_expression": (lambda: _module(
        "  assign O[0] = " + " & ".join(f"A[{k % 8}]" for k in range(300_000)) + ";\n"),
        "HWCOST_MAX_GATES"),
    "deep_parentheses": (lambda: _module("  assign O[0] = " + "(" * 100_000 + "A[0]"
                                         + ")" * 100_000 + ";\n"), "nested too deeply"),
    "huge_number": (lambda: _module("  assign O[0] = 64'h" + "f" * 10_000 + ";\n"),
                    "too long"),
    # case values wider than the output are cut to it, as Verilog does
    "huge_case_value": (lambda: ROM_V.replace("8'h00;", "99999999999999999999999999;", 1),
                        None),
    "case_label_overflow": (
        lambda: ROM_V.replace("8'h00:", "1000000000000000000000000:", 1),
        "exceeds the 8-bit operand space"),
    # more case items than an 8x8 multiplier has operand pairs
    "case_items_flood": (lambda: ROM_V.replace(
        "      default:", "".join(f"      16'h{k % 65536:04x}: O = 8'h00;\n"
                                  for k in range(140_000)) + "      default:"),
        "more than 131,072 items"),
    "binary_garbage": (lambda: "module m(A, B, O);\n" + "\x00\x01\xff" * 1000,
                       "unexpected character"),
    # an appended cell definition with 40 inputs: a truth table of 2**40 columns
    "cell_with_40_inputs": (lambda: _with_cell_definition(
        "".join(f"  input I{k};\n" for k in range(40)) + "  output Y;\n"
        "  assign Y = I0 & I1;\n"), "40 inputs"),
    # a cell definition whose assigns share sub-nets: 2**90 paths through 90 nets, which a
    # naive recursive evaluation would walk; the cell still is an AND, so it is accepted
    "cell_shared_subnets": (lambda: _with_cell_definition(
        "  input A, B;\n  output Y;\n  wire t0;\n  assign t0 = A & B;\n"
        + "".join(f"  wire t{k};\n  assign t{k} = t{k - 1} & t{k - 1};\n"
                  for k in range(1, 90)) + "  assign Y = t89;\n"), None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_VERILOG))
def test_hostile_verilog(entries, tmp_path: Path, case: str) -> None:
    make, expected = HOSTILE_VERILOG[case]
    path = tmp_path / f"{case}.v"
    path.write_text(make(), encoding="utf-8")
    lib = library_with_sentinel(tmp_path, entries)
    rss = _rss_mb()
    start = time.monotonic()
    before = snapshot(lib)
    outcome = run_cli(["multipliers", "import", str(path), "--library", str(lib)])
    accepted = assert_clean(outcome, path, want_line=True, whole_file=WHOLE_FILE)
    assert time.monotonic() - start < 10, "a hostile file took too long to refuse"
    assert _rss_mb() - rss < MEMORY_SLACK_MB, "a hostile file was loaded into memory"
    if expected is None:
        assert accepted, outcome.stderr
    else:
        assert not accepted and re.search(expected, outcome.stderr), outcome.stderr
        assert snapshot(lib) == before


def test_gate_limit_stops_parsing_early(entries, tmp_path: Path) -> None:
    """With the file-size limit raised, the gate limit still refuses 10**5 cells early."""
    path = tmp_path / "many_cells.v"
    path.write_text(_module(_cell_lines(100_000)))
    start = time.monotonic()
    check_import(path, library_with_sentinel(tmp_path, entries), want_line=True,
                 env={"HWCOST_MAX_MULTIPLIER_FILE_BYTES": str(10**9)})
    assert time.monotonic() - start < 8


@pytest.mark.parametrize("env, value, source", [
    ("HWCOST_MAX_GATES", "50", "bam8u_h2v6.v"),
    ("HWCOST_MAX_NETS", "100", "bam8u_h2v6.v"),
    ("HWCOST_MAX_MULTIPLIER_FILE_BYTES", "1000", "mul8u_bam26.bin"),
])
def test_limits_can_be_lowered(entries, tmp_path: Path, env: str, value: str,
                               source: str) -> None:
    """Each limit is enforced, names its setting, and the example passes at the default."""
    lib = library_with_sentinel(tmp_path, entries)
    path = EXAMPLES / source
    before = snapshot(lib)
    out = run_cli(["multipliers", "import", str(path), "--library", str(lib)],
                  env={env: value})
    assert not assert_clean(out, path) and env in out.stderr
    assert snapshot(lib) == before
    assert check_import(path, lib, want_line=False)


C_BODY = "uint64_t mul8u_bad(const uint64_t B, const uint64_t A)\n{{\n{}\n}}\n"
#: case -> (function body, what the refusal must say, environment)
HOSTILE_C: dict[str, tuple[str, str, dict[str, str]]] = {
    "endless_loop": ("  for (;;) {}\n  return A * B;", "did not finish within 2 s", {}),
    "prints_gigabytes": ('  for (;;) fputs("' + "x" * 60 + '\\n", stdout);',
                         "did not finish within 2 s", {}),
    "stderr_flood": ('  for (;;) fputs("' + "y" * 60 + '\\n", stderr);',
                     "wrote more than 1,000,000 bytes",
                     {"HWCOST_MAX_C_MODEL_OUTPUT_BYTES": "1000000"}),
    # the memory limit is lowered to keep the test fast; the default is just larger
    "eats_memory": ("  for (;;) { char *p = malloc(1 << 24); if (!p) abort(); "
                    "memset(p, 1, 1 << 24); }", r"crashed \(SIGABRT\)",
                    {"HWCOST_MAX_C_MODEL_MEMORY_MB": "200"}),
    "segfault": ("  return *(volatile uint64_t *)0;", r"crashed \(SIGSEGV\)", {}),
    "exits_early": ("  exit(3);", "exit status 3", {}),
    "includes_dev_zero": ('#include "/dev/zero"\n  return A * B;', "does not compile", {}),
    "preprocessor_bomb": ("\n".join(["#define X0 A * B +"] + [
        f"#define X{k} X{k - 1} X{k - 1}" for k in range(1, 40)]) + "\n  return X39 0;",
        "does not compile", {"HWCOST_MAX_C_MODEL_MEMORY_MB": "300"}),
}


@pytest.mark.skipif(not HAS_CC, reason="no C compiler")
@pytest.mark.parametrize("case", sorted(HOSTILE_C))
def test_hostile_c_model(entries, tmp_path: Path, case: str) -> None:
    body, expected, env = HOSTILE_C[case]
    path = tmp_path / "mul8u_bad.c"
    path.write_text("#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                    "#include <string.h>\n" + C_BODY.format(body))
    lib = library_with_sentinel(tmp_path, entries)
    before = snapshot(lib)
    rss = _rss_mb()
    start = time.monotonic()
    outcome = run_cli(["multipliers", "import", str(path), "--timeout", "2", "--library",
                       str(lib)], env=env)
    assert not assert_clean(outcome, path)
    assert re.search(expected, outcome.stderr), outcome.stderr
    assert time.monotonic() - start < 8
    assert _rss_mb() - rss < MEMORY_SLACK_MB, "the model's output was kept in memory"
    assert snapshot(lib) == before


def _npy_header_only(shape: tuple[int, ...], descr: str = "<i8") -> bytes:
    """A .npy whose header claims ``shape`` but holds 16 bytes of data."""
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + b"\0" * 16


def _pickled_object_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, lut=np.zeros((256, 256), np.int32))
    return buf.getvalue()


HOSTILE_NPY = {
    "shape_1e12": lambda: _npy_header_only((10**6, 10**6)),
    "shape_1e12_1d": lambda: _npy_header_only((10**12,)),
    "pickled_objects": _pickled_object_npy,
    "npz_archive": _npz_bytes,
    "structured_dtype": lambda: _npy_bytes(np.zeros((256, 256), dtype=[("a", "<i4")])),
    "unicode_table": lambda: _npy_bytes(np.full((256, 256), "x")),
    "header_only": lambda: _npy_bytes(np.zeros((256, 256), np.int32))[:128],
    "empty": lambda: b"",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NPY))
def test_hostile_npy_table(entries, tmp_path: Path, case: str) -> None:
    path = tmp_path / "table.npy"
    path.write_bytes(HOSTILE_NPY[case]())
    rss = _rss_mb()
    assert not check_import(path, library_with_sentinel(tmp_path, entries), want_line=False)
    assert _rss_mb() - rss < MEMORY_SLACK_MB


HOSTILE_HISTOGRAMS = {
    "nan": lambda: _npy_bytes(np.where(np.arange(256) == 7, np.nan, 1.0)),
    "inf": lambda: _npy_bytes(np.where(np.arange(256) == 7, np.inf, 1.0)),
    "negative": lambda: _npy_bytes(np.where(np.arange(256) == 7, -1.0, 1.0)),
    "all_zero": lambda: _npy_bytes(np.zeros(256)),
    "sum_overflows": lambda: _npy_bytes(np.full(256, 1e308)),
    "tiny_counts": lambda: _npy_bytes(np.full(256, 5e-324)),
    "billion_bins": lambda: _npy_header_only((10**9,), "<f8"),
    "shape_1e12": lambda: _npy_header_only((10**12,), "<f8"),
    "pickled_objects": _pickled_object_npy,
    "complex": lambda: _npy_bytes(np.ones(256, np.complex128)),
    "booleans": lambda: _npy_bytes(np.ones(256, bool)),
    "npz_archive": _npz_bytes,
    "two_d": lambda: _npy_bytes(np.ones((16, 16))),
    "empty": lambda: b"",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HISTOGRAMS))
def test_hostile_histogram(tmp_path: Path, case: str) -> None:
    path = tmp_path / "acts_hist.npy"
    path.write_bytes(HOSTILE_HISTOGRAMS[case]())
    rss = _rss_mb()
    outcome = run_cli(["characterize", "exact8u", "--acts-hist", str(path)])
    accepted = assert_clean(outcome, path)
    # tiny or huge but finite positive counts are a valid (here uniform) distribution
    assert accepted == (case in ("tiny_counts", "sum_overflows")), outcome.stderr
    if accepted:  # the same figures as for a histogram of ones
        ones = tmp_path / "ones.npy"
        ones.write_bytes(_npy_bytes(np.ones(256)))
        uniform = run_cli(["characterize", "exact8u", "--acts-hist", str(ones)])
        assert outcome.stdout == uniform.stdout
    assert _rss_mb() - rss < MEMORY_SLACK_MB


def _special(kind: str, tmp: Path, name: str) -> Path:
    """A path of ``name`` in ``tmp`` that is not a regular file."""
    path = tmp / name
    if kind == "directory":
        path.mkdir()
    elif kind == "symlink_to_directory":
        (tmp / "somedir").mkdir()
        path.symlink_to(tmp / "somedir")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "dangling_symlink":
        path.symlink_to(tmp / "nowhere")
    elif kind == "unreadable":
        path.write_bytes(BIN)
        path.chmod(0)
    return path


SPECIAL = ("directory", "symlink_to_directory", "fifo", "dev_zero", "dangling_symlink",
           "unreadable")


@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize("name", ["m.v", "m.bin", "m.npy", "mul8u_x.c"])
def test_special_file_imports(entries, tmp_path: Path, kind: str, name: str) -> None:
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = _special(kind, tmp_path, name)
    assert not check_import(path, library_with_sentinel(tmp_path, entries), want_line=False)


@pytest.mark.parametrize("kind", SPECIAL)
def test_special_file_histograms(tmp_path: Path, kind: str) -> None:
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = _special(kind, tmp_path, "weights_hist.npy")
    assert not assert_clean(run_cli(["characterize", "exact8u", "--weights-hist", str(path)]),
                            path)


@pytest.mark.parametrize("kind", SPECIAL)
def test_special_file_library_entries(tmp_path: Path, kind: str) -> None:
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads any file")
    lib = tmp_path / "lib"
    lib.mkdir()
    path = _special(kind, lib, "mine.npz")
    for command in (["multipliers", "show", "mine"], ["characterize", "mine"]):
        assert not assert_clean(run_cli([*command, "--library", str(lib)]), path)


def _zip_bomb() -> bytes:
    """An entry whose LUT member inflates to 64 MiB of zeros from a file of 64 KiB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.npy", _npy_bytes(_json_member(json.dumps(GOOD_META))))
        with zf.open("lut.npy", "w", force_zip64=True) as member:
            member.write(_npy_header_only((1 << 24,), "<i4")[:-16])
            zero = bytes(1 << 20)
            for _ in range(64):
                member.write(zero)
    return buf.getvalue()


def _entry(meta: dict | list | str, lut: np.ndarray | bytes | None = None,
           netlist: dict | None = None) -> bytes:
    members: dict = {"meta": _json_member(meta if isinstance(meta, str) else json.dumps(meta)),
                     "lut": np.zeros((256, 256), np.int32) if lut is None else lut}
    if netlist is not None:
        members["netlist"] = _json_member(json.dumps(netlist))
    return _pack(members)


GOOD_META = {"format": 1, "name": "mine", "a_bits": 8, "b_bits": 8, "signed": False,
             "published": {}, "source": None, "source_sha256": None, "description": ""}


def _netlist(gates: list, outputs: list | None = None, nets: int = 20) -> dict:
    return {"a_bits": 8, "b_bits": 8, "nets": [f"n{k}" for k in range(nets)],
            "gates": gates, "outputs": outputs if outputs is not None else [0] * 16}


#: case -> (entry bytes, what the refusal must say; None: a valid entry, for contrast)
HOSTILE_ENTRIES: dict[str, tuple[object, str | None]] = {
    "valid_control": (lambda: _entry(GOOD_META), None),
    "zip_bomb": (_zip_bomb, "member lut: .*HWCOST_MAX_LIBRARY_ENTRY_BYTES"),
    "lut_shape_1e12": (lambda: _entry(GOOD_META, _npy_header_only((10**6, 10**6))),
                       r"lut: expected shape \(256, 256\)"),
    "lut_pickled": (lambda: _entry(GOOD_META, _pickled_object_npy()), "Python objects"),
    "lut_float": (lambda: _entry(GOOD_META, np.zeros((256, 256))), "integer table"),
    "lut_wrong_shape": (lambda: _entry(GOOD_META, np.zeros((16, 16), np.int32)),
                        "expected shape"),
    "meta_not_json": (lambda: _entry("{not json"), "meta: not valid JSON"),
    "meta_deep_json": (lambda: _entry("[" * 100_000 + "]" * 100_000), "meta: not valid JSON"),
    "meta_list": (lambda: _entry([1, 2, 3]), "meta: expected a JSON object"),
    "meta_missing_keys": (lambda: _entry({"name": "mine"}), "meta: missing"),
    "meta_bits_string": (lambda: _entry({**GOOD_META, "a_bits": "8"}), "'a_bits' must be"),
    "meta_bits_huge": (lambda: _entry({**GOOD_META, "a_bits": 10**9}), "'a_bits' must be"),
    "meta_published_junk": (lambda: _entry({**GOOD_META, "published": {"power_mw": "x"}}),
                            "must be a number"),
    "meta_name_not_str": (lambda: _entry({**GOOD_META, "name": 5}), "'name' must be"),
    "netlist_many_gates": (lambda: _entry(GOOD_META, netlist=_netlist(
        [["NOT", [2], [20 + k]] for k in range(25_000)], nets=25_020)), "HWCOST_MAX_GATES"),
    "netlist_net_out_of_range": (lambda: _entry(GOOD_META, netlist=_netlist(
        [["AND", [2, 10**9], [19]]], [19] * 16)), "not one of the 20 nets"),
    "netlist_negative_net": (lambda: _entry(GOOD_META, netlist=_netlist(
        [["AND", [2, -3], [19]]], [19] * 16)), "not one of the 20 nets"),
    "netlist_unknown_cell": (lambda: _entry(GOOD_META, netlist=_netlist(
        [["TELEPORT", [2, 3], [19]]], [19] * 16)), "unknown cell kind"),
    "netlist_not_dict": (lambda: _entry(GOOD_META, netlist=[1, 2]),  # type: ignore[arg-type]
                         "netlist: expected a JSON object"),
    "netlist_bad_gate_shape": (lambda: _entry(GOOD_META, netlist=_netlist([["AND", 2]])),
                               "must be \\[kind"),
    "netlist_wrong_outputs": (lambda: _entry(GOOD_META, netlist=_netlist([], [0] * 3)),
                              "do not match"),
    "netlist_lut_mismatch": (lambda: _entry(GOOD_META, netlist=_netlist([], [1] * 16)),
                             "does not compute the stored truth table"),
    "not_a_zip": (lambda: b"PK\x03\x04 hello", "BadZipFile"),
    "encrypted_flag": (lambda: _encrypted(_entry(GOOD_META)), "encrypted"),
}


def _encrypted(raw: bytes) -> bytes:
    """Set the 'encrypted' flag on every member (zipfile then asks for a password)."""
    data = bytearray(raw)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        for m in re.finditer(re.escape(sig), bytes(data)):
            data[m.start() + off] |= 1
    return bytes(data)


@pytest.mark.parametrize("case", sorted(HOSTILE_ENTRIES))
def test_hostile_library_entry(tmp_path: Path, case: str) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    path = lib / "mine.npz"
    make, expected = HOSTILE_ENTRIES[case]
    path.write_bytes(make())
    rss = _rss_mb()
    start = time.monotonic()
    for command in (["multipliers", "show", "mine"], ["characterize", "mine"]):
        outcome = run_cli([*command, "--library", str(lib)])
        accepted = assert_clean(outcome, path)
        if expected is None:
            assert accepted, outcome.stderr
        else:
            assert not accepted and re.search(expected, outcome.stderr), outcome.stderr
    assert time.monotonic() - start < 8
    assert _rss_mb() - rss < MEMORY_SLACK_MB


@pytest.mark.parametrize("name", ["x" * 300, "a/b", "..", "-x", "with space", "é"])
def test_bad_import_names(entries, tmp_path: Path, name: str) -> None:
    lib = library_with_sentinel(tmp_path, entries)
    before = snapshot(lib)
    path = EXAMPLES / "mul8u_bam26.bin"
    outcome = run_cli(["multipliers", "import", str(path), "--name", name, "--library",
                       str(lib)])
    assert not assert_clean(outcome, path)
    assert snapshot(lib) == before


@pytest.mark.parametrize("command", [["multipliers", "show"], ["characterize"],
                                     ["multipliers", "remove"], ["multipliers", "export"]])
@pytest.mark.parametrize("name", ["x" * 300, "zz_" * 100 + ".v", "a" * 5000, "nope"])
def test_unknown_or_overlong_names(entries, tmp_path: Path, command: list[str],
                                   name: str) -> None:
    """Names typed by a user (or a script) that no file or entry has: one clean error."""
    lib = library_with_sentinel(tmp_path, entries)
    before = snapshot(lib)
    extra = ["--npy", str(tmp_path / "out.npy")] if command[-1] == "export" else []
    outcome = run_cli([*command, name, *extra, "--library", str(lib)])
    assert outcome.exception is None, outcome.trace
    assert outcome.exit_code == 1 and outcome.stderr.startswith("Error: "), outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1 and len(outcome.stderr) < 1000
    assert snapshot(lib) == before and not (tmp_path / "out.npy").exists()


def test_library_folder_under_a_file(tmp_path: Path) -> None:
    """The library folder cannot be created: a clean error naming the entry, no traceback."""
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    lib = blocker / "lib"
    outcome = run_cli(["multipliers", "import", str(EXAMPLES / "mul8u_bam26.bin"),
                       "--library", str(lib)])
    assert not assert_clean(outcome, lib / "mul8u_bam26.npz")
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf"])
def test_bad_c_timeout(entries, tmp_path: Path, timeout: str) -> None:
    lib = library_with_sentinel(tmp_path, entries)
    outcome = run_cli(["multipliers", "import", str(EXAMPLES / "mul8u_trunc6.c"),
                       "--timeout", timeout, "--library", str(lib)])
    assert outcome.exception is None and outcome.exit_code != 0
    assert "timeout" in outcome.stderr.lower()


# --------------------------------------------------------------------------------------------
# Killed writers never leave half a file

SAVE_LOOP = """
import sys
from multiplier_lib.generators import generate
from multiplier_lib.library import Library
library, mult = Library(sys.argv[1]), generate("drum8u_k4")
print("ready", flush=True)
while True:
    library.save(mult, force=True)
"""


def _assert_entry_whole(lib: Path, name: str, expected: np.ndarray) -> None:
    """The entry is absent or complete; temporary files never pass for entries."""
    library = Library(lib)
    assert library.names() in ([], [name])
    if library.names():
        m = library.load(name)
        assert np.array_equal(m.lut, expected)


@pytest.mark.parametrize("seed", range(3))
def test_killed_save_loop_leaves_whole_entries(tmp_path: Path, seed: int) -> None:
    """SIGKILL a process rewriting an entry in a loop, at a random moment of a write."""
    from multiplier_lib.generators import generate

    lib = tmp_path / "lib"
    with subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(lib)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(random.Random(seed).uniform(0.0, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    _assert_entry_whole(lib, "drum8u_k4", generate("drum8u_k4").lut)


#: Saves entry "entry" whole, then stalls half-way through rewriting it with another table.
STALLED_WRITE = """
import pathlib, sys, time
from multiplier_lib.generators import generate
from multiplier_lib.library import Library
library = Library(sys.argv[1])
library.save(generate("drum8u_k4"), force=True)

def stalling(self, data):
    with open(self, "wb") as fh:
        fh.write(data[:len(data) // 2])
        fh.flush()
        print("half", flush=True)
        time.sleep(60)
        fh.write(data[len(data) // 2:])

pathlib.Path.write_bytes = stalling
library.save(generate("trunc8u_k4").__class__(**{**vars(generate("trunc8u_k4")),
                                                  "name": "drum8u_k4"}), force=True)
"""


def test_kill_in_the_middle_of_a_write_keeps_the_old_entry(tmp_path: Path) -> None:
    """Deterministic: SIGKILL lands while half the new bytes are written; the entry must
    still be the old, complete one (a direct, non-atomic write would leave half a file)."""
    from multiplier_lib.generators import generate

    lib = tmp_path / "lib"
    with subprocess.Popen([sys.executable, "-c", STALLED_WRITE, str(lib)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "half"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    _assert_entry_whole(lib, "drum8u_k4", generate("drum8u_k4").lut)
    assert Library(lib).names() == ["drum8u_k4"]


@pytest.mark.parametrize("seed", range(3))
def test_killed_cli_import_leaves_whole_entries(tmp_path: Path, seed: int) -> None:
    """SIGKILL ``hwcost multipliers import`` at a random moment of its run."""
    from multiplier_lib.importers import import_file

    lib = tmp_path / "lib"
    src = EXAMPLES / "bam8u_h2v6.v"
    cmd = [sys.executable, "-m", "hwcost", "multipliers", "import", str(src), "--library"]
    start = time.monotonic()
    subprocess.run([*cmd, str(tmp_path / "timing")], cwd=ROOT, check=True, capture_output=True)
    full = time.monotonic() - start
    proc = subprocess.Popen([*cmd, str(lib)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(random.Random(seed).uniform(0.5, 1.0) * full)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _assert_entry_whole(lib, "bam8u_h2v6", import_file(src).lut)
