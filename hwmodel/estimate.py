"""Whole-network estimates: map every layer, price it for one or more multipliers.

The energy-optimal mapping of a layer does not depend on the multiplier (every mapping
performs the same MACs), so each distinct layer shape is mapped once, with the storage
energies of the architecture, and the arithmetic energy is then priced per multiplier.
Layers without multiplications (pooling, element-wise sums) are charged as a layer-by-layer
accelerator runs them: their inputs read from and outputs written to the outermost level,
plus one add (or compare) per reduced element on the compute units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from multiplier_lib import Multiplier

from .arch import Architecture
from .energy import EnergyTable, build_energy_table, write_energy_ert
from .mapper import Mapper
from .mapping import Mapping
from .model import EvalResult, access_energy
from .workload import Layer


@dataclass
class LayerEstimate:
    layer: Layer
    multiplier: str
    macs: int
    mapping: str
    cycles: float
    utilization: float
    multiply_pj: float
    add_pj: float
    level_pj: dict[str, float]
    result: EvalResult | None = None
    mapping_obj: Mapping | None = None
    #: the mapper's warning when the mapping leaves most of a fillable fan-out idle
    underused: str | None = None
    #: how good the mapping is known to be (MapResult.evidence()); None for layers that
    #: multiply nothing
    evidence: dict | None = None

    @property
    def arithmetic_pj(self) -> float:
        return self.multiply_pj + self.add_pj

    @property
    def memory_pj(self) -> float:
        return sum(self.level_pj.values())

    @property
    def energy_pj(self) -> float:
        return self.arithmetic_pj + self.memory_pj

    def row(self, levels: list[str]) -> dict:
        """This layer as one table/JSON row (energies in pJ, one column per level)."""
        layer = self.layer
        return {"name": layer.name, "type": layer.kind, "shape": layer.shape_text(),
                "macs": self.macs, "multiplier": self.multiplier, "mapping": self.mapping,
                "multiply_pj": self.multiply_pj, "add_pj": self.add_pj,
                **{f"{lv}_pj": self.level_pj.get(lv, 0.0) for lv in levels},
                "energy_pj": self.energy_pj, "cycles": self.cycles,
                "utilization": self.utilization, "underused": self.underused,
                "mapper": self.evidence}


@dataclass
class NetworkEstimate:
    arch: str
    multiplier: str
    objective: str
    layers: list[LayerEstimate]
    level_names: list[str]
    energy_sources: dict[str, dict[str, dict]] = field(default_factory=dict)
    #: which estimators priced the components an ERT did not: "builtin" or "accelergy"
    estimators: str = "builtin"

    def total(self, attr: str) -> float:
        return sum(getattr(le, attr) for le in self.layers)

    def level_total(self, name: str) -> float:
        return sum(le.level_pj.get(name, 0.0) for le in self.layers)

    @property
    def macs(self) -> int:
        return sum(le.macs for le in self.layers)

    def totals(self) -> dict:
        """Network totals: MACs, energies split arithmetic / memory (and per level), cycles."""
        return {"macs": self.macs, "multiply_pj": self.total("multiply_pj"),
                "add_pj": self.total("add_pj"), "arithmetic_pj": self.total("arithmetic_pj"),
                "memory_pj": self.total("memory_pj"),
                "levels_pj": {lv: self.level_total(lv) for lv in self.level_names},
                "energy_pj": self.total("energy_pj"), "cycles": self.total("cycles"),
                "utilization": self.utilization}

    def by_group(self) -> list[dict]:
        """Rows summed per group (the part of a layer name before its first dot: stem,
        cell0, ..., classifier), MAC-weighted utilization, in network order."""
        groups: dict[str, dict] = {}
        util: dict[str, float] = {}
        for le in self.layers:
            name = le.layer.name.split(".", 1)[0]
            g = groups.setdefault(name, {
                "name": name, "layers": 0, "macs": 0, "multiply_pj": 0.0, "add_pj": 0.0,
                **{f"{lv}_pj": 0.0 for lv in self.level_names}, "energy_pj": 0.0,
                "cycles": 0.0})
            g["layers"] += 1
            g["macs"] += le.macs
            g["multiply_pj"] += le.multiply_pj
            g["add_pj"] += le.add_pj
            for lv in self.level_names:
                g[f"{lv}_pj"] += le.level_pj.get(lv, 0.0)
            g["energy_pj"] += le.energy_pj
            g["cycles"] += le.cycles
            util[name] = util.get(name, 0.0) + le.macs * le.utilization
        for name, g in groups.items():
            g["utilization"] = util[name] / g["macs"] if g["macs"] else 0.0
        return list(groups.values())

    @property
    def utilization(self) -> float:
        """MAC-weighted utilization over the layers that multiply."""
        weighted = [(le.macs, le.utilization) for le in self.layers if le.macs]
        total = sum(m for m, _ in weighted)
        return sum(m * u for m, u in weighted) / total if total else 0.0


class NetworkEstimator:
    """Maps layers onto ``arch`` once and prices them for any multiplier."""

    def __init__(self, arch: Architecture, objective: str = "energy",
                 ert: str | Path | None = None,
                 resolve_multiplier=None, effort: str = "balanced",
                 estimators: str = "builtin", write_ert: str | Path | None = None,
                 work_budget: int | None = None, jobs: int | None = None):
        """``estimators`` prices what ``ert`` does not: ``"builtin"`` (hwcost's own) or
        ``"accelergy"`` (hwcomponents, :mod:`hwmodel.accelergy_estimators`); ``write_ert``
        writes the ERT of the exact design's energies (``--write-ert``); ``jobs`` processes
        map the distinct layer shapes (default: the CPUs available, see
        :mod:`hwmodel.parallel_map`)."""
        self.arch = arch
        self.objective = objective
        self.ert = ert
        self.jobs = jobs
        self.estimators = estimators
        self.base_energy = build_energy_table(arch, None, ert, backend=estimators)
        #: written once the first network is priced: a failed run writes nothing
        self._write_ert = write_ert
        self.mapper = Mapper(arch, self.base_energy, objective, effort=effort,
                             work_budget=work_budget)
        self._tables: dict[str, EnergyTable] = {}
        if resolve_multiplier is None:   # per-layer multipliers still need resolving
            from multiplier_lib.library import MultiplierResolver

            resolve_multiplier = MultiplierResolver()
        self._resolve = resolve_multiplier

    def table_for(self, multiplier: Multiplier | None) -> EnergyTable:
        key = "" if multiplier is None else multiplier.name
        if key not in self._tables:
            self._tables[key] = build_energy_table(self.arch, multiplier, self.ert,
                                                   backend=self.estimators)
        return self._tables[key]

    def estimate(self, layers: list[Layer], multiplier: Multiplier | None,
                 progress=None) -> NetworkEstimate:
        names = [lv.name for lv in self.arch.levels]
        self.mapper.map_many([layer.workload() for layer in layers
                              if layer.kind in ("conv", "fc")], self.jobs)
        rows = []
        for layer in layers:
            mult = multiplier
            if layer.multiplier and self._resolve is not None and (
                    multiplier is None or layer.multiplier != multiplier.name):
                mult = self._resolve(layer.multiplier)
            table = self.table_for(mult)
            rows.append(self._layer(layer, table, mult))
            if progress is not None:
                progress()
        if self._write_ert is not None:
            write_energy_ert(self._write_ert, self.arch, self.base_energy)
            self._write_ert = None
        table = self.table_for(multiplier)
        sources = {comp: {a: {"energy_pj": ae.energy_pj, "source": ae.source}
                          for a, ae in acts.items()}
                   for comp, acts in table.entries.items()}
        return NetworkEstimate(self.arch.name, table.multiplier or "exact (built-in)",
                               self.objective, rows, names, sources, self.estimators)

    def _layer(self, layer: Layer, table: EnergyTable, mult: Multiplier | None) -> LayerEstimate:
        mname = mult.name if mult is not None else "exact (built-in)"
        if layer.kind in ("conv", "fc"):
            found = self.mapper.map(layer.workload())
            res = found.result
            # the mapping was found once; the multiplier only changes the arithmetic, but
            # price the memories with this table too, the model's way
            level_pj = {}
            for lv, st in zip(self.arch.levels, res.levels):
                level_pj[lv.name] = st.leakage_pj + sum(
                    access_energy(s, lv, table) for s in st.dataspaces.values())
            return LayerEstimate(layer, mname, layer.macs, found.mapping.short(
                [lv.name for lv in self.arch.levels]), res.cycles, res.utilization,
                table.multiply() * res.computes, table.add() * res.computes, level_pj, res,
                found.mapping, found.underused, found.evidence())
        # pooling / element-wise: outermost-level traffic and adds on the MAC array
        elements_out = layer.N * layer.groups * layer.M * layer.P * layer.Q
        if layer.kind == "pool":
            h, w = layer.in_hw
            elements_in = layer.N * layer.groups * layer.C * h * w
            adds = elements_out * (layer.R * layer.S - 1)
        else:
            inputs = int(layer.extra.get("operands", 2))
            elements_in = elements_out * inputs
            adds = elements_out * (inputs - 1)
        outer = self.arch.levels[0].name
        level_pj = {outer: elements_in * table.per_word(outer, "read")
                    + elements_out * table.per_word(outer, "write")}
        cycles = math.ceil(max(adds, elements_out) / self.arch.compute.instances)
        return LayerEstimate(layer, mname, 0, "-", float(cycles), 0.0, 0.0,
                             adds * table.add(), level_pj)


def estimate_float(arch: Architecture, layers: list[Layer], fmt: str,
                   objective: str = "energy", effort: str = "balanced",
                   estimators: str = "builtin",
                   work_budget: int | None = None) -> NetworkEstimate:
    """The network run in a float format (``fp32``, ``fp16``, ``bf16``) on ``arch`` built for
    float words (:func:`hwmodel.float_formats.float_variant`): remapped for the wider words,
    priced with the FP MAC.  Per-layer multipliers do not apply: the whole network is float.
    With ``estimators="accelergy"`` the memories are hwcomponents' figures; hwcomponents has
    no floating-point MAC, so the FP MAC stays the built-in one (its source says so)."""
    import dataclasses

    from .float_formats import float_variant

    variant = float_variant(arch, fmt)
    estimator = NetworkEstimator(variant, objective, None, effort=effort, estimators=estimators,
                                 work_budget=work_budget)
    result = estimator.estimate([dataclasses.replace(layer, multiplier=None)
                                 for layer in layers], None)
    name = fmt.lower()
    result.multiplier = name
    for le in result.layers:
        le.multiplier = name
    return result
