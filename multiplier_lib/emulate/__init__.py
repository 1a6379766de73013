"""Bit-exact emulation of approximate multipliers in PyTorch: quantizers, kernels, layers."""

from .convert import approx_layers, approximate, calibrate, set_backend, set_multiplier
from .functional import gradient_tables
from .modules import ApproxConv2d, ApproxLinear
from .quant import Domain, FakeQuantize, Observer, qparams

__all__ = [
    "ApproxConv2d", "ApproxLinear", "Domain", "FakeQuantize", "Observer", "approx_layers",
    "approximate", "calibrate", "gradient_tables", "qparams", "set_backend", "set_multiplier",
]
