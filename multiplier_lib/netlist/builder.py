"""Emit gates into a :class:`Netlist` with constant folding.

Generators describe circuits at the bit and word level; folding constants as gates are
emitted means a dropped partial product (a constant 0) really removes the adders it fed, so
the gate count, area and energy of an approximate design reflect what synthesis would keep.
Word-level helpers (adders, muxes, shifters, leading-one detection) live here too so every
family builds from the same parts.
"""

from __future__ import annotations

from collections.abc import Sequence

from .netlist import CONST0, CONST1, Netlist

Word = list[int]  # nets, least significant bit first

#: Gates whose inputs may be swapped without changing the function (for structural hashing).
_COMMUTATIVE = frozenset({"AND", "OR", "XOR", "NAND", "NOR", "XNOR", "HA", "FA"})


class Builder:
    """Bit- and word-level gate emitter over one netlist.

    Besides folding constants, the builder hashes structure: asking twice for the same gate on
    the same inputs returns the first gate's nets, and ``not_(not_(x))`` is ``x``.  Word-level
    helpers (a leading-one detector per operand, shared selects) would otherwise emit duplicate
    inverters and muxes that synthesis merges, inflating the gate count of generated designs.
    """

    def __init__(self, a_bits: int, b_bits: int, out_bits: int | None = None):
        self.nl = Netlist(a_bits, b_bits, out_bits)
        self._memo: dict[tuple, int | tuple[int, ...]] = {}
        self._inverse: dict[int, int] = {}

    def _gate(self, kind: str, *inputs: int) -> int | tuple[int, ...]:
        """Emit ``kind`` on ``inputs`` unless an identical gate already exists."""
        key = (kind, *sorted(inputs)) if kind in _COMMUTATIVE else (kind, *inputs)
        found = self._memo.get(key)
        if found is None:
            found = self.nl.add(kind, *inputs)
            self._memo[key] = found
        return found

    # -------------------------------------------------------------- operands/result
    @property
    def a(self) -> Word:
        return [self.nl.a(i) for i in range(self.nl.a_bits)]

    @property
    def b(self) -> Word:
        return [self.nl.b(j) for j in range(self.nl.b_bits)]

    def finish(self, result: Sequence[int]) -> Netlist:
        """Drive ``O[k]`` from ``result[k]`` (missing high bits are 0) and drop dead gates."""
        for k in range(self.nl.out_bits):
            self.nl.set_output(k, result[k] if k < len(result) else CONST0)
        return self.nl.validate().pruned()

    # -------------------------------------------------------------- bit level
    def not_(self, x: int) -> int:
        if x in (CONST0, CONST1):
            return CONST1 - x
        if x in self._inverse:
            return self._inverse[x]
        y = self._gate("NOT", x)
        self._inverse[x] = y
        self._inverse[y] = x
        return y

    def and_(self, x: int, y: int) -> int:
        if CONST0 in (x, y):
            return CONST0
        if x == CONST1:
            return y
        if y == CONST1 or x == y:
            return x
        return self._gate("AND", x, y)

    def or_(self, x: int, y: int) -> int:
        if CONST1 in (x, y):
            return CONST1
        if x == CONST0:
            return y
        if y == CONST0 or x == y:
            return x
        return self._gate("OR", x, y)

    def xor(self, x: int, y: int) -> int:
        if x == CONST0:
            return y
        if y == CONST0:
            return x
        if x == CONST1:
            return self.not_(y)
        if y == CONST1:
            return self.not_(x)
        if x == y:
            return CONST0
        return self._gate("XOR", x, y)

    def nand(self, x: int, y: int) -> int:
        if CONST0 in (x, y) or CONST1 in (x, y) or x == y:
            return self.not_(self.and_(x, y))
        return self._gate("NAND", x, y)

    def xnor(self, x: int, y: int) -> int:
        if CONST0 in (x, y) or CONST1 in (x, y) or x == y:
            return self.not_(self.xor(x, y))
        return self._gate("XNOR", x, y)

    def mux(self, sel: int, if0: int, if1: int) -> int:
        """``sel ? if1 : if0``."""
        if sel == CONST0 or if0 == if1:
            return if0
        if sel == CONST1:
            return if1
        if if0 == CONST0:
            return self.and_(sel, if1)
        if if1 == CONST0:
            return self.and_(self.not_(sel), if0)
        if if1 == CONST1:
            return self.or_(sel, if0)
        if if0 == CONST1:
            return self.or_(self.not_(sel), if1)
        return self._gate("MUX2", if0, if1, sel)

    def half_add(self, x: int, y: int) -> tuple[int, int]:
        """(sum, carry) of two bits."""
        if CONST0 in (x, y) or CONST1 in (x, y) or x == y:
            return self.xor(x, y), self.and_(x, y)
        return self._gate("HA", x, y)

    def full_add(self, x: int, y: int, z: int) -> tuple[int, int]:
        """(sum, carry) of three bits."""
        bits = [x, y, z]
        if CONST0 in bits:
            bits.remove(CONST0)
            return self.half_add(*bits)
        if CONST1 in bits:
            bits.remove(CONST1)
            u, v = bits
            return self.xnor(u, v), self.or_(u, v)
        return self._gate("FA", x, y, z)

    # -------------------------------------------------------------- word level
    def const_word(self, value: int, width: int) -> Word:
        return [CONST1 if (value >> k) & 1 else CONST0 for k in range(width)]

    def add(self, x: Sequence[int], y: Sequence[int], carry_in: int = CONST0) -> Word:
        """Ripple-carry sum; the result is one bit wider than the wider operand."""
        width = max(len(x), len(y))
        x = list(x) + [CONST0] * (width - len(x))
        y = list(y) + [CONST0] * (width - len(y))
        out: Word = []
        carry = carry_in
        for k in range(width):
            s, carry = self.full_add(x[k], y[k], carry)
            out.append(s)
        return out + [carry]

    def mux_word(self, sel: int, if0: Sequence[int], if1: Sequence[int]) -> Word:
        width = max(len(if0), len(if1))
        if0 = list(if0) + [CONST0] * (width - len(if0))
        if1 = list(if1) + [CONST0] * (width - len(if1))
        return [self.mux(sel, u, v) for u, v in zip(if0, if1)]

    def shift_left(self, x: Sequence[int], amount: Sequence[int], width: int) -> Word:
        """Barrel shifter: ``x << amount`` truncated to ``width`` bits."""
        word = list(x)[:width] + [CONST0] * max(0, width - len(x))
        for stage, sel in enumerate(amount):
            step = 1 << stage
            shifted = [CONST0] * step + word[: width - step] if step < width else [CONST0] * width
            word = self.mux_word(sel, word, shifted)
        return word

    def shift_right(self, x: Sequence[int], amount: Sequence[int]) -> Word:
        """Barrel shifter: ``x >> amount`` (logical)."""
        word = list(x)
        width = len(word)
        for stage, sel in enumerate(amount):
            step = 1 << stage
            shifted = word[step:] + [CONST0] * min(step, width)
            word = self.mux_word(sel, word, shifted[:width])
        return word

    def leading_one(self, x: Sequence[int]) -> tuple[Word, int]:
        """Position of the most significant 1 of ``x`` as a binary word, and a nonzero flag.

        The position has ``max(1, (len(x) - 1).bit_length())`` bits and is 0 when ``x`` is 0.
        Built as a tree rather than a priority chain: the upper half wins when it is nonzero,
        so each level costs one OR for the flag plus one mux per position bit.  That gives log
        depth and, for 8 bits, 11 gates where a top-down priority chain needs 48.
        """
        width = len(x)
        pos_bits = max(1, (width - 1).bit_length())
        if width <= 1:
            return [CONST0], (x[0] if width else CONST0)
        padded = list(x) + [CONST0] * ((1 << pos_bits) - width)
        pos, found = self._leading_one_tree(padded)
        return pos, found

    def _leading_one_tree(self, x: list[int]) -> tuple[Word, int]:
        if len(x) == 2:
            return [x[1]], self.or_(x[0], x[1])
        half = len(x) // 2
        pos_lo, nz_lo = self._leading_one_tree(x[:half])
        pos_hi, nz_hi = self._leading_one_tree(x[half:])
        return self.mux_word(nz_hi, pos_lo, pos_hi) + [nz_hi], self.or_(nz_hi, nz_lo)

    def sub(self, x: Sequence[int], y: Sequence[int]) -> Word:
        """``x - y`` as ``x + ~y + 1``: the low bits are the difference modulo ``2**width``
        and the extra top bit is 1 exactly when ``x >= y`` (no borrow), which is what
        shift-amount arithmetic needs to know."""
        width = max(len(x), len(y))
        y = list(y) + [CONST0] * (width - len(y))
        return self.add(x, [self.not_(v) for v in y], CONST1)

    def or_all(self, bits: Sequence[int]) -> int:
        """OR of any number of bits as a balanced tree (a shallow "is nonzero" test)."""
        level = list(bits)
        if not level:
            return CONST0
        while len(level) > 1:
            nxt = [self.or_(level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        return level[0]

    def and_word(self, x: Sequence[int], bit: int) -> Word:
        """Every bit of ``x`` gated by ``bit`` (forces a word to zero)."""
        return [self.and_(v, bit) for v in x]

    def multiply(self, x: Sequence[int], y: Sequence[int]) -> Word:
        """Exact unsigned product ``x * y`` (``len(x) + len(y)`` bits): an AND partial-product
        array summed by :meth:`reduce_columns`, the core that DRUM-style designs reuse."""
        width = len(x) + len(y)
        columns: list[list[int]] = [[] for _ in range(width)]
        for j, yj in enumerate(y):
            for i, xi in enumerate(x):
                columns[i + j].append(self.and_(xi, yj))
        return self.reduce_columns(columns, width)

    def _settle_constants(self, cols: list[list[int]]) -> list[list[int]]:
        """Drop constant-0 bits and merge all constant-1 bits into one binary constant.

        A Baugh-Wooley array or a correction term can put several 1s into the same column;
        adding their sum once, at most one bit per column, is what a designer would do and
        keeps every such 1 from costing a full adder.
        """
        width = len(cols)
        const = sum(len([v for v in col if v == CONST1]) << k for k, col in enumerate(cols))
        const &= (1 << width) - 1
        out = [[v for v in col if v not in (CONST0, CONST1)] for col in cols]
        for k in range(width):
            if (const >> k) & 1:
                out[k].append(CONST1)
        return out

    def reduce_columns(self, columns: list[list[int]], width: int) -> Word:
        """Sum a partial-product array (bits per column) exactly: carry-save rows of full
        and half adders until two bits per column remain, then a ripple-carry adder.

        Bits in columns at or above ``width`` and carries out of the top column are dropped,
        so the result is the column sum modulo ``2**width``.  Within a column, bits are taken
        in list order; the outputs of one round go, per column, carries from below first, then
        sums, then bits that were passed through unchanged.
        """
        cols = [list(c) for c in columns] + [[] for _ in range(max(0, width - len(columns)))]
        cols = self._settle_constants(cols[:width])
        while any(len(c) > 2 for c in cols):
            nxt: list[list[int]] = [[] for _ in range(width)]
            for k, col in enumerate(cols):
                bits = list(col)
                while len(bits) >= 3:
                    s, c = self.full_add(bits.pop(0), bits.pop(0), bits.pop(0))
                    nxt[k].append(s)
                    if k + 1 < width:
                        nxt[k + 1].append(c)
                if len(bits) == 2 and len(col) > 2:
                    s, c = self.half_add(bits.pop(0), bits.pop(0))
                    nxt[k].append(s)
                    if k + 1 < width:
                        nxt[k + 1].append(c)
                nxt[k].extend(bits)
            cols = self._settle_constants(nxt)
        return self.add_two_rows(cols, width)

    def add_two_rows(self, cols: list[list[int]], width: int) -> Word:
        """Final carry-propagate adder of a reduced array (at most two bits per column)."""
        if any(len(c) > 2 for c in cols):
            raise ValueError("add_two_rows needs at most two bits per column")
        x = [c[0] if len(c) > 0 else CONST0 for c in cols[:width]]
        y = [c[1] if len(c) > 1 else CONST0 for c in cols[:width]]
        return self.add(x, y)[:width]
