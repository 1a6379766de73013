"""A genotype expanded into the DARTS evaluation network, as a graph of hardware layers.

The cost model needs every layer a genotype implies, with exact shapes, so this module
expands the DARTS CIFAR evaluation network (auxiliary head excluded: it is dropped at
inference) into hardware layers.  The macro layout (stem, which cells reduce, channels,
sizes, each cell's preprocessing) is the :class:`~darts.macro.NetworkPlan` that
:class:`~nas.augment_cnn.AugmentCNN` is built from too; this module adds the genotype's ops
(:func:`~darts.op_specs.op_block`, stride 2 on edges reading the cell inputs of a reduction
cell), one two-input add per node and the concatenation of the ``concat`` nodes.

Graph nodes (ids such as ``stem``, ``cell4.normal.pre0``, ``cell4.normal.edge5``,
``cell4.normal.node3``, ``cell4.normal.out``, ``gap``, ``classifier``) carry ``op``,
``layers`` (a list of :class:`~hwmodel.workload.Layer`), ``weight_params``, ``bn_params``,
``shape`` (the output tensor, ``(N, C, H, W)``), ``cell``, ``cell_type``, ``edge`` and
``order`` (construction order, a topological order); graph edges carry the ``shape`` of the
tensor they move.  An identity ``skip_connect`` is a node with no layers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import networkx as nx

from core.errors import HwcostError
from darts.genotype import Genotype, validate
from darts.macro import NetworkPlan, plan_network
from darts.op_specs import Block, op_block
from hwmodel.workload import Layer


@dataclass(frozen=True)
class NetworkConfig:
    """Hyper-parameters of the evaluation network (DARTS CIFAR-10 defaults)."""

    layers: int = 20
    channels: int = 36
    input_size: int = 32
    classes: int = 10
    in_channels: int = 3
    stem_multiplier: int = 3
    batch: int = 1

    def __post_init__(self) -> None:
        for name in ("layers", "channels", "input_size", "classes", "in_channels",
                     "stem_multiplier", "batch"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise HwcostError(f"network {name} must be a positive integer, not {value!r}")

    @classmethod
    def from_genotype(cls, genotype: Genotype, **overrides: int | None) -> NetworkConfig:
        """Defaults, then the genotype's ``network`` values, then non-None ``overrides``.

        This is the precedence the CLI wants: an option the user typed beats the file.
        """
        values = dict(genotype.network)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)

    def plan(self, genotype: Genotype) -> NetworkPlan:
        """The macro layout of ``genotype``'s evaluation network at this configuration."""
        return plan_network(channels=self.channels, layers=self.layers,
                            input_size=self.input_size, in_channels=self.in_channels,
                            stem_multiplier=self.stem_multiplier, classes=self.classes,
                            concat=(len(genotype.normal_concat), len(genotype.reduce_concat)))


class _Builder:
    """Adds nodes in construction order, which is also a topological order."""

    def __init__(self, genotype: Genotype, config: NetworkConfig):
        self.graph = nx.DiGraph(genotype=genotype, config=config)
        self.batch = config.batch

    def add(self, node: str, op: str, shape: tuple[int, ...], inputs: list[str],
            block: Block | None = None, layers: tuple[Layer, ...] = (), **attrs: object) -> str:
        if block is not None:
            layers = block.layers
        weight = sum(layer.params + layer.extra.get("bias", 0) for layer in layers)
        self.graph.add_node(node, op=op, layers=list(layers), weight_params=weight,
                            bn_params=block.bn_params if block is not None else 0,
                            shape=shape, order=self.graph.number_of_nodes(), **attrs)
        for src in inputs:
            self.graph.add_edge(src, node, shape=self.graph.nodes[src]["shape"])
        return node

    def shape(self, node: str) -> tuple[int, ...]:
        return self.graph.nodes[node]["shape"]

    def hw(self, node: str) -> tuple[int, int]:
        shape = self.shape(node)
        return shape[2], shape[3]


