"""The search network's op energy table ``E[cell type, edge, op, multiplier]``, without torch.

Why a table: mapping layers onto an accelerator is far too slow to do inside a training step,
but the energy of an op on an edge does not depend on the architecture weights.  So every
(cell type, edge, op, multiplier) combination of the *search* network is priced once, with
:func:`hwmodel.costing.price`, into ``E`` (pJ); ``nas.energy_penalty`` turns it into the
differentiable expected energy of the search loss.

The search network's macro layout (stem, reduction cells, channels, sizes, preprocessing) is
the :class:`~darts.macro.NetworkPlan` the supernet is built from, with every intermediate node
concatenated; intermediate node ``i`` reads every earlier state ``j < i + 2`` (edges numbered
in that order, 14 for 4 nodes), and edges reading the cell inputs (``j < 2``) of a reduction
cell have stride 2.  All cells of one type share their alphas, so ``E`` sums an edge's energy
over every cell of that type.

``fixed_pj`` is what no architecture weight controls, priced with the *first* multiplier (the
baseline; the search does not choose multipliers for these layers, and the genotype it writes
names it as its network-wide multiplier): the stem, every cell's preprocessing, one two-input
add per intermediate node (the sum a derived cell performs), the global average pooling and
the classifier.  With this choice ``fixed_pj`` plus the table entries of a genotype's chosen
edges equals the price of that genotype's network at the search configuration
(``tests/nas/test_energy_penalty.py`` checks it).  The weighted sums of the search network's
mixed ops are *not* priced: they exist only during search.

``none`` costs 0 and ``skip_connect`` at stride 1 is an identity (0); at stride 2 it is a
FactorizedReduce.  ``reference_pj`` is the expected energy under uniform alphas with the first
multiplier; dividing by it keeps the penalty near 1 whatever the network size or accelerator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.errors import HwcostError
from hwmodel.costing import CostContext, price
from hwmodel.workload import Layer

from .genotype import CELL_TYPES, PRIMITIVES
from .macro import NetworkPlan, plan_network
from .op_specs import op_block

FORMAT = "hwcost-op-energy-table"
FORMAT_VERSION = 1


def search_edges(n_nodes: int = 4) -> tuple[tuple[int, int], ...]:
    """``(node, input)`` of every edge in DARTS order (node ``i`` reads states ``j < i + 2``).

    ``node`` is the intermediate node's state id (``i + 2``), as in genotypes.
    """
    return tuple((i + 2, j) for i in range(n_nodes) for j in range(i + 2))


@dataclass
class OpEnergyTable:
    """``E[cell_type, edge, op, multiplier]`` in pJ plus the fixed and reference energies.

    ``energy_pj`` is a nested list ``[2][n_edges][n_ops][n_multipliers]`` so the table is
    plain data (JSON round trip without loss, no torch); ``nas.energy_penalty.table_tensor``
    gives the torch view.
    """

    arch: str
    multipliers: tuple[str, ...]
    ops: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    config: dict[str, int]
    objective: str
    energy_pj: list[list[list[list[float]]]]
    fixed_pj: float
    reference_pj: float
    #: derived views kept by their users (nas.energy_penalty keeps the torch tensor here)
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(CELL_TYPES), len(self.edges), len(self.ops), len(self.multipliers))

    def entry(self, cell_type: str, edge: int, op: str, multiplier: str) -> float:
        """One entry by names, for reports and tests that should not depend on indices."""
        t = CELL_TYPES.index(cell_type)
        return self.energy_pj[t][edge][self.ops.index(op)][self.multipliers.index(multiplier)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": FORMAT_VERSION, "arch": self.arch,
            "objective": self.objective, "multipliers": list(self.multipliers),
            "ops": list(self.ops), "cell_types": list(CELL_TYPES),
            "edges": [list(e) for e in self.edges], "config": dict(self.config),
            "fixed_pj": self.fixed_pj, "reference_pj": self.reference_pj,
            "energy_pj": self.energy_pj,
        }

    def save(self, path: str | Path) -> None:
        """Write JSON atomically, so a crashed search never leaves a truncated table."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> OpEnergyTable:
        """Read a table written by :meth:`save`; malformed files raise :class:`HwcostError`."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise HwcostError(f"cannot read energy table: {type(exc).__name__}: {detail}",
                              file=path) from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise HwcostError(f"{path}: not an op energy table (format {FORMAT!r} expected)")
        if doc.get("version") != FORMAT_VERSION:
            raise HwcostError(f"{path}: unsupported energy table version {doc.get('version')!r}")
        try:
            table = cls(
                arch=str(doc["arch"]), multipliers=tuple(doc["multipliers"]),
                ops=tuple(doc["ops"]), edges=tuple(tuple(e) for e in doc["edges"]),
                config={k: int(v) for k, v in doc["config"].items()},
                objective=str(doc["objective"]), energy_pj=doc["energy_pj"],
                fixed_pj=float(doc["fixed_pj"]), reference_pj=float(doc["reference_pj"]))
            got = _nested_shape(table.energy_pj)
        except (KeyError, TypeError, ValueError) as exc:
            raise HwcostError(f"{path}: malformed energy table: {exc}") from exc
        if got != table.shape:
            raise HwcostError(f"{path}: energy_pj has shape {got}, expected {table.shape}")
        return table


def _nested_shape(values: Any, depth: int = 4) -> tuple[int, ...]:
    """The shape of a regular nested list of numbers ``depth`` deep (a ValueError when
    ragged or not numbers), without torch or numpy."""
    if depth == 0:
        if isinstance(values, bool) or not isinstance(values, int | float):
            raise ValueError(f"expected a number, got {values!r}")
        return ()
    if not isinstance(values, list):
        raise ValueError(f"expected a list, got {type(values).__name__}")
    shapes = {_nested_shape(v, depth - 1) for v in values}
    if len(shapes) > 1:
        raise ValueError("ragged nested lists")
    inner = shapes.pop() if shapes else (0,) * (depth - 1)
    return (len(values), *inner)


def build_op_energy_table(context: CostContext, multipliers: Sequence[str],
                          layers: int = 8, channels: int = 16, input_size: int = 32,
                          n_nodes: int = 4, batch: int = 1, *,
                          classes: int = 10) -> OpEnergyTable:
    """Price every (cell type, edge, op, multiplier) of the search network once, with
    :func:`hwmodel.costing.price` in ``context`` (which caches mappings by layer shape); ops
    of identical shape in different cells are priced once, so the table takes seconds.  A
    search usually gives a context of ``effort="fast"``: it ranks relative op costs over
    hundreds of shapes, for which the constructive mapper suffices."""
    if not multipliers:
        raise HwcostError("the op energy table needs at least one multiplier")
    if type(n_nodes) is not int or n_nodes < 1:
        raise HwcostError(f"n_nodes must be a positive integer, not {n_nodes!r}")
    # every name resolved (and a float baseline with an ERT refused) before any mapping
    arithmetics = [context.arithmetic(name) for name in multipliers]
    for arith in arithmetics:
        context.design_of(arith)
    plan = plan_network(channels=channels, layers=layers, input_size=input_size,
                        classes=classes, concat=(n_nodes, n_nodes))
    edges = search_edges(n_nodes)
    n_ops, n_m = len(PRIMITIVES), len(arithmetics)
    energy = [[[[0.0] * n_m for _ in range(n_ops)] for _ in edges] for _ in CELL_TYPES]
    priced: dict[tuple[str, int, tuple[int, int], int], list[float]] = {}

    def energy_of(block_layers: Sequence[Layer], arith: Any) -> float:
        if not block_layers:
            return 0.0
        return price(block_layers, arith, context, "override").total("energy_pj")

    def op_costs(op: str, c: int, hw: tuple[int, int], stride: int, prefix: str
                 ) -> list[float]:
        key = (op, c, hw, stride)
        if key not in priced:
            block = op_block(op, prefix, c, hw, stride, batch=batch)
            priced[key] = [energy_of(block.layers, a) for a in arithmetics]
        return priced[key]

    for cell in plan.cells:
        for e, (_node, j) in enumerate(edges):
            for o, op in enumerate(PRIMITIVES):
                costs = op_costs(op, cell.c, cell.edge_input_hw(j), cell.edge_stride(j),
                                 f"{cell.name}.edge{e}.{op}")
                row = energy[int(cell.reduction)][e][o]
                for m in range(n_m):
                    row[m] += costs[m]
    fixed_pj = energy_of(fixed_layers(plan, n_nodes, batch=batch), arithmetics[0])
    reference = fixed_pj + sum(sum(op_row[0] for op_row in edge_rows) / n_ops
                               for type_rows in energy for edge_rows in type_rows)
    config = {"layers": layers, "channels": channels, "input_size": input_size,
              "n_nodes": n_nodes, "batch": batch, "classes": classes,
              "stem_multiplier": plan.stem_multiplier, "in_channels": plan.in_channels}
    return OpEnergyTable(arch=context.arch.name, multipliers=tuple(multipliers),
                         ops=tuple(PRIMITIVES), edges=edges, config=config,
                         objective=context.objective, energy_pj=energy, fixed_pj=fixed_pj,
                         reference_pj=reference)


def fixed_layers(plan: NetworkPlan, n_nodes: int, *, batch: int = 1) -> list[Layer]:
    """The layers of the search network that no architecture weight controls: the stem,
    every cell's preprocessing, one two-input add per intermediate node (the sum a derived
    cell performs), the global average pooling and the classifier."""
    layers = list(plan.stem_block(batch=batch).layers)
    for cell in plan.cells:
        for block in cell.preprocess(batch=batch):
            layers += block.layers
        layers += [cell.node_add(k + 2, batch=batch) for k in range(n_nodes)]
    return [*layers, plan.gap_layer(batch=batch), plan.classifier_layer(batch=batch)]


def search_layers(plan: NetworkPlan, n_nodes: int, *, batch: int = 1) -> list[Layer]:
    """Every layer of the search supernet: :func:`fixed_layers` plus every primitive on every
    edge (what :class:`~nas.search_cnn.SearchCNN` computes, minus the mixing sums)."""
    layers = fixed_layers(plan, n_nodes, batch=batch)
    for cell in plan.cells:
        for e, (_node, j) in enumerate(search_edges(n_nodes)):
            for op in PRIMITIVES:
                layers += op_block(op, f"{cell.name}.edge{e}.{op}", cell.c,
                                   cell.edge_input_hw(j), cell.edge_stride(j),
                                   batch=batch).layers
    return layers
