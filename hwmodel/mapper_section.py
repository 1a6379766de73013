"""The ``mapper`` section of Timeloop inputs: what the mapper optimises.

Timeloop's mapper configuration (``mapper.yaml``) says what to minimise as a priority list,
``optimization_metrics: [delay, energy]`` (v0.4; older files spell it
``optimization-metrics``, or ``optimization_metric``/``optimization-metric``).  hwcost's
mapper takes the same list as its objective (``"delay,energy"``) when the user gives no
``--objective``.  The section's search settings (``algorithm``, ``timeout``,
``victory_condition``...) steer Timeloop's random search and have no meaning for hwcost's
mapper; they are accepted and not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import HwcostError

from .inputs import SpecInputs
from .yamlio import value_line

#: Keys of the metric list, newest spelling first.
METRIC_KEYS = ("optimization_metrics", "optimization-metrics", "optimization_metric",
               "optimization-metric")
#: Timeloop metrics hwcost's model does not compute.
UNSUPPORTED_METRICS = ("last_level_accesses", "last-level-accesses", "lla")


@dataclass(frozen=True)
class MapperObjective:
    """The objective a ``mapper`` section asks for, and where it says so."""

    objective: str          # "energy", "delay,energy", ... as hwcost's --objective
    file: str
    line: int | None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def mapper_objective(inputs: SpecInputs) -> MapperObjective | None:
    """The ``optimization_metrics`` of the inputs' ``mapper`` section as an objective
    string, or None when there is no section or it names no metric."""
    section = inputs.first("mapper")
    if section is None or section.value is None:
        return None
    node = section.value
    if not isinstance(node, Mapping):
        raise HwcostError("'mapper' must be a map of mapper settings", file=section.path,
                          line=section.line)
    for key in METRIC_KEYS:
        value = node.get(key)
        if value in (None, [], ""):
            continue
        line = value_line(node, key, section.line)
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise HwcostError(f"mapper {key}: expected a list of metric names like "
                              "[delay, energy]", file=section.path, line=line)
        names = [m.strip().lower() for v in items for m in v.split(",") if m.strip()]
        for m in names:
            if m in UNSUPPORTED_METRICS:
                raise HwcostError(f"mapper {key}: metric {m!r} is not supported (hwcost "
                                  "optimises energy, delay and edp)", file=section.path,
                                  line=line)
        if names:
            return MapperObjective(",".join(names), str(section.path), line)
    return None
