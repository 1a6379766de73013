"""The fuzz harness shared by every reader's fuzz tests (``tests/**/test_fuzz_*.py``).

A fuzz test takes a *valid* example file of one reader, mutates it with a deterministic
hypothesis strategy (:func:`mutated_bytes`, :func:`mutated_text`), runs the reader the way a
user would (:func:`run_cli`: the ``hwcost`` command in this process, under a per-case
deadline) and checks the outcome with :func:`assert_clean`:

* the command either succeeds (a mutation may leave the file valid) or exits non-zero with
  exactly one error line that names the file (and the line, where the reader has one);
* no traceback, no Python exception escaping the CLI;
* no hang: a case past :data:`CASE_TIMEOUT_S` fails (``CaseTimeout`` is a BaseException so
  that no ``except Exception`` in the code under test can swallow it);
* after a failure, the folders the command may write (library, output) are unchanged
  (:func:`snapshot`).

Runs are deterministic (``derandomize=True``, no example database), so CI sees the same
cases every time; :data:`FUZZ` is the settings profile to decorate tests with.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import signal
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: seconds one case may take before it counts as a hang
CASE_TIMEOUT_S = 15.0

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=20,
                suppress_health_check=list(HealthCheck), print_blob=False)

#: values that break readers: huge, negative, zero, non-numeric, special floats
NASTY_NUMBERS = ("0", "-1", "-7", "1000000000", "10000000000000000000000", "1e308", "nan",
                 "inf", "-inf", "0.5", "1e-300", "x", "''", "[]", "{}", "null", "true",
                 "2147483648", "9223372036854775808", "0x10", "1_000")
NASTY_TEXT = ("", "\x00", "\ufffd", "{", "}", "[", "]", ":", "- ", "'", '"', "\\", "#",
              "&anchor", "*alias", "!!python/object:os.system", "%", "\t", "..",
              "PE[0..1000000000]", "\n\n", "é", "🙂")


class CaseTimeout(BaseException):
    """A fuzz case ran past its deadline (a hang)."""


@contextlib.contextmanager
def deadline(seconds: float = CASE_TIMEOUT_S) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in this (main) thread after ``seconds`` of wall time."""

    def expire(_signum, _frame):
        raise CaseTimeout(f"case ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------------------------
# Mutations


@st.composite
def mutated_bytes(draw, data: bytes, *, max_edits: int = 3) -> bytes:
    """``data`` after 1..``max_edits`` byte-level edits: truncation, flips, inserted or
    deleted runs, duplicated chunks, or the empty file."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(("truncate", "flip", "insert", "delete", "duplicate",
                                     "empty", "zero_run")))
        n = len(out)
        pos = draw(st.integers(0, max(n - 1, 0)))
        if kind == "truncate":
            del out[pos:]
        elif kind == "flip" and n:
            out[pos] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del out[pos:pos + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            chunk = out[pos:pos + draw(st.integers(1, 256))]
            out[pos:pos] = chunk * draw(st.integers(1, 4))
        elif kind == "empty":
            out = bytearray()
        elif kind == "zero_run":
            out[pos:pos + 8] = b"\x00" * 8
    return bytes(out)


_TOKEN = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[A-Za-z_][A-Za-z0-9_]*")


@st.composite
def mutated_text(draw, text: str, *, max_edits: int = 3) -> str:
    """``text`` after 1..``max_edits`` structure-aware edits: a number or name replaced by a
    nasty value, a line deleted, duplicated, swapped or re-indented, junk inserted, the file
    cut short.  Mostly still parses, so the readers' validation is what gets exercised."""
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, max_edits))):
        if not lines:
            lines = [draw(st.sampled_from(NASTY_TEXT))]
            continue
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(("number", "number", "name", "delete", "duplicate",
                                     "swap", "indent", "junk", "truncate")))
        line = lines[i]
        tokens = list(_TOKEN.finditer(line))
        if kind in ("number", "name") and tokens:
            numbers = [m for m in tokens if m.group()[0] in "-0123456789"]
            pool = numbers if kind == "number" and numbers else tokens
            m = draw(st.sampled_from(pool))
            new = draw(st.sampled_from(NASTY_NUMBERS if kind == "number" else
                                       (*NASTY_NUMBERS[:8], *NASTY_TEXT, m.group() * 2,
                                        m.group()[:-1] or "x")))
            lines[i] = line[:m.start()] + new + line[m.end():]
        elif kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines[i:i] = [line] * draw(st.integers(1, 3))
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "indent":
            lines[i] = draw(st.sampled_from(("", " ", "    ", "\t"))) + line.lstrip(" ")
        elif kind == "junk":
            lines.insert(i, draw(st.sampled_from(NASTY_TEXT)) + "\n")
        else:
            cut = draw(st.integers(0, len(line)))
            lines = lines[:i] + [line[:cut]]
    return "".join(lines)


# --------------------------------------------------------------------------------------------
# Running and checking


@dataclass
class Outcome:
    """What one CLI run did: exit code, its stdout and stderr, any escaped exception."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None
    trace: str = ""


def run_cli(args: Sequence[str], *, timeout: float = CASE_TIMEOUT_S,
            env: dict[str, str] | None = None) -> Outcome:
    """``hwcost ARGS`` in this process (a subprocess per case would spend seconds importing
    torch), under :func:`deadline`."""
    from click.testing import CliRunner

    from hwcost.cli import cli

    runner = CliRunner()
    try:
        with deadline(timeout):
            result = runner.invoke(cli, list(args), catch_exceptions=True, env=env)
    except CaseTimeout as hang:
        return Outcome(list(args), -1, "", "", hang, "".join(traceback.format_exception(hang)))
    exc = result.exception
    if isinstance(exc, SystemExit):
        exc = None
    trace = "".join(traceback.format_exception(*result.exc_info)) if exc is not None else ""
    return Outcome(list(args), result.exit_code, result.stdout, result.stderr, exc, trace)


def assert_clean(outcome: Outcome, file: Path | str, *, want_line: bool = False,
                 whole_file: Sequence[str] = ()) -> bool:
    """Check one fuzz case (module docstring); True if the command accepted the input.

    ``want_line``: a refusal must say ``file:LINE``, unless its message matches one of the
    ``whole_file`` patterns (errors about the file as a whole: empty, not text, ...).
    """
    name = Path(file).name
    where = f"hwcost {' '.join(outcome.args)}"
    if isinstance(outcome.exception, CaseTimeout):
        raise AssertionError(f"{where}: hang ({outcome.exception})")
    if outcome.exception is not None:
        raise AssertionError(f"{where}: exception escaped the CLI:\n{outcome.trace}")
    if outcome.exit_code == 0:
        return True
    err = outcome.stderr.strip()
    assert "Traceback" not in outcome.stderr + outcome.stdout, f"{where}: traceback\n{err}"
    lines = err.splitlines()
    assert len(lines) == 1, f"{where}: expected one error line, got:\n{err}"
    message = lines[0]
    assert message.startswith("Error: "), f"{where}: not a CLI error line: {message}"
    assert name in message, f"{where}: error does not name {name}: {message}"
    if want_line and not any(re.search(p, message) for p in whole_file):
        assert re.search(re.escape(name) + r":\d+", message), \
            f"{where}: error names no line of {name}: {message}"
    return False


def snapshot(*folders: Path) -> dict[str, str]:
    """Path -> sha256 of every file below ``folders`` (missing folders are empty)."""
    state: dict[str, str] = {}
    for folder in folders:
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state
