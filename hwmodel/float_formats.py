"""Floating-point baselines (``fp32``, ``fp16``, ``bf16``) priced like multipliers.

The field's result is a saving *against FP32*: ApproxDARTS reports arithmetic energy relative
to a float network.  A float format is not a LUT: the network runs in float and the
accelerator is the same design built for float words.  :func:`float_variant` makes that
design from an integer spec, so the mapper and the model price it the usual way:

* every storage level keeps its rows (``depth`` x ``width`` bits) and holds words of the
  format's width (``datawidth``), so it holds fewer words, moves fewer words per row access
  and the mapper re-tiles for it; a row narrower than one word is widened to one word (its
  per-access energy follows the estimator's width law);
* the compute unit becomes an FP MAC of the format (Horowitz 45 nm energies, see
  :data:`core.arithmetic.FLOAT_FORMATS`), scaled to the spec's technology like any MAC.
"""

from __future__ import annotations

import copy

from core.arithmetic import FloatFormat, require_float_format

from .arch import Architecture


def float_variant(arch: Architecture, fmt: FloatFormat | str) -> Architecture:
    """``arch`` built for ``fmt`` words (``fp32``, ``fp16``, ``bf16``) with an FP MAC."""
    if not isinstance(fmt, FloatFormat):
        fmt = require_float_format(fmt)
    out = copy.deepcopy(arch)
    out.name = f"{arch.name} ({fmt.name})"
    for lv in out.levels:
        lv.datawidth = fmt.bits
        lv.width = max(lv.width, fmt.bits)
        lv.attributes["datawidth"] = fmt.bits
        lv.attributes["width"] = lv.width
        lv.attributes["block_size"] = max(1, lv.width // fmt.bits)
    cu = out.compute
    cu.component_class = "fpmac"
    cu.datawidth = fmt.bits
    # the integer unit's multiplier_width/adder_width describe the integer datapath; an FP MAC
    # is described by its format alone (and hwmodel.estimators reads multiplier_width first)
    cu.attributes = {**{k: v for k, v in cu.attributes.items()
                        if k not in ("multiplier_width", "adder_width")},
                     "datawidth": fmt.bits, "format": fmt.name}
    return out
