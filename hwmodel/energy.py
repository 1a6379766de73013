"""The energy table: pJ per action of every component of an architecture, and its source.

The analytical model needs three numbers per storage level (per *word* read, written by a
fill from the parent, and updated with a partial sum) and three for the compute unit (one MAC,
split into multiply and add so that the arithmetic share of an approximate multiplier can be
reported).  :func:`build_energy_table` gathers them from an Accelergy ``ERT.yaml`` where the
user has one (see :mod:`hwmodel.ert`) and from estimators otherwise: hwcost's own
(:mod:`hwmodel.estimators`, ``backend="builtin"``, any Python) or Accelergy's own models
through hwcomponents (:mod:`hwmodel.accelergy_estimators`, ``backend="accelergy"``, the
``[accelergy]`` extra on Python >= 3.12, leakage included), recording for every number
where it came from (``hwcomponents:SmartBufferSRAM (read)``, ``hwcost-sram``, ``ERT:...``),
because a model whose energies silently come from the wrong place is the most common complaint about
Timeloop/Accelergy setups.

Per-word convention: Accelergy prices a storage action per access of one row (``width`` bits
= ``block_size`` words, a "vector access").  The table keeps per-word figures (the row figure
divided by the block size), which is what the mapper ranks by and what a large layer pays;
the model itself charges Timeloop's way, whole vector accesses per instance and action
(``ceil(words / block_size)`` rows, see :mod:`hwmodel.model`), for which :meth:`EnergyTable.
per_vector` gives the row figure back.  An ERT's ``leak`` action (pJ per instance and cycle)
is kept as ``leak``, as is hwcomponents' leak power x the cycle period; the built-in
estimators model no leakage.  :func:`write_energy_ert` writes the table back as an ERT.

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

from core.errors import HwcostError
from multiplier_lib.multiplier import Multiplier

from .arch import Architecture, ComputeUnit, StorageLevel
from .ert import (
    ErtTable,
    index_by_short_name,
    load_ert,
    load_ert_tables,
    short_name,
    write_ert,
)
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
    mac_widths,
    parse_technology,
    technology_scale,
)

__all__ = [
    "BACKENDS", "COMPUTE_ACTIONS", "ESTIMATORS", "STORAGE_ACTIONS", "ActionEnergy",
    "DRAMEstimator", "EnergyTable", "Estimator", "MACEstimator", "RegfileEstimator",
    "SRAMEstimator", "build_energy_table", "describe_estimators", "load_ert", "parse_technology",
    "technology_scale", "write_energy_ert",
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
    #: which estimators priced what the ERT did not: "builtin" or "accelergy" (hwcomponents)
    backend: str = "builtin"
    #: the compute unit's entries with the exact multiplier (what an ERT of this table holds)
    exact_compute: dict[str, ActionEnergy] | None = None

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
    mul_ert, add_ert = table.actions.get("multiply"), table.actions.get("add")
    if (mul_ert is not None and add_ert is not None and mac_ert > 0
            and abs(mul_ert + add_ert - mac_ert) <= 1e-9 * max(1.0, mac_ert)):
        # an ERT written by hwcost carries its own split (hwmodel.ert.ert_document)
        share = mul_ert / mac_ert
        how = "of the ERT's multiply/add"
    else:
        exact = MACEstimator(None).breakdown(cls, attrs, technology_nm)
        share = exact.multiply_pj / exact.mac_pj if exact.mac_pj > 0 else 1.0
        how = "of built-in exact split"
    multiply = mac_ert * share
    add = mac_ert - multiply
    mul_src = f"{label}, multiply share {share:.2f} {how}"
    add_src = f"{label}, add share {1 - share:.2f} {how}"
    mac_src = label
    if mult_e is not None:
        factor, text = mult_e.scale_in(mac_widths(attrs, cu.datawidth, cu.name)[0])
        multiply *= factor
        mul_src += f", {text}"
        mac_src = f"{label} with multiply x {factor:.3f} from {mult_e.source}"
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


BACKENDS = ("builtin", "accelergy")


def _check_backend(backend: str) -> str:
    name = str(backend).lower()
    if name not in BACKENDS:
        raise HwcostError(f"unknown estimators {backend!r}; expected one of "
                          f"{', '.join(BACKENDS)}")
    return name


def _accelergy_storage(level: StorageLevel, pool: list[Estimator], technology_nm: float,
                       notes: list[str]) -> dict[str, ActionEnergy]:
    """A storage level priced by hwcomponents, or by the built-in estimator (noted) when
    hwcomponents has no model of its class."""
    from . import accelergy_estimators as acc

    attrs = _storage_attributes(level)
    try:
        priced = acc.storage_actions(level, attrs, technology_nm)
    except acc.NoModel as exc:
        notes.append(f"{level.name}: hwcomponents has no model for {exc.args[0]!r} "
                     f"(class {level.component_class}); built-in estimator used")
        entries = _storage_entries(level, None, "", pool, technology_nm)
        return {a: ActionEnergy(ae.energy_pj, f"{ae.source} (no hwcomponents model for "
                                              f"{exc.args[0]})")
                for a, ae in entries.items()}
    except HwcostError as exc:
        raise HwcostError(f"storage level {level.name}: {exc.message}", line=level.line) from None
    block = level.block_size
    return {a: ActionEnergy(pj if a == "leak" else pj / block, src)
            for a, (pj, src) in priced.actions.items()}


def _accelergy_compute(cu: ComputeUnit, mac_est: MACEstimator, technology_nm: float,
                       notes: list[str]) -> tuple[dict[str, ActionEnergy],
                                                  dict[str, ActionEnergy]]:
    """(entries, exact entries) of the compute unit priced by hwcomponents; the built-in
    MAC (noted) where hwcomponents has no model of its class (``fpmac``)."""
    from . import accelergy_estimators as acc

    try:
        exact = acc.compute_actions(cu, technology_nm, None)
        if mac_est.multiplier is not None:   # the multiplier must fit the unit's operands
            mac_est.breakdown(_mac_class(cu, mac_est),
                              {**cu.attributes, "datawidth": cu.datawidth}, technology_nm)
        priced = acc.compute_actions(cu, technology_nm, mac_est.multiplier_energy())
    except acc.NoModel as exc:
        notes.append(f"{cu.name}: hwcomponents has no model for {exc.args[0]!r} "
                     f"(class {cu.component_class}); built-in estimator used")
        tag = f" (no hwcomponents model for {exc.args[0]})"
        built = _compute_entries(cu, None, "", mac_est, technology_nm)
        exact_b = _compute_entries(cu, None, "", MACEstimator(None), technology_nm)
        return ({a: ActionEnergy(ae.energy_pj, ae.source + tag) for a, ae in built.items()},
                {a: ActionEnergy(ae.energy_pj, ae.source + tag) for a, ae in exact_b.items()})
    except HwcostError as exc:
        raise HwcostError(f"compute unit {cu.name}: {exc.message}", line=cu.line) from None

    def entries(p: Any) -> dict[str, ActionEnergy]:
        return {a: ActionEnergy(pj, src) for a, (pj, src) in p.actions.items()}

    return entries(priced), entries(exact)


def _mac_class(cu: ComputeUnit, mac_est: MACEstimator) -> str:
    cls = cu.component_class
    sub = str(cu.attributes.get("subclass") or "")
    if not mac_est.handles(cls) and sub and mac_est.handles(sub):
        cls = sub
    return cls if mac_est.handles(cls) else "intmac"


def build_energy_table(arch: Architecture, multiplier: Multiplier | None = None,
                       ert: str | Path | None = None,
                       estimators: list[Estimator] | None = None,
                       backend: str = "builtin") -> EnergyTable:
    """Energy per word of every storage level and per MAC of the compute unit.

    ``multiplier`` replaces the compute unit's exact multiplier; ``ert`` is an Accelergy
    ``ERT.yaml`` whose components (matched by the last component of their name, replication
    like ``[0..167]`` stripped) override the estimators.  ``backend`` picks the estimators
    for everything else: ``"builtin"`` (hwcost's own, ``estimators`` or
    :data:`ESTIMATORS`; no leakage) or ``"accelergy"`` (hwcomponents, Accelergy's own models
    including leakage, see :mod:`hwmodel.accelergy_estimators`; needs the ``[accelergy]``
    extra).  ERT figures are taken as they are (already at the ERT's technology); estimated
    ones are for the component's technology (the architecture's by default).
    """
    backend = _check_backend(backend)
    if backend == "accelergy":
        from .accelergy_estimators import hwcomponents_module

        hwcomponents_module()      # one clear line now if the extra is not installed
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
    notes: list[str] = []
    for level in arch.levels:
        table = tables.get(short_name(level.name))
        with _located(arch, level.line):
            tech = _technology(level.technology, arch_nm)
            if backend == "accelergy" and table is None:
                entries[level.name] = _accelergy_storage(level, pool, tech, notes)
            else:
                entries[level.name] = _storage_entries(level, table, ert_label, pool, tech)
    cu = arch.compute
    cu_table = tables.get(short_name(cu.name))
    with _located(arch, cu.line):
        tech = _technology(cu.technology, arch_nm)
        if backend == "accelergy" and cu_table is None:
            entries[cu.name], exact = _accelergy_compute(cu, mac_est, tech, notes)
        else:
            entries[cu.name] = _compute_entries(cu, cu_table, ert_label, mac_est, tech)
            exact = (entries[cu.name] if multiplier is None else
                     _compute_entries(cu, cu_table, ert_label, MACEstimator(None), tech))
    if tables:
        used = {short_name(n) for n in entries}
        unused = sorted(k for k in tables if k not in used)
        if unused:
            notes.append(f"ERT components not in the architecture: {', '.join(unused)}")
    return EnergyTable(entries=entries, compute=cu.name, technology_nm=arch_nm,
                       multiplier=None if multiplier is None else multiplier.name,
                       ert=None if ert is None else str(ert), notes=notes,
                       block_sizes={lv.name: lv.block_size for lv in arch.levels},
                       backend=backend, exact_compute=exact)


def write_energy_ert(path: str | Path, arch: Architecture, table: EnergyTable) -> Path:
    """Write the ERT ``table`` used for ``arch`` (``--write-ert``), with its provenance."""
    header = [f"Accelergy ERT written by hwcost for {arch.name} (estimators: {table.backend}"
              f"{', ERT ' + table.ert if table.ert else ''})"]
    if table.backend == "accelergy":
        from .accelergy_estimators import package_versions

        versions = ", ".join(f"{k} {v}" for k, v in package_versions().items() if v)
        header.append(f"hwcomponents packages: {versions}")
    return write_ert(path, arch, table, "\n".join(header))
