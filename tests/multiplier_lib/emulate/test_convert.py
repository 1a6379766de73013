"""Model conversion: which layers, weights kept, calibration, state_dict, multiplier swaps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.errors import HwcostError
from multiplier_lib.emulate import (
    ApproxConv2d,
    ApproxLinear,
    approx_layers,
    approximate,
    calibrate,
    set_multiplier,
)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU()),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_replaces_conv_and_linear_keeps_weights_and_original():
    net = small_net()
    approx = approximate(net, "drum8u_k4", backend="reference")
    kinds = [type(m) for _, m in approx_layers(approx)]
    assert kinds == [ApproxConv2d, ApproxConv2d, ApproxLinear]
    assert torch.equal(approx[0].weight, net[0].weight)
    assert torch.equal(approx[5].bias, net[5].bias)
    assert isinstance(net[0], nn.Conv2d) and not isinstance(net[0], ApproxConv2d)
    assert approx[2][0].groups == 4 and approx[0].multiplier.name == "drum8u_k4"


def test_include_exclude_and_per_layer():
    net = small_net()
    only_convs = approximate(net, "exact8u", include=["0", "2.*"], backend="reference")
    assert isinstance(only_convs[5], nn.Linear) and not isinstance(only_convs[5], ApproxLinear)
    no_first = approximate(net, "exact8u", exclude=["0"], backend="reference")
    assert not isinstance(no_first[0], ApproxConv2d)
    mixed = approximate(net, "exact8u", per_layer={"5": "trunc8u_k6"}, backend="reference")
    assert mixed[5].multiplier.name == "trunc8u_k6" and mixed[0].multiplier.name == "exact8u"
    with pytest.raises(HwcostError, match="per_layer names no module"):
        approximate(net, "exact8u", per_layer={"classifier": "exact8u"})
    with pytest.raises(HwcostError, match="nothing to approximate"):
        approximate(net, "exact8u", include=["nothing*"])


def test_calibration_freezes_ranges_and_outputs_track_the_float_model():
    net = small_net()
    approx = approximate(net, "exact8u", backend="reference")
    data = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    calibrate(approx, data)
    first = approx[0].act_quant.observer.max_val.clone()
    approx.train()
    approx(torch.randn(4, 3, 8, 8) * 10)         # observers are off after calibration
    assert torch.equal(approx[0].act_quant.observer.max_val, first)
    x = data[0]
    err = (approx(x) - net(x)).abs().max() / net(x).abs().max()
    assert err < 0.1
    with pytest.raises(HwcostError, match="at least one batch"):
        calibrate(approx, [])


def test_state_dict_round_trip_restores_multiplier_and_ranges():
    net = small_net()
    a = approximate(net, "trunc8u_k6", per_layer={"5": "exact8u"}, backend="reference")
    calibrate(a, [torch.randn(2, 3, 8, 8)])
    b = approximate(net, "exact8u", backend="reference")
    b.load_state_dict(a.state_dict())
    assert b[0].multiplier.name == "trunc8u_k6" and b[5].multiplier.name == "exact8u"
    assert torch.equal(b[0].act_quant.observer.max_val, a[0].act_quant.observer.max_val)
    x = torch.randn(2, 3, 8, 8)
    a.eval()
    b.eval()
    assert torch.equal(a(x), b(x))


def test_switching_the_multiplier_after_training_changes_only_the_products():
    net = small_net()
    a = approximate(net, "exact8u", backend="reference")
    calibrate(a, [torch.randn(2, 3, 8, 8)])
    a.eval()
    x = torch.randn(2, 3, 8, 8)
    before = a(x)
    set_multiplier(a, "trunc8u_k8")
    after = a(x)
    assert not torch.equal(before, after)
    assert all(m.multiplier.name == "trunc8u_k8" for _, m in approx_layers(a))
    set_multiplier(a, "exact8u", layers=["0", "2.0", "5"])
    assert torch.equal(a(x), before)
    with pytest.raises(HwcostError, match="not approximate layers"):
        set_multiplier(a, "exact8u", layers=["1"])


def test_unsupported_layer_is_named():
    class MyConv(nn.Conv2d):
        pass

    net = nn.Sequential(MyConv(1, 1, 3))
    with pytest.raises(HwcostError, match="layer 0: MyConv is not supported"):
        approximate(net, "exact8u")
