"""Emulation backends: one contract (see :mod:`.reference`), several implementations.

``get(name)`` returns a module-like object with ``conv2d_lut`` and ``linear_lut``.  ``auto``
picks ``triton`` for CUDA tensors and ``cpu`` otherwise.  :func:`block_conv2d_lut` runs the
candidate-multiplier form (batch in blocks, one table per block) on any backend, natively
where the backend has ``conv2d_block_lut``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

import torch

from core.errors import HwcostError

BACKENDS = ("reference", "cpu", "triton")


def get(name: str, device_type: str = "cpu") -> ModuleType:
    if name == "auto":
        name = "triton" if device_type == "cuda" else "cpu"
    if name not in BACKENDS:
        raise HwcostError(f"unknown emulation backend {name!r}; expected one of "
                          f"{', '.join(('auto', *BACKENDS))}")
    return importlib.import_module(f"{__name__}.{name}")


def block_conv2d_lut(backend: ModuleType, x: torch.Tensor, w: torch.Tensor,
                     luts: Sequence[torch.Tensor], stride=(1, 1), dilation=(1, 1),
                     groups: int = 1) -> torch.Tensor:
    """``conv2d_lut`` with the batch read as ``len(luts)`` equal blocks, block ``t`` looked
    up in ``luts[t]``: the candidate multipliers of a search edge, each applied to its own
    copy of the edge's activations, with one weight tensor."""
    t = len(luts)
    if t == 0 or x.shape[0] % t:
        raise HwcostError(f"a batch of {x.shape[0]} cannot be split into {t} equal blocks, "
                          "one per candidate multiplier")
    native = getattr(backend, "conv2d_block_lut", None)
    if native is not None:
        return native(x, w, luts, stride, dilation, groups)
    n = x.shape[0] // t
    return torch.cat([backend.conv2d_lut(x[i * n:(i + 1) * n], w, lut, stride, dilation,
                                         groups) for i, lut in enumerate(luts)])
