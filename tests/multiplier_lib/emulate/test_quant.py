"""Quantizers: domains, parameters, observers, per-channel scales."""

from __future__ import annotations

import pytest
import torch

from core.errors import HwcostError
from multiplier_lib.emulate.quant import Domain, FakeQuantize, Observer, qparams, qparams_np


def test_domains_and_codes():
    u8, s8, u4 = Domain(8, False), Domain(8, True), Domain(4, False)
    assert (u8.qmin, u8.qmax, s8.qmin, s8.qmax, u4.qmax) == (0, 255, -128, 127, 15)
    codes = s8.codes(torch.tensor([-128, -1, 0, 127]))
    assert codes.tolist() == [128, 255, 0, 127]   # two's complement bit patterns
    assert codes.dtype == torch.uint8


def test_asymmetric_params_map_range_ends_to_domain_ends():
    scale, zp = qparams(torch.tensor([-1.0]), torch.tensor([3.0]), Domain(8, False), False)
    assert scale.item() == pytest.approx(4.0 / 255)
    assert zp.item() == round(1.0 / (4.0 / 255))          # real 0 lands on an integer code
    q = torch.clamp(torch.round(torch.tensor([-1.0, 0.0, 3.0]) / scale) + zp, 0, 255)
    assert q.tolist() == [0, zp.item(), 255]


def test_symmetric_params_signed_and_unsigned():
    scale, zp = qparams(torch.tensor([-2.0]), torch.tensor([1.0]), Domain(8, True), True)
    assert zp.item() == 0 and scale.item() == pytest.approx(2.0 / 127)
    scale, zp = qparams(torch.tensor([0.0]), torch.tensor([6.0]), Domain(8, False), True)
    assert zp.item() == 0 and scale.item() == pytest.approx(6.0 / 255)   # post-ReLU data
    scale, zp = qparams(torch.tensor([-1.0]), torch.tensor([2.0]), Domain(8, False), True)
    assert zp.item() == 128 and scale.item() == pytest.approx(2.0 / 127)


def test_range_always_contains_zero():
    scale, zp = qparams(torch.tensor([2.0]), torch.tensor([4.0]), Domain(8, False), False)
    assert zp.item() == 0 and scale.item() == pytest.approx(4.0 / 255)


def test_observers():
    mm = Observer("minmax")
    mm(torch.tensor([1.0, -2.0]))
    mm(torch.tensor([5.0]))
    assert (mm.min_val.item(), mm.max_val.item()) == (-2.0, 5.0)
    ma = Observer("moving_average", momentum=0.5)
    ma(torch.tensor([0.0, 2.0]))
    ma(torch.tensor([0.0, 4.0]))
    assert ma.max_val.item() == pytest.approx(3.0)
    pc = Observer("percentile", percentile=90.0)
    pc(torch.arange(101, dtype=torch.float32))
    assert pc.max_val.item() == pytest.approx(90.0) and pc.min_val.item() == pytest.approx(10.0)
    per_ch = Observer("minmax", axis=0)
    per_ch(torch.tensor([[1.0, -1.0], [3.0, 2.0]]))
    assert per_ch.min_val.tolist() == [-1.0, 2.0] and per_ch.max_val.tolist() == [1.0, 3.0]
    with pytest.raises(HwcostError, match="unknown observer"):
        Observer("histogram")


def test_fake_quantize_error_is_at_most_half_a_step_inside_the_range():
    fq = FakeQuantize(Domain(8, False), axis=0)
    w = torch.randn(4, 3, 3, 3)
    deq = fq(w)
    scale, _ = fq.params()
    step = scale.view(4, 1, 1, 1)
    assert ((deq - w).abs() <= step / 2 + 1e-6).all()
    assert fq.quantize(w)[0].min() >= 0 and fq.quantize(w)[0].max() <= 255


def test_uncalibrated_quantizer_without_data():
    with pytest.raises(HwcostError, match="calibration"):
        FakeQuantize(Domain(8, False)).params()


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("symmetric", [False, True])
def test_numpy_qparams_equal_the_torch_ones_value_for_value(bits, signed, symmetric):
    """The layers' fast path computes quantizer parameters with numpy float32; they must be
    the torch function's to the bit, per tensor (scalar path) and per channel."""
    g = torch.Generator().manual_seed(bits + 2 * signed + 4 * symmetric)
    domain = Domain(bits, signed)
    lo = torch.randn(200, generator=g) * torch.logspace(-6, 3, 200)
    hi = lo + torch.rand(200, generator=g) * torch.logspace(-6, 3, 200)
    lo[:20] = torch.rand(20, generator=g)      # non-negative ranges (ReLU outputs)
    lo[20:25], hi[20:25] = 0.0, 0.0            # an all-zero tensor
    scale, zp = qparams(lo, hi, domain, symmetric)
    scale_np, zp_np = qparams_np(lo.numpy(), hi.numpy(), domain, symmetric)
    assert torch.equal(torch.from_numpy(scale_np), scale)
    assert torch.equal(torch.from_numpy(zp_np), zp)
    for i in range(0, 200, 7):
        s1, z1 = qparams_np(lo[i:i + 1].numpy(), hi[i:i + 1].numpy(), domain, symmetric)
        assert s1.shape == (1,) and s1[0] == scale[i].item() and z1[0] == zp[i].item()


def test_fast_params_observe_like_the_observer_and_cache_frozen_ranges():
    x = torch.randn(4, 3, 5, 5)
    slow = FakeQuantize(Domain(8, False), "minmax")
    fast = FakeQuantize(Domain(8, False), "minmax")
    for batch in (x, 3 * x, 0.5 * x):
        slow.quantize(batch)
        lo, hi = torch.aminmax(batch)
        s, z = fast.fast_params(batch, (lo.reshape(1), hi.reshape(1)))
        assert torch.equal(slow.observer.min_val, fast.observer.min_val)
        assert torch.equal(slow.observer.max_val, fast.observer.max_val)
        s_ref, z_ref = slow.params()
        assert s[0] == s_ref.item() and z[0] == z_ref.item()
    fast.eval()
    first = fast.fast_params(x)
    assert fast.fast_params(10 * x) is first          # frozen observer: cached parameters
    fast.observer.max_val.mul_(2)                      # an edited range is noticed
    assert fast.fast_params(x)[0][0] != first[0][0]
