"""Emulation backends: one contract (:class:`.contract.EmulationBackend`), several
implementations.

``get(name)`` returns the backend module, checked against the contract the first time it is
loaded.  ``auto`` picks ``triton`` for CUDA tensors and ``cpu`` otherwise (``reference``, with
a warning, where the ``cpu`` kernel cannot be built).
:func:`block_conv2d_lut` runs the candidate-multiplier form (batch in blocks, one table per
block) on any backend through its ``conv2d_block_lut``.  A backend's fused whole-layer path,
where it has one, is what its ``fused_conv2d`` returns.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import torch

from core.errors import HwcostError

from .contract import EmulationBackend, FusedConv, NonFiniteInput, check_backend

BACKENDS = ("reference", "cpu", "triton")
#: how much slower the reference backend ran a search step than the native kernel
#: (benchmarks/bench_search.py --backend, README "Benchmarks")
REFERENCE_SLOWDOWN = "about 3.7x"
_LOADED: dict[str, EmulationBackend] = {}

__all__ = ["BACKENDS", "EmulationBackend", "FusedConv", "NonFiniteInput", "block_conv2d_lut", "get"]


def get(name: str, device_type: str = "cpu") -> EmulationBackend:
    """The backend ``name`` (``auto``: by device type), checked against the contract."""
    if name == "auto":
        name = "triton" if device_type == "cuda" else _cpu_or_fallback()
    hit = _LOADED.get(name)
    if hit is not None:
        return hit
    if name not in BACKENDS:
        raise HwcostError(f"unknown emulation backend {name!r}; expected one of "
                          f"{', '.join(('auto', *BACKENDS))}")
    module = importlib.import_module(f"{__name__}.{name}")
    check_backend(name, module)
    _LOADED[name] = module
    return module


def _cpu_or_fallback() -> str:
    """``cpu`` when its native kernel builds (or is cached) here, else ``reference``, with a
    one-line warning, once: ``auto`` must run everywhere, if slowly, where an explicit
    ``cpu`` fails with the build's error."""
    from . import cpu

    if cpu.is_available():
        return "cpu"
    if "reference" not in _LOADED:
        reason = str(cpu._build_error) if cpu._build_error is not None else "unknown"
        print(f"warning: {reason.split(';')[0]}; the 'auto' backend falls back to the "
              f"portable 'reference' one, {REFERENCE_SLOWDOWN} slower (install g++ and ninja "
              "for the native kernel)", file=sys.stderr, flush=True)
    return "reference"


def block_conv2d_lut(backend: EmulationBackend, x: torch.Tensor, w: torch.Tensor,
                     luts: Sequence[torch.Tensor], stride=(1, 1), dilation=(1, 1),
                     groups: int = 1) -> torch.Tensor:
    """``conv2d_lut`` with the batch read as ``len(luts)`` equal blocks, block ``t`` looked
    up in ``luts[t]``: the candidate multipliers of a search edge, each applied to its own
    copy of the edge's activations, with one weight tensor."""
    t = len(luts)
    if t == 0 or x.shape[0] % t:
        raise HwcostError(f"a batch of {x.shape[0]} cannot be split into {t} equal blocks, "
                          "one per candidate multiplier")
    return backend.conv2d_block_lut(x, w, luts, stride, dilation, groups)
