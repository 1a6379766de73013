"""Partial-product reduction with approximate 4:2 compressors in the low columns.

An exact 4:2 compressor is two chained full adders with a carry-in and a carry-out that
ripple along a row; dropping them leaves a two-output cell with no horizontal chain:

    carry = (x1 & x2) | (x3 & x4) | ((x1 ^ x2) & (x3 ^ x4))
    sum   = ((x1 ^ x2) ^ (x3 ^ x4)) | (x1 & x2 & x3 & x4)

which is exact (``sum + 2 carry == x1+x2+x3+x4``) except that four 1s give 3 instead of 4.
Using it only in columns ``< k`` trades error in the low-weight bits for fewer cells.

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
    """(sum, carry) of the carry-free approximate 4:2 compressor (two half adders' worth of
    XOR/AND shared between the two outputs)."""
    x12, a12 = bld.half_add(x1, x2)
    x34, a34 = bld.half_add(x3, x4)
    carry = bld.or_(bld.or_(a12, a34), bld.and_(x12, x34))
    total = bld.or_(bld.xor(x12, x34), bld.and_(a12, a34))
    return total, carry


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
