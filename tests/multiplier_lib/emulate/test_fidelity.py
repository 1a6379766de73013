"""Fidelity figures of the low-rank surrogate: hand-checked cases and the expected trends."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from multiplier_lib import HwcostError, exact_lut, generate
from multiplier_lib.emulate.fidelity import (
    Fidelity,
    energy_captured,
    fidelity,
    relative_output_error,
)


def _with_error(error: np.ndarray, signed: bool = False) -> np.ndarray:
    a_bits, b_bits = (int(n).bit_length() - 1 for n in error.shape)
    return (exact_lut(a_bits, b_bits, signed) + error).astype(np.int32)


def test_rank_one_error_table_is_fully_captured_by_rank_one():
    u = np.array([3, 0, -1, 2, 0, 0, 1, 0])
    v = np.array([1, -2, 0, 4])
    lut = _with_error(np.outer(u, v))
    assert energy_captured(lut, 0, signed=False) == 0.0
    assert energy_captured(lut, 1, signed=False) == pytest.approx(1.0, abs=1e-12)
    fid = fidelity(lut, 1, signed=False)
    assert fid.error_left == pytest.approx(0.0, abs=1e-12)
    assert fid.output_rel_error == pytest.approx(0.0, abs=1e-12)


def test_two_orthogonal_terms_split_energy_by_hand():
    # E = outer(u1, v1) + outer(u2, v2), u1 _|_ u2, v1 _|_ v2: singular values |u_i| |v_i|,
    # so s1**2 = 2 * 4 = 8 and s2**2 = 2 * 1 = 2; rank 1 keeps 8 / 10 of the energy.
    u1, u2 = np.array([1, 1, 0, 0]), np.array([1, -1, 0, 0])
    v1, v2 = np.array([2, 0, 0, 0]), np.array([0, 1, 0, 0])
    lut = _with_error(np.outer(u1, v1) + np.outer(u2, v2))
    assert energy_captured(lut, 1, signed=False) == pytest.approx(0.8, abs=1e-12)
    assert energy_captured(lut, 2, signed=False) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", ["exact8u", "exact8s", "exact8ux4"])
def test_exact_multiplier_is_perfect_at_every_rank(name):
    mult = generate(name)
    for rank in (0, 1, 16):
        assert fidelity(mult, rank, trials=2) == Fidelity(rank, 1.0, 0.0, 0.0)


@pytest.mark.parametrize("name", ["trunc8u_k6c", "drum8u_k4", "mitchell8u", "trunc8s_k6"])
def test_rank_zero_leaves_all_error_and_full_rank_none(name):
    mult = generate(name)
    zero = fidelity(mult, 0, trials=2)
    assert zero.energy_captured == 0.0 and zero.error_left == 1.0
    assert zero.output_rel_error > 0
    full = fidelity(mult, min(mult.lut.shape), trials=2)
    assert full.energy_captured == pytest.approx(1.0) and full.error_left == 0.0
    assert full.output_rel_error == 0.0


@pytest.mark.parametrize("name", ["trunc8u_k6", "mitchell8u", "bam8u_h2v6", "comp8u_k8"])
def test_output_error_does_not_grow_with_rank(name):
    """Empirical on these designs (fixed seed): SVD optimises the table, not output sums, so
    this is not a theorem -- for compensated designs rank 1 can lose to rank 0."""
    mult = generate(name)
    left = [relative_output_error(mult, r, trials=4) for r in (0, 1, 2, 4, 8, 16, 64, 256)]
    assert all(b <= a for a, b in pairwise(left)), left
    assert left[0] == 1.0 and left[-1] == 0.0


@pytest.mark.parametrize("name", ["drum8u_k4", "mitchell8u", "comp8u_k8", "trunc8u_k6c"])
def test_energy_captured_is_monotone(name):
    mult = generate(name)
    energy = [energy_captured(mult, r) for r in range(0, 257, 4)]
    assert all(b >= a for a, b in pairwise(energy))
    assert energy[0] == 0.0 and energy[-1] == pytest.approx(1.0)


def test_multiplier_and_bare_lut_agree_and_results_are_deterministic():
    for name in ("mitchell8u", "trunc8s_k6"):
        mult = generate(name)
        by_mult = fidelity(mult, 4, trials=3, seed=7)
        assert fidelity(torch.from_numpy(mult.lut), 4, trials=3, seed=7) == by_mult
        assert fidelity(mult.lut, 4, trials=3, seed=7) == by_mult
    mult = generate("mitchell8u")
    assert fidelity(mult, 4, seed=1) != fidelity(mult, 4, seed=2)
    assert fidelity(mult, 4).as_dict() == {
        "rank": 4, "energy_captured": energy_captured(mult, 4),
        "error_left": relative_output_error(mult, 4),
        "output_rel_error": fidelity(mult, 4).output_rel_error}


def test_bad_arguments_are_clear_errors():
    mult = generate("drum8u_k4")
    with pytest.raises(HwcostError, match="rank"):
        fidelity(mult, 257)
    with pytest.raises(HwcostError, match="rank"):
        energy_captured(mult, -1)
    with pytest.raises(HwcostError, match="trial"):
        relative_output_error(mult, 4, trials=0)
