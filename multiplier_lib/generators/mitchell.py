"""Mitchell's logarithmic multiplier (J. N. Mitchell, 1962).

``log2(x)`` is approximated piecewise linearly by ``t + f`` (``t`` the leading-one position,
``f`` the bits below it as a binary fraction); the logs are added and the sum is turned back
with the same linear approximation.  Every step is exact integer arithmetic, so the design
always underestimates, by at most 1/9 (11.1 %) of the product, and needs only leading-one
detectors, shifters and one ``n-1``-bit adder.

With ``F = max(a, b) - 1`` fraction bits, ``Fa = (a - 2**ta) << (F - ta)``, likewise ``Fb``,
``S = Fa + Fb`` with carry ``c`` and ``S_low = S mod 2**F``, the result is
``((2**F + S_low) << (ta + tb + c)) >> F``, or 0 when an operand is 0.
"""

from __future__ import annotations

from ..multiplier import Multiplier
from ..netlist import CONST1, Builder
from ..netlist.builder import Word
from .names import Spec


def _log_parts(bld: Builder, x: Word, frac_bits: int) -> tuple[Word, Word, int]:
    """Characteristic ``t``, mantissa fraction (``frac_bits`` bits) and a nonzero flag.

    Normalising shifts ``x`` left by ``F - t`` so its leading one lands on bit ``F``;
    the bits below it are the fraction.  ``F - t`` comes from a subtractor with a constant
    operand, which folds down to inverters when ``F`` is all ones.
    """
    t, nonzero = bld.leading_one(x)
    width = max(frac_bits.bit_length(), len(t))
    amount = bld.sub(bld.const_word(frac_bits, width), t)[:width]
    normalised = bld.shift_left(x, amount, frac_bits + 1)
    return t, normalised[:frac_bits], nonzero


def generate_mitchell(spec: Spec) -> Multiplier:
    frac = max(spec.a_bits, spec.b_bits) - 1
    width = spec.a_bits + spec.b_bits
    bld = Builder(spec.a_bits, spec.b_bits)
    ta, fa, nz_a = _log_parts(bld, bld.a, frac)
    tb, fb, nz_b = _log_parts(bld, bld.b, frac)
    s = bld.add(fa, fb)
    carry, s_low = s[frac], s[:frac]
    nonzero = bld.and_(nz_a, nz_b)
    # Gating the mantissa (frac+1 ANDs) zeroes the result more cheaply than gating the output.
    mantissa = bld.and_word([*s_low, CONST1], nonzero)
    exponent = bld.add(ta, tb, carry)
    wide = bld.shift_left(mantissa, exponent, frac + width)
    name = spec.name
    return Multiplier.from_netlist(
        name, bld.finish(wide[frac:frac + width]), False, source=f"generated:{name}",
        description="Mitchell logarithmic multiplier (piecewise-linear log2 and antilog)")
