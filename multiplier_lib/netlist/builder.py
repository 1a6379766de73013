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


class Builder:
    """Bit- and word-level gate emitter over one netlist."""

    def __init__(self, a_bits: int, b_bits: int, out_bits: int | None = None):
        self.nl = Netlist(a_bits, b_bits, out_bits)

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
        return self.nl.add("NOT", x)

    def and_(self, x: int, y: int) -> int:
        if CONST0 in (x, y):
            return CONST0
        if x == CONST1:
            return y
        if y == CONST1 or x == y:
            return x
        return self.nl.add("AND", x, y)

    def or_(self, x: int, y: int) -> int:
        if CONST1 in (x, y):
            return CONST1
        if x == CONST0:
            return y
        if y == CONST0 or x == y:
            return x
        return self.nl.add("OR", x, y)

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
        return self.nl.add("XOR", x, y)

    def nand(self, x: int, y: int) -> int:
        if CONST0 in (x, y) or CONST1 in (x, y) or x == y:
            return self.not_(self.and_(x, y))
        return self.nl.add("NAND", x, y)

    def xnor(self, x: int, y: int) -> int:
        if CONST0 in (x, y) or CONST1 in (x, y) or x == y:
            return self.not_(self.xor(x, y))
        return self.nl.add("XNOR", x, y)

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
        return self.nl.add("MUX2", if0, if1, sel)

    def half_add(self, x: int, y: int) -> tuple[int, int]:
        """(sum, carry) of two bits."""
        if CONST0 in (x, y) or CONST1 in (x, y) or x == y:
            return self.xor(x, y), self.and_(x, y)
        return self.nl.add("HA", x, y)

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
        return self.nl.add("FA", x, y, z)

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

        Built as a priority chain from the top bit down: ``found`` says a higher bit was 1,
        so only the first 1 seen selects its position.
        """
        width = len(x)
        pos_bits = max(1, (width - 1).bit_length())
        pos: Word = [CONST0] * pos_bits
        found = CONST0
        for k in reversed(range(width)):
            take = self.and_(x[k], self.not_(found))
            pos = self.mux_word(take, pos, self.const_word(k, pos_bits))
            found = self.or_(found, x[k])
        return pos, found

    def reduce_columns(self, columns: list[list[int]], width: int) -> Word:
        """Sum a partial-product array (bits per column) exactly: carry-save rows of full
        and half adders until two bits per column remain, then a ripple-carry adder."""
        cols = [list(c) for c in columns] + [[] for _ in range(max(0, width - len(columns)))]
        cols = cols[:width]
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
            cols = nxt
        x = [c[0] if len(c) > 0 else CONST0 for c in cols]
        y = [c[1] if len(c) > 1 else CONST0 for c in cols]
        return self.add(x, y)[:width]
