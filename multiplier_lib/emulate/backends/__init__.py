"""Emulation backends: one contract (see :mod:`.reference`), several implementations.

``get(name)`` returns a module-like object with ``conv2d_lut`` and ``linear_lut``.  ``auto``
picks ``triton`` for CUDA tensors and ``cpu`` otherwise.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ...errors import HwcostError

BACKENDS = ("reference", "cpu", "triton", "lowrank")


def get(name: str, device_type: str = "cpu") -> ModuleType:
    if name == "auto":
        name = "triton" if device_type == "cuda" else "cpu"
    if name not in BACKENDS:
        raise HwcostError(f"unknown emulation backend {name!r}; expected one of "
                          f"{', '.join(('auto', *BACKENDS))}")
    return importlib.import_module(f"{__name__}.{name}")
