"""A differentiable energy term for DARTS search, priced by the hardware model.

Why a table: mapping layers onto an accelerator is far too slow to do inside a training step,
but the energy of an op on an edge does not depend on the architecture weights.  So every
(cell type, edge, op, multiplier) combination of the *search* network is priced once, with
:class:`hwmodel.estimate.NetworkEstimator`, into ``E[type, edge, op, multiplier]`` (pJ), and
the search loss uses the expectation of ``E`` under the softmaxed weights, which is a cheap,
differentiable tensor expression:

    expected = fixed_pj + sum_type sum_edge sum_op softmax(alpha)[edge, op]
                          * sum_mult softmax(beta)[edge, mult] * E[type, edge, op, mult]

The search network's macro layout (stem, reduction cells, channels, sizes, preprocessing) is
the :class:`~darts.macro.NetworkPlan` the supernet is built from, with every intermediate node
concatenated; intermediate node ``i`` reads every earlier state ``j < i + 2`` (edges numbered
in that order, 14 for 4 nodes), and edges reading the cell inputs (``j < 2``) of a reduction
cell have stride 2.  All cells of one type share their alphas, so ``E`` sums an edge's energy
over every cell of that type.

``fixed_pj`` is what no architecture weight controls, priced with the *first* multiplier (the
baseline; the search does not choose multipliers for these layers): the stem, every cell's
preprocessing, one two-input add per intermediate node (the sum a derived cell performs), the
global average pooling and the classifier.  With this choice ``fixed_pj`` plus the table
entries of a genotype's chosen edges equals the hardware estimate of that genotype's network
at the search configuration (``tests/nas/test_energy_penalty.py`` checks it).  The weighted
sums of the search network's mixed ops are *not* priced: they exist only during search.

``none`` costs 0 and ``skip_connect`` at stride 1 is an identity (0); at stride 2 it is a
FactorizedReduce.  ``reference_pj`` is the expected energy under uniform alphas with the first
multiplier; dividing by it keeps the penalty near 1 whatever the network size or accelerator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.atomic import atomic_write_text
from core.errors import HwcostError
from darts.genotype import PRIMITIVES
from darts.macro import NetworkPlan, plan_network
from darts.op_specs import op_block
from hwmodel.arch import Architecture
from hwmodel.estimate import NetworkEstimator
from hwmodel.workload import Layer
from multiplier_lib.multiplier import Multiplier

FORMAT = "hwcost-op-energy-table"
FORMAT_VERSION = 1
CELL_TYPES = ("normal", "reduce")
PENALTY_KINDS = ("additive", "fbnet", "target")


def search_edges(n_nodes: int = 4) -> tuple[tuple[int, int], ...]:
    """``(node, input)`` of every edge in DARTS order (node ``i`` reads states ``j < i + 2``).

    ``node`` is the intermediate node's state id (``i + 2``), as in genotypes.
    """
    return tuple((i + 2, j) for i in range(n_nodes) for j in range(i + 2))


@dataclass
class OpEnergyTable:
    """``E[cell_type, edge, op, multiplier]`` in pJ plus the fixed and reference energies.

    ``energy_pj`` is a nested list ``[2][n_edges][n_ops][n_multipliers]`` so the table is
    plain data (JSON round trip without loss); :meth:`to_tensor` gives the torch view.
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
    _tensor: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(CELL_TYPES), len(self.edges), len(self.ops), len(self.multipliers))

    def to_tensor(self) -> torch.Tensor:
        """The table as a float64 tensor of :attr:`shape` (built once, then reused)."""
        if self._tensor is None:
            self._tensor = torch.tensor(self.energy_pj, dtype=torch.float64)
        return self._tensor

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
        except (OSError, ValueError) as exc:
            raise HwcostError(f"{path}: cannot read energy table: {exc}") from exc
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
            got = tuple(torch.tensor(table.energy_pj, dtype=torch.float64).shape)
        except (KeyError, TypeError, ValueError) as exc:
            raise HwcostError(f"{path}: malformed energy table: {exc}") from exc
        if got != table.shape:
            raise HwcostError(f"{path}: energy_pj has shape {got}, expected {table.shape}")
        return table