def build_graph(genotype: Genotype, config: NetworkConfig | None = None) -> nx.DiGraph:
    """The evaluation network of ``genotype`` (see the module docstring for its structure).

    ``config`` defaults to :meth:`NetworkConfig.from_genotype`.  ``none`` edges (only in
    genotypes built in code) are left out, as is the add of a node left with one input.
    """
    validate(genotype, allow_none=True)
    cfg = config if config is not None else NetworkConfig.from_genotype(genotype)
    plan = cfg.plan(genotype)
    b = _Builder(genotype, cfg)
    b.graph.graph["plan"] = plan
    n, mult = cfg.batch, genotype.multiplier
    side = cfg.input_size

    b.add("input", "input", (n, cfg.in_channels, side, side), [])
    stem = plan.stem_block(batch=n, multiplier=mult)
    b.add("stem", "stem_conv_bn", (n, stem.out_channels, side, side), ["input"], stem)

    s0 = s1 = "stem"
    for cp in plan.cells:
        cell, name, c = cp.cell_type, cp.name, cp.c
        info = {"cell": cp.index, "cell_type": cell}
        pre0, pre1 = cp.preprocess(batch=n, multiplier=mult)
        states = [
            b.add(f"{name}.pre0", "FactorizedReduce" if cp.reduction_prev else "ReLUConvBN",
                  (n, c, *pre0.out_hw), [s0], pre0, **info),
            b.add(f"{name}.pre1", "ReLUConvBN", (n, c, *pre1.out_hw), [s1], pre1, **info),
        ]
        edges = genotype.edges(cell)
        multipliers = genotype.edge_multipliers(cell)
        for k in range(len(edges) // 2):
            inputs = []
            for e in (2 * k, 2 * k + 1):
                op, index = edges[e]
                if op == "none":
                    continue
                stride = cp.edge_stride(index)
                src = states[index]
                block = op_block(op, f"{name}.edge{e}.{op}", c, b.hw(src), stride, batch=n,
                                 multiplier=multipliers[e])
                inputs.append(b.add(f"{name}.edge{e}", op, (n, c, *block.out_hw), [src], block,
                                    edge=e, stride=stride, input_node=index,
                                    multiplier=multipliers[e], **info))
            shapes = {b.shape(x) for x in inputs}
            if len(shapes) != 1:
                raise HwcostError(f"{name} node {k + 2}: inputs of different shapes "
                                  f"{sorted(shapes)}")
            shape = shapes.pop()
            adds = (cp.node_add(k + 2, batch=n),) if len(inputs) == 2 else ()
            states.append(b.add(f"{name}.node{k + 2}", "add", shape, inputs, layers=adds,
                                node_id=k + 2, **info))
        concat = genotype.concat(cell)
        out_shapes = {b.shape(states[j])[2:] for j in concat}
        if out_shapes != {cp.hw}:
            raise HwcostError(f"{name}: concatenated nodes of sizes {sorted(out_shapes)}, "
                              f"expected {cp.hw}")
        out = b.add(f"{name}.out", "concat", (n, cp.c_out, *cp.hw),
                    [states[j] for j in concat], **info)
        s0, s1 = s1, out

    c_out = plan.out_channels
    b.add("gap", "global_avg_pool", (n, c_out, 1, 1), [s1], layers=(plan.gap_layer(batch=n),))
    b.add("classifier", "linear", (n, cfg.classes), ["gap"],
          layers=(plan.classifier_layer(batch=n, multiplier=mult),))
    b.add("output", "output", (n, cfg.classes), ["classifier"])
    return b.graph


def _ordered(graph: nx.DiGraph) -> list[str]:
    return list(nx.lexicographical_topological_sort(graph, key=lambda v: graph.nodes[v]["order"]))


def list_layers(genotype: Genotype, config: NetworkConfig | None = None) -> list[Layer]:
    """Every layer of the network in topological (forward) order; names are unique."""
    graph = build_graph(genotype, config)
    return [layer for node in _ordered(graph) for layer in graph.nodes[node]["layers"]]


def parameter_count(genotype: Genotype, config: NetworkConfig | None = None, *,
                    include_bn: bool = True) -> int:
    """Trainable parameters: conv weights, BN affine (optional), classifier weight and bias."""
    graph = build_graph(genotype, config)
    return sum(d["weight_params"] + (d["bn_params"] if include_bn else 0)
               for _, d in graph.nodes(data=True))


def mac_count(genotype: Genotype, config: NetworkConfig | None = None) -> int:
    """Multiply-accumulates of one forward pass of ``config.batch`` images."""
    return sum(layer.macs for layer in list_layers(genotype, config))
