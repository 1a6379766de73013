"""Builder: constant folding, structural hashing and word-level helpers, checked
exhaustively on small widths against Python integer arithmetic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiplier_lib.netlist import CONST0, CONST1, Builder


def table(bld: Builder, result: list[int]) -> np.ndarray:
    """Raw output value for every (A, B) code pair."""
    return bld.finish(result).truth_table()


def codes(bld: Builder) -> tuple[np.ndarray, np.ndarray]:
    a = np.arange(1 << bld.nl.a_bits)[:, None]
    b = np.arange(1 << bld.nl.b_bits)[None, :]
    return np.broadcast_to(a, (a.size, b.size)), np.broadcast_to(b, (a.size, b.size))


# ----------------------------------------------------------------------------- bit level


def test_bit_ops_fold_constants_and_match_truth_tables() -> None:
    """Every bit op on every mix of constants, variables and repeated nets is correct, and
    ops with a constant input emit no 2-input gate of their own kind."""
    ops = {
        "and_": lambda x, y: x & y, "or_": lambda x, y: x | y, "xor": lambda x, y: x ^ y,
        "nand": lambda x, y: 1 - (x & y), "xnor": lambda x, y: 1 - (x ^ y),
    }
    for op, ref in ops.items():
        for u, v in itertools.product(["0", "1", "a", "b"], repeat=2):
            bld = Builder(1, 1, 1)
            pick = {"0": CONST0, "1": CONST1, "a": bld.a[0], "b": bld.b[0]}
            out = getattr(bld, op)(pick[u], pick[v])
            nl = bld.finish([out])
            tt = nl.truth_table()
            for a, b in itertools.product(range(2), repeat=2):
                val = {"0": 0, "1": 1, "a": a, "b": b}
                assert tt[a, b] == ref(val[u], val[v]), (op, u, v)
            if "0" in (u, v) or "1" in (u, v) or u == v:
                assert len(nl.gates) <= 1 and all(g.kind == "NOT" for g in nl.gates)


def test_adders_and_mux_all_input_mixes() -> None:
    """full_add, half_add and mux on every mix of constants, distinct and repeated nets."""
    names = ["0", "1", "a0", "a1", "b0"]
    for combo in itertools.product(names, repeat=3):
        bld = Builder(2, 1, 5)
        pick = {"0": CONST0, "1": CONST1, "a0": bld.a[0], "a1": bld.a[1], "b0": bld.b[0]}
        x, y, z = (pick[n] for n in combo)
        tt = table(bld, [*bld.full_add(x, y, z), *bld.half_add(x, y), bld.mux(z, x, y)])
        for a, b in itertools.product(range(4), range(2)):
            val = {"0": 0, "1": 1, "a0": a & 1, "a1": a >> 1, "b0": b}
            u, v, w = (val[n] for n in combo)
            assert tt[a, b] & 3 == u + v + w, combo
            assert (tt[a, b] >> 2) & 3 == u + v, combo
            assert tt[a, b] >> 4 == (v if w else u), combo


def test_structural_hashing_and_double_negation() -> None:
    bld = Builder(2, 2)
    a0, a1 = bld.a
    assert bld.and_(a0, a1) == bld.and_(a1, a0)
    assert bld.full_add(a0, a1, bld.b[0]) == bld.full_add(bld.b[0], a1, a0)
    n = bld.not_(a0)
    assert bld.not_(a0) == n
    assert bld.not_(n) == a0
    assert bld.mux(bld.b[0], a0, a1) == bld.mux(bld.b[0], a0, a1)
    assert bld.mux(bld.b[0], a0, a1) != bld.mux(bld.b[0], a1, a0)  # mux is not commutative
    assert len(bld.nl.gates) == 5  # AND, FA, NOT, MUX2, MUX2


def test_finish_pads_and_prunes() -> None:
    bld = Builder(2, 2, 4)
    bld.xor(bld.a[0], bld.b[0])  # dead
    s = bld.and_(bld.a[1], bld.b[1])
    nl = bld.finish([s])
    assert [g.kind for g in nl.gates] == ["AND"]
    assert nl.outputs == [s, CONST0, CONST0, CONST0]
    a, b = codes(bld)
    np.testing.assert_array_equal(nl.truth_table(), (a >> 1) & (b >> 1))


# ----------------------------------------------------------------------------- word level


@pytest.mark.parametrize("a_bits,b_bits", [(4, 4), (3, 5), (1, 3)])
@pytest.mark.parametrize("carry", [CONST0, CONST1])
def test_add(a_bits: int, b_bits: int, carry: int) -> None:
    bld = Builder(a_bits, b_bits, max(a_bits, b_bits) + 1)
    a, b = codes(bld)
    np.testing.assert_array_equal(table(bld, bld.add(bld.a, bld.b, carry)), a + b + carry)


def test_add_with_variable_carry_in() -> None:
    bld = Builder(4, 4, 5)
    a, b = codes(bld)
    out = bld.add(bld.a[:3], bld.b[:3], bld.a[3])
    np.testing.assert_array_equal(table(bld, out), (a & 7) + (b & 7) + (a >> 3))


def test_sub_difference_and_no_borrow_flag() -> None:
    bld = Builder(4, 4, 5)
    a, b = codes(bld)
    tt = table(bld, bld.sub(bld.a, bld.b))
    np.testing.assert_array_equal(tt & 15, (a - b) % 16)
    np.testing.assert_array_equal(tt >> 4, (a >= b).astype(int))


def test_sub_from_constant_folds_to_inverters() -> None:
    bld = Builder(3, 1, 3)
    out = bld.sub(bld.const_word(7, 3), bld.a)[:3]
    nl = bld.finish(out)
    assert set(nl.gate_counts()) == {"NOT"}
    np.testing.assert_array_equal(nl.truth_table()[:, 0], 7 - np.arange(8))


@pytest.mark.parametrize("x_bits,amount_bits,width", [(4, 2, 6), (4, 3, 8), (5, 2, 3),
                                                      (3, 3, 4)])
def test_shift_left(x_bits: int, amount_bits: int, width: int) -> None:
    bld = Builder(x_bits, amount_bits, width)
    a, b = codes(bld)
    out = bld.shift_left(bld.a, bld.b, width)
    assert len(out) == width
    np.testing.assert_array_equal(table(bld, out), (a << b) % (1 << width))


@pytest.mark.parametrize("x_bits,amount_bits", [(5, 2), (5, 3), (4, 1), (3, 3)])
def test_shift_right(x_bits: int, amount_bits: int) -> None:
    bld = Builder(x_bits, amount_bits, x_bits)
    a, b = codes(bld)
    out = bld.shift_right(bld.a, bld.b)
    assert len(out) == x_bits
    np.testing.assert_array_equal(table(bld, out), a >> b)


@pytest.mark.parametrize("width", range(1, 9))
def test_leading_one(width: int) -> None:
    bld = Builder(width, 1, 8)
    pos, found = bld.leading_one(bld.a)
    assert len(pos) == max(1, (width - 1).bit_length())
    tt = table(bld, [*pos, found])[:, 0]
    for x in range(1 << width):
        expect_pos = x.bit_length() - 1 if x else 0
        assert tt[x] & ((1 << len(pos)) - 1) == expect_pos, x
        assert tt[x] >> len(pos) == (x != 0), x


def test_leading_one_is_cheap_and_mux_based() -> None:
    bld = Builder(8, 1, 4)
    pos, found = bld.leading_one(bld.a)
    nl = bld.finish([*pos, found])
    assert nl.gate_counts().get("MUX2", 0) > 0
    assert len(nl.gates) <= 12


def test_mux_word_variables_and_constants() -> None:
    bld = Builder(6, 1, 6)
    a, b = codes(bld)
    lo, hi = bld.a[:3], bld.a[3:]
    out = bld.mux_word(bld.b[0], lo, hi) + bld.mux_word(bld.b[0], bld.const_word(5, 3), lo)
    tt = table(bld, out)
    np.testing.assert_array_equal(tt & 7, np.where(b == 1, a >> 3, a & 7))
    np.testing.assert_array_equal(tt >> 3, np.where(b == 1, a & 7, 5))


def test_mux_word_pads_the_shorter_word() -> None:
    bld = Builder(3, 1, 3)
    a, b = codes(bld)
    tt = table(bld, bld.mux_word(bld.b[0], bld.a, bld.a[:1]))
    np.testing.assert_array_equal(tt, np.where(b == 1, a & 1, a))


def test_or_all_and_word() -> None:
    for n in range(0, 6):
        bld = Builder(5, 1, 6)
        a, b = codes(bld)
        out = [bld.or_all(bld.a[:n]), *bld.and_word(bld.a, bld.b[0])]
        tt = table(bld, out)
        np.testing.assert_array_equal(tt & 1, ((a & ((1 << n) - 1)) != 0).astype(int))
        np.testing.assert_array_equal(tt >> 1, a * b)


@pytest.mark.parametrize("a_bits,b_bits", [(4, 3), (2, 5), (1, 1)])
def test_multiply(a_bits: int, b_bits: int) -> None:
    bld = Builder(a_bits, b_bits)
    a, b = codes(bld)
    np.testing.assert_array_equal(table(bld, bld.multiply(bld.a, bld.b)), a * b)


# Each column entry: an operand bit ("a0".."a2", "b0".."b2") or a constant ("0", "1").
_BIT = st.sampled_from(["a0", "a1", "a2", "b0", "b1", "b2", "0", "1"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_BIT, max_size=7), min_size=1, max_size=6),
       st.integers(min_value=1, max_value=7))
def test_reduce_columns_sums_any_array(columns: list[list[str]], width: int) -> None:
    """Random arrays with repeated nets and constants sum to the column total mod 2**width."""
    bld = Builder(3, 3, width)
    a, b = codes(bld)
    net = {"0": CONST0, "1": CONST1, **{f"a{i}": bld.a[i] for i in range(3)},
           **{f"b{j}": bld.b[j] for j in range(3)}}
    val = {"0": 0, "1": 1, **{f"a{i}": (a >> i) & 1 for i in range(3)},
           **{f"b{j}": (b >> j) & 1 for j in range(3)}}
    out = bld.reduce_columns([[net[x] for x in col] for col in columns], width)
    assert len(out) == width
    expected = sum((val[x] << k for k, col in enumerate(columns) for x in col),
                   np.zeros(a.shape, dtype=np.int64))
    np.testing.assert_array_equal(table(bld, out), expected % (1 << width))


def test_reduce_columns_merges_constants() -> None:
    """Four constant 1s in column 0 are the constant 4: no adder is spent on them."""
    bld = Builder(2, 2, 4)
    a, b = codes(bld)
    out = bld.reduce_columns([[CONST1] * 4, [bld.a[1]], [bld.b[1]]], 4)
    nl = bld.finish(out)
    assert "FA" not in nl.gate_counts()
    np.testing.assert_array_equal(nl.truth_table(), (4 + 2 * (a >> 1) + 4 * (b >> 1)) % 16)


def test_add_two_rows_rejects_unreduced_columns() -> None:
    bld = Builder(2, 2)
    with pytest.raises(ValueError):
        bld.add_two_rows([[bld.a[0], bld.a[1], bld.b[0]]], 1)
