"""Evaluate an EvoApprox C model (``uint64_t mul8u_XXX(const uint64_t B, const uint64_t A)``).

Also reads the legacy EvoApprox8b signature ``uint16_t mul8_XXX(uint8_t a, uint8_t b)``.

The C function is the reference behaviour of the published circuit, so it is compiled with
the system C compiler and run for every operand pair.  The model is code from elsewhere, so
it runs in a child process (``c_sandbox.c``, compiled beside it) with a timeout, memory and
output limits, and, on Linux, a seccomp filter installed *before* the model is loaded (its
constructors are confined too): a model that writes or creates a file, starts a process,
opens a socket, signals another process or raises a limit is killed at that system call and
reported in one line, and a segfault or an endless loop is a clear :class:`ImportFailed`
instead of taking the caller down.  Where seccomp is not available the import is refused
unless the user trusts the file (``--trust-c`` or ``HWCOST_TRUST_C=1``), which runs it
unconfined.

EvoApprox functions take ``B`` *first* and ``A`` second; ``lut[a, b]`` is ``f(B=b, A=a)``.
The order is read from the parameter names: ``(B, A)`` is swapped, anything else (the legacy
``(a, b)``) is called in declaration order.
"""

from __future__ import annotations

import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.limits import Limit

from ..errors import ImportFailed
from ..multiplier import MAX_BITS, raw_to_product

#: What the child evaluating a model may write to any one file (``RLIMIT_FSIZE``): its
#: stderr (kept in a file and only the tail shown) and the 512 KiB table of an 8x8 model.
#: Its stdout goes to /dev/null, so a model printing forever only burns its time budget.
MAX_OUTPUT_BYTES = Limit("HWCOST_MAX_C_MODEL_OUTPUT_BYTES", 16 * 2**20,
                         "bytes a C model may write")
#: Address space (``RLIMIT_AS``) of the compiler and of the child evaluating the model: a
#: compiler needs about 100 MB for a model, the Python child with ctypes 15 MB, so a model
#: allocating without end (or a preprocessor bomb, or ``#include "/dev/zero"``) fails fast
#: instead of taking the machine's memory.
MAX_MEMORY_MB = Limit("HWCOST_MAX_C_MODEL_MEMORY_MB", 1024,
                      "MiB of memory for compiling or running a C model")
#: Compiler messages kept for the error line (a broken file can make megabytes of them).
_MESSAGES_BYTES = 64 * 1024

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

#: The child that loads the model and tabulates it, confined (module docstring).
_RUNNER_SOURCE = Path(__file__).with_name("c_sandbox.c")
#: Set to run C models without the sandbox where it is unavailable (``--trust-c``).
TRUST_ENV = "HWCOST_TRUST_C"


