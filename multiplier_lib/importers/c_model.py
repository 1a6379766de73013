"""Evaluate an EvoApprox C model (``uint64_t mul8u_XXX(const uint64_t B, const uint64_t A)``).

Also reads the legacy EvoApprox8b signature ``uint16_t mul8_XXX(uint8_t a, uint8_t b)``.

The C function is the reference behaviour of the published circuit, so it is compiled with
the system C compiler and run for every operand pair.  Untrusted model code may crash or never
return, so it runs in a child Python process with a timeout: a segfault or an endless loop
becomes a clear :class:`ImportFailed` instead of taking the caller down with it.

EvoApprox functions take ``B`` *first* and ``A`` second; ``lut[a, b]`` is ``f(B=b, A=a)``.
The order is read from the parameter names: ``(B, A)`` is swapped, anything else (the legacy
``(a, b)``) is called in declaration order.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImportFailed
from ..multiplier import MAX_BITS, raw_to_product

_FUNCTION = re.compile(
    r"\b(u?int(?:8|16|32|64)_t|unsigned\s+long\s+long|unsigned\s+long|unsigned\s+int|"
    r"unsigned\s+short|unsigned|int|long)\s+(\w+)\s*\(([^()]*)\)\s*\{")
_WIDTHS = re.compile(r"mul(\d+)(?:x(\d+))?([us])", re.IGNORECASE)

#: Compiled next to the model: one call tabulates every pair, so the child needs no numpy
#: and no per-pair ctypes overhead.  A separate translation unit, so it cannot clash with
#: whatever the model's own declarations say.
_WRAPPER = """
#include <stdint.h>
{ret} {function}({params});
void hwcost_eval_all(uint64_t *out, int a_bits, int b_bits)
{{
    for (uint64_t a = 0; a < ((uint64_t)1 << a_bits); a++)
        for (uint64_t b = 0; b < ((uint64_t)1 << b_bits); b++)
            out[(a << b_bits) | b] = (uint64_t){function}({args});
}}
"""

#: Run in the child process: load the library, tabulate, write the raw uint64 results.
_CHILD = """
import ctypes, sys
lib_path, a_bits, b_bits, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
buf = (ctypes.c_uint64 * (1 << (a_bits + b_bits)))()
ctypes.CDLL(lib_path).hwcost_eval_all(buf, a_bits, b_bits)
with open(out, "wb") as fh:
    fh.write(bytes(buf))
"""


@dataclass
class CModel:
    """The evaluated model: function name, operand widths, raw outputs (uint64)."""

    function: str
    a_bits: int
    b_bits: int
    signed: bool | None  # from the function name; None when the name says nothing
    raw: np.ndarray


def find_function(text: str, path: str) -> tuple[str, int]:
    """The model's function name and line; a ``mulNu``-style name is preferred."""
    found = [(m.group(2), text.count("\n", 0, m.start()) + 1) for m in _FUNCTION.finditer(text)
             if m.group(3).count(",") == 1]  # a multiplier takes exactly two operands
    if not found:
        raise ImportFailed("no function 'uint64_t NAME(const uint64_t B, const uint64_t A)' "
                           "found in the C model", file=path)
    for name, line in found:
        if _WIDTHS.search(name):
            return name, line
    return found[0]


def signature(text: str, function: str) -> tuple[str, str, str]:
    """Return type, parameter list and the call arguments that put A and B in place."""
    for m in _FUNCTION.finditer(text):
        if m.group(2) == function:
            params = m.group(3).strip()
            names = [re.findall(r"\w+", p)[-1] for p in params.split(",") if p.strip()]
            args = "b, a" if [n.lower() for n in names] == ["b", "a"] else "a, b"
            return m.group(1), params, args
    return "uint64_t", "uint64_t B, uint64_t A", "b, a"


def widths_from_name(name: str) -> tuple[int, int, bool | None]:
    """``(a_bits, b_bits, signed)`` from an EvoApprox name (``mul8u``, ``mul8x4s``...)."""
    m = _WIDTHS.search(name)
    if m is None:
        return 8, 8, None
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) else a
    return a, b, m.group(3).lower() == "s"


def _compiler(path: str) -> list[str]:
    cc = os.environ.get("CC", "").strip()
    cmd = shlex.split(cc) if cc else ["cc"]
    if shutil.which(cmd[0]) is None:
        raise ImportFailed(f"no C compiler found ('{cmd[0]}'; set $CC) to build the C model",
                           file=path)
    return cmd


