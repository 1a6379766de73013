"""Import a multiplier from a file: Verilog, EvoApprox C model, TFApprox ``.bin`` or ``.npy``.

:func:`import_file` is the single entry point: it picks the reader from the extension (or,
failing that, the content), derives the name and signedness the way EvoApprox names encode
them (``mul8s_1KV6`` is an 8x8 signed multiplier), and records the file's hash so that a
library entry can tell when its source has changed.  Every user mistake becomes an
:class:`~multiplier_lib.errors.ImportFailed` naming the file (and line, where there is one).
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from core.errors import HwcostError
from core.limits import Limit
from core.untrusted import read_bounded, regular_file_size

from ..errors import ImportFailed
from ..library import name_problem
from ..multiplier import Multiplier, raw_to_product
from .c_model import c_model_lut, evaluate_c_model
from .header import parse_published, parse_signedness
from .lut_files import BIN_BYTES, read_bin, read_npy
from .verilog import VerilogDesign, decode_cell, parse_verilog

__all__ = ["VerilogDesign", "decode_cell", "detect_format", "import_file", "parse_published",
           "parse_verilog", "signed_from_name"]

#: The largest real multiplier file is our own 8x8 case-ROM export (about 2 MB); EvoApprox
#: netlists and C models are tens of kB.  Refused before reading, so a 10**6-gate netlist or
#: a multi-gigabyte file never reaches memory or the (per-token, pure Python) parser.
MAX_FILE_BYTES = Limit("HWCOST_MAX_MULTIPLIER_FILE_BYTES", 4 * 2**20,
                       "bytes in a multiplier file")
_SIGNED_NAME = re.compile(r"mul\d+(?:x\d+)?([us])", re.IGNORECASE)
_EXTENSIONS = {".v": "verilog", ".sv": "verilog", ".vh": "verilog", ".c": "c", ".h": "c",
               ".cpp": "c", ".cc": "c", ".bin": "bin", ".npy": "npy"}
_DESCRIPTIONS = {"c": "imported from an EvoApprox C model",
                 "bin": "imported from a TFApprox .bin table",
                 "npy": "imported from a numpy table"}


def signed_from_name(name: str) -> bool | None:
    """True for ``mul8s_...``, False for ``mul8u_...``, None when the name does not say."""
    m = _SIGNED_NAME.search(name)
    return None if m is None else m.group(1).lower() == "s"


def detect_format(path: Path, data: bytes) -> str:
    """``verilog``, ``c``, ``bin`` or ``npy``: by extension, else by content."""
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is not None:
        return fmt
    if data.startswith(b"\x93NUMPY"):
        return "npy"
    if b"\0" not in data[:65536]:
        text = data.decode("utf-8-sig", errors="replace")
        if re.search(r"\bmodule\b", text):
            return "verilog"
        if "uint64_t" in text:
            return "c"
    if len(data) == BIN_BYTES:
        return "bin"
    raise ImportFailed("cannot tell the file format: expected Verilog (.v), an EvoApprox C "
                       "model (.c), a TFApprox table (.bin) or a numpy table (.npy)",
                       file=str(path))


def _check_name(name: str, path: Path, what: str, line: int | None = None) -> str:
    problem = name_problem(name)
    if problem is not None:
        hint = "" if what == "name" else "; pass a name explicitly"
        raise ImportFailed(f"{what} {name[:80]!r}{'...' if len(name) > 80 else ''} is not a "
                           f"valid multiplier name ({problem}){hint}", file=str(path),
                           line=line)
    return name


def _read(path: Path) -> bytes:
    """The file's bytes, refusing special files and files over :data:`MAX_FILE_BYTES`."""
    size = regular_file_size(path, ImportFailed)
    MAX_FILE_BYTES.check(size, file=str(path), context="file too large")
    return read_bounded(path, size, ImportFailed)


def _check_timeout(timeout_s: float) -> float:
    if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
        raise HwcostError(f"--timeout must be a positive number of seconds, got {timeout_s}")
    return float(timeout_s)


def _signedness(signed: bool | None, names: list[str | None], text: str | None) -> bool | None:
    if signed is not None:
        return signed
    for n in names:
        if n:
            s = signed_from_name(n)
            if s is not None:
                return s
    return parse_signedness(text) if text is not None else None


def import_file(path: str | Path, name: str | None = None, *, signed: bool | None = None,
                timeout_s: float = 20.0) -> Multiplier:
    """Read the multiplier in ``path``; ``signed=None`` infers signedness (name, then data).

    Every problem with the file is an :class:`ImportFailed` (a limit exceeded included).
    """
    timeout_s = _check_timeout(timeout_s)
    try:
        return _import(Path(path), name, signed, timeout_s)
    except ImportFailed:
        raise
    except HwcostError as err:
        if err.file is None:
            raise
        raise ImportFailed(err.message, file=err.file, line=err.line) from None


def _import(path: Path, name: str | None, signed: bool | None,
            timeout_s: float) -> Multiplier:
    data = _read(path)
    if name is not None:
        _check_name(name, path, "name")
    fmt = detect_format(path, data)
    common = {"source": str(path), "source_sha256": hashlib.sha256(data).hexdigest()}
    stem = path.stem

    if fmt in ("verilog", "c"):
        text = data.decode("utf-8-sig", errors="replace")
        published = parse_published(text)
        if fmt == "verilog":
            design = parse_verilog(text, path)
            final = name or _check_name(design.module, path, "module name", design.line)
            is_signed = _signedness(signed, [design.module, name, stem], text)
            if is_signed is None:
                is_signed = design.declared_signed
            desc = f"imported from Verilog ({design.style})"
            if design.netlist is not None:
                return Multiplier.from_netlist(final, design.netlist, is_signed,
                                               published=published, description=desc, **common)
            lut = raw_to_product(design.raw_lut, design.a_bits + design.b_bits, is_signed)
            return Multiplier(final, design.a_bits, design.b_bits, is_signed, lut,
                              published=published, description=desc, **common)
        model = evaluate_c_model(path, text, timeout_s=timeout_s)
        final = name or _check_name(model.function, path, "function name", model.line)
        is_signed = _signedness(signed, [model.function, name, stem], text)
        if is_signed is None:
            is_signed = bool(model.signed)
        lut = c_model_lut(model, is_signed, path)
        return Multiplier(final, model.a_bits, model.b_bits, is_signed, lut,
                          published=published, description=_DESCRIPTIONS["c"], **common)

    final = name or _check_name(stem, path, "file name")
    if fmt == "bin":
        is_signed = bool(_signedness(signed, [name, stem], None))
        lut = read_bin(path, data, is_signed)
        return Multiplier(final, 8, 8, is_signed, lut, description=_DESCRIPTIONS["bin"],
                          **common)
    lut, a_bits, b_bits, is_signed = read_npy(path, _signedness(signed, [name, stem], None))
    return Multiplier(final, a_bits, b_bits, is_signed, lut, description=_DESCRIPTIONS["npy"],
                      **common)
