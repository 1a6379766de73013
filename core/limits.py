"""Size limits on what an input file may ask for, each with a name, a default and a setting.

A cost model is fed files written by other tools and by scripts: one genotype asking for
``10**9`` cells, a spec replicating a PE ``10**9`` times or a C model printing forever must
not hang a sweep worker or eat a shared machine's memory.  Where the work cannot be made
independent of the number asked for, the reader checks it against a :class:`Limit` and
refuses it with one line naming the file, the value, the limit and the environment variable
that raises it (some users legitimately need more).

Limits are declared next to the code that enforces them (``MAX_CELLS = Limit(...)`` in its
module) and register themselves here, so :func:`all_limits` lists every one for the README
and ``tests/test_limits.py`` checks that each is documented.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import HwcostError

_REGISTRY: dict[str, Limit] = {}


@dataclass(frozen=True)
class Limit:
    """One named limit; ``env`` (``HWCOST_MAX_...``) overrides ``default`` at run time."""

    env: str
    default: int
    what: str

    def __post_init__(self) -> None:
        if not self.env.startswith("HWCOST_MAX_"):
            raise ValueError(f"limit settings are named HWCOST_MAX_..., not {self.env}")
        known = _REGISTRY.get(self.env)
        if known is not None and known != self:
            raise ValueError(f"limit {self.env} declared twice with different values")
        _REGISTRY[self.env] = self

    @property
    def value(self) -> int:
        """The limit in force: the environment's setting if given, else the default."""
        raw = os.environ.get(self.env)
        if raw is None or not raw.strip():
            return self.default
        try:
            value = int(raw)
        except ValueError:
            raise HwcostError(f"{self.env}={raw!r} must be a positive integer") from None
        if value < 1:
            raise HwcostError(f"{self.env}={raw!r} must be a positive integer")
        return value

    def check(self, value: int, *, file: str | Path | None = None, line: int | None = None,
              context: str = "") -> int:
        """``value`` if within the limit, else a :class:`HwcostError` at ``file:line``."""
        limit = self.value
        if value > limit:
            where = f"{context}: " if context else ""
            raise HwcostError(f"{where}{self.what} {value:,} exceeds the limit of {limit:,} "
                              f"(set {self.env} to allow more)", file=file, line=line)
        return value


def all_limits() -> list[Limit]:
    """Every limit declared by a module imported so far, sorted by setting name."""
    return sorted(_REGISTRY.values(), key=lambda limit: limit.env)
