"""Exact rank-one factorization of a multiplier's product table.

Many multipliers in use compute an exact product of two *transformed* operands: the exact
multiplier itself (``lut[a, b] = a * b``), DRUM (each operand cut to a leading-one segment),
perforated and operand-truncating designs (bits of one operand masked).  Their tables are
outer products ``lut[a, b] = u[a] * v[b]`` of integer vectors, so a convolution's LUT sum
``sum_k lut[x_k, w_k]`` equals the ordinary convolution of ``u[x]`` with ``v[w]``: a float
GEMM that is exact as long as every partial sum is an integer float32 holds exactly
(``K * max|u| * max|v| < 2**24``), and far faster than any table look-up.  Tables that do not
factor (Mitchell, compressor trees, truncated arrays, EvoApprox designs) keep the look-ups.

The factors are found exactly, in integers, never by a floating-point decomposition: a
table is rank one over the rationals iff it equals the outer product of its primitive
column (a nonzero column divided by the gcd of its entries) with some integer row, and that
row is then read off any entry of the column (the gcd being 1, Bezout's identity makes every
such quotient an integer).  The candidate is verified entry by entry.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

#: float32 holds every integer of magnitude below this exactly, so a float32 sum whose
#: partial sums stay below it is exact in any order of summation
FLOAT32_EXACT = 2**24


class OuterFactors(NamedTuple):
    """``lut[a, b] == u[a] * v[b]`` for every activation code ``a`` and weight code ``b``."""

    u: torch.Tensor     # int64, one per activation code (table row)
    v: torch.Tensor     # int64, one per weight code (table column)

    @property
    def peak(self) -> int:
        """``max |u| * max |v|``: the largest product magnitude, which bounds a sum of ``K``
        of them by ``K * peak``."""
        return int(self.u.abs().max()) * int(self.v.abs().max())


def outer_factors(lut: torch.Tensor) -> OuterFactors | None:
    """Integer vectors ``u``, ``v`` with ``lut == outer(u, v)`` exactly, or None when the
    table is not an outer product (rank above one).  An all-zero table factors as zeros."""
    if lut.dim() != 2 or lut.dtype.is_floating_point or lut.dtype.is_complex:
        return None
    table = lut.to(torch.int64)
    if table.numel() == 0:
        return None
    nonzero = table.ne(0)
    if not bool(nonzero.any()):
        return OuterFactors(torch.zeros(table.shape[0], dtype=torch.int64),
                            torch.zeros(table.shape[1], dtype=torch.int64))
    col = int(nonzero.any(dim=0).nonzero()[0])
    column = table[:, col]
    divisor = math.gcd(*(int(c) for c in column.abs().unique()))
    u = column // divisor
    row = int(u.abs().argmax())
    pivot = int(u[row])
    v_times = table[row]
    if bool((v_times % pivot).ne(0).any()):
        return None
    v = v_times // pivot
    if not torch.equal(torch.outer(u, v), table):
        return None
    return OuterFactors(u, v)


def float_sums_exact(factors: OuterFactors, k: int) -> bool:
    """Whether a float32 convolution of ``u[x]`` with ``v[w]`` over ``k`` products gives the
    LUT sums exactly: every partial sum is an integer below :data:`FLOAT32_EXACT` whatever
    order the GEMM adds in."""
    return k * factors.peak < FLOAT32_EXACT
