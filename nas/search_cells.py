"""The DARTS supernet's building blocks: the mixed op on every edge and the search cell.

Edges are numbered node by node: intermediate node ``k`` (0-based, node id ``k + 2``) reads
every earlier node ``0 .. k + 1``, and its edges follow those of node ``k - 1``
(:func:`edge_index`).  With 4 nodes that is 2 + 3 + 4 + 5 = 14 edges, the rows of the
architecture parameters in :mod:`nas.search_cnn`.

Multiplier search with shared weights: every primitive of an edge is built *once*.  Given a
candidate conv factory (:func:`nas.ops.candidate_conv`, ``T`` candidate multipliers), an op
that multiplies (the sep/dil convs, and the FactorizedReduce of a strided skip) holds one
weight tensor per conv whatever ``T``; it runs on the edge input repeated ``T`` times along
the batch, each conv multiplying block ``t`` with candidate ``t`` in a single kernel pass
(weights quantized once), and its output, viewed ``(T, N, C, H, W)``, is mixed with the
edge's multiplier weights: ``sum_t softmax(beta)_t * y_t``.  Ops that do not multiply (none,
pools, identity) run on the plain input.  This follows ApproxDARTS (one weight set; the
multiplier only changes how its products are computed) and the mixed-precision DNAS
supernets (Wu et al. 2018; EdMIPS's shared-weight composite convolution), which search a
per-layer arithmetic choice over one shared weight tensor: the supernet's parameter count
does not grow with ``T`` (separate copies per multiplier would multiply the searched conv
weights by ``T``), each conv quantizes its weights once per step, and beta compares
candidates applying the *same* weights, as the derived network will with its chosen one.

The BN inside a multiplying op normalises each candidate block with its own statistics
(:class:`nas.ops.BlockBatchNorm2d`, per-candidate running statistics too), so block ``t`` is
what the op computes with multiplier ``t`` alone; with pooled statistics a candidate's output
would depend on the other candidates.  What the candidates do share, besides the weights, are
each layer's quantization ranges: one activation observer sees every block (the layer's one
quantizer serves all candidates), so a block equals the single-multiplier op given the same
ranges; the evaluation network, built afresh with the chosen multipliers, calibrates its own.
"""

from __future__ import annotations

import torch
from torch import nn

