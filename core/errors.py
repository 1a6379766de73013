"""The project's user-facing error type.

Every mistake a user can make (a bad file, an unknown name, an impossible request) is raised
as a :class:`HwcostError` that knows *where* the problem is.  The CLI prints ``str(err)`` on
one line and exits non-zero; nothing else in the toolkit should let a traceback reach a user.
It lives in ``core`` because every package raises it and ``core`` is at the root of the
dependency chain.
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
