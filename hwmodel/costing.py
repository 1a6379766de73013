"""The one costing function: what a list of layers costs on an architecture with an arithmetic.

Every figure hwcost reports for a network (``hwcost estimate``, the search's op energy table
and its differentiable penalty, the train/evaluate reports, sweeps) comes from :func:`price`,
so the same network, arithmetic and accelerator give the same numbers wherever they are asked
for.  A :class:`CostContext` holds what is fixed for a run (the architecture, where component
energies come from, the mapper's objective and effort) and caches what is expensive (the
mapping of every layer shape, the energy table of every arithmetic).

The energy-optimal mapping of a layer does not depend on the multiplier (every mapping
performs the same MACs), so each distinct layer shape is mapped once, with the storage
energies of the architecture, and the arithmetic energy is then priced per multiplier.
Layers without multiplications (pooling, element-wise sums) are charged as a layer-by-layer
accelerator runs them: their inputs read from and outputs written to the outermost level,
plus one add (or compare) per reduced element on the compute units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.arithmetic import Arithmetic, FloatFormat, IntMultiplier
from core.errors import HwcostError

from .arch import Architecture
from .energy import EnergyTable, build_energy_table, write_energy_ert
from .float_formats import float_variant
from .mapper import EFFORTS, Mapper
from .mapping import Mapping
from .model import EvalResult, access_energy
from .workload import Layer


@dataclass
class LayerCost:
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
class NetworkCost:
    arch: str
    multiplier: str
    objective: str
    layers: list[LayerCost]
    level_names: list[str]
    energy_sources: dict[str, dict[str, dict]] = field(default_factory=dict)
    #: which estimators priced the components an ERT did not: "builtin" or "accelergy"
    estimators: str = "builtin"
    #: how the figures were obtained: the context's settings and, per arithmetic used, the
    #: design it was priced on and the sources of its multiply and add energies
    provenance: dict[str, Any] = field(default_factory=dict)

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




PerEdge = Literal["keep", "override"]
#: the label of the design's own MAC when no arithmetic is given
OWN_MAC = "exact (built-in)"


class _Design:
    """One hardware design of the context (the spec, or the spec rebuilt for a float
    format's words), its mapper (which caches mappings by layer shape) and its energy table
    per arithmetic."""

    def __init__(self, arch: Architecture, ctx: CostContext, fmt: FloatFormat | None):
        self.arch = arch
        self.fmt = fmt
        ert = None if fmt is not None else ctx.ert
        self._ctx = ctx
        self._ert = ert
        self.base_energy = build_energy_table(arch, None, ert, backend=ctx.estimators)
        self.mapper = Mapper(arch, self.base_energy, ctx.objective, effort=ctx.effort,
                             work_budget=ctx.work_budget)
        self._tables: dict[str, EnergyTable] = {}

    def table(self, arith: IntMultiplier | None) -> EnergyTable:
        key = "" if arith is None else arith.name
        if key not in self._tables:
            self._tables[key] = (self.base_energy if arith is None else build_energy_table(
                self.arch, arith.multiplier, self._ert, backend=self._ctx.estimators))
        return self._tables[key]


class CostContext:
    """What stays fixed while a run prices networks, and the caches that make it cheap.

    ``arch`` is the integer design; a float format is priced on the same design rebuilt for
    its words (:func:`hwmodel.float_formats.float_variant`), created on first use.  ``ert``
    prices the integer design's actions (it cannot price a float design, so the two are
    refused together); ``estimators`` prices what the ERT does not (``"builtin"`` or
    ``"accelergy"``).  ``resolve`` turns a layer's multiplier name into an arithmetic (default:
    the default library's :meth:`~multiplier_lib.library.MultiplierResolver.arithmetic`).
    ``jobs`` processes map the distinct layer shapes (see :mod:`hwmodel.parallel_map`).
    """

    def __init__(self, arch: Architecture, *, objective: str = "energy",
                 ert: str | Path | None = None, estimators: str = "builtin",
                 effort: str = "balanced", work_budget: int | None = None,
                 jobs: int | None = None,
                 resolve: Callable[[Any], Arithmetic] | None = None):
        if effort not in EFFORTS:
            raise HwcostError(f"unknown mapper effort {effort!r}; expected one of "
                              f"{', '.join(EFFORTS)}")
        self.arch = arch
        self.objective = objective
        self.ert = None if ert is None else Path(ert)
        self.estimators = estimators
        self.effort = effort
        self.work_budget = work_budget
        self.jobs = jobs
        if resolve is None:
            from multiplier_lib.library import MultiplierResolver

            resolve = MultiplierResolver().arithmetic
        self.resolve = resolve
        self._designs: dict[str, _Design] = {}
        self.design(None)          # a bad spec or ERT fails here, before any layer is mapped

    @classmethod
    def for_spec(cls, arch: Architecture | str | Path, **kwargs: Any) -> CostContext:
        """A context for a spec given as an object, a bundled name or a path."""
        if not isinstance(arch, Architecture):
            from .spec import load_arch

            arch = load_arch(arch)
        return cls(arch, **kwargs)

    def design(self, fmt: FloatFormat | None) -> _Design:
        key = "" if fmt is None else fmt.name
        if key not in self._designs:
            if fmt is not None and self.ert is not None:
                raise HwcostError(f"{fmt.name}: a float baseline cannot be priced with an ERT "
                                  "of the integer design (it runs on the FP MAC and float "
                                  "words), so the two cannot be combined; leave out the ERT "
                                  "or the float format")
            arch = self.arch if fmt is None else float_variant(self.arch, fmt)
            self._designs[key] = _Design(arch, self, fmt)
        return self._designs[key]

    def design_of(self, arithmetic: Any) -> _Design:
        """The design ``arithmetic`` (a name, an arithmetic or ``None``) is priced on."""
        return self.design(_fmt(self.arithmetic(arithmetic)))

    @property
    def base_energy(self) -> EnergyTable:
        """The integer design's table with its own exact MAC (what ``--write-ert`` writes)."""
        return self.design(None).base_energy

    def arithmetic(self, spec: Any) -> Arithmetic | None:
        return None if spec is None else self.resolve(spec)

    def settings(self) -> dict[str, Any]:
        return {"arch": self.arch.name, "objective": self.objective, "effort": self.effort,
                "estimators": self.estimators,
                "ert": None if self.ert is None else str(self.ert)}


