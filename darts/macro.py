"""The DARTS macro network as one plan: cells, channels, sizes and which inputs need reducing.

Four things are built from the same macro layout: the search supernet
(:class:`~nas.search_cnn.SearchCNN`), the evaluation network
(:class:`~nas.augment_cnn.AugmentCNN`), the hardware layer graph of a genotype
(:mod:`darts.cellgraph`) and the per-op energy table of the search
(:mod:`nas.energy_penalty`).  If each re-derived where the reduction cells sit, when channels
double, how the preprocessing shifts channels from cell to cell and when input 0 needs a
FactorizedReduce, a change to one would silently price a network other than the one trained.
So the layout is computed once, here, and the four only read it
(``tests/nas/test_macro.py`` builds all four from one plan and checks that they agree).

The layout is DARTS's CIFAR network (``model_search`` and ``model`` of the DARTS code):

* a stem: 3x3 conv ``in_channels -> stem_multiplier * channels``, BN;
* ``layers`` cells; cells ``layers // 3`` and ``2 * layers // 3`` are reduction cells, which
  double the node channels ``c`` and halve the size (stride 2 on the edges that read the two
  cell inputs);
* each cell reads the outputs of the two cells before it (``s0``, ``s1``; both the stem for
  the first cell) and preprocesses them to ``c`` channels: ``s1`` with ReLU-1x1 conv-BN,
  ``s0`` the same unless the previous cell was a reduction cell, in which case ``s0`` is twice
  the size of ``s1`` and a FactorizedReduce halves it;
* a cell outputs the concatenation of its ``concat`` nodes (``len(concat) * c`` channels):
  every intermediate node in the search network, the genotype's ``concat`` in the evaluation
  network, which is why the plan takes the number of concatenated nodes per cell type;
* global average pooling and a linear classifier.

Sizes follow 'same' padding, ``ceil(side / stride)``; a plan whose FactorizedReduce would
meet an odd size is refused (DARTS's own network fails there at the first forward pass).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import HwcostError
from core.limits import Limit
from darts.op_specs import (
    FACTORIZED_REDUCE,
    RELU_CONV_BN,
    Block,
    OpSpec,
    add_layer,
    out_side,
    stages_block,
)
from hwmodel.workload import Layer

CELL_TYPES = ("normal", "reduce")

# Everything built from a plan (networks, layer graphs, estimates) grows with these; a file
# asking for 10**9 cells must be refused, not expanded (DARTS: 20 cells, 36 channels, 32x32).
MAX_CELLS = Limit("HWCOST_MAX_CELLS", 1_000, "cells in a network")
MAX_CELL_NODES = Limit("HWCOST_MAX_CELL_NODES", 64, "intermediate nodes in a cell")
MAX_CHANNELS = Limit("HWCOST_MAX_CHANNELS", 65_536, "initial channels of a network")
MAX_INPUT_SIZE = Limit("HWCOST_MAX_INPUT_SIZE", 8_192, "input image side")
MAX_CLASSES = Limit("HWCOST_MAX_CLASSES", 1_000_000, "classifier outputs")

#: the network hyper-parameter each limit bounds
NETWORK_LIMITS = {"layers": MAX_CELLS, "channels": MAX_CHANNELS, "input_size": MAX_INPUT_SIZE,
                  "classes": MAX_CLASSES}


def preprocess_specs(reduction_prev: bool) -> tuple[tuple[OpSpec, int], tuple[OpSpec, int]]:
    """The op spec and stride that preprocess a cell's input 0 and input 1 to ``c`` channels:
    ReLU-1x1 conv-BN, except input 0 after a reduction cell (twice the size): a stride-2
    FactorizedReduce.  The evaluation and search networks build their torch modules from
    these, the layer graph its hardware layers."""
    pre0 = (FACTORIZED_REDUCE, 2) if reduction_prev else (RELU_CONV_BN, 1)
    return pre0, (RELU_CONV_BN, 1)


@dataclass(frozen=True)
class CellPlan:
    """One cell of the macro network: where it sits and the shapes it reads and writes.

    ``c_pp``/``hw_pp`` describe input 0 (the output of the cell two back), ``c_p``/``hw_p``
    input 1 (the previous cell's output); ``c`` is the channel count of every intermediate
    node and ``hw`` their size; ``c_out`` is the cell's output channels.
    """

    index: int
    reduction: bool
    reduction_prev: bool
    c_pp: int
    c_p: int
    c: int
    c_out: int
    hw_pp: tuple[int, int]
    hw_p: tuple[int, int]
    hw: tuple[int, int]

    @property
    def cell_type(self) -> str:
        return CELL_TYPES[self.reduction]

    @property
    def name(self) -> str:
        """The prefix of the cell's layer and node names, e.g. ``cell6.reduce``."""
        return f"cell{self.index}.{self.cell_type}"

    def edge_stride(self, input_node: int) -> int:
        """Stride of an edge reading state ``input_node``: 2 on a reduction cell's inputs."""
        return 2 if self.reduction and input_node < 2 else 1

    def edge_input_hw(self, input_node: int) -> tuple[int, int]:
        """Size of state ``input_node`` (both preprocessed inputs have input 1's size)."""
        return self.hw_p if input_node < 2 else self.hw

    def preprocess(self, *, batch: int = 1,
                   multiplier: str | None = None) -> tuple[Block, Block]:
        """The hardware blocks of the two input preprocessing ops (input 0, input 1)."""
        (spec0, stride0), (spec1, stride1) = preprocess_specs(self.reduction_prev)
        pre0 = stages_block(spec0.stages, f"{self.name}.pre0", self.c_pp, self.c, self.hw_pp,
                            stride0, batch=batch, multiplier=multiplier)
        pre1 = stages_block(spec1.stages, f"{self.name}.pre1", self.c_p, self.c, self.hw_p,
                            stride1, batch=batch, multiplier=multiplier)
        return pre0, pre1

    def node_add(self, node_id: int, *, batch: int = 1) -> Layer:
        """The two-input sum of intermediate node ``node_id`` (2, 3, ...)."""
        return add_layer(f"{self.name}.node{node_id}.add", self.c, self.hw, batch=batch)


@dataclass(frozen=True)
class NetworkPlan:
    """The whole macro network; build one with :func:`plan_network`."""

    channels: int
    layers: int
    input_size: int
    in_channels: int
    stem_multiplier: int
    classes: int
    cells: tuple[CellPlan, ...]

    @property
    def stem_channels(self) -> int:
        return self.stem_multiplier * self.channels

    @property
    def reduction_cells(self) -> tuple[int, ...]:
        return tuple(cell.index for cell in self.cells if cell.reduction)

    @property
    def aux_cell(self) -> int:
        """The cell after which DARTS's auxiliary head reads (the second reduction cell)."""
        return 2 * self.layers // 3

    @property
    def out_channels(self) -> int:
        """Channels of the last cell's output: the classifier's input features."""
        return self.cells[-1].c_out

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.cells[-1].hw

    def stem_block(self, *, batch: int = 1, multiplier: str | None = None) -> Block:
        side = self.input_size
        conv = Layer("stem.conv", "conv", N=batch, C=self.in_channels, M=self.stem_channels,
                     P=side, Q=side, R=3, S=3, multiplier=multiplier)
        return Block((conv,), 2 * self.stem_channels, self.stem_channels, (side, side))

    def gap_layer(self, *, batch: int = 1) -> Layer:
        h, w = self.out_hw
        c = self.out_channels
        return Layer("gap.pool", "pool", N=batch, C=1, M=1, P=1, Q=1, R=h, S=w, groups=c,
                     extra={"op": "avg", "channels": c, "padding": 0, "global": True})

    def classifier_layer(self, *, batch: int = 1, multiplier: str | None = None) -> Layer:
        return Layer("classifier.fc", "fc", N=batch, C=self.out_channels, M=self.classes,
                     multiplier=multiplier, extra={"bias": self.classes})


def _positive_int(name: str, value: object) -> int:
    if type(value) is not int or value < 1:
        raise HwcostError(f"network {name} must be a positive integer, not {value!r}")
    return value


def plan_network(*, channels: int, layers: int, concat: tuple[int, int],
                 input_size: int = 32, in_channels: int = 3, stem_multiplier: int = 3,
                 classes: int = 10) -> NetworkPlan:
    """The DARTS macro layout (module docstring); ``concat`` is the number of concatenated
    nodes of a (normal, reduction) cell: ``(n_nodes, n_nodes)`` in the search network."""
    for name, value in (("channels", channels), ("layers", layers),
                        ("input_size", input_size), ("in_channels", in_channels),
                        ("stem_multiplier", stem_multiplier), ("classes", classes),
                        ("normal concat", concat[0]), ("reduce concat", concat[1])):
        _positive_int(name, value)
    for name, value in (("layers", layers), ("channels", channels),
                        ("input_size", input_size), ("classes", classes)):
        NETWORK_LIMITS[name].check(value, context=f"network {name}")
    for value in concat:
        MAX_CELL_NODES.check(value, context="concatenated nodes")
    reductions = {layers // 3, 2 * layers // 3}
    c_stem = stem_multiplier * channels
    side = (input_size, input_size)
    c_pp, c_p, c = c_stem, c_stem, channels
    hw_pp, hw_p = side, side
    reduction_prev = False
    cells = []
    for i in range(layers):
        reduction = i in reductions
        stride = 2 if reduction else 1
        if reduction:
            c *= 2
        name = f"cell{i}.{CELL_TYPES[reduction]}"
        if reduction_prev and (hw_pp[0] % 2 or hw_pp[0] // 2 != hw_p[0]):
            raise HwcostError(f"{name}.pre0: FactorizedReduce needs an even input size, got "
                              f"{hw_pp[0]}x{hw_pp[1]} (DARTS's network fails there too; use "
                              "an input size divisible by 4)")
        hw = (out_side(hw_p[0], stride), out_side(hw_p[1], stride))
        c_out = concat[reduction] * c
        cells.append(CellPlan(index=i, reduction=reduction, reduction_prev=reduction_prev,
                              c_pp=c_pp, c_p=c_p, c=c, c_out=c_out, hw_pp=hw_pp, hw_p=hw_p,
                              hw=hw))
        c_pp, c_p = c_p, c_out
        hw_pp, hw_p = hw_p, hw
        reduction_prev = reduction
    return NetworkPlan(channels=channels, layers=layers, input_size=input_size,
                       in_channels=in_channels, stem_multiplier=stem_multiplier,
                       classes=classes, cells=tuple(cells))
