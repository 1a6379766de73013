"""Array multipliers and the approximations that delete partial products from them.

Exact, truncated, broken-array (BAM) and perforated multipliers differ only in *which*
partial products ``a_i b_j`` (weight ``2**(i+j)``) reach the adder array, so they share one
builder: choose the kept set, emit the bits, let constant folding remove the adders that
only summed deleted bits.

Signed operands use the modified Baugh-Wooley form.  The signed product is
``sum w_ij a_i b_j 2**(i+j)`` with ``w_ij = -1`` when exactly one of ``i``, ``j`` is a sign
position, else ``+1``.  A negative term is emitted as ``NAND(a_i, b_j)`` plus the constant
``-2**(i+j)`` (since ``-x = ~x - 1``), and all constants are added once, as a binary number
of constant-1 bits, modulo ``2**(a+b)``.  Deleting a partial product deletes the *signed*
term: its NAND and its share of the constant.  That keeps one rule for both signednesses:
the error of any of these designs is ``-sum over deleted (i,j) of w_ij a_i b_j 2**(i+j)``
(plus a correction constant, if any), wrapped to the output width.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from math import floor

from ..multiplier import Multiplier
from ..netlist import CONST1, Builder
from ..netlist.builder import Word
from .names import Spec

Keep = Callable[[int, int], bool]


def weight_sign(i: int, j: int, a_bits: int, b_bits: int, signed: bool) -> int:
    """``w_ij``: -1 for the Baugh-Wooley terms that mix a sign bit with a magnitude bit."""
    if signed and (i == a_bits - 1) != (j == b_bits - 1):
        return -1
    return 1


def expected_dropped(spec: Spec, keep: Keep) -> Fraction:
    """Mean value of the deleted signed terms under uniformly random operand codes.

    Every operand bit is 1 with probability 1/2 independently, so each deleted
    ``w_ij a_i b_j 2**(i+j)`` contributes ``w_ij 2**(i+j) / 4``.
    """
    total = Fraction(0)
    for j in range(spec.b_bits):
        for i in range(spec.a_bits):
            if not keep(i, j):
                total += Fraction(weight_sign(i, j, spec.a_bits, spec.b_bits, spec.signed)
                                  << (i + j), 4)
    return total


def round_half_up(x: Fraction) -> int:
    """Rounding for correction constants; half-up so the rule does not depend on parity."""
    return floor(x + Fraction(1, 2))


def build_array(spec: Spec, keep: Keep, correction: int = 0) -> tuple[Builder, Word]:
    """Emit the (Baugh-Wooley if signed) array with only the kept partial products, plus
    ``correction`` as constant bits, reduced by carry-save rows and a ripple-carry adder."""
    a_bits, b_bits = spec.a_bits, spec.b_bits
    width = a_bits + b_bits
    bld = Builder(a_bits, b_bits)
    columns: list[list[int]] = [[] for _ in range(width)]
    const = correction
    for j, bj in enumerate(bld.b):
        for i, ai in enumerate(bld.a):
            if not keep(i, j):
                continue
            if weight_sign(i, j, a_bits, b_bits, spec.signed) < 0:
                columns[i + j].append(bld.nand(ai, bj))
                const -= 1 << (i + j)
            else:
                columns[i + j].append(bld.and_(ai, bj))
    const %= 1 << width
    for k in range(width):
        if (const >> k) & 1:
            columns[k].append(CONST1)
    return bld, bld.reduce_columns(columns, width)


def keep_rule(spec: Spec) -> Keep:
    """The kept-partial-product predicate of an array family."""
    p = spec.params
    if spec.family == "exact":
        return lambda i, j: True
    if spec.family == "trunc":
        return lambda i, j: i + j >= p["k"]
    if spec.family == "bam":
        return lambda i, j: j >= p["h"] and i + j >= p["v"]
    if spec.family == "perf":
        return lambda i, j: not p["r"] <= j < p["r"] + p["m"]
    raise ValueError(f"not an array family: {spec.family}")


def describe(spec: Spec, correction: int) -> str:
    p = spec.params
    form = "Baugh-Wooley array" if spec.signed else "array"
    if spec.family == "exact":
        return f"exact {form} multiplier"
    if spec.family == "trunc":
        text = f"truncated {form}: partial products in columns < {p['k']} dropped"
        return text + (f", constant correction {correction:+d}" if p["c"] else "")
    if spec.family == "bam":
        return (f"broken {form} (BAM): rows j < {p['h']} and columns i+j < {p['v']} "
                "omitted")
    return f"perforated {form}: partial-product rows {p['r']}..{p['r'] + p['m'] - 1} skipped"


def generate_array(spec: Spec) -> Multiplier:
    keep = keep_rule(spec)
    correction = 0
    if spec.family == "trunc" and spec.params["c"]:
        correction = round_half_up(expected_dropped(spec, keep))
    bld, result = build_array(spec, keep, correction)
    netlist = bld.finish(result)
    name = spec.name
    return Multiplier.from_netlist(name, netlist, spec.signed, source=f"generated:{name}",
                                   description=describe(spec, correction))