def evaluate_c_model(path: str | Path, text: str, *, timeout_s: float = 20.0) -> CModel:
    """Compile the model in ``text`` (read from ``path``) and tabulate it for all pairs."""
    path = str(path)
    function, fline = find_function(text, path)
    a_bits, b_bits, signed = widths_from_name(function)
    if not (1 <= a_bits <= MAX_BITS and 1 <= b_bits <= MAX_BITS):
        raise ImportFailed(f"function {function} names {a_bits}x{b_bits}-bit operands; "
                           f"expected 1..{MAX_BITS} bits each", file=path, line=fline)
    cmd = _compiler(path)
    with tempfile.TemporaryDirectory(prefix="hwcost-c-") as tmp:
        src = Path(tmp) / "model.c"
        lib = Path(tmp) / "model.so"
        wrapper = Path(tmp) / "hwcost_wrapper.c"
        out = Path(tmp) / "raw.bin"
        src.write_text(text, encoding="utf-8")
        ret, params, args = signature(text, function)
        wrapper.write_text(_WRAPPER.format(function=function, ret=ret, params=params, args=args),
                           encoding="utf-8")
        try:
            proc = subprocess.run([*cmd, "-O1", "-shared", "-fPIC", "-x", "c", str(src),
                                   str(wrapper), "-o", str(lib)], capture_output=True, text=True,
                                  timeout=max(60.0, timeout_s))
        except subprocess.TimeoutExpired:
            raise ImportFailed("the C compiler did not finish", file=path) from None
        except OSError as err:
            raise ImportFailed(f"cannot run the C compiler: {err}", file=path) from None
        if proc.returncode != 0:
            messages = (proc.stderr or proc.stdout).replace(str(src), path).strip()
            first = re.search(re.escape(path) + r":(\d+):", messages)
            lines = [ln.strip() for ln in messages.splitlines() if ln.strip()]
            errors = [ln for ln in lines if "error" in ln.lower()] or lines
            shown = " | ".join(errors[:3])  # one line: the CLI prints errors on one line
            raise ImportFailed(f"the C model does not compile: {shown}", file=path,
                               line=int(first.group(1)) if first else None)
        try:
            child = subprocess.run(
                [sys.executable, "-c", _CHILD, str(lib), str(a_bits), str(b_bits), str(out)],
                capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ImportFailed(f"the C model did not finish within {timeout_s:g} s "
                               f"(endless loop?) while evaluating {function}",
                               file=path) from None
        if child.returncode < 0:
            try:
                sig = signal.Signals(-child.returncode).name
            except ValueError:
                sig = f"signal {-child.returncode}"
            raise ImportFailed(f"the C model crashed ({sig}) while evaluating {function}",
                               file=path, line=fline)
        if child.returncode != 0 or not out.exists():
            tail = "\n".join(child.stderr.strip().splitlines()[-3:])
            raise ImportFailed(f"evaluating {function} failed: {tail}", file=path, line=fline)
        raw = np.fromfile(out, dtype=np.uint64)
        if raw.size != 1 << (a_bits + b_bits):
            raise ImportFailed(f"evaluating {function} returned {raw.size} results",
                               file=path, line=fline)
        raw = raw.reshape(1 << a_bits, 1 << b_bits)
    return CModel(function, a_bits, b_bits, signed, raw)


def c_model_lut(model: CModel, signed: bool, path: str | Path) -> np.ndarray:
    """Products from the raw outputs: two's complement of ``a+b`` bits when signed.

    An unsigned model returning more than ``a+b`` bits is refused rather than truncated,
    because the real circuit has no such output bits and silently dropping them would hide a
    broken model.
    """
    out_bits = model.a_bits + model.b_bits
    raw = model.raw
    if not signed and (raw >> np.uint64(out_bits)).any():
        a, b = (int(x[0]) for x in np.nonzero(raw >> np.uint64(out_bits)))
        raise ImportFailed(f"{model.function}(B={b}, A={a}) returned {int(raw[a, b])}, which "
                           f"does not fit the {out_bits}-bit product", file=str(path))
    return raw_to_product((raw & np.uint64((1 << out_bits) - 1)).astype(np.int64), out_bits,
                          signed)
