"""The DARTS supernet, optionally searching a multiplier per edge alongside the ops.

Architecture parameters are kept apart from the network weights (:meth:`SearchCNN.alphas`
vs :meth:`SearchCNN.weights`) because DARTS trains them with different optimizers on
different data splits:

* ``alpha_normal`` / ``alpha_reduce``: one row per edge (:func:`~nas.search_cells.edge_index`
  order), one column per op of :data:`~darts.genotype.PRIMITIVES`;
* with ``multipliers``: ``beta_normal`` / ``beta_reduce``, one row per edge and one column
  per candidate multiplier, mixing each multiplying op's per-candidate outputs with
  ``softmax(beta)`` (``multiplier_sampling='per-conv'``: each conv's per-candidate
  products; ``'gumbel'``: a one-hot sample of them instead).

The candidate multipliers share weights, as ApproxDARTS's single weight set and the
shared-weight mixed-precision DNAS supernets (e.g. EdMIPS) do: each multiplying op on an
edge is built once, from one candidate conv factory (:func:`~nas.ops.candidate_conv`), and
evaluates all ``T`` candidates in one pass over its input repeated ``T`` times along the
batch, one kernel call per conv with the weights quantized once.  So the supernet's
parameter count does not depend on ``T`` (only the ``(edges, T)`` betas do), and its BNs
keep per-candidate statistics (:class:`~nas.ops.BlockBatchNorm2d`) so that no candidate's
output depends on another's; see :mod:`nas.search_cells`.  The activations, and the time of
the multiplying ops, still grow with ``T``; with ``multiplier_sampling='per-conv'`` only the
look-ups do (each conv mixes its candidates' products, :func:`~nas.ops.per_conv_mixing`), and
with ``'gumbel'`` nothing does (one sampled candidate per edge).

The stem, the cell preprocessing and the classifier are not searched: they use ``conv``
(and an ``nn.Linear``), whatever the multipliers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import HwcostError
from darts.genotype import PRIMITIVES, Genotype
from darts.macro import plan_network
from darts.op_specs import OP_SPECS
from nas.ops import ConvFactory, approx_conv, n_candidates, per_conv_mixing, plain_conv
from nas.search_cells import SearchCell, edge_index, n_edges
from nas.settings import MULTIPLIER_SAMPLING

_ARCH_NAMES = ("alpha_normal", "alpha_reduce", "beta_normal", "beta_reduce")
_NONE = PRIMITIVES.index("none")


class SearchCNN(nn.Module):
    """DARTS's CIFAR search network: stem, ``n_layers`` search cells, GAP, classifier.

    The macro layout (reduction cells at ``n_layers // 3`` and ``2 * n_layers // 3``, channel
    doubling, preprocessing) is :func:`darts.macro.plan_network`'s, the evaluation network's
    too, so a derived genotype drops into :class:`~nas.augment_cnn.AugmentCNN` unchanged;
    ``input_size`` only sizes the plan (and refuses sizes DARTS cannot halve).
    ``multiplier_conv`` maps the list of candidate multiplier names to *one* candidate conv
    factory (one weight tensor per conv, one block per candidate); it defaults to
    :func:`~nas.ops.approx_conv` (which, given a list, is :func:`~nas.ops.candidate_conv`)
    with its default backend, e.g. ``lambda names: approx_conv(names, backend="cpu")``.
    """

    def __init__(self, C: int = 16, n_classes: int = 10, n_layers: int = 8, n_nodes: int = 4,
                 stem_multiplier: int = 3, conv: ConvFactory = plain_conv,
                 multipliers: list[str] | None = None,
                 multiplier_conv: Callable[[list[str]], ConvFactory] | None = None,
                 input_size: int = 32, multiplier_sampling: str = "all",
                 gumbel_tau: float = 1.0):
        super().__init__()
        if multiplier_sampling not in MULTIPLIER_SAMPLING:
            raise HwcostError(f"multiplier_sampling {multiplier_sampling!r} is unknown; "
                              f"expected one of {', '.join(MULTIPLIER_SAMPLING)}")
        if not gumbel_tau > 0:
            raise HwcostError(f"gumbel_tau must be > 0, got {gumbel_tau}")
        if n_layers < 1 or n_nodes < 1:
            raise HwcostError(f"a search network needs at least one cell and one node, got "
                              f"n_layers={n_layers}, n_nodes={n_nodes}")
        if multipliers is not None and not multipliers:
            raise HwcostError("multipliers must name at least one multiplier")
        self.C = C
        self.n_classes = n_classes
        self.n_layers = n_layers
        self.n_nodes = n_nodes
        self.multipliers = list(multipliers) if multipliers is not None else None
        #: how a step mixes the candidate multipliers of an edge: 'all' runs every candidate
        #: and mixes them with softmax(beta); 'gumbel' runs one, drawn per edge and step;
        #: 'per-conv' runs the ops once, each conv mixing every candidate's products with
        #: softmax(beta) (:func:`nas.ops.per_conv_mixing`)
        self.multiplier_sampling = multiplier_sampling
        self.gumbel_tau = gumbel_tau

        edge_conv: ConvFactory | None = None
        if self.multipliers is not None:
            make = multiplier_conv if multiplier_conv is not None else approx_conv
            edge_conv = make(list(self.multipliers))
            blocks = n_candidates(edge_conv)
            if blocks != len(self.multipliers) and len(self.multipliers) > 1:
                raise HwcostError(f"multiplier_conv gave a conv factory for {blocks} "
                                  f"candidate(s), not the {len(self.multipliers)} multipliers "
                                  f"{self.multipliers}; it must build candidate convs "
                                  "(nas.ops.candidate_conv)")
            if multiplier_sampling == "per-conv":
                edge_conv = per_conv_mixing(edge_conv)

        #: the macro layout this supernet is built from (shared with the energy table)
        self.plan = plan_network(channels=C, layers=n_layers, concat=(n_nodes, n_nodes),
                                 input_size=input_size, stem_multiplier=stem_multiplier,
                                 classes=n_classes)
        c_stem = self.plan.stem_channels
        self.stem = nn.Sequential(conv(3, c_stem, 3, 1, 1, 1, 1), nn.BatchNorm2d(c_stem))
        self.reduction_cells = self.plan.reduction_cells
        self.cells = nn.ModuleList(
            SearchCell(n_nodes, cell.c_pp, cell.c_p, cell.c, cell.reduction,
                       cell.reduction_prev, conv, edge_conv)
            for cell in self.plan.cells)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.plan.out_channels, n_classes)

        rows = n_edges(n_nodes)
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(rows, len(PRIMITIVES)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(rows, len(PRIMITIVES)))
        if self.multipliers is not None:
            m = len(self.multipliers)
            self.beta_normal: nn.Parameter | None = nn.Parameter(1e-3 * torch.randn(rows, m))
            self.beta_reduce: nn.Parameter | None = nn.Parameter(1e-3 * torch.randn(rows, m))
        else:
            self.beta_normal = None
            self.beta_reduce = None

    # -- parameters ---------------------------------------------------------------------------

    def named_weights(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name, p in self.named_parameters():
            if name not in _ARCH_NAMES:
                yield name, p

    def weights(self) -> Iterator[nn.Parameter]:
        """The network weights (what the weight optimizer updates)."""
        for _, p in self.named_weights():
            yield p

    def named_alphas(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name in _ARCH_NAMES:
            p = getattr(self, name)
            if p is not None:
                yield name, p

    def alphas(self) -> Iterator[nn.Parameter]:
        """The architecture parameters: alphas, and betas when searching multipliers."""
        for _, p in self.named_alphas():
            yield p

    def set_alphas(self, normal: torch.Tensor, reduce: torch.Tensor) -> None:
        """Overwrite the op logits (e.g. hand-set in tests, or restored from a log)."""
        with torch.no_grad():
            self.alpha_normal.copy_(torch.as_tensor(normal, dtype=self.alpha_normal.dtype))
            self.alpha_reduce.copy_(torch.as_tensor(reduce, dtype=self.alpha_reduce.dtype))

    def set_betas(self, normal: torch.Tensor, reduce: torch.Tensor) -> None:
        """Overwrite the multiplier logits (only with ``multipliers``)."""
        if self.beta_normal is None or self.beta_reduce is None:
            raise HwcostError("this search network has no multipliers to set betas for")
        with torch.no_grad():
            self.beta_normal.copy_(torch.as_tensor(normal, dtype=self.beta_normal.dtype))
            self.beta_reduce.copy_(torch.as_tensor(reduce, dtype=self.beta_reduce.dtype))

    # -- forward ------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_normal = F.softmax(self.alpha_normal, dim=-1)
        w_reduce = F.softmax(self.alpha_reduce, dim=-1)
        b_normal = b_reduce = None
        sampled = False
        if self.beta_normal is not None and self.beta_reduce is not None:
            if self.multiplier_sampling == "gumbel" and len(self.multipliers) > 1:
                sampled = True
                b_normal = self._sample(self.beta_normal)
                b_reduce = self._sample(self.beta_reduce)
            else:
                b_normal = F.softmax(self.beta_normal, dim=-1)
                b_reduce = F.softmax(self.beta_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_reduce, b_reduce, sampled)
            else:
                s0, s1 = s1, cell(s0, s1, w_normal, b_normal, sampled)
        return self.classifier(self.gap(s1).flatten(1))

    def _sample(self, beta: torch.Tensor) -> torch.Tensor:
        """One candidate per edge as a one-hot row: in training a straight-through
        Gumbel-softmax draw (value one-hot, gradient that of the soft sample at
        ``gumbel_tau``), so that each candidate is picked with probability softmax(beta);
        in eval mode the argmax, deterministic."""
        if self.training:
            return F.gumbel_softmax(beta, tau=self.gumbel_tau, hard=True, dim=-1)
        return F.one_hot(beta.detach().argmax(dim=-1), beta.shape[-1]).to(beta.dtype)

    # -- derivation ---------------------------------------------------------------------------

    def _parse(self, alpha: torch.Tensor, beta: torch.Tensor | None,
               reduction: bool) -> tuple[list[tuple[str, int]], list[str | None] | None]:
        """DARTS's rule: per node, the 2 inputs whose best non-'none' weight is largest.

        Edges are listed strongest first (as DARTS prints them); ties go to the lower input.
        """
        weights = F.softmax(alpha.detach(), dim=-1)
        choice = beta.detach().argmax(dim=-1) if beta is not None else None
        edges: list[tuple[str, int]] = []
        mults: list[str | None] = []
        for k in range(self.n_nodes):
            rows = []
            for j in range(k + 2):
                w = weights[edge_index(k, j)].clone()
                w[_NONE] = -1.0
                best = int(w.argmax())
                rows.append((-float(w[best]), j, best))
            for _, j, best in sorted(rows)[:2]:
                op = PRIMITIVES[best]
                edges.append((op, j))
                if choice is not None and self.multipliers is not None:
                    stride = 2 if reduction and j < 2 else 1
                    mults.append(self.multipliers[int(choice[edge_index(k, j)])]
                                 if OP_SPECS[op].multiplies(stride) else None)
        return edges, (mults if choice is not None else None)

    def genotype(self) -> Genotype:
        """The derived architecture; with multipliers, each kept conv edge's argmax beta.

        Kept edges whose op does not multiply (pools, identity skip) get ``None``: no
        multiplier applies to them.
        """
        normal, normal_mults = self._parse(self.alpha_normal, self.beta_normal, False)
        reduce, reduce_mults = self._parse(self.alpha_reduce, self.beta_reduce, True)
        concat = list(range(2, 2 + self.n_nodes))
        return Genotype(normal=normal, normal_concat=concat, reduce=reduce,
                        reduce_concat=list(concat), normal_multipliers=normal_mults,
                        reduce_multipliers=reduce_mults)
