"""The DARTS supernet's building blocks: the mixed op on every edge and the search cell.

Edges are numbered node by node: intermediate node ``k`` (0-based, node id ``k + 2``) reads
every earlier node ``0 .. k + 1``, and its edges follow those of node ``k - 1``
(:func:`edge_index`).  With 4 nodes that is 2 + 3 + 4 + 5 = 14 edges, the rows of the
architecture parameters in :mod:`nas.search_cnn`.

Multiplier search: given several conv factories (one per candidate multiplier), an edge's
ops that multiply (the sep/dil convs, and the FactorizedReduce of a strided skip) are built
once *per multiplier*, each copy with its own weights, and mixed with the edge's multiplier
weights ``softmax(beta)``; ops that do not multiply (none, pools, identity) are built once.
Sharing one weight tensor across multipliers would be cheaper in memory, but the copies of an
op would then be trained towards different quantization errors through the same weights,
and the comparison between multipliers that beta encodes would be blurred; separate weights
keep each candidate's path honest at the cost of ``len(multipliers)`` times the conv weights.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.genotype import PRIMITIVES
from nas.ops import OPS, ConvFactory, FactorizedReduce, StdConv, has_conv, plain_conv


def edge_index(node: int, input_node: int) -> int:
    """Row of the edge from node ``input_node`` into intermediate node ``node`` (0-based).

    Order: node 0 reads inputs 0, 1 (edges 0, 1); node 1 reads 0, 1, 2 (edges 2, 3, 4);
    node 2 reads 0..3 (edges 5..8); node 3 reads 0..4 (edges 9..13).
    """
    if node < 0 or not 0 <= input_node <= node + 1:
        raise ValueError(f"intermediate node {node} reads nodes 0..{node + 1}, not "
                         f"{input_node}")
    return node * (node + 3) // 2 + input_node


def n_edges(n_nodes: int) -> int:
    """Edges of a cell with ``n_nodes`` intermediate nodes (14 for DARTS's 4)."""
    return n_nodes * (n_nodes + 3) // 2


class MixedOp(nn.Module):
    """All DARTS primitives on one edge, summed with the edge's op weights.

    ``convs`` holds one conv factory per candidate multiplier (one entry: no multiplier
    search).  See the module docstring for why multiplying ops get one copy per multiplier.
    Pools are followed by a parameter-free BN as in DARTS's search code, so that their
    output scale is comparable with the BN-ended conv ops when the alphas are compared.
    """

    def __init__(self, c: int, stride: int, convs: list[ConvFactory]):
        super().__init__()
        self.ops = nn.ModuleList()
        for primitive in PRIMITIVES:
            variants = nn.ModuleList()
            for conv in convs:
                op = OPS[primitive](c, stride, False, conv)
                if "pool" in primitive:
                    op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
                variants.append(op)
                if not has_conv(op):  # the multiplier does not reach it: one copy is enough
                    break
            self.ops.append(variants)

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                mult_weights: torch.Tensor | None = None) -> torch.Tensor:
        """``sum_i weights[i] * op_i(x)``; a multiplying op is ``sum_j mult_weights[j] op_ij``."""
        out = None
        for w, variants in zip(weights, self.ops):
            if len(variants) == 1:
                y = variants[0](x)
            else:
                assert mult_weights is not None, "multiplier weights are required"
                y = sum(b * op(x) for b, op in zip(mult_weights, variants))
            term = w * y
            out = term if out is None else out + term
        return out


class SearchCell(nn.Module):
    """A DARTS search cell: preprocessing, ``n_nodes`` nodes over mixed ops, concat of all."""

    def __init__(self, n_nodes: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, conv: ConvFactory = plain_conv,
                 edge_convs: list[ConvFactory] | None = None):
        super().__init__()
        self.reduction = reduction
        self.n_nodes = n_nodes
        # input 0 is twice the size of input 1 after a reduction cell: halve it to match
        if reduction_prev:
            self.preproc0: nn.Module = FactorizedReduce(c_pp, c, affine=False, conv=conv)
        else:
            self.preproc0 = StdConv(c_pp, c, 1, 1, 0, affine=False, conv=conv)
        self.preproc1 = StdConv(c_p, c, 1, 1, 0, affine=False, conv=conv)
        convs = edge_convs if edge_convs else [conv]
        self.edges = nn.ModuleList()
        for k in range(n_nodes):
            for j in range(k + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(MixedOp(c, stride, convs))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                mult_weights: torch.Tensor | None = None) -> torch.Tensor:
        states = [self.preproc0(s0), self.preproc1(s1)]
        for k in range(self.n_nodes):
            node = None
            for j, h in enumerate(states):
                e = edge_index(k, j)
                y = self.edges[e](h, weights[e],
                                  None if mult_weights is None else mult_weights[e])
                node = y if node is None else node + y
            states.append(node)
        return torch.cat(states[2:], dim=1)
