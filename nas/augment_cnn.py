"""The DARTS evaluation network of a genotype, with per-edge multipliers, in PyTorch.

It is the network :mod:`darts.cellgraph` describes as hardware layers (same stem, cells,
preprocessing, ops, classifier; ``tests/nas/test_models.py`` checks parameters and MACs
against it), plus what only training needs: DARTS's auxiliary head after the second
reduction cell (dropped at inference, so the cost model leaves it out) and drop-path.

Multipliers: with ``multiplier_conv`` (a multiplier name -> conv factory, e.g.
:func:`~nas.ops.approx_conv`), each edge's convs use the multiplier
:meth:`Genotype.edge_multipliers` gives it, and the stem and preprocessing convs use the
genotype's network-level ``multiplier``; whatever has no multiplier uses ``conv``.  The
classifier and the auxiliary head stay exact ``nn.Linear``/``nn.Conv2d`` (the classifier is
a few thousand of ~0.5G MACs; the auxiliary head never runs at inference).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from core.errors import HwcostError
from darts.genotype import Genotype, validate
from darts.macro import plan_network, preprocess_specs
from nas.ops import OPS, ConvFactory, DropPath, Identity, build_op, plain_conv


class AuxiliaryHead(nn.Module):
    """DARTS's CIFAR auxiliary classifier on the ``side x side`` output of reduction cell 2.

    DARTS pools 8x8 to 2x2 with a 5x5 window at stride 3; ``stride = side - 5`` gives 2x2
    for any side of at least 6 (and stride 3 at DARTS's 8).
    """

    def __init__(self, side: int, c: int, n_classes: int):
        super().__init__()
        if side < 6:
            raise HwcostError(f"the auxiliary head needs a feature map of at least 6x6 after "
                              f"the second reduction cell, got {side}x{side} (input size "
                              f"{side * 4}); use a larger input or auxiliary=False")
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=side - 5, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class AugmentCell(nn.Module):
    """One evaluation cell: preprocessing, the genotype's ops, node sums, concat."""

    def __init__(self, genotype: Genotype, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, conv: ConvFactory,
                 edge_convs: list[ConvFactory]):
        super().__init__()
        self.reduction = reduction
        cell = "reduce" if reduction else "normal"
        (spec0, stride0), (spec1, stride1) = preprocess_specs(reduction_prev)
        self.preproc0 = build_op(spec0, c_pp, c, stride0, True, conv)
        self.preproc1 = build_op(spec1, c_p, c, stride1, True, conv)
        edges = genotype.edges(cell)
        self.concat = list(genotype.concat(cell))
        self.inputs = [index for _, index in edges]
        self.ops = nn.ModuleList()
        for (op, index), edge_conv in zip(edges, edge_convs):
            stride = 2 if reduction and index < 2 else 1
            module = OPS[op](c, stride, True, edge_conv)
            if not isinstance(module, Identity):  # DARTS never drops an identity path
                module = nn.Sequential(module, DropPath())
            self.ops.append(module)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preproc0(s0), self.preproc1(s1)]
        for k in range(len(self.ops) // 2):
            a, b = 2 * k, 2 * k + 1
            states.append(self.ops[a](states[self.inputs[a]])
                          + self.ops[b](states[self.inputs[b]]))
        return torch.cat([states[j] for j in self.concat], dim=1)


class AugmentCNN(nn.Module):
    """DARTS's CIFAR evaluation network for ``genotype`` (see the module docstring).

    In training mode with ``auxiliary=True`` :meth:`forward` returns ``(logits, aux_logits)``;
    otherwise the logits alone.
    """

    def __init__(self, genotype: Genotype, C: int = 36, n_classes: int = 10,
                 n_layers: int = 20, auxiliary: bool = False, stem_multiplier: int = 3,
                 conv: ConvFactory = plain_conv, drop_path: float = 0.0,
                 input_size: int = 32,
                 multiplier_conv: Callable[[str], ConvFactory] | None = None,
                 in_channels: int = 3):
        super().__init__()
        validate(genotype, allow_none=True)
        if n_layers < 1:
            raise HwcostError(f"n_layers must be at least 1, got {n_layers}")
        self.genotype = genotype
        self.n_layers = n_layers
        self.auxiliary = auxiliary

        factories: dict[str, ConvFactory] = {}  # one factory (one resolved LUT) per name

        def conv_for(name: str | None) -> ConvFactory:
            if name is None or multiplier_conv is None:
                return conv
            if name not in factories:
                factories[name] = multiplier_conv(name)
            return factories[name]

        base = conv_for(genotype.multiplier)
        edge_convs = {cell: [conv_for(m) for m in genotype.edge_multipliers(cell)]
                      for cell in ("normal", "reduce")}

        #: the macro layout this network is built from (shared with :mod:`darts.cellgraph`)
        self.plan = plan_network(
            channels=C, layers=n_layers, input_size=input_size, in_channels=in_channels,
            stem_multiplier=stem_multiplier, classes=n_classes,
            concat=(len(genotype.normal_concat), len(genotype.reduce_concat)))
        c_stem = self.plan.stem_channels
        self.stem = nn.Sequential(base(in_channels, c_stem, 3, 1, 1, 1, 1),
                                  nn.BatchNorm2d(c_stem))
        self.reduction_cells = self.plan.reduction_cells
        self.aux_pos = self.plan.aux_cell
        self.cells = nn.ModuleList(
            AugmentCell(genotype, cell.c_pp, cell.c_p, cell.c, cell.reduction,
                        cell.reduction_prev, base, edge_convs[cell.cell_type])
            for cell in self.plan.cells)
        self.aux_head: AuxiliaryHead | None = None
        if auxiliary:
            aux = self.plan.cells[self.aux_pos]
            self.aux_head = AuxiliaryHead(aux.hw[0], aux.c_out, n_classes)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.plan.out_channels, n_classes)
        self.drop_path_prob(drop_path)

    def drop_path_prob(self, p: float) -> None:
        """Set the drop-path probability of every op (DARTS ramps it up over training)."""
        self._drop_path = p
        for module in self.modules():
            if isinstance(module, DropPath):
                module.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = s1 = self.stem(x)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_pos and self.aux_head is not None and self.training:
                aux_logits = self.aux_head(s1)
        logits = self.classifier(self.gap(s1).flatten(1))
        if aux_logits is not None:
            return logits, aux_logits
        return logits
