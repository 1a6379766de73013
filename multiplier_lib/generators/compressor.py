"""Partial-product reduction with approximate 4:2 compressors in the low columns.

An exact 4:2 compressor is two chained full adders with a carry-in and a carry-out that
ripple along a row.  The approximate one used here has no horizontal chain and no full
adders at all, just two half adders whose outputs are OR-ed (the simplified designs of the
Momeni et al. 2015 / Ha and Lee 2018 kind):

    carry = (x1 & x2) | (x3 & x4)
    sum   = (x1 ^ x2) | (x3 ^ x4)

``sum + 2 carry`` equals ``x1+x2+x3+x4`` for 11 of the 16 input patterns; it is one short
when exactly one bit of each pair is set (4 patterns) and two short for four 1s, so it
never overestimates.  Partial-product bits are 1 with probability 1/4 under uniform
operands, so most compressor inputs are exact cases.  The cell (2 HA + 2 OR) is smaller than
the two full adders it replaces, and using it only in columns ``< k`` trades error in the
low-weight bits for area and energy.

The reduction is deterministic so that a bit-level model can reproduce it exactly.  Each
column is an ordered list of bits; initially column ``c`` holds ``a_i & b_j`` (``i+j = c``)
in increasing ``j``.  While some column has more than two bits, one round rebuilds every
column; column ``c`` (holding list ``L``, ``n = len(L)``) is processed front to back:

* ``c < k``: each leading group of four bits goes through the approximate compressor;
  then, if exactly three bits are left, a full adder; remaining bits pass through;
* ``c >= k``: each leading group of three bits goes through a full adder; then, if two bits
  are left and ``n > 2``, a half adder; remaining bits pass through.

A cell's sum goes to column ``c`` and its carry to ``c+1`` of the next round (carries out of
the top column are dropped: the result is modulo ``2**(a+b)``).  Columns are processed in
increasing ``c``, so the next round's column ``c`` lists the carries from ``c-1`` first, then
the sums of ``c`` in the order produced, then its passed-through bits.  Two rows remain at
the end and an exact ripple-carry adder sums them.
"""

from __future__ import annotations

from ..multiplier import Multiplier
from ..netlist import Builder
from ..netlist.builder import Word
from .names import Spec


def approx_compress(bld: Builder, x1: int, x2: int, x3: int, x4: int) -> tuple[int, int]:
    """(sum, carry) of the carry-free approximate 4:2 compressor: two half adders, OR-ed."""
    x12, a12 = bld.half_add(x1, x2)
    x34, a34 = bld.half_add(x3, x4)
    return bld.or_(x12, x34), bld.or_(a12, a34)


def reduce_approx(bld: Builder, columns: list[list[int]], width: int, k: int) -> Word:
    """The reduction described in the module docstring, then the final adder."""
    cols = [list(c) for c in columns] + [[] for _ in range(width - len(columns))]
    while any(len(c) > 2 for c in cols):
        nxt: list[list[int]] = [[] for _ in range(width)]

        def emit(col: int, s: int, c: int, nxt: list[list[int]] = nxt) -> None:
            nxt[col].append(s)
            if col + 1 < width:
                nxt[col + 1].append(c)

        for col, bits in enumerate(cols):
            n = len(bits)
            rest = list(bits)
            if col < k:
                while len(rest) >= 4:
                    emit(col, *approx_compress(bld, *rest[:4]))
                    rest = rest[4:]
                if len(rest) == 3:
                    emit(col, *bld.full_add(*rest))
                    rest = []
            else:
                while len(rest) >= 3:
                    emit(col, *bld.full_add(*rest[:3]))
                    rest = rest[3:]
                if len(rest) == 2 and n > 2:
                    emit(col, *bld.half_add(*rest))
                    rest = []
            nxt[col].extend(rest)
        cols = nxt
    return bld.add_two_rows(cols, width)


def generate_comp(spec: Spec) -> Multiplier:
    k = spec.params["k"]
    width = spec.a_bits + spec.b_bits
    bld = Builder(spec.a_bits, spec.b_bits)
    columns: list[list[int]] = [[] for _ in range(width)]
    for j, bj in enumerate(bld.b):
        for i, ai in enumerate(bld.a):
            columns[i + j].append(bld.and_(ai, bj))
    result = reduce_approx(bld, columns, width, k)
    name = spec.name
    return Multiplier.from_netlist(
        name, bld.finish(result), False, source=f"generated:{name}",
        description=f"Wallace-style reduction, approximate 4:2 compressors (no carry chain) "
                    f"in columns < {k}")