def trusted() -> bool:
    """Whether the user said C models may run unconfined where no sandbox exists."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "yes", "true")


@dataclass
class CModel:
    """The evaluated model: function name, operand widths, raw outputs (uint64)."""

    function: str
    a_bits: int
    b_bits: int
    signed: bool | None  # from the function name; None when the name says nothing
    raw: np.ndarray
    line: int | None = None  # where the function is defined


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
        src.write_text(text, encoding="utf-8")
        ret, params, args = signature(text, function)
        wrapper.write_text(_WRAPPER.format(function=function, ret=ret, params=params, args=args),
                           encoding="utf-8")
        _compile(cmd, src, wrapper, lib, path, timeout_s)
        runner = _build_runner(cmd, Path(tmp), path, timeout_s)
        raw = _evaluate(runner, lib, a_bits, b_bits, Path(tmp), path, function, fline,
                        timeout_s)
    return CModel(function, a_bits, b_bits, signed, raw, fline)


def _head(path: Path, limit: int) -> str:
    with open(path, "rb") as fh:
        return fh.read(limit).decode("utf-8", errors="replace")


def _tail(path: Path, limit: int = 4096) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(path.stat().st_size - limit, 0))
        return fh.read().decode("utf-8", errors="replace")


def _compile(cmd: list[str], src: Path, wrapper: Path, lib: Path, path: str,
             timeout_s: float) -> None:
    """Build the shared library; compiler messages go to a file, only their start is read."""
    log = src.with_suffix(".log")
    limit = max(60.0, timeout_s)
    try:
        with open(log, "wb") as out:
            returncode = _run_limited([*cmd, "-O1", "-shared", "-fPIC", "-x", "c", str(src),
                                       str(wrapper), "-o", str(lib)], out, limit)
    except OSError as err:
        raise ImportFailed(f"cannot run the C compiler: {err}", file=path) from None
    if returncode is None:
        if log.stat().st_size >= MAX_OUTPUT_BYTES.value:
            raise ImportFailed(f"the C compiler wrote more than {MAX_OUTPUT_BYTES.value:,} "
                               f"bytes of messages (set {MAX_OUTPUT_BYTES.env} to allow "
                               "more)", file=path)
        raise ImportFailed(f"the C compiler did not finish within {limit:g} s", file=path)
    if returncode != 0:
        messages = _head(log, _MESSAGES_BYTES).replace(str(src), path).strip()
        first = re.search(re.escape(path) + r":(\d+):", messages)
        # "path:12:3: error: ..." -> "error: ..."; the CLI puts path:line in front once
        lines = [re.sub(re.escape(path) + r":(\d+:)*\s*", "", ln.strip())[:200]
                 for ln in messages.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()] or lines
        shown = " | ".join(errors[:3])  # one line: the CLI prints errors on one line
        raise ImportFailed(f"the C model does not compile: {shown}", file=path,
                           line=int(first.group(1)) if first else None)


def _build_runner(cmd: list[str], tmp: Path, path: str, timeout_s: float) -> Path:
    """Compile the sandboxed runner; where the sandbox cannot be built (not Linux, no
    seccomp headers, another CPU) only a user who trusts the file gets an unconfined one."""
    runner = tmp / "runner"
    log = tmp / "runner.log"
    base = [*cmd, "-O1", "-x", "c", str(_RUNNER_SOURCE), "-o", str(runner)]
    limit = max(60.0, timeout_s)
    with open(log, "wb") as out:
        code = _run_limited([*base, "-ldl"], out, limit)
    if code == 0:
        return runner
    if not trusted():
        reason = " | ".join(ln.strip()[:160] for ln in _head(log, 4096).splitlines()
                            if "error" in ln.lower())[:400]
        raise ImportFailed(f"C models run in a seccomp sandbox, which cannot be built here "
                           f"({reason or 'the compiler failed'}); to run this model "
                           f"unconfined, with your rights, if you trust it: --trust-c "
                           f"(or {TRUST_ENV}=1)", file=path)
    with open(log, "wb") as out:
        code = _run_limited([*base, "-DHWCOST_NO_SANDBOX", "-ldl"], out, limit)
    if code != 0:
        raise ImportFailed("cannot build the runner that tabulates C models: "
                           f"{_head(log, 400).strip()}", file=path)
    return runner


def _child_limits() -> Callable[[], None]:
    """The ``preexec_fn`` capping a child's memory and what it may write.  The settings are
    read here, in the parent: a bad ``HWCOST_MAX_...`` value must be a clean error, not an
    exception inside the forked child."""
    memory = MAX_MEMORY_MB.value * 2**20
    output = MAX_OUTPUT_BYTES.value

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))

    return apply


def _evaluate(runner: Path, lib: Path, a_bits: int, b_bits: int, tmp: Path, path: str,
              function: str, fline: int, timeout_s: float) -> np.ndarray:
    """Run every operand pair through the model in a confined, limited child process group
    whose working folder is empty."""
    out = tmp / "raw.bin"
    err_log = tmp / "stderr.log"
    work = tmp / "work"
    work.mkdir()
    with open(err_log, "wb") as err:
        returncode = _run_limited([str(runner), str(lib), str(a_bits), str(b_bits), str(out)],
                                  err, timeout_s, stdout=subprocess.DEVNULL, cwd=work)
    if returncode == -signal.SIGSYS:
        raise ImportFailed(f"the C model was stopped by the sandbox while evaluating "
                           f"{function}: it made a system call C models may not make (writing "
                           "or creating a file, starting a process, a socket, a signal to "
                           "another process or raising a limit)", file=path, line=fline)
    if err_log.stat().st_size >= MAX_OUTPUT_BYTES.value or returncode == -signal.SIGXFSZ:
        # Python ignores SIGXFSZ, so the child is not killed at the limit: its writes fail
        raise ImportFailed(f"the C model wrote more than {MAX_OUTPUT_BYTES.value:,} bytes "
                           f"(set {MAX_OUTPUT_BYTES.env} to allow more) while evaluating "
                           f"{function}", file=path, line=fline)
    if returncode is None:
        raise ImportFailed(f"the C model did not finish within {timeout_s:g} s (endless "
                           f"loop?) while evaluating {function}", file=path, line=fline)
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = f"signal {-returncode}"
        raise ImportFailed(f"the C model crashed ({sig}) while evaluating {function}",
                           file=path, line=fline)
    if returncode != 0 or not out.exists():
        tail = " | ".join(ln.strip()[:200] for ln in _tail(err_log).strip().splitlines()[-3:])
        if "MemoryError" in tail or "Cannot allocate memory" in tail:
            tail += f" (memory is limited to {MAX_MEMORY_MB.value} MiB by {MAX_MEMORY_MB.env})"
        raise ImportFailed(f"evaluating {function} failed (exit status {returncode})"
                           + (f": {tail}" if tail else ""), file=path, line=fline)
    raw = np.fromfile(out, dtype=np.uint64)
    if raw.size != 1 << (a_bits + b_bits):
        raise ImportFailed(f"evaluating {function} returned {raw.size} results",
                           file=path, line=fline)
    return raw.reshape(1 << a_bits, 1 << b_bits)


def _run_limited(cmd: list[str], log, timeout_s: float, stdout=None,
                 cwd: Path | None = None) -> int | None:
    """Run ``cmd`` under :func:`_child_limits` in its own process group, stderr (and stdout,
    unless given) to the file ``log``; its exit status, or None if it ran past
    ``timeout_s`` or filled ``log`` to :data:`MAX_OUTPUT_BYTES` (then it and everything it
    started are killed: a Python child ignores SIGXFSZ and would go on writing in vain)."""
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=log if stdout is None else stdout, stderr=log,
                             preexec_fn=_child_limits(), start_new_session=True, cwd=cwd)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                return child.wait(timeout=min(0.05, max(deadline - time.monotonic(), 0)))
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline or \
                        os.fstat(log.fileno()).st_size >= MAX_OUTPUT_BYTES.value:
                    return None
    finally:
        _kill_group(child)


def _kill_group(child: subprocess.Popen) -> None:
    """Kill the child and anything it started (a model may fork), then reap it."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()



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
                           f"does not fit the {out_bits}-bit product", file=str(path),
                           line=model.line)
    return raw_to_product((raw & np.uint64((1 << out_bits) - 1)).astype(np.int64), out_bits,
                          signed)
