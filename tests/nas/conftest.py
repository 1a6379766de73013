"""Shared helpers of the network tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest


@dataclass
class ForwardCounts:
    """What one forward pass computed: conv and linear MACs, each cell's output shape."""

    conv: int = 0
    fc: int = 0
    cell_shapes: list[tuple[int, ...]] = field(default_factory=list)


def _count_forward(model, x) -> ForwardCounts:
    """MACs counted with hooks on the torch modules themselves, independently of the
    hardware layer lists they are compared with."""
    import torch
    from torch import nn

    counts = ForwardCounts()

    def conv_hook(mod, _inputs, out):
        counts.conv += out.numel() * mod.weight[0].numel()  # per output: C/groups*R*S

    def fc_hook(mod, _inputs, out):
        counts.fc += out.numel() * mod.in_features

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(fc_hook))
    for cell in getattr(model, "cells", ()):
        handles.append(cell.register_forward_hook(
            lambda _m, _i, out: counts.cell_shapes.append(tuple(out.shape))))
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return counts


@pytest.fixture
def count_forward() -> Callable[..., ForwardCounts]:
    return _count_forward