from core.errors import HwcostError
from darts.genotype import PRIMITIVES
from darts.macro import preprocess_specs
from darts.op_specs import OP_SPECS
from nas.ops import OPS, ConvFactory, build_op, mixes_at_conv, n_candidates, plain_conv


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

    ``conv`` builds the edge's convs; a candidate factory (``n_candidates`` ``T > 1``, see
    :func:`nas.ops.candidate_conv`) makes the multiplying ops evaluate all ``T`` candidate
    multipliers with shared weights (module docstring).  Pools are followed by a
    parameter-free BN as in DARTS's search code, so that their output scale is comparable
    with the BN-ended conv ops when the alphas are compared.
    """

    def __init__(self, c: int, stride: int, conv: ConvFactory = plain_conv):
        super().__init__()
        self.n_candidates = n_candidates(conv)
        #: the per-conv relaxation (:func:`nas.ops.per_conv_mixing`): the multiplying ops run
        #: once, on the plain input, each conv mixing its candidates' products
        self.mixes_at_conv = mixes_at_conv(conv)
        self.ops = nn.ModuleList()
        multiplying = []
        for primitive in PRIMITIVES:
            op = OPS[primitive](c, stride, False, conv)
            if "pool" in primitive:
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self.ops.append(op)
            multiplying.append(self.n_candidates > 1 and OP_SPECS[primitive].multiplies(stride))
        #: per primitive: whether it runs in candidate mode (a conv and ``T > 1``)
        self.multiplying: tuple[bool, ...] = tuple(multiplying)
        #: the layers of the multiplying ops that can run one candidate for the whole batch
        #: (approximate convs and per-candidate BNs): a plain list, not submodules
        self._candidate_layers = [m for op, mult in zip(self.ops, multiplying) if mult
                                  for m in op.modules() if hasattr(m, "select_candidate")]
        self._selected: int | None = None

    def _select(self, index: int | None) -> None:
        """Run the multiplying ops with candidate ``index`` alone (None: all, one block each)."""
        if index != self._selected:
            for layer in self._candidate_layers:
                layer.select_candidate(index)
            self._selected = index

    def candidate_outputs(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Op ``i`` on ``x`` before the multiplier mix: ``(T, N, C, H, W)`` for a
        multiplying op in candidate mode (block ``t``: multiplier ``t``), else ``(1, ...)``."""
        if not self.multiplying[i]:
            return self.ops[i](x).unsqueeze(0)
        t = self.n_candidates
        if self.mixes_at_conv:   # each candidate alone on the plain input
            outputs = []
            for index in range(t):
                self._select(index)
                outputs.append(self.ops[i](x))
            self._select(None)
            return torch.stack(outputs)
        self._select(None)
        y = self.ops[i](x.repeat(t, 1, 1, 1))
        return y.view(t, x.shape[0], *y.shape[1:])

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                mult_weights: torch.Tensor | None = None, sampled: bool = False) -> torch.Tensor:
        """``sum_i weights[i] * op_i(x)``; a multiplying op is ``sum_t mult_weights[t] y_t``.

        ``sampled``: ``mult_weights`` is a one-hot sample (a straight-through Gumbel-softmax
        draw, :meth:`nas.search_cnn.SearchCNN.forward`): the multiplying ops run once, on the
        plain input, with the sampled candidate alone, and their output is scaled by the
        sample's entry ``h_c`` (1 in value) so that the gradient reaches the betas through
        it, as GDAS (Dong & Yang, CVPR 2019) samples one op per edge.  The step then costs
        what a one-multiplier step does whatever the number of candidates.
        """
        t = self.n_candidates
        out = None
        x_rep = None
        chosen = None
        if t > 1 and any(self.multiplying):
            if mult_weights is None or mult_weights.shape != (t,):
                got = None if mult_weights is None else tuple(mult_weights.shape)
                raise HwcostError(f"an edge searching {t} multipliers needs {t} multiplier "
                                  f"weights, got {got}")
            if sampled:
                chosen = int(mult_weights.detach().argmax())
            self._select(chosen)
            if self.mixes_at_conv and chosen is None:
                return self._forward_mixed_at_conv(x, weights, mult_weights)
        for w, op, multiplying in zip(weights, self.ops, self.multiplying):
            if multiplying:
                if chosen is not None:
                    term = (w * mult_weights[chosen]) * op(x)
                    out = term if out is None else out + term
                    continue
                if x_rep is None:  # one copy per edge, shared by its multiplying ops
                    x_rep = x.repeat(t, 1, 1, 1)
                y = op(x_rep)
                y = y.view(t, x.shape[0], *y.shape[1:])
                # w * sum_t beta_t y_t as one contraction over the candidate axis
                term = torch.tensordot(w * mult_weights, y, dims=1)
            else:
                term = w * op(x)
            out = term if out is None else out + term
        return out

    def _forward_mixed_at_conv(self, x: torch.Tensor, weights: torch.Tensor,
                               mult_weights: torch.Tensor) -> torch.Tensor:
        """``sum_i weights[i] * op_i(x)`` with every conv of the multiplying ops mixing the
        edge's candidates by ``mult_weights`` (the per-conv relaxation)."""
        for layer in self._candidate_layers:
            layer.mix_candidates(mult_weights)
        try:
            out = None
            for w, op in zip(weights, self.ops):
                term = w * op(x)
                out = term if out is None else out + term
        finally:   # the weights belong to this step's graph: not kept past it
            for layer in self._candidate_layers:
                layer.mix_candidates(None)
        return out


class SearchCell(nn.Module):
    """A DARTS search cell: preprocessing, ``n_nodes`` nodes over mixed ops, concat of all."""

    def __init__(self, n_nodes: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, conv: ConvFactory = plain_conv,
                 edge_conv: ConvFactory | None = None):
        super().__init__()
        self.reduction = reduction
        self.n_nodes = n_nodes
        # input 0 is twice the size of input 1 after a reduction cell: halve it to match
        (spec0, stride0), (spec1, stride1) = preprocess_specs(reduction_prev)
        self.preproc0 = build_op(spec0, c_pp, c, stride0, False, conv)
        self.preproc1 = build_op(spec1, c_p, c, stride1, False, conv)
        edge_conv = edge_conv if edge_conv is not None else conv
        self.edges = nn.ModuleList()
        for k in range(n_nodes):
            for j in range(k + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(MixedOp(c, stride, edge_conv))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                mult_weights: torch.Tensor | None = None, sampled: bool = False) -> torch.Tensor:
        states = [self.preproc0(s0), self.preproc1(s1)]
        for k in range(self.n_nodes):
            node = None
            for j, h in enumerate(states):
                e = edge_index(k, j)
                y = self.edges[e](h, weights[e],
                                  None if mult_weights is None else mult_weights[e], sampled)
                node = y if node is None else node + y
            states.append(node)
        return torch.cat(states[2:], dim=1)
