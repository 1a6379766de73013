"""The energy table: pJ per action of every component of an architecture, and its source.

The analytical model needs three numbers per storage level (per *word* read, written by a
fill from the parent, and updated with a partial sum) and three for the compute unit (one MAC,
split into multiply and add so that the arithmetic share of an approximate multiplier can be
reported).  :func:`build_energy_table` gathers them from an Accelergy ``ERT.yaml`` where the
user has one (see :mod:`hwmodel.ert`) and from estimators otherwise, storage levels and
the compute unit alike through the one estimator registry
(:mod:`hwmodel.estimators.registry`, where a user's plug-in registers with
:func:`register_estimator`): hwcost's own (:mod:`hwmodel.estimators`,
``backend="builtin"``, any Python) or Accelergy's own models through hwcomponents
(:mod:`hwmodel.accelergy_estimators`, ``backend="accelergy"``, the ``[accelergy]`` extra on
Python >= 3.12, leakage included; the built-in estimators price what it has no model of),
recording for every number where it came from (``hwcomponents:SmartBufferSRAM (read)``,
``hwcost-sram``, ``ERT:...``), because a model whose energies silently come from the wrong
place is the most common complaint about Timeloop/Accelergy setups.

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
of the exact MAC of the same width its estimator for the unit's class gives (the built-in
one for the classes hwcost knows), and, when an approximate multiplier is given,
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
from typing import Any

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
    COMPUTE_ACTIONS,
    ESTIMATORS,
    REFERENCE_NM,
    REGISTRY,
    STORAGE_ACTIONS,
    ActionEnergy,
    DRAMEstimator,
    Estimator,
    EstimatorRegistry,
    MACEstimator,
    MultiplierUse,
    NoEstimate,
    RegfileEstimator,
    SRAMEstimator,
    describe_estimators,
    mac_widths,
    parse_technology,
    register_estimator,
    technology_scale,
)
from .estimators.registry import BUILTIN

__all__ = [
    "BACKENDS", "COMPUTE_ACTIONS", "ESTIMATORS", "STORAGE_ACTIONS", "ActionEnergy",
    "DRAMEstimator", "EnergyTable", "Estimator", "MACEstimator", "RegfileEstimator",
    "SRAMEstimator", "build_energy_table", "describe_estimators", "load_ert", "parse_technology",
    "register_estimator", "technology_scale", "write_energy_ert",
]

#: hwcost storage action -> ERT actions that may price it, in order of preference.  Accelergy
#: names a fill ``write`` (0.3) or ``fill`` (newer); an update is a write of a partial sum.
ERT_STORAGE_ACTIONS: dict[str, tuple[str, ...]] = {
    "read": ("random_read", "read"),
    "write": ("random_fill", "random_write", "fill", "write", "update"),
    "update": ("random_update", "random_write", "update", "write", "fill"),
}
#: ERT actions that price one MAC on random data (Timeloop charges ``mac_random`` per op).
ERT_MAC_ACTIONS = ("mac_random", "compute", "mac")


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


@contextmanager
def _naming(what: str, line: int | None) -> Iterator[None]:
    """An estimator's complaint about a component, prefixed with the component (``storage
    level glb: ...``); one that names its own file (a multiplier's) is left as it is."""
    try:
        yield
    except HwcostError as exc:
        if exc.file is not None:
            raise
        raise HwcostError(f"{what}: {exc.message}", line=line) from None


def _builtin(est: Estimator) -> bool:
    """Whether ``est`` is one of hwcost's own estimators (for the wording of notes)."""
    return any(type(est) is type(e) for e in ESTIMATORS)


def _fallen_back(entries: dict[str, ActionEnergy], declined: NoEstimate | None
                 ) -> dict[str, ActionEnergy]:
    """``entries`` with the sources saying which estimator had no model first."""
    if declined is None:
        return entries
    return {a: ActionEnergy(ae.energy_pj, f"{ae.source} ({declined.tag})")
            for a, ae in entries.items()}


def _note(notes: list[str], name: str, component_class: str, declined: NoEstimate,
          est: Estimator) -> None:
    used = "built-in estimator" if _builtin(est) else f"estimator {est.name}"
    notes.append(f"{name}: {declined.note} (class {component_class}); {used} used")


def _price_storage(level: StorageLevel, attrs: dict[str, Any], actions: list[str],
                   registry: EstimatorRegistry, backend: str, technology_nm: float,
                   notes: list[str]) -> dict[str, ActionEnergy]:
    """``actions`` of a storage level (per row) from the first estimator the registry names
    that has a model of it; ``leak`` is optional."""
    declined: NoEstimate | None = None
    for est, cls in registry.candidates(level.component_class, attrs, "storage", backend):
        out: dict[str, ActionEnergy] = {}
        try:
            for action in actions:
                ae = est.action_energy(cls, attrs, action, technology_nm)
                if ae is None:
                    if action == "leak":
                        continue
                    raise HwcostError(f"estimator {est.name} cannot price '{action}' of class "
                                      f"{cls}")
                out[action] = ae
        except NoEstimate as exc:
            declined = declined or exc
            continue
        if declined is not None:
            _note(notes, level.name, level.component_class, declined, est)
        return _fallen_back(out, declined)
    known = sorted(registry.known_classes("storage", backend), key=str.lower)
    raise HwcostError(f"no energy estimator handles component class "
                      f"{level.component_class!r}; known classes: {', '.join(known)} (or give "
                      "an ERT)")


def _storage_entries(level: StorageLevel, table: ErtTable | None, ert_label: str,
                     registry: EstimatorRegistry, backend: str, technology_nm: float,
                     notes: list[str]) -> dict[str, ActionEnergy]:
    """Per word: read, write and update of a storage level (and leak per cycle where
    known), from its ERT table where it has the action, else from the estimators."""
    attrs = _storage_attributes(level)
    block = level.block_size
    from_ert: dict[str, ActionEnergy] = {}
    for action in STORAGE_ACTIONS:
        if table is not None:
            hit = next((a for a in ERT_STORAGE_ACTIONS[action] if a in table.actions), None)
            if hit is not None:
                label = ert_label if hit == action else f"{ert_label} ({hit})"
                from_ert[action] = ActionEnergy(table.actions[hit] / block, label)
    if table is not None and "leak" in table.actions:
        from_ert["leak"] = ActionEnergy(table.actions["leak"], f"{ert_label} (leak per cycle)")
    missing = [a for a in STORAGE_ACTIONS if a not in from_ert]
    priced: dict[str, ActionEnergy] = {}
    if missing:
        asked = missing + ([] if "leak" in from_ert else ["leak"])
        with _naming(f"storage level {level.name}", level.line):
            priced = _price_storage(level, attrs, asked, registry, backend, technology_nm,
                                    notes)
    out = {a: from_ert[a] if a in from_ert else
           ActionEnergy(priced[a].energy_pj / block, priced[a].source)
           for a in STORAGE_ACTIONS}
    leak = from_ert.get("leak") or priced.get("leak")
    if leak is not None:
        out["leak"] = leak
    return out


def _price_compute(cu: ComputeUnit, attrs: dict[str, Any], registry: EstimatorRegistry,
                   backend: str, multiplier: MultiplierUse | None, technology_nm: float,
                   notes: list[str]) -> tuple[dict[str, ActionEnergy], dict[str, ActionEnergy]]:
    """(entries, exact entries) of the compute unit from the first estimator the registry
    names that has a model of it."""
    declined: NoEstimate | None = None
    for est, cls in registry.candidates(cu.component_class, attrs, "compute", backend):
        try:
            entries = est.compute_energy(cls, attrs, technology_nm, multiplier)
            exact = (entries if multiplier is None else
                     est.compute_energy(cls, attrs, technology_nm, None))
        except NoEstimate as exc:
            declined = declined or exc
            continue
        if declined is not None:
            _note(notes, cu.name, cu.component_class, declined, est)
        return _fallen_back(entries, declined), _fallen_back(exact, declined)
    raise HwcostError(f"no energy estimator handles class {cu.component_class!r} (known: "
                      f"{', '.join(registry.known_classes('compute', backend))}); give an ERT")


def _ert_compute(cu: ComputeUnit, attrs: dict[str, Any], table: ErtTable, hit: str,
                 ert_label: str, priced_by: tuple[Estimator, str] | None,
                 multiplier: MultiplierUse | None, technology_nm: float
                 ) -> dict[str, ActionEnergy]:
    """The compute unit's entries from the ERT's MAC (action ``hit``), split into multiply
    and add by the ERT's own split or the estimator's exact one (``priced_by``: the
    estimator that prices the unit's class, and the class to ask it about)."""
    mac_ert = table.actions[hit]
    label = f"{ert_label} ({hit})"
    leak = ({"leak": ActionEnergy(table.actions["leak"], f"{ert_label} (leak per cycle)")}
            if "leak" in table.actions else {})
    if priced_by is None:
        if multiplier is not None:
            raise HwcostError(f"cannot split the ERT's MAC of class {cu.component_class!r} to "
                              f"apply multiplier {multiplier.name}")
        return {"mac": ActionEnergy(mac_ert, label),
                "multiply": ActionEnergy(mac_ert, f"{label}, not split"),
                "add": ActionEnergy(0.0, f"{label}, not split"), **leak}
    est, cls = priced_by
    est.compute_energy(cls, attrs, technology_nm, multiplier)   # the multiplier fits the unit
    mul_ert, add_ert = table.actions.get("multiply"), table.actions.get("add")
    if (mul_ert is not None and add_ert is not None and mac_ert > 0
            and abs(mul_ert + add_ert - mac_ert) <= 1e-9 * max(1.0, mac_ert)):
        # an ERT written by hwcost carries its own split (hwmodel.ert.ert_document)
        share = mul_ert / mac_ert
        how = "of the ERT's multiply/add"
    else:
        exact = est.compute_energy(cls, attrs, technology_nm, None)
        mac = exact["mac"].energy_pj
        share = exact["multiply"].energy_pj / mac if mac > 0 else 1.0
        how = ("of built-in exact split" if _builtin(est) else
               f"of {est.name}'s exact split")
    multiply = mac_ert * share
    add = mac_ert - multiply
    mul_src = f"{label}, multiply share {share:.2f} {how}"
    add_src = f"{label}, add share {1 - share:.2f} {how}"
    mac_src = label
    if multiplier is not None:
        mult_e = multiplier.energy()
        factor, text = mult_e.scale_in(mac_widths(attrs, cu.datawidth, cu.name)[0])
        multiply *= factor
        mul_src += f", {text}"
        mac_src = f"{label} with multiply x {factor:.3f} from {mult_e.source}"
    return {"mac": ActionEnergy(multiply + add, mac_src),
            "multiply": ActionEnergy(multiply, mul_src),
            "add": ActionEnergy(add, add_src), **leak}


def _compute_entries(cu: ComputeUnit, table: ErtTable | None, ert_label: str,
                     registry: EstimatorRegistry, backend: str,
                     multiplier: MultiplierUse | None, technology_nm: float,
                     notes: list[str]) -> tuple[dict[str, ActionEnergy],
                                                dict[str, ActionEnergy]]:
    """(entries, exact entries: without the multiplier) of the compute unit: from its ERT
    table's MAC where it has one, else from the estimators."""
    attrs = dict(cu.attributes)
    attrs["datawidth"] = cu.datawidth
    hit = None if table is None else next((a for a in ERT_MAC_ACTIONS if a in table.actions),
                                           None)
    with _naming(f"compute unit {cu.name}", cu.line):
        if hit is None:
            return _price_compute(cu, attrs, registry, backend, multiplier, technology_nm,
                                  notes)
        assert table is not None
        priced_by = next(registry.candidates(cu.component_class, attrs, "compute", BUILTIN),
                         None)
        entries = _ert_compute(cu, attrs, table, hit, ert_label, priced_by, multiplier,
                               technology_nm)
        exact = entries if multiplier is None else _ert_compute(
            cu, attrs, table, hit, ert_label, priced_by, None, technology_nm)
        return entries, exact


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


#: The backends of the CLI; a plug-in registered under another backend's name makes that
#: name a backend too.
BACKENDS = (BUILTIN, "accelergy")


def _check_backend(backend: str, registry: EstimatorRegistry) -> str:
    name = str(backend).lower()
    known = BACKENDS + tuple(b for b in registry.backends if b not in BACKENDS)
    if name not in known:
        raise HwcostError(f"unknown estimators {backend!r}; expected one of "
                          f"{', '.join(known)}")
    return name


def build_energy_table(arch: Architecture, multiplier: Multiplier | None = None,
                       ert: str | Path | None = None,
                       estimators: list[Estimator] | None = None,
                       backend: str = "builtin") -> EnergyTable:
    """Energy per word of every storage level and per MAC of the compute unit.

    ``multiplier`` replaces the compute unit's exact multiplier; ``ert`` is an Accelergy
    ``ERT.yaml`` whose components (matched by the last component of their name, replication
    like ``[0..167]`` stripped) override the estimators.  Everything else is priced through
    the estimator registry (:mod:`hwmodel.estimators.registry`): ``backend`` picks whose
    estimators are asked first, ``"builtin"`` (hwcost's own and the plug-ins registered with
    :func:`register_estimator`; no leakage) or ``"accelergy"`` (hwcomponents, Accelergy's own
    models including leakage, see :mod:`hwmodel.accelergy_estimators`; needs the
    ``[accelergy]`` extra), the built-in ones after them; a component the ERT prices takes
    what the ERT lacks from the built-in ones.  ``estimators`` replaces the built-in
    estimators (:data:`ESTIMATORS` and the registered plug-ins) for this table.  ERT figures
    are taken as they are (already at the ERT's technology); estimated ones are for the
    component's technology (the architecture's by default).
    """
    registry = REGISTRY if estimators is None else REGISTRY.with_builtin(estimators)
    backend = _check_backend(backend, registry)
    if backend == "accelergy":
        from .accelergy_estimators import hwcomponents_module

        hwcomponents_module()      # one clear line now if the extra is not installed
    tech_line = next((lv.line for lv in arch.levels if lv.technology == arch.technology),
                     arch.compute.line)
    with _located(arch, tech_line):
        arch_nm = _technology(arch.technology, REFERENCE_NM)
    use = None if multiplier is None else MultiplierUse(multiplier)
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
            entries[level.name] = _storage_entries(level, table, ert_label, registry,
                                                   backend if table is None else BUILTIN,
                                                   tech, notes)
    cu = arch.compute
    cu_table = tables.get(short_name(cu.name))
    with _located(arch, cu.line):
        tech = _technology(cu.technology, arch_nm)
        entries[cu.name], exact = _compute_entries(cu, cu_table, ert_label, registry,
                                                   backend if cu_table is None else BUILTIN,
                                                   use, tech, notes)
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
