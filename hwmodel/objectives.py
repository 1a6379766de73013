"""What a mapper minimises: energy, delay, EDP, or a priority list of them.

Timeloop's mapper takes ``optimization_metrics: [delay, energy]``: delay first, energy to
break ties.  An :class:`Objective` is that list; comparisons are lexicographic, with a
relative tolerance so that two sums of the same numbers in another order are a tie rather
than an improvement.  Every objective ends with the metrics it does not name (energy, then
delay) as tie-breakers, so that equal-energy mappings are ranked the same way every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import HwcostError

METRICS = ("energy", "delay", "edp")
#: spellings Timeloop's mapper configuration uses for the same metrics
ALIASES = {"energy": "energy", "delay": "delay", "cycles": "delay", "latency": "delay",
           "edp": "edp", "energy_delay_product": "edp"}
#: relative difference below which two objective values are the same
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Objective:
    """A lexicographic list of metrics, the user's first."""

    metrics: tuple[str, ...]

    @property
    def text(self) -> str:
        return ",".join(self.metrics)

    @property
    def key_metrics(self) -> tuple[str, ...]:
        """The metrics compared, tie-breakers (energy, delay) appended."""
        return self.metrics + tuple(m for m in ("energy", "delay") if m not in self.metrics)

    def value(self, energy_pj: float, cycles: float) -> tuple[float, ...]:
        return tuple(_metric(m, energy_pj, cycles) for m in self.key_metrics)

    @property
    def primary(self) -> str:
        return self.metrics[0]


def _metric(name: str, energy_pj: float, cycles: float) -> float:
    if name == "energy":
        return energy_pj
    if name == "delay":
        return cycles
    return energy_pj * cycles


def parse_objective(spec: str | Sequence[str] | Objective) -> Objective:
    """``"energy"``, ``"delay,energy"``, ``["delay", "energy"]`` or an Objective."""
    if isinstance(spec, Objective):
        return spec
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = []
    for raw in items:
        key = str(raw).strip().lower()
        if key not in ALIASES:
            raise HwcostError(f"unknown objective {str(raw).strip()!r}; expected "
                              f"{', '.join(METRICS)} or a comma-separated priority list "
                              "such as delay,energy")
        name = ALIASES[key]
        if name in names:
            raise HwcostError(f"objective {name!r} given twice in {spec!r}")
        names.append(name)
    if not names:
        raise HwcostError("empty objective; expected energy, delay, edp or a list")
    return Objective(tuple(names))


def better(a: tuple[float, ...], b: tuple[float, ...] | None) -> bool:
    """Whether ``a`` is strictly better than ``b`` (None: nothing yet)."""
    if b is None:
        return True
    for x, y in zip(a, b):
        if x < y - TOLERANCE * abs(y):
            return True
        if x > y + TOLERANCE * abs(y):
            return False
    return False


def cannot_beat(bound: tuple[float, ...], best: tuple[float, ...] | None) -> bool:
    """Whether everything with lower bound ``bound`` is at best equal to ``best``: the
    sound pruning test (a tie on every metric cannot improve)."""
    if best is None:
        return False
    return not better(bound, best)
