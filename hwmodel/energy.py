"""The energy table: pJ per action of every component of an architecture, and its source.

The analytical model needs three numbers per storage level (per *word* read, written by a
fill from the parent, and updated with a partial sum) and three for the compute unit (one MAC,
split into multiply and add so that the arithmetic share of an approximate multiplier can be
reported).  :func:`build_energy_table` gathers them from an Accelergy ``ERT.yaml`` where the
user has one (see :mod:`hwmodel.ert`) and from hwcost's own estimators otherwise
(:mod:`hwmodel.estimators`), recording for every number where it came from, because a model
whose energies silently come from the wrong place is the most common complaint about
Timeloop/Accelergy setups.

Per-word convention: Accelergy prices a storage action per access of one row (``width`` bits
= ``block_size`` words, a "vector access").  The table keeps per-word figures (the row figure
divided by the block size), which is what the mapper ranks by and what a large layer pays;
the model itself charges Timeloop's way, whole vector accesses per instance and action
(``ceil(words / block_size)`` rows, see :mod:`hwmodel.model`), for which :meth:`EnergyTable.
per_vector` gives the row figure back.  An ERT's ``leak`` action (pJ per instance and cycle)
is kept as ``leak``; the built-in estimators model no leakage.

An ERT that prices the MAC replaces the whole MAC, so the multiplier inside it cannot be seen
any more.  hwcost then splits the ERT's MAC energy into multiply and add in the proportions
of its built-in exact MAC of the same width, and, when an approximate multiplier is given,
scales the multiply share by that multiplier's energy relative to the exact multiplier of
its shape (which is what an ERT computed for the exact design cannot know).  The sources
say so, e.g. ``ERT:ERT.yaml (mac_random), multiply share 0.84 of built-in exact split, x 0.393
= multiplier_lib:trunc8u_k8 (gate-level estimate) / exact``.  ERT figures are used as they are
(already at the ERT's technology); components and actions the ERT lacks fall back to the
built-in estimators, and the source of each number says which one it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from multiplier_lib.errors import HwcostError
from multiplier_lib.multiplier import Multiplier

from .arch import Architecture, ComputeUnit, StorageLevel
from .ert import ErtTable, index_by_short_name, load_ert, load_ert_tables, short_name
from .estimators import (
    ESTIMATORS,
    REFERENCE_NM,
    DRAMEstimator,
    Estimator,
    MACEstimator,
    RegfileEstimator,
    SRAMEstimator,
    describe_estimators,
    find_estimator,
    parse_technology,
    technology_scale,
)

__all__ = [
    "COMPUTE_ACTIONS", "ESTIMATORS", "STORAGE_ACTIONS", "ActionEnergy", "DRAMEstimator",
    "EnergyTable", "Estimator", "MACEstimator", "RegfileEstimator", "SRAMEstimator",
    "build_energy_table", "describe_estimators", "load_ert", "parse_technology",
    "technology_scale",
]

STORAGE_ACTIONS = ("read", "write", "update")
COMPUTE_ACTIONS = ("mac", "multiply", "add")

#: hwcost storage action -> ERT actions that may price it, in order of preference.  Accelergy
#: names a fill ``write`` (0.3) or ``fill`` (newer); an update is a write of a partial sum.
ERT_STORAGE_ACTIONS: dict[str, tuple[str, ...]] = {
    "read": ("random_read", "read"),
    "write": ("random_fill", "random_write", "fill", "write", "update"),
    "update": ("random_update", "random_write", "update", "write", "fill"),
}
#: ERT actions that price one MAC on random data (Timeloop charges ``mac_random`` per op).
ERT_MAC_ACTIONS = ("mac_random", "compute", "mac")


class ActionEnergy(NamedTuple):
    """pJ of one action and where the number came from."""

    energy_pj: float
    source: str


@dataclass
class EnergyTable:
    """Per component name, per action: (pJ, source).  Storage figures are per word."""

    entries: dict[str, dict[str, ActionEnergy]]
    compute: str
    technology_nm: float
    multiplier: str | None = None
    ert: str | None = None
    notes: list[str] = field(default_factory=list)
    #: words per vector access of every storage level (Timeloop's block size)
    block_sizes: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, component: str) -> dict[str, ActionEnergy]:
        return self.entries[component]

    def __contains__(self, component: object) -> bool:
        return component in self.entries

    @property
    def components(self) -> list[str]:
        return list(self.entries)

    def _get(self, component: str, action: str) -> ActionEnergy:
        try:
            return self.entries[component][action]
        except KeyError:
            raise HwcostError(f"energy table has no action '{action}' for component "
                              f"'{component}'") from None

    def energy(self, component: str, action: str) -> float:
        return self._get(component, action).energy_pj

    def source(self, component: str, action: str) -> str:
        return self._get(component, action).source

    def per_word(self, level: str, action: str) -> float:
        """pJ per word of ``action`` (read/write/update) at storage level ``level``."""
        return self.energy(level, action)

    def block_size(self, level: str) -> int:
        return self.block_sizes.get(level, 1)

    def per_vector(self, level: str, action: str) -> float:
        """pJ of one whole-row access (``block_size`` words), what an ERT prices."""
        return self.energy(level, action) * self.block_size(level)

    def leak_per_cycle(self, component: str) -> float:
        """pJ leaked per instance and cycle (an ERT's ``leak`` action; 0 without one)."""
        ae = self.entries.get(component, {}).get("leak")
        return 0.0 if ae is None else ae.energy_pj

    def mac(self) -> float:
        return self.energy(self.compute, "mac")

    def multiply(self) -> float:
        return self.energy(self.compute, "multiply")

    def add(self) -> float:
        return self.energy(self.compute, "add")

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows (component, action, energy_pj, source) for tables and JSON."""
        return [{"component": comp, "action": action, "energy_pj": ae.energy_pj,
                 "source": ae.source}
                for comp, actions in self.entries.items() for action, ae in actions.items()]


def _technology(own: Any, default: float) -> float:
    """A component's technology, falling back to ``default`` when unset.

    Accelergy specs write ``technology: -1`` (which spec readers may turn into ``"-1nm"``)
    for "not relevant here"; that is unset too, not an error.
    """
    if own is None or (isinstance(own, int | float) and own < 0) or str(own).strip()[:1] == "-":
        return default
    return parse_technology(own)


def _storage_attributes(level: StorageLevel) -> dict[str, Any]:
    attrs = dict(level.attributes)
    attrs.update(width=level.width, datawidth=level.datawidth, n_banks=level.n_banks,
                 block_size=level.block_size)
    if level.depth is not None:
        attrs["depth"] = level.depth
    return attrs


def _storage_entries(level: StorageLevel, table: ErtTable | None, ert_label: str,
                     pool: list[Estimator], technology_nm: float) -> dict[str, ActionEnergy]:
    attrs = _storage_attributes(level)
    block = level.block_size
    out: dict[str, ActionEnergy] = {}
    resolved: tuple[Estimator, str] | None = None
    for action in STORAGE_ACTIONS:
        if table is not None:
            hit = next((a for a in ERT_STORAGE_ACTIONS[action] if a in table.actions), None)
            if hit is not None:
                label = ert_label if hit == action else f"{ert_label} ({hit})"
                out[action] = ActionEnergy(table.actions[hit] / block, label)
                continue
        if resolved is None:
            try:
                resolved = find_estimator(level.component_class, attrs, pool)
            except HwcostError as exc:
                raise HwcostError(f"storage level {level.name}: {exc.message}",
                                  line=level.line) from None
        est, cls = resolved
        energy = est.estimate(cls, attrs, action, technology_nm)
        if energy is None:
            raise HwcostError(f"storage level {level.name}: estimator {est.name} cannot price "
                              f"'{action}' of class {cls}", line=level.line)
        out[action] = ActionEnergy(energy / block, est.name)
    if table is not None and "leak" in table.actions:
        out["leak"] = ActionEnergy(table.actions["leak"], f"{ert_label} (leak per cycle)")
    return out


def _compute_entries(cu: ComputeUnit, table: ErtTable | None, ert_label: str,
                     mac_est: MACEstimator, technology_nm: float) -> dict[str, ActionEnergy]:
    attrs = dict(cu.attributes)
    attrs["datawidth"] = cu.datawidth
    cls = cu.component_class
    sub = str(attrs.get("subclass") or "")
    if not mac_est.handles(cls) and sub and mac_est.handles(sub):
        cls = sub
    hit = None if table is None else next((a for a in ERT_MAC_ACTIONS if a in table.actions),
                                           None)
    if hit is None:
        if not mac_est.handles(cls):
            raise HwcostError(f"compute unit {cu.name}: no energy estimator handles class "
                              f"{cu.component_class!r} (known: {', '.join(mac_est.classes)}); "
                              f"give an ERT", line=cu.line)
        b = mac_est.breakdown(cls, attrs, technology_nm)
        mac_src = (b.multiply_source if b.add_source == b.multiply_source
                   else f"{b.multiply_source} + {b.add_source}")
        return {"mac": ActionEnergy(b.mac_pj, mac_src),
                "multiply": ActionEnergy(b.multiply_pj, b.multiply_source),
                "add": ActionEnergy(b.add_pj, b.add_source)}
    assert table is not None
    mac_ert = table.actions[hit]
    label = f"{ert_label} ({hit})"
    leak = ({"leak": ActionEnergy(table.actions["leak"], f"{ert_label} (leak per cycle)")}
            if "leak" in table.actions else {})
    if not mac_est.handles(cls):
        if mac_est.multiplier is not None:
            raise HwcostError(f"compute unit {cu.name}: cannot split the ERT's MAC of class "
                              f"{cu.component_class!r} to apply multiplier "
                              f"{mac_est.multiplier.name}", line=cu.line)
        return {"mac": ActionEnergy(mac_ert, label),
                "multiply": ActionEnergy(mac_ert, f"{label}, not split"),
                "add": ActionEnergy(0.0, f"{label}, not split"), **leak}
    mac_est.breakdown(cls, attrs, technology_nm)   # validates the multiplier against the unit
    mult_e = mac_est.multiplier_energy()
    exact = MACEstimator(None).breakdown(cls, attrs, technology_nm)
    share = exact.multiply_pj / exact.mac_pj if exact.mac_pj > 0 else 1.0
    multiply = mac_ert * share
    add = mac_ert - multiply
    mul_src = f"{label}, multiply share {share:.2f} of built-in exact split"
    add_src = f"{label}, add share {1 - share:.2f} of built-in exact split"
    mac_src = label
    if mult_e is not None:
        multiply *= mult_e.rel_exact
        mul_src += f", x {mult_e.rel_exact:.3f} = {mult_e.source} / exact"
        mac_src = f"{label} with multiply x {mult_e.rel_exact:.3f} from {mult_e.source}"
    return {"mac": ActionEnergy(multiply + add, mac_src),
            "multiply": ActionEnergy(multiply, mul_src),
            "add": ActionEnergy(add, add_src), **leak}


@contextmanager
def _located(arch: Architecture, line: int | None) -> Iterator[None]:
    """Attribute an estimator's complaint (an unknown technology, a bad attribute) to the
    spec and the component's line, where the user can fix it."""
    try:
        yield
    except HwcostError as exc:
        if exc.file is not None or not arch.source:
            raise
        raise exc.located(arch.source, exc.line or line) from None


def build_energy_table(arch: Architecture, multiplier: Multiplier | None = None,
                       ert: str | Path | None = None,
                       estimators: list[Estimator] | None = None) -> EnergyTable:
    """Energy per word of every storage level and per MAC of the compute unit.

    ``multiplier`` replaces the compute unit's exact multiplier; ``ert`` is an Accelergy
    ``ERT.yaml`` whose components (matched by the last component of their name, replication
    like ``[0..167]`` stripped) override the built-in ``estimators`` (default
    :data:`ESTIMATORS`).  ERT figures are taken as they are (already at the ERT's technology);
    built-in ones are scaled to the component's technology (the architecture's by default).
    """
    tech_line = next((lv.line for lv in arch.levels if lv.technology == arch.technology),
                     arch.compute.line)
    with _located(arch, tech_line):
        arch_nm = _technology(arch.technology, REFERENCE_NM)
    pool = list(ESTIMATORS if estimators is None else estimators)
    mac_est = MACEstimator(multiplier)
    tables: dict[str, ErtTable] = {}
    ert_label = ""
    if ert is not None:
        ert_path = Path(ert)
        tables = index_by_short_name(load_ert_tables(ert_path), ert_path)
        ert_label = f"ERT:{ert_path.name}"
    entries: dict[str, dict[str, ActionEnergy]] = {}
    for level in arch.levels:
        table = tables.get(short_name(level.name))
        with _located(arch, level.line):
            entries[level.name] = _storage_entries(level, table, ert_label, pool,
                                                   _technology(level.technology, arch_nm))
    cu = arch.compute
    with _located(arch, cu.line):
        entries[cu.name] = _compute_entries(cu, tables.get(short_name(cu.name)), ert_label,
                                            mac_est, _technology(cu.technology, arch_nm))
    notes = []
    if tables:
        used = {short_name(n) for n in entries}
        unused = sorted(k for k in tables if k not in used)
        if unused:
            notes.append(f"ERT components not in the architecture: {', '.join(unused)}")
    return EnergyTable(entries=entries, compute=cu.name, technology_nm=arch_nm,
                       multiplier=None if multiplier is None else multiplier.name,
                       ert=None if ert is None else str(ert), notes=notes,
                       block_sizes={lv.name: lv.block_size for lv in arch.levels})
