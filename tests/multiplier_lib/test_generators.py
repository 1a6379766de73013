"""Generated multiplier families against independent integer models.

Every reference here is plain arithmetic on operand bits written in this file (numpy over all
operand pairs), never a call into the generator code, so a wrong netlist, a wrong constant or
a wrong grouping shows up as a LUT mismatch.
"""

from __future__ import annotations

from fractions import Fraction
from math import floor

import numpy as np
import pytest

from multiplier_lib.errors import UnknownMultiplier
from multiplier_lib.generators import (
    FAMILIES,
    builtin_examples,
    generate,
    is_generated_name,
)
from multiplier_lib.multiplier import operand_values

# ----------------------------------------------------------------------------- models


def grids(a_bits: int, b_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Operand codes for every pair, shaped like the LUT."""
    a = np.arange(1 << a_bits, dtype=np.int64)[:, None]
    b = np.arange(1 << b_bits, dtype=np.int64)[None, :]
    return a, b


def wrap(values: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """Reduce to ``width`` output bits and read them back as the LUT does."""
    raw = np.asarray(values, dtype=np.int64) % (1 << width)
    if signed:
        raw = np.where(raw >= 1 << (width - 1), raw - (1 << width), raw)
    return raw


def signed_product(a_bits: int, b_bits: int) -> np.ndarray:
    return np.multiply.outer(operand_values(a_bits, True), operand_values(b_bits, True))


def term_sign(i: int, j: int, a_bits: int, b_bits: int, signed: bool) -> int:
    """Two's complement: A = -a_{n-1} 2^{n-1} + ..., so a_i b_j has sign -1 exactly when one
    of the two bits is a sign bit."""
    if not signed:
        return 1
    return -1 if (i == a_bits - 1) ^ (j == b_bits - 1) else 1


def term_sum(a_bits: int, b_bits: int, signed: bool, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Sum of the signed partial-product terms at ``pairs`` for every operand pair."""
    a, b = grids(a_bits, b_bits)
    total = np.zeros((1 << a_bits, 1 << b_bits), dtype=np.int64)
    for i, j in pairs:
        total += term_sign(i, j, a_bits, b_bits, signed) * (((a >> i) & 1) * ((b >> j) & 1)
                                                            << (i + j))
    return total


def all_pairs(a_bits: int, b_bits: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(a_bits) for j in range(b_bits)]


def dropped_pairs(family: str, params: dict, a_bits: int, b_bits: int) -> list[tuple[int, int]]:
    """The partial products each array family deletes, straight from the family definitions."""
    out = []
    for i, j in all_pairs(a_bits, b_bits):
        if family == "trunc":
            gone = i + j < params["k"]
        elif family == "bam":
            gone = j < params["h"] or i + j < params["v"]
        elif family == "perf":
            gone = params["r"] <= j < params["r"] + params["m"]
        else:
            gone = False
        if gone:
            out.append((i, j))
    return out


def correction(pairs: list[tuple[int, int]], a_bits: int, b_bits: int, signed: bool) -> int:
    """Round-half-up of the mean of the dropped terms (each bit pair is 1 w.p. 1/4)."""
    mean = sum((Fraction(term_sign(i, j, a_bits, b_bits, signed) * 2 ** (i + j), 4)
                for i, j in pairs), Fraction(0))
    return floor(mean + Fraction(1, 2))


def drum_operand(x: int, n: int, k: int) -> tuple[int, int]:
    """DRUM segment value and shift of one operand, from the paper's description."""
    if n <= k or x == 0:
        return x, 0
    t = x.bit_length() - 1
    if t < k:
        return x, 0
    s = t - k + 1
    return (x >> s) | 1, s


def drum_model(a_bits: int, b_bits: int, k: int) -> np.ndarray:
    sa = np.array([drum_operand(x, a_bits, k) for x in range(1 << a_bits)])
    sb = np.array([drum_operand(y, b_bits, k) for y in range(1 << b_bits)])
    seg = np.multiply.outer(sa[:, 0], sb[:, 0])
    shift = np.add.outer(sa[:, 1], sb[:, 1])
    return seg << shift


def mitchell_model(a_bits: int, b_bits: int) -> np.ndarray:
    """Integer form from the description: fractions as F-bit fixed point, F = n - 1."""
    f = max(a_bits, b_bits) - 1
    out = np.zeros((1 << a_bits, 1 << b_bits), dtype=np.int64)
    for x in range(1, 1 << a_bits):
        ta = x.bit_length() - 1
        fa = (x - (1 << ta)) << (f - ta)
        for y in range(1, 1 << b_bits):
            tb = y.bit_length() - 1
            fb = (y - (1 << tb)) << (f - tb)
            s = fa + fb
            c, s_low = s >> f, s & ((1 << f) - 1)
            out[x, y] = (((1 << f) + s_low) << (ta + tb + c)) >> f
    return out


def mitchell_real(a_bits: int, b_bits: int) -> np.ndarray:
    """The textbook real-valued form; float64 is exact here (dyadic values, < 2**20)."""
    a, b = grids(a_bits, b_bits)
    a = np.broadcast_to(a, (1 << a_bits, 1 << b_bits)).astype(np.float64)
    b = np.broadcast_to(b, (1 << a_bits, 1 << b_bits)).astype(np.float64)
    nz = (a > 0) & (b > 0)
    ta = np.floor(np.log2(np.where(a > 0, a, 1)))
    tb = np.floor(np.log2(np.where(b > 0, b, 1)))
    fa = a / 2 ** ta - 1
    fb = b / 2 ** tb - 1
    val = np.where(fa + fb < 1, 2 ** (ta + tb) * (1 + fa + fb), 2 ** (ta + tb + 1) * (fa + fb))
    return np.where(nz, np.floor(val), 0).astype(np.int64)


def comp_model(a_bits: int, b_bits: int, k: int) -> np.ndarray:
    """Bit-value simulation of the documented reduction: columns are ordered lists of 0/1
    arrays; an approximate compressor on (x1, x2, x3, x4) outputs carry = x1x2 OR x3x4 and
    sum = (x1 XOR x2) OR (x3 XOR x4); FA/HA are exact (n // 2, n % 2)."""
    width = a_bits + b_bits
    a, b = grids(a_bits, b_bits)
    shape = (1 << a_bits, 1 << b_bits)
    cols: list[list[np.ndarray]] = [[] for _ in range(width)]
    for j in range(b_bits):
        for i in range(a_bits):
            cols[i + j].append(np.broadcast_to(((a >> i) & 1) * ((b >> j) & 1), shape))
    while any(len(c) > 2 for c in cols):
        nxt: list[list[np.ndarray]] = [[] for _ in range(width)]

        def put(col: int, group: list[np.ndarray], approx: bool, nxt=nxt) -> None:
            n = sum(group)
            if approx:
                x1, x2, x3, x4 = group
                carry = (x1 & x2) | (x3 & x4)
                s = (x1 ^ x2) | (x3 ^ x4)
            else:
                carry, s = n // 2, n % 2
            nxt[col].append(s)
            if col + 1 < width:
                nxt[col + 1].append(carry)

        for col, bits in enumerate(cols):
            rest = list(bits)
            if col < k:
                while len(rest) >= 4:
                    put(col, rest[:4], True)
                    rest = rest[4:]
                if len(rest) == 3:
                    put(col, rest, False)
                    rest = []
            else:
                while len(rest) >= 3:
                    put(col, rest[:3], False)
                    rest = rest[3:]
                if len(rest) == 2 and len(bits) > 2:
                    put(col, rest, False)
                    rest = []
            nxt[col].extend(rest)
        cols = nxt
    total = sum((sum(c) << k2 for k2, c in enumerate(cols) if c), np.zeros(shape, np.int64))
    return total % (1 << width)


# ----------------------------------------------------------------------------- exact


@pytest.mark.parametrize("name,a_bits,b_bits", [
    ("exact8u", 8, 8), ("exact8ux4", 8, 4), ("exact4u", 4, 4), ("exact5ux3", 5, 3),
    ("exact2ux1", 2, 1),
])
def test_exact_unsigned_is_the_product(name: str, a_bits: int, b_bits: int) -> None:
    m = generate(name)
    assert (m.a_bits, m.b_bits, m.signed) == (a_bits, b_bits, False)
    a, b = grids(a_bits, b_bits)
    np.testing.assert_array_equal(m.lut, a * b)


@pytest.mark.parametrize("name,a_bits,b_bits", [
    ("exact8s", 8, 8), ("exact8sx4", 8, 4), ("exact4s", 4, 4), ("exact3sx6", 3, 6),
    ("exact2sx1", 2, 1),
])
def test_exact_signed_is_the_twos_complement_product(name: str, a_bits: int,
                                                     b_bits: int) -> None:
    m = generate(name)
    assert m.signed
    np.testing.assert_array_equal(m.lut, signed_product(a_bits, b_bits))


def test_signed_model_is_the_signed_product() -> None:
    """The bit-level model used below is itself right (otherwise comparisons are void)."""
    for a_bits, b_bits in [(4, 4), (5, 3), (2, 1)]:
        np.testing.assert_array_equal(
            term_sum(a_bits, b_bits, True, all_pairs(a_bits, b_bits)),
            signed_product(a_bits, b_bits))


# ----------------------------------------------------------------------------- array family

ARRAY_CASES = [
    # name, family, a, b, signed, params
    ("trunc8u_k4", "trunc", 8, 8, False, {"k": 4}),
    ("trunc8u_k8", "trunc", 8, 8, False, {"k": 8}),
    ("trunc8u_k14", "trunc", 8, 8, False, {"k": 14}),
    ("trunc8u_k6c", "trunc", 8, 8, False, {"k": 6, "c": 1}),
    ("trunc8ux4_k3c", "trunc", 8, 4, False, {"k": 3, "c": 1}),
    ("trunc4u_k2", "trunc", 4, 4, False, {"k": 2}),
    ("trunc8s_k6", "trunc", 8, 8, True, {"k": 6}),
    ("trunc8s_k8c", "trunc", 8, 8, True, {"k": 8, "c": 1}),
    ("trunc8s_k11c", "trunc", 8, 8, True, {"k": 11, "c": 1}),
    ("trunc4s_k3c", "trunc", 4, 4, True, {"k": 3, "c": 1}),
    ("bam8u_h2v6", "bam", 8, 8, False, {"h": 2, "v": 6}),
    ("bam8u_h0v8", "bam", 8, 8, False, {"h": 0, "v": 8}),
    ("bam8u_h3v0", "bam", 8, 8, False, {"h": 3, "v": 0}),
    ("bam5ux3_h1v2", "bam", 5, 3, False, {"h": 1, "v": 2}),
    ("bam8s_h1v6", "bam", 8, 8, True, {"h": 1, "v": 6}),
    ("bam8s_h7v0", "bam", 8, 8, True, {"h": 7, "v": 0}),
    ("bam4sx3_h1v3", "bam", 4, 3, True, {"h": 1, "v": 3}),
    ("perf8u_r0m2", "perf", 8, 8, False, {"r": 0, "m": 2}),
    ("perf8u_r2m2", "perf", 8, 8, False, {"r": 2, "m": 2}),
    ("perf8u_r6m2", "perf", 8, 8, False, {"r": 6, "m": 2}),
    ("perf4ux4_r1m2", "perf", 4, 4, False, {"r": 1, "m": 2}),
    ("perf8s_r0m1", "perf", 8, 8, True, {"r": 0, "m": 1}),
    ("perf8s_r7m1", "perf", 8, 8, True, {"r": 7, "m": 1}),
    ("perf4s_r1m2", "perf", 4, 4, True, {"r": 1, "m": 2}),
]


@pytest.mark.parametrize("name,family,a_bits,b_bits,signed,params", ARRAY_CASES,
                         ids=[c[0] for c in ARRAY_CASES])
def test_array_families_match_the_partial_product_model(name, family, a_bits, b_bits, signed,
                                                        params) -> None:
    m = generate(name)
    assert (m.a_bits, m.b_bits, m.signed) == (a_bits, b_bits, signed)
    dropped = dropped_pairs(family, params, a_bits, b_bits)
    kept = [p for p in all_pairs(a_bits, b_bits) if p not in dropped]
    corr = correction(dropped, a_bits, b_bits, signed) if params.get("c") else 0
    expected = wrap(term_sum(a_bits, b_bits, signed, kept) + corr, a_bits + b_bits, signed)
    np.testing.assert_array_equal(m.lut, expected)


@pytest.mark.parametrize("name,family,params", [
    ("trunc8u_k4", "trunc", {"k": 4}), ("trunc8u_k9", "trunc", {"k": 9}),
    ("bam8u_h2v6", "bam", {"h": 2, "v": 6}), ("bam8u_h4v3", "bam", {"h": 4, "v": 3}),
    ("perf8u_r3m4", "perf", {"r": 3, "m": 4}), ("trunc8s_k5", "trunc", {"k": 5}),
])
def test_error_is_minus_the_dropped_partial_products(name, family, params) -> None:
    """Closed form: error = -(sum over dropped (i, j) of a_i b_j 2^(i+j)) (signed terms for
    Baugh-Wooley; no wrap-around happens for these parameters)."""
    m = generate(name)
    dropped = term_sum(8, 8, m.signed, dropped_pairs(family, params, 8, 8))
    np.testing.assert_array_equal(m.error_table(), -dropped)


def test_truncation_error_by_hand() -> None:
    """trunc8u_k2 drops a0b0 (weight 1), a1b0 and a0b1 (weight 2)."""
    m = generate("trunc8u_k2")
    assert m.lut[3, 3] == 9 - 1 - 2 - 2
    assert m.lut[1, 1] == 0
    assert m.lut[255, 4] == 1020
    assert m.error_table().min() == -5


@pytest.mark.parametrize("k,expected", [(4, 12), (6, 80), (8, 448)])
def test_correction_constant_is_the_rounded_mean_of_the_dropped_bits(k: int,
                                                                     expected: int) -> None:
    """Sum over columns s < k of (s + 1) 2^s / 4 = ((k - 1) 2^k + 1) / 4, rounded."""
    assert floor(Fraction((k - 1) * 2 ** k + 1, 4) + Fraction(1, 2)) == expected
    plain = generate(f"trunc8u_k{k}").lut.astype(np.int64)
    corrected = generate(f"trunc8u_k{k}c").lut.astype(np.int64)
    np.testing.assert_array_equal(corrected - plain, expected)
    # The correction roughly centres the error, which truncation alone does not.
    assert abs(generate(f"trunc8u_k{k}c").error_table().mean()) < 1.0
    assert generate(f"trunc8u_k{k}").error_table().mean() < -expected + 1


def test_bam_with_h0_is_truncation() -> None:
    np.testing.assert_array_equal(generate("bam8u_h0v5").lut, generate("trunc8u_k5").lut)


# ----------------------------------------------------------------------------- DRUM


@pytest.mark.parametrize("name,a_bits,b_bits,k", [
    ("drum8u_k2", 8, 8, 2), ("drum8u_k3", 8, 8, 3), ("drum8u_k4", 8, 8, 4),
    ("drum8u_k6", 8, 8, 6), ("drum8u_k7", 8, 8, 7), ("drum8ux4_k3", 8, 4, 3),
    ("drum4u_k2", 4, 4, 2), ("drum6ux8_k5", 6, 8, 5),
])
def test_drum_matches_model(name: str, a_bits: int, b_bits: int, k: int) -> None:
    m = generate(name)
    np.testing.assert_array_equal(m.lut, drum_model(a_bits, b_bits, k))


def test_drum_by_hand() -> None:
    m = generate("drum8u_k4")
    # 0b10110110 (182): t = 7, segment 1011 -> LSB forced -> 1011 = 11, shift 4.
    # 0b00001101 (13): t = 3 < 4, kept as is.  11 * 13 << 4 = 2288.
    assert m.lut[182, 13] == 2288
    # 0b10000000: segment 1000 -> 1001, shift 4 -> 144 * 2 = 288.
    assert m.lut[128, 2] == 288
    assert m.lut[15, 15] == 225  # both fit in k bits: exact


def test_drum_relative_error_shrinks_with_k() -> None:
    exact = np.multiply.outer(np.arange(1, 256), np.arange(1, 256))
    worst = []
    for k in (3, 4, 5, 6):
        lut = generate(f"drum8u_k{k}").lut[1:, 1:]
        rel = np.abs(lut - exact) / exact
        worst.append(rel.max())
        # Each operand's segment is within 2^-(k-1) of it (relative), so the product is
        # within (1 + 2^-(k-1))^2 - 1.
        assert rel.max() <= (1 + 2.0 ** (1 - k)) ** 2 - 1 + 1e-12
    assert worst == sorted(worst, reverse=True)


# ----------------------------------------------------------------------------- Mitchell


@pytest.mark.parametrize("name,a_bits,b_bits", [
    ("mitchell8u", 8, 8), ("mitchell4u", 4, 4), ("mitchell6u", 6, 6),
    ("mitchell8ux4", 8, 4), ("mitchell3ux6", 3, 6),
])
def test_mitchell_matches_integer_and_real_forms(name: str, a_bits: int, b_bits: int) -> None:
    m = generate(name)
    np.testing.assert_array_equal(m.lut, mitchell_model(a_bits, b_bits))
    np.testing.assert_array_equal(m.lut, mitchell_real(a_bits, b_bits))


def test_mitchell_error_bound() -> None:
    """Mitchell never overestimates and is within 1/9 (11.1 %) for nonzero operands; the
    bound is reached at 3 x 3 (8 instead of 9)."""
    m = generate("mitchell8u")
    exact = np.multiply.outer(np.arange(256), np.arange(256))
    assert (m.lut <= exact).all()
    rel = (exact[1:, 1:] - m.lut[1:, 1:]) / exact[1:, 1:]
    assert rel.max() <= 1 / 9 + 1e-12
    assert m.lut[3, 3] == 8
    assert (m.lut[0, :] == 0).all() and (m.lut[:, 0] == 0).all()
    # Exact on powers of two.
    for p in range(8):
        for q in range(8):
            assert m.lut[1 << p, 1 << q] == 1 << (p + q)


# ----------------------------------------------------------------------------- compressors


@pytest.mark.parametrize("name,a_bits,b_bits,k", [
    ("comp8u_k1", 8, 8, 1), ("comp8u_k4", 8, 8, 4), ("comp8u_k8", 8, 8, 8),
    ("comp8u_k12", 8, 8, 12), ("comp8u_k15", 8, 8, 15), ("comp4u_k4", 4, 4, 4),
    ("comp8ux4_k6", 8, 4, 6), ("comp6u_k11", 6, 6, 11),
])
def test_comp_matches_model(name: str, a_bits: int, b_bits: int, k: int) -> None:
    m = generate(name)
    np.testing.assert_array_equal(m.lut, comp_model(a_bits, b_bits, k))


def test_comp_errors_are_underestimates_growing_with_k() -> None:
    exact = np.multiply.outer(np.arange(256), np.arange(256))
    np.testing.assert_array_equal(generate("comp8u_k1").lut, exact)  # nothing approximated
    mae = []
    for k in (4, 8, 12):
        err = generate(f"comp8u_k{k}").lut - exact
        assert (err <= 0).all()
        assert (err < 0).any()
        mae.append(np.abs(err).mean())
    assert mae == sorted(mae)
    # 4:2 cells lose when four 1s meet: all-ones operands hit that.
    assert generate("comp8u_k8").lut[255, 255] < 255 * 255


# ----------------------------------------------------------------------------- netlists


def test_netlists_are_real_hardware() -> None:
    exact = generate("exact8u").netlist
    assert exact.gate_counts()["AND"] == 64  # one gate per partial product
    assert set(exact.gate_counts()) == {"AND", "FA", "HA"}
    signed = generate("exact8s").netlist.gate_counts()
    assert signed["NAND"] == 14  # sign row and column of Baugh-Wooley
    assert len(generate("trunc8u_k8").netlist.gates) < len(exact.gates)
    bam = [len(generate(f"bam8u_h1v{v}").netlist.gates) for v in (0, 4, 8, 12)]
    assert bam == sorted(bam, reverse=True) and len(set(bam)) == 4
    trunc = [len(generate(f"trunc8u_k{k}").netlist.gates) for k in (2, 6, 10)]
    assert trunc == sorted(trunc, reverse=True)
    assert len(generate("perf8u_r2m3").netlist.gates) < len(generate("perf8u_r2m1").netlist.gates)
    for name in ("drum8u_k4", "mitchell8u"):
        counts = generate(name).netlist.gate_counts()
        assert counts.get("MUX2", 0) > 0, name
    # DRUM's core is a k x k multiplier, not an 8 x 8 one.
    assert generate("drum8u_k4").netlist.gate_counts()["FA"] < 16


def test_generated_multiplier_metadata() -> None:
    m = generate("trunc8u_k6c")
    assert m.name == "trunc8u_k6c"
    assert m.source == "generated:trunc8u_k6c"
    assert "+80" in m.description
    assert m.netlist is not None and m.netlist.out_bits == 16
    assert generate("exact8ux8").name == "exact8u"  # canonical spelling


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("name,fragment", [
    ("foo", "unknown multiplier 'foo'"),
    ("exact9u", "2..8"),
    ("exact8ux9", "1..8"),
    ("exact1u", "2..8"),
    ("trunc8u_k99", "1..14"),
    ("trunc8u_k0", "1..14"),
    ("trunc4ux2_k5", "1..4"),
    ("trunc8u", "trunc{a}{u|s}[x{b}]_k{K}[c]"),
    ("trunc8u_k4d", "_k{K}[c]"),
    ("trunc8u_k04", "unknown multiplier"),
    ("exact8u_k3", "no parameters"),
    ("bam8u_h8v2", "0..7"),
    ("bam8u_h2v15", "0..14"),
    ("bam8u_h0v0", "exact8u"),
    ("perf8u_r6m3", "r+m"),
    ("perf8u_r0m8", "1..7"),
    ("drum8s_k4", "unsigned only"),
    ("drum8u_k8", "2..7"),
    ("drum8u_k1", "2..7"),
    ("mitchell8s", "unsigned only"),
    ("comp8u_k16", "1..15"),
    ("comp8s_k4", "unsigned only"),
    ("Exact8u", "unknown multiplier"),
])
def test_bad_names_are_explained(name: str, fragment: str) -> None:
    with pytest.raises(UnknownMultiplier) as err:
        generate(name)
    assert fragment in str(err.value)


def test_is_generated_name() -> None:
    assert is_generated_name("exact8u")
    assert is_generated_name("bam8s_h1v6")
    assert is_generated_name("trunc8u_k99")  # routed to generate(), which explains the range
    assert not is_generated_name("mul8u_1JFF")
    assert not is_generated_name("foo")
    assert not is_generated_name("exact")


def test_builtin_examples_cover_every_family() -> None:
    names = builtin_examples()
    assert 15 <= len(names) <= 25
    assert len(set(names)) == len(names)
    families = {f.name for f in FAMILIES}
    built = [generate(n) for n in names]
    assert [m.name for m in built] == names  # canonical
    assert any(m.signed for m in built) and any(not m.signed for m in built)
    assert any((m.a_bits, m.b_bits) == (8, 4) for m in built)
    for fam in families:
        assert any(n.startswith(fam) for n in names), fam


def test_families_are_documented_and_examples_build() -> None:
    assert {f.name for f in FAMILIES} == {"exact", "trunc", "bam", "perf", "drum",
                                          "mitchell", "comp"}
    for fam in FAMILIES:
        assert fam.pattern.startswith(fam.name)
        assert fam.description and "\n" not in fam.description
        assert generate(fam.example).name == fam.example


@pytest.mark.parametrize(("typo", "meant"), [
    ("trunc8u_k6x", "trunc8u_k6c"), ("trunc8u_6c", "trunc8u_k6c"), ("bam8u_h2x6", "bam8u_h2v6"),
    ("perf8u_r2n2", "perf8u_r2m2"), ("drum8u_4", "drum8u_k4"), ("comp8u_8", "comp8u_k8"),
    ("trunc8s_k6C", "trunc8s_k6c"), ("exact8u_k2", "exact8u"), ("mitchell8u_k3", "mitchell8u")])
def test_a_misspelt_parameter_suffix_suggests_the_valid_name(typo, meant):
    from multiplier_lib.errors import UnknownMultiplier
    from multiplier_lib.generators.names import parse

    with pytest.raises(UnknownMultiplier, match="did you mean") as err:
        parse(typo)
    assert meant in str(err.value).split("did you mean", 1)[1]
    assert "\n" not in str(err.value)


def test_every_suggested_name_is_valid_and_of_the_family():
    """The vocabulary the suggestions come from: every name parses back to itself, for
    every family and several widths (so a suggestion never points at another error)."""
    from multiplier_lib.generators.names import FAMILY_SIGNS, family_names, parse

    for family, signs in FAMILY_SIGNS.items():
        for a, b in ((8, 8), (4, 6), (3, 3)):
            for sign in signs:
                names = family_names(family, a, b, sign == "s")
                assert names and len(set(names)) == len(names)
                for name in names:
                    spec = parse(name)
                    assert spec.family == family and spec.name == name