def price(layers: Sequence[Layer], arithmetic: Arithmetic | str | None, context: CostContext,
          per_edge: PerEdge = "keep", progress: Callable[[], None] | None = None
          ) -> NetworkCost:
    """What ``layers`` cost on ``context``'s accelerator with ``arithmetic``.

    ``per_edge="keep"``: a layer that names its own multiplier (a per-edge choice of a DARTS
    genotype) keeps it and ``arithmetic`` prices the others; ``"override"``: ``arithmetic``
    prices every layer.  Each layer is priced on the design of its arithmetic: a multiplier on
    the integer design, a float format on the design built for its words.  ``arithmetic``
    ``None`` prices layers without a multiplier with the design's own (exact) MAC.
    """
    if per_edge not in ("keep", "override"):
        raise HwcostError(f"per_edge must be 'keep' or 'override', not {per_edge!r}")
    base = context.arithmetic(arithmetic)
    chosen = [base if per_edge == "override" or not layer.multiplier
              else context.arithmetic(layer.multiplier) for layer in layers]
    formats = {_fmt(a) for a in chosen}
    for fmt in sorted(formats, key=lambda f: "" if f is None else f.name):
        design = context.design(fmt)
        design.mapper.map_many([layer.workload() for layer, a in zip(layers, chosen)
                                if _fmt(a) == fmt and layer.kind in ("conv", "fc")],
                               context.jobs)
    rows = []
    for layer, arith in zip(layers, chosen):
        rows.append(_price_layer(layer, arith, context.design(_fmt(arith))))
        if progress is not None:
            progress()
    head = context.design(_fmt(base))
    table = _table(head, base)
    sources = {comp: {a: {"energy_pj": ae.energy_pj, "source": ae.source}
                      for a, ae in acts.items()}
               for comp, acts in table.entries.items()}
    provenance = {**context.settings(), "per_edge": per_edge, "arithmetic": {
        _label(a): _arith_provenance(context.design(_fmt(a)), a)
        for a in dict.fromkeys(chosen)}}
    return NetworkCost(head.arch.name, _label(base), context.objective, rows,
                       [lv.name for lv in head.arch.levels], sources, context.estimators,
                       provenance)


def _fmt(arith: Arithmetic | None) -> FloatFormat | None:
    return arith if isinstance(arith, FloatFormat) else None


def _label(arith: Arithmetic | None) -> str:
    return OWN_MAC if arith is None else arith.name


def _table(design: _Design, arith: Arithmetic | None) -> EnergyTable:
    return design.table(arith if isinstance(arith, IntMultiplier) else None)


def _arith_provenance(design: _Design, arith: Arithmetic | None) -> dict[str, Any]:
    table = _table(design, arith)
    return {"design": design.arch.name,
            "multiply": {"energy_pj": table.multiply(),
                         "source": table.source(table.compute, "multiply")},
            "add": {"energy_pj": table.add(), "source": table.source(table.compute, "add")}}


def _price_layer(layer: Layer, arith: Arithmetic | None, design: _Design) -> LayerCost:
    arch = design.arch
    table = _table(design, arith)
    mname = _label(arith)
    if layer.kind in ("conv", "fc"):
        found = design.mapper.map(layer.workload())
        res = found.result
        # the mapping was found once; the arithmetic only changes the MAC, but price the
        # memories with this table too, the model's way
        level_pj = {}
        for lv, st in zip(arch.levels, res.levels):
            level_pj[lv.name] = st.leakage_pj + sum(
                access_energy(s, lv, table) for s in st.dataspaces.values())
        return LayerCost(layer, mname, layer.macs, found.mapping.short(
            [lv.name for lv in arch.levels]), res.cycles, res.utilization,
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
    outer = arch.levels[0].name
    level_pj = {outer: elements_in * table.per_word(outer, "read")
                + elements_out * table.per_word(outer, "write")}
    cycles = math.ceil(max(adds, elements_out) / arch.compute.instances)
    return LayerCost(layer, mname, 0, "-", float(cycles), 0.0, 0.0,
                     adds * table.add(), level_pj)


def write_context_ert(path: str | Path, context: CostContext) -> Path:
    """``--write-ert``: the integer design's exact energies, as an Accelergy ERT."""
    return write_energy_ert(path, context.arch, context.base_energy)

