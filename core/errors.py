"""The project's user-facing error type.

Every mistake a user can make (a bad file, an unknown name, an impossible request) is raised
as a :class:`HwcostError` that knows *where* the problem is.  The CLI prints ``str(err)`` on
one line and exits non-zero; nothing else in the toolkit should let a traceback reach a user.
It lives in ``core`` because every package raises it and ``core`` is at the root of the
dependency chain.
"""

from __future__ import annotations

import re
from pathlib import Path

#: characters that would break a message's one line or forge another: C0/C1 controls (newline,
#: carriage return, escape sequences...) and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def control_character(text: str) -> str | None:
    """The first C0 control character or DEL in ``text`` (a name that holds one cannot be a
    file, library or multiplier name: a NUL never reaches the OS, a newline forges lines)."""
    return next((ch for ch in text if ord(ch) < 32 or ch == "\x7f"), None)


def one_line(text: str) -> str:
    """``text`` with every control character written as its escape (``\\n``, ``\\x1b``):
    a file named ``"a\\nError: forged"`` prints as one line that shows the name it has."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


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
        return one_line(f"{where}{self.message}")

    def located(self, file: str | Path, line: int | None = None) -> HwcostError:
        """Return a copy of this error attributed to ``file`` (used by importers)."""
        return type(self)(self.message, file=file, line=self.line if line is None else line)
