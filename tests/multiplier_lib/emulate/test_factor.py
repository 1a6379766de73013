"""Exact rank-one factorization of product tables, held against independent oracles: the
2x2 minors (a table is an outer product iff every 2x2 minor vanishes), brute-forced on small
tables, and the float64 SVD rank of the library's 8-bit tables."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multiplier_lib.emulate.factor import FLOAT32_EXACT, float_sums_exact, outer_factors
from multiplier_lib.generators import generate


def _rank_at_most_one(table: np.ndarray) -> bool:
    """Brute force: every 2x2 minor is zero."""
    rows, cols = table.shape
    for i, k in itertools.combinations(range(rows), 2):
        for j, m in itertools.combinations(range(cols), 2):
            if int(table[i, j]) * int(table[k, m]) != int(table[i, m]) * int(table[k, j]):
                return False
    return True


vectors = st.lists(st.integers(-300, 300), min_size=1, max_size=7)


@st.composite
def small_tables(draw):
    """Outer products of integer vectors (scaled by a common factor so the columns are not
    primitive), some with one entry changed, which usually breaks the rank."""
    u = draw(vectors)
    v = draw(st.lists(st.integers(-300, 300), min_size=1, max_size=7))
    scale = draw(st.sampled_from([1, 2, 6, -35]))
    table = np.outer(np.array(u) * scale, np.array(v)).astype(np.int64)
    if draw(st.booleans()):
        i = draw(st.integers(0, table.shape[0] - 1))
        j = draw(st.integers(0, table.shape[1] - 1))
        table[i, j] += draw(st.sampled_from([-1, 1, 7]))
    return table


@settings(max_examples=300, deadline=None)
@given(small_tables())
def test_factors_exist_exactly_when_every_minor_vanishes(table):
    found = outer_factors(torch.from_numpy(table).to(torch.int32))
    assert (found is not None) == _rank_at_most_one(table)
    if found is not None:
        assert found.u.dtype == found.v.dtype == torch.int64
        assert np.array_equal(np.outer(found.u.numpy(), found.v.numpy()), table)


@pytest.mark.parametrize("name", ["exact8u", "exact8s", "exact8ux4", "drum8u_k4", "drum8u_k6",
                                  "perf8u_r2m2", "perf8s_r2m2", "mitchell8u", "trunc8u_k6",
                                  "trunc8u_k6c", "bam8u_h2v6", "comp8u_k8"])
def test_library_tables_factor_exactly_when_their_rank_is_one(name):
    lut = np.asarray(generate(name).lut)
    rank = np.linalg.matrix_rank(lut.astype(np.float64))
    found = outer_factors(torch.from_numpy(lut))
    assert (found is not None) == (rank <= 1), f"{name}: rank {rank}"
    if found is not None:
        assert np.array_equal(np.outer(found.u.numpy(), found.v.numpy()), lut)


def test_the_exact_multiplier_factors_into_its_operand_values():
    found = outer_factors(torch.from_numpy(np.asarray(generate("exact8s").lut)))
    values = torch.tensor([c if c < 128 else c - 256 for c in range(256)])
    # up to a common sign: u = +-values, v = +-values
    sign = int(found.u[1])
    assert torch.equal(found.u, sign * values) and torch.equal(found.v, sign * values)
    assert found.peak == 128 * 128


def test_degenerate_tables():
    zeros = outer_factors(torch.zeros(4, 3, dtype=torch.int32))
    assert zeros is not None and zeros.peak == 0
    assert outer_factors(torch.ones(3, 3)) is None            # float tables are not tables
    assert outer_factors(torch.ones(2, 2, 2, dtype=torch.int32)) is None
    column = torch.tensor([[0, 5], [0, -10], [0, 0]], dtype=torch.int32)
    found = outer_factors(column)
    assert found is not None and torch.equal(torch.outer(found.u, found.v), column.long())


def test_float_sums_bound():
    found = outer_factors(torch.from_numpy(np.asarray(generate("exact8u").lut)))
    assert found.peak == 255 * 255
    limit = (FLOAT32_EXACT - 1) // found.peak          # 258 products of up to 65025
    assert float_sums_exact(found, limit) and not float_sums_exact(found, limit + 1)