def _total(estimator: NetworkEstimator, layers: Sequence[Layer],
           mult: Multiplier | str) -> float:
    """Energy of ``layers`` with ``mult``: a multiplier, or a float format (priced by a float
    variant of the estimator's design, built once per format)."""
    if not layers:
        return 0.0
    if isinstance(mult, str):
        import dataclasses

        from hwmodel.float_formats import float_variant

        cache = estimator.__dict__.setdefault("_float_estimators", {})
        if mult not in cache:
            cache[mult] = NetworkEstimator(float_variant(estimator.arch, mult),
                                           estimator.objective, None, effort="fast")
        plain = [dataclasses.replace(layer, multiplier=None) for layer in layers]
        return cache[mult].estimate(plain, None).total("energy_pj")
    return estimator.estimate(list(layers), mult).total("energy_pj")


def build_energy_table(arch: Architecture | str | Path, multipliers: list[str],
                       layers: int = 8, channels: int = 16, input_size: int = 32,
                       n_nodes: int = 4, objective: str = "energy", batch: int = 1, *,
                       classes: int = 10, ert: str | Path | None = None,
                       resolve_multiplier: Callable[[str], Multiplier] | None = None,
                       estimator: NetworkEstimator | None = None) -> OpEnergyTable:
    """Price every (cell type, edge, op, multiplier) of the search network once.

    One :class:`NetworkEstimator` is reused (it caches mappings by layer shape), and ops of
    identical shape in different cells are priced once, so the table takes seconds.
    """
    if not multipliers:
        raise HwcostError("build_energy_table needs at least one multiplier")
    if type(n_nodes) is not int or n_nodes < 1:
        raise HwcostError(f"n_nodes must be a positive integer, not {n_nodes!r}")
    from hwmodel.float_formats import is_float_format

    if ert is not None and any(is_float_format(m) for m in multipliers):
        raise HwcostError("a float baseline cannot be priced with an ERT of the integer "
                          "design; leave out the ERT or the float format")
    if resolve_multiplier is None:
        from multiplier_lib.library import resolve as resolve_multiplier
    if not isinstance(arch, Architecture):
        from hwmodel.spec import load_arch
        arch = load_arch(arch)
    plan = plan_network(channels=channels, layers=layers, input_size=input_size,
                        classes=classes, concat=(n_nodes, n_nodes))
    # relative op costs over hundreds of shapes: the constructive mapper suffices here
    est = estimator or NetworkEstimator(arch, objective, ert, resolve_multiplier,
                                        effort="fast")
    # a float baseline (fp32, fp16, bf16) is priced on the design built for its words
    mults = [name.lower() if is_float_format(name) else resolve_multiplier(name)
             for name in multipliers]

    edges = search_edges(n_nodes)
    n_ops, n_m = len(PRIMITIVES), len(mults)
    energy = [[[[0.0] * n_m for _ in range(n_ops)] for _ in edges] for _ in CELL_TYPES]
    priced: dict[tuple[str, int, tuple[int, int], int], list[float]] = {}

    def price(op: str, c: int, hw: tuple[int, int], stride: int, prefix: str) -> list[float]:
        key = (op, c, hw, stride)
        if key not in priced:
            block = op_block(op, prefix, c, hw, stride, batch=batch)
            priced[key] = [_total(est, block.layers, m) for m in mults]
        return priced[key]

    for cell in plan.cells:
        for e, (_node, j) in enumerate(edges):
            for o, op in enumerate(PRIMITIVES):
                costs = price(op, cell.c, cell.edge_input_hw(j), cell.edge_stride(j),
                              f"{cell.name}.edge{e}.{op}")
                row = energy[int(cell.reduction)][e][o]
                for m in range(n_m):
                    row[m] += costs[m]
    fixed_pj = _total(est, fixed_layers(plan, n_nodes, batch=batch), mults[0])
    reference = fixed_pj + sum(sum(op_row[0] for op_row in edge_rows) / n_ops
                               for type_rows in energy for edge_rows in type_rows)
    config = {"layers": layers, "channels": channels, "input_size": input_size,
              "n_nodes": n_nodes, "batch": batch, "classes": classes,
              "stem_multiplier": plan.stem_multiplier, "in_channels": plan.in_channels}
    return OpEnergyTable(arch=arch.name, multipliers=tuple(multipliers), ops=tuple(PRIMITIVES),
                         edges=edges, config=config, objective=objective, energy_pj=energy,
                         fixed_pj=fixed_pj, reference_pj=reference)


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


def _check_weights(name: str, w: torch.Tensor, shape: tuple[int, int]) -> None:
    if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape:
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise HwcostError(f"{name} must be a tensor of shape {shape}, got {got}")


