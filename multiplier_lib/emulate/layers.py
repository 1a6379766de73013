"""``ApproxConv2d`` and ``ApproxLinear``: drop-in layers whose products go through a LUT.

The layers are split in two: :mod:`.modules` holds the ``nn.Module`` classes (multiplier,
quantizers, backend choice, float baselines) and :mod:`.functional` the autograd functions
and the arithmetic they compute.  This module keeps the names that were always imported
from here.  ``CHECK_FINITE_ON_DEVICE`` is read from :mod:`.modules`: patch it there.  Float
formats are :mod:`core.arithmetic`'s (``float_format``, ``FLOAT_FORMATS``).
"""

from __future__ import annotations

from .functional import GRAD_MODES, INT32_LIMIT, ConvSpec, gradient_tables
from .modules import CHECK_FINITE_ON_DEVICE, ApproxConv2d, ApproxLinear

__all__ = ["CHECK_FINITE_ON_DEVICE", "GRAD_MODES", "INT32_LIMIT", "ApproxConv2d",
           "ApproxLinear", "ConvSpec", "gradient_tables"]
