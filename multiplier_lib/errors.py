"""The project's user-facing error type.

Every mistake a user can make (a bad file, an unknown name, an impossible request) is raised
as a :class:`HwcostError` that knows *where* the problem is.  The CLI prints ``str(err)`` on
one line and exits non-zero; nothing else in the toolkit should let a traceback reach a user.
It lives in ``multiplier_lib`` because that package is at the root of the dependency chain.
"""

from __future__ import annotations

from pathlib import Path


class HwcostError(Exception):
    """A user-caused error, printed as ``file:line: message``."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        return f"{where}{self.message}"

    def located(self, file: str | Path, line: int | None = None) -> HwcostError:
        """Return a copy of this error attributed to ``file`` (used by importers)."""
        return type(self)(self.message, file=file, line=self.line if line is None else line)


class NetlistError(HwcostError):
    """A structurally invalid gate netlist (undriven net, loop, double driver...)."""


class ImportFailed(HwcostError):
    """A multiplier file could not be read."""


class UnknownMultiplier(HwcostError):
    """A name that is neither in the library nor a built-in parametric family."""
