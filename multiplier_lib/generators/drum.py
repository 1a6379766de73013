"""DRUM-k: dynamic range unbiased multiplier (Hashemi, Bahar and Reda, ICCAD 2015).

Each operand is cut down to a ``k``-bit segment starting at its leading one, the segments are
multiplied by a small exact multiplier and the product is shifted back.  Forcing the
segment's LSB to 1 replaces the truncated tail by its expected value, which is what makes
the error unbiased; the hardware is a leading-one detector, two barrel shifters and a
``k x k`` multiplier instead of an ``n x n`` one.
"""

from __future__ import annotations

from ..multiplier import Multiplier
from ..netlist import Builder
from ..netlist.builder import Word
from .names import Spec


def drum_segment(bld: Builder, x: Word, k: int) -> tuple[Word, Word]:
    """The ``k``-bit segment of ``x`` and its shift amount (as a binary word).

    The leading-one detector runs over bits ``k-1 ..`` of ``x``: a leading one at ``t >= k``
    is found at index ``t-k+1``, which is exactly the shift, and one at ``t <= k-1`` (or
    none) yields shift 0, where the operand already fits in ``k`` bits.  So no subtractor
    is needed.  A nonzero shift means bits were cut off, and only then is the LSB forced.
    """
    if len(x) <= k:
        return list(x), []
    shift, _ = bld.leading_one(x[k - 1:])
    window = bld.shift_right(x, shift)[:k]
    cut = bld.or_all(shift)
    return [bld.or_(window[0], cut), *window[1:]], shift


def generate_drum(spec: Spec) -> Multiplier:
    k = spec.params["k"]
    width = spec.a_bits + spec.b_bits
    bld = Builder(spec.a_bits, spec.b_bits)
    seg_a, shift_a = drum_segment(bld, bld.a, k)
    seg_b, shift_b = drum_segment(bld, bld.b, k)
    product = bld.multiply(seg_a, seg_b)
    total_shift = bld.add(shift_a, shift_b)
    result = bld.shift_left(product, total_shift, width)
    name = spec.name
    return Multiplier.from_netlist(
        name, bld.finish(result), False, source=f"generated:{name}",
        description=f"DRUM-{k}: {k}-bit leading-one segments (LSB forced to 1), exact "
                    f"{min(k, spec.a_bits)}x{min(k, spec.b_bits)} core, shifted back")
