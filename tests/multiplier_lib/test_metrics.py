"""Error metrics against hand-computed values on a 2x2 multiplier."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multiplier_lib import HwcostError, Multiplier, exact_lut
from multiplier_lib.metrics import error_metrics, joint_distribution, load_histogram


def _hand_2x2() -> Multiplier:
    lut = exact_lut(2, 2, signed=False).copy()
    lut[3, 3] = 8  # err -1 (exact 9)
    lut[2, 3] = 7  # err +1 (exact 6)
    lut[1, 1] = 0  # err -1 (exact 1)
    return Multiplier("hand", 2, 2, False, lut)


def test_uniform_metrics_match_hand_computation():
    m = error_metrics(_hand_2x2())
    assert m.mae == pytest.approx(3 / 16)
    assert m.mae_pct == pytest.approx(3 / 16 / 16 * 100)
    assert m.wce == 1
    assert m.wce_pct == pytest.approx(100 / 16)
    assert m.ep_pct == pytest.approx(3 / 16 * 100)
    assert m.mse == pytest.approx(3 / 16)
    assert m.bias == pytest.approx(-1 / 16)
    assert m.error_std == pytest.approx(math.sqrt(3 / 16 - 1 / 256))
    # relative errors over the 9 pairs whose exact product is non-zero
    assert m.mre_pct == pytest.approx((1 / 9 + 1 / 6 + 1) / 9 * 100)
    assert m.wcre_pct == pytest.approx(100.0)


def test_exact_multiplier_has_zero_error_signed_and_unsigned():
    for signed in (False, True):
        m = error_metrics(Multiplier("x", 4, 3, signed, exact_lut(4, 3, signed)))
        assert (m.mae, m.wce, m.ep_pct, m.mre_pct, m.bias) == (0, 0, 0, 0, 0)


def test_signed_error_uses_twos_complement_values():
    lut = exact_lut(2, 2, signed=True).copy()
    # code 2 is -2, code 3 is -1: exact (-2)*(-1) = 2; make it 3
    lut[2, 3] = 3
    m = error_metrics(Multiplier("s", 2, 2, True, lut))
    assert m.wce == 1 and m.bias == pytest.approx(1 / 16)
    assert m.wcre_pct == pytest.approx(50.0)


def test_weighted_by_one_dimensional_histograms():
    mult = _hand_2x2()
    p = joint_distribution(mult, a_dist=np.array([0, 5, 0, 0]), b_dist=None)
    m = error_metrics(mult, p)
    # only a == 1 occurs; of its four pairs only (1, 1) is wrong, by -1
    assert m.mae == pytest.approx(1 / 4)
    assert m.ep_pct == pytest.approx(25.0)
    assert m.mre_pct == pytest.approx(100 / 3)
    assert m.wce == 1


def test_weighted_joint_excludes_pairs_with_zero_probability_from_wce():
    mult = _hand_2x2()
    joint = np.zeros((4, 4))
    joint[2, 2] = 1.0
    m = error_metrics(mult, joint_distribution(mult, joint=joint))
    assert m.wce == 0 and m.mae == 0 and m.ep_pct == 0


def test_histogram_checks(tmp_path):
    good = tmp_path / "h.npy"
    np.save(good, np.arange(256))
    assert load_histogram(good, length=256).sum() == 255 * 256 / 2
    bad_len = tmp_path / "short.npy"
    np.save(bad_len, np.ones(10))
    with pytest.raises(HwcostError, match="256 entries"):
        load_histogram(bad_len, length=256)
    zero = tmp_path / "zero.npy"
    np.save(zero, np.zeros(256))
    with pytest.raises(HwcostError, match="positive") as info:
        load_histogram(zero, length=256)
    assert "zero.npy" in str(info.value)
    neg = tmp_path / "neg.npy"
    np.save(neg, np.r_[-1.0, np.ones(255)])
    with pytest.raises(HwcostError, match="non-negative"):
        load_histogram(neg, length=256)
    with pytest.raises(HwcostError, match="not found"):
        load_histogram(tmp_path / "missing.npy", length=256)
    text = tmp_path / "text.npy"
    text.write_text("hello")
    with pytest.raises(HwcostError, match="readable"):
        load_histogram(text, length=256)