def expected_energy(table: OpEnergyTable, alpha_normal: torch.Tensor,
                    alpha_reduce: torch.Tensor, beta_normal: torch.Tensor | None = None,
                    beta_reduce: torch.Tensor | None = None, *,
                    multiplier_index: int = 0) -> torch.Tensor:
    """Expected network energy (pJ) under softmaxed op (and multiplier) weights.

    Alphas are ``(n_edges, n_ops)`` logits; betas ``(n_edges, n_multipliers)`` logits, or
    ``None`` to fix every edge to multiplier ``multiplier_index`` (the baseline, 0, unless
    told).  Give both betas or neither: half a multiplier search has no meaning.  The result
    has the alphas' dtype and device so it adds to the loss without promotion, and is
    differentiable with respect to every weight given.
    """
    _, n_e, n_o, n_m = table.shape
    _check_weights("alpha_normal", alpha_normal, (n_e, n_o))
    _check_weights("alpha_reduce", alpha_reduce, (n_e, n_o))
    E = table.to_tensor().to(device=alpha_normal.device, dtype=alpha_normal.dtype)
    if (beta_normal is None) != (beta_reduce is None):
        raise HwcostError("give both beta_normal and beta_reduce, or neither")
    if beta_normal is None:
        if not -n_m <= multiplier_index < n_m:
            raise HwcostError(f"multiplier_index {multiplier_index} out of range for "
                              f"{n_m} multipliers {list(table.multipliers)}")
        per_op = E[..., multiplier_index]  # (2, n_e, n_o)
    else:
        _check_weights("beta_normal", beta_normal, (n_e, n_m))
        _check_weights("beta_reduce", beta_reduce, (n_e, n_m))
        betas = torch.stack([torch.softmax(beta_normal, -1), torch.softmax(beta_reduce, -1)])
        per_op = (E * betas.to(E.dtype).unsqueeze(2)).sum(-1)
    alphas = torch.stack([torch.softmax(alpha_normal, -1), torch.softmax(alpha_reduce, -1)])
    return (alphas * per_op).sum() + table.fixed_pj


def _positive(name: str, value: float | torch.Tensor) -> float:
    v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not v > 0 or math.isinf(v):
        raise HwcostError(f"{name} must be a positive finite number, got {v}")
    return v


def energy_penalty(ce_loss: torch.Tensor, expected: torch.Tensor,
                   reference: float | torch.Tensor, kind: str = "additive",
                   weight: float = 1.0, target: float | None = None,
                   beta_exp: float = 0.6) -> torch.Tensor:
    """The search loss with an energy term; ``expected`` from :func:`expected_energy`.

    * ``additive``: ``ce + weight * expected / reference``.  Dividing by ``reference`` (the
      table's uniform-alpha energy) makes ``weight`` mean the same on any network/accelerator.
    * ``fbnet``: ``ce * weight * (log(expected) / log(reference)) ** beta_exp``, FBNet's
      ``CE * a * log(LAT) ** b`` with energy for latency, the log normalised by the log of the
      reference so the factor is ``weight`` at the reference energy (independent of the pJ
      unit's scale).  Needs ``expected`` and ``reference`` above 1 pJ (positive logs).
    * ``target``: ``ce + weight * relu(expected / target - 1)``, a hinge that only penalises
      energy above ``target`` pJ, for a budget rather than a trade-off.

    ``weight`` (and ``beta_exp`` for fbnet) must be positive; ``reference`` is ignored by
    ``target``.  Bad arguments raise :class:`HwcostError` rather than silently training
    against a NaN or sign-flipped penalty.
    """
    if kind not in PENALTY_KINDS:
        raise HwcostError(f"unknown energy penalty kind {kind!r}; choose one of "
                          f"{', '.join(PENALTY_KINDS)}")
    _positive("weight", weight)
    if kind == "additive":
        return ce_loss + weight * expected / _positive("reference", reference)
    if kind == "fbnet":
        _positive("beta_exp", beta_exp)
        ref = _positive("reference", reference)
        if ref <= 1.0:
            raise HwcostError(f"fbnet penalty needs reference > 1 pJ (log > 0), got {ref}")
        if _positive("expected energy", expected) <= 1.0:
            raise HwcostError("fbnet penalty needs expected energy > 1 pJ (log > 0)")
        return ce_loss * weight * (torch.log(expected) / math.log(ref)) ** beta_exp
    if target is None:
        raise HwcostError("energy penalty kind 'target' needs a target energy (pJ)")
    t = _positive("target", target)
    return ce_loss + weight * torch.relu(expected / t - 1.0)
