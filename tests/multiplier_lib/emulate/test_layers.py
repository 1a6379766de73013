"""Approximate layers: exactness with the exact LUT, corrections, gradients, errors."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from core.errors import HwcostError
from multiplier_lib import Multiplier, exact_lut, generate
from multiplier_lib.emulate import ApproxConv2d, ApproxLinear, gradient_tables


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.integers(0, 2))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    size = draw(st.integers(dilation * (k - 1) + 1, 7))
    if mode != "zeros":
        size = max(size, padding + 1)
    batch = draw(st.integers(1, 3))
    signed = draw(st.booleans())
    per_channel = draw(st.booleans())
    symmetric = draw(st.booleans())
    return dict(groups=groups, cin=cin, cout=cout, k=k, stride=stride, dilation=dilation,
                padding=padding, mode=mode, size=size, batch=batch, signed=signed,
                per_channel=per_channel, symmetric=symmetric)


def _integer_conv(layer: ApproxConv2d, x: torch.Tensor) -> torch.Tensor:
    """Independent: quantize, pad real zeros / modes, integer conv of (q - zp) in float64."""
    ph, pw = layer._pad_amount
    if layer.padding_mode != "zeros" and (ph or pw):
        x = F.pad(x, (pw, pw, ph, ph), mode=layer.padding_mode)
        ph = pw = 0
    qx, _, zx = layer.act_quant.quantize(x)
    qw, _, zw = layer.weight_quant.quantize(layer.weight)
    xi = F.pad((qx - zx).double(), (pw, pw, ph, ph))
    return F.conv2d(xi, (qw - zw).double(), None, layer.stride, 0, layer.dilation, layer.groups)


@settings(max_examples=40, deadline=None)
@given(conv_configs(), st.integers(0, 10_000))
def test_exact_lut_equals_quantized_integer_convolution(cfg, seed):
    torch.manual_seed(seed)
    name = "exact8s" if cfg["signed"] else "exact8u"
    layer = ApproxConv2d(cfg["cin"], cfg["cout"], cfg["k"], cfg["stride"], cfg["padding"],
                         cfg["dilation"], cfg["groups"], padding_mode=cfg["mode"],
                         multiplier=name, backend="reference",
                         weight_per_channel=cfg["per_channel"],
                         act_symmetric=cfg["symmetric"], weight_symmetric=cfg["symmetric"])
    layer.keep_accumulator = True
    x = torch.randn(cfg["batch"], cfg["cin"], cfg["size"], cfg["size"])
    out = layer(x)
    expected = _integer_conv(layer, x)
    assert torch.equal(layer._last_accumulator, expected)
    ref = F.conv2d(F.pad(x, (cfg["padding"],) * 4, mode="constant" if cfg["mode"] == "zeros"
                         else cfg["mode"]), layer.weight, layer.bias, cfg["stride"], 0,
                   cfg["dilation"], cfg["groups"])
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 0.1 * ref.abs().max() + 0.05   # 8-bit quantization noise


def test_approximate_lut_changes_exactly_the_lut_sum():
    torch.manual_seed(1)
    exact = ApproxConv2d(2, 3, 3, padding=1, multiplier="exact8u", backend="reference")
    approx = ApproxConv2d(2, 3, 3, padding=1, multiplier="trunc8u_k6", backend="reference")
    approx.load_state_dict(exact.state_dict(), strict=False)
    approx.set_multiplier("trunc8u_k6")
    exact.keep_accumulator = approx.keep_accumulator = True
    x = torch.rand(1, 2, 5, 5)
    exact(x)
    approx(x)
    # same quantized operands; the accumulators differ by sum(LUT_trunc - LUT_exact)
    qx, _, _ = approx.act_quant.quantize(x)
    qw, _, _ = approx.weight_quant.quantize(approx.weight)
    err = torch.as_tensor(generate("trunc8u_k6").lut - exact_lut(8, 8, False), dtype=torch.float64)
    zcode = int(approx.act_quant.quantize(torch.zeros(1))[0].item())
    xc = F.pad(qx, (1, 1, 1, 1), value=zcode)
    cols = F.unfold(xc.double(), 3).long()                          # (1, 18, 25)
    delta = err[cols, qw.view(3, -1).long().unsqueeze(-1).unsqueeze(0)].sum(dim=2)
    got = approx._last_accumulator - exact._last_accumulator
    assert torch.equal(got.view(1, 3, 25), delta.view(1, 3, 25))
    assert (got < 0).any()                                         # truncation underestimates


def test_linear_matches_conv_semantics_and_float_reference():
    torch.manual_seed(2)
    lin = ApproxLinear(6, 4, multiplier="exact8u", backend="reference")
    x = torch.randn(3, 2, 6)                                        # extra leading dims
    out = lin(x)
    assert out.shape == (3, 2, 4)
    ref = F.linear(x, lin.weight, lin.bias)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 0.02


def test_ste_gradients_are_those_of_the_dequantized_convolution():
    torch.manual_seed(3)
    layer = ApproxConv2d(2, 3, 3, stride=2, padding=1, multiplier="drum8u_k4",
                         backend="reference")
    x = torch.randn(2, 2, 7, 7, requires_grad=True)
    layer(x).square().sum().backward()
    gx, gw = x.grad.clone(), layer.weight.grad.clone()
    # independent: autograd through F.conv2d of the dequantized operands, same upstream grad
    qx, sx, zx = layer.act_quant.quantize(x)
    qw, sw, zw = layer.weight_quant.quantize(layer.weight)
    xd = ((qx - zx).float() * sx).requires_grad_()
    wd = ((qw - zw).float() * sw).requires_grad_()
    upstream = 2 * layer(x).detach()
    F.conv2d(xd, wd, None, 2, 1).backward(upstream)
    assert torch.allclose(gx, xd.grad, atol=1e-5)
    assert torch.allclose(gw, wd.grad, atol=1e-4)


def test_lut_gradients_follow_the_difference_tables():
    torch.manual_seed(4)
    lin = ApproxLinear(5, 3, multiplier="mitchell8u", backend="reference", grad="lut")
    x = torch.rand(2, 5, requires_grad=True)
    out = lin(x)
    g = torch.randn_like(out)
    out.backward(g)
    da, db = gradient_tables(torch.as_tensor(generate("mitchell8u").lut), signed=False)
    qx, sx, zx = lin.act_quant.quantize(x.view(2, 5, 1, 1))
    qw, sw, zw = lin.weight_quant.quantize(lin.weight.view(3, 5, 1, 1))
    qx, qw = qx.view(2, 5).long(), qw.view(3, 5).long()
    sw, zw = sw.view(3), zw.view(3)
    expect_x = torch.zeros(2, 5)
    expect_w = torch.zeros(3, 5)
    for n in range(2):
        for m in range(3):
            for k in range(5):
                a, b = qx[n, k], qw[m, k]
                expect_x[n, k] += g[n, m] * sw[m] * (da[a, b] - zw[m])
                expect_w[m, k] += g[n, m] * sx * (db[a, b] - zx)
    assert torch.allclose(x.grad, expect_x, atol=1e-4)
    assert torch.allclose(lin.weight.grad, expect_w, atol=1e-4)


def test_gradient_tables_of_the_exact_product_are_the_other_operand():
    da, db = gradient_tables(torch.as_tensor(exact_lut(8, 8, True)), signed=True)
    vals = torch.tensor(np.where(np.arange(256) >= 128, np.arange(256) - 256, np.arange(256)),
                        dtype=torch.float32)
    assert torch.allclose(da, vals.view(1, -1).expand(256, 256), atol=1e-4)
    assert torch.allclose(db, vals.view(-1, 1).expand(256, 256), atol=1e-4)


def test_small_cnn_learns_with_an_approximate_multiplier():
    torch.manual_seed(5)
    n = 64
    x = torch.randn(n, 1, 8, 8)
    y = (x[:, :, :4].mean(dim=(1, 2, 3)) > x[:, :, 4:].mean(dim=(1, 2, 3))).long()
    model = torch.nn.Sequential(
        ApproxConv2d(1, 4, 3, padding=1, multiplier="trunc8u_k6c", backend="reference"),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
        ApproxLinear(16, 2, multiplier="trunc8u_k6c", backend="reference"))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_bad_input_errors_name_the_layer():
    layer = ApproxConv2d(1, 1, 3, name="features.0", backend="reference")
    with pytest.raises(HwcostError, match=r"features\.0.*NaN"):
        layer(torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(HwcostError, match=r"features\.0.*unknown multiplier"):
        layer.set_multiplier("mul8u_NOPE")
    with pytest.raises(HwcostError, match="gradient mode"):
        ApproxConv2d(1, 1, 3, grad="exact")
    with pytest.raises(HwcostError, match="backend"):
        ApproxConv2d(1, 1, 3, backend="fpga")(torch.rand(1, 1, 4, 4))
    big = Multiplier("huge", 8, 8, False, np.full((256, 256), 2**30, dtype=np.int64))
    with pytest.raises(HwcostError, match="overflows"):
        ApproxLinear(4, 1, multiplier=big, backend="reference")(torch.rand(1, 4))


def test_narrow_weight_multiplier_quantizes_weights_to_its_width():
    layer = ApproxConv2d(1, 2, 1, multiplier="exact8ux4", backend="reference")
    layer(torch.rand(1, 1, 3, 3))
    qw, _, _ = layer.weight_quant.quantize(layer.weight)
    assert qw.max() <= 15 and layer.weight_quant.domain.bits == 4


@pytest.mark.parametrize("backend", ["cpu", "auto"])
def test_layer_outputs_identical_across_exact_backends(backend):
    torch.manual_seed(6)
    ref = ApproxConv2d(4, 6, 3, stride=2, padding=1, groups=2, multiplier="mitchell8u",
                       backend="reference")
    other = ApproxConv2d(4, 6, 3, stride=2, padding=1, groups=2, multiplier="mitchell8u",
                         backend=backend)
    other.load_state_dict(ref.state_dict())
    assert other.backend == backend and ref.backend == "reference"
    x = torch.randn(2, 4, 9, 9)
    ref(x)
    other(x)  # observe the same batch
    ref.eval()
    other.eval()
    assert torch.equal(ref(x), other(x))


def _pair(cfg, multiplier: str):
    """The same layer twice: op by op (reference backend) and fused (cpu backend)."""
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
              groups=cfg["groups"], padding_mode=cfg["mode"], multiplier=multiplier,
              weight_per_channel=cfg["per_channel"], act_symmetric=cfg["symmetric"],
              weight_symmetric=cfg["symmetric"])
    slow = ApproxConv2d(cfg["cin"], cfg["cout"], cfg["k"], backend="reference", **kw)
    fast = ApproxConv2d(cfg["cin"], cfg["cout"], cfg["k"], backend="cpu", **kw)
    fast.load_state_dict(slow.state_dict())
    return slow, fast


def _observer_state(layer) -> list[torch.Tensor]:
    return [t.clone() for q in (layer.act_quant, layer.weight_quant)
            for t in (q.observer.min_val, q.observer.max_val)]


def _step_both(slow, fast, x, backward: bool = False):
    """One forward (and backward of a random gradient) of both layers on ``x``; asserts
    equal outputs, observer ranges and (STE) gradients."""
    xs, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    ys, yf = slow(xs), fast(xf)
    assert type(yf.grad_fn).__name__.startswith("_FusedConvFunction")
    assert torch.equal(ys, yf)
    for a, b in zip(_observer_state(slow), _observer_state(fast)):
        assert torch.equal(a, b)
    if backward:
        g = torch.randn_like(ys)
        for layer in (slow, fast):
            layer.zero_grad()
        ys.backward(g)
        yf.backward(g)
        torch.testing.assert_close(xf.grad, xs.grad, rtol=1e-5, atol=1e-5)   # sum order
        torch.testing.assert_close(fast.weight.grad, slow.weight.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast.bias.grad, slow.bias.grad)


@pytest.mark.parametrize("float_sums", ["auto", "always"])
@settings(max_examples=30, deadline=None)
@given(conv_configs(), st.sampled_from(["mitchell8u", "drum8u_k4", "exact8ux4", "exact8s"]),
       st.integers(0, 10_000), st.lists(st.sampled_from([0.25, 1.0, 3.0]), min_size=2,
                                        max_size=3))
def test_fused_forward_equals_the_op_by_op_path(float_sums, cfg, name, seed, scales):
    """The one-call native forward (quantize, pad, LUT conv, corrections, scale) gives the
    op-by-op path's float32 bits, in training (observing) and in eval; STE gradients agree.
    After the first batch initializes the observers, the fused call updates the running
    ranges and picks the quantizer parameters itself: several training steps on batches of
    different spread (ranges growing or not) and moved weights must keep both layers'
    observers, outputs and gradients identical.  With ``float_sums="always"`` the rank-one
    tables (DRUM, exact) take the float-sum path on every shape."""
    if cfg["signed"] and name != "exact8s":
        name = "exact8s"
    from multiplier_lib.emulate.backends import cpu
    torch.manual_seed(seed)
    previous = cpu._set_float_sums(float_sums)
    try:
        _fused_steps(cfg, name, scales)
    finally:
        cpu._set_float_sums(previous)


def _fused_steps(cfg, name: str, scales) -> None:
    slow, fast = _pair(cfg, name)
    x = torch.randn(cfg["batch"], cfg["cin"], cfg["size"], cfg["size"])
    _step_both(slow, fast, x, backward=True)
    for scale in scales:
        with torch.no_grad():
            for layer in (slow, fast):
                layer.weight.mul_(scale)
        _step_both(slow, fast, scale * torch.randn_like(x) - 0.1 * scale, backward=True)
    slow.eval()
    fast.eval()
    with torch.no_grad():
        assert torch.equal(slow(2 * x), fast(2 * x))   # clipped: frozen ranges


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("name", ["trunc8u_k6c", "exact8s"])
@pytest.mark.parametrize("inputs", ["zeros", "negative", "constant", "tiny", "huge", "signed_zero",
                                    "half_step"])
def test_fused_observers_on_edge_ranges(inputs, name, symmetric):
    """Ranges where the parameter arithmetic has edge cases (a zero-width range, an
    all-negative one, one narrower than float32 epsilon steps, extreme magnitudes, -0.0, a
    zero point exactly between two integers, which rounds half to even):
    the native parameters equal ``quant.qparams_np``'s through the op-by-op layer."""
    torch.manual_seed(9)
    cfg = dict(stride=1, padding=1, dilation=1, groups=1, mode="zeros", per_channel=True,
               symmetric=symmetric, cin=3, cout=4, k=3)
    slow, fast = _pair(cfg, name)
    base = torch.randn(2, 3, 5, 5)
    make = {"zeros": lambda: torch.zeros(2, 3, 5, 5),
            "negative": lambda: -base.abs() - 1,
            "constant": lambda: torch.full((2, 3, 5, 5), 0.7),
            "tiny": lambda: 1e-9 * base,
            "huge": lambda: 1e30 * base,
            "signed_zero": lambda: torch.full((2, 3, 5, 5), -0.0),
            "half_step": lambda: _half_step_batch(base)}[inputs]
    if inputs == "tiny":   # weights of the same scale (huge ones would overflow the output)
        with torch.no_grad():
            for layer in (slow, fast):
                layer.weight.mul_(1e-9)
    _step_both(slow, fast, make())                  # initializes the observers
    _step_both(slow, fast, make(), backward=True)   # the native call observes
    _step_both(slow, fast, 2 * make(), backward=True)
    _step_both(slow, fast, base, backward=True)


def _half_step_batch(base: torch.Tensor) -> torch.Tensor:
    """Values in [-2.5, 252.5]: an 8-bit asymmetric scale of exactly 1, so the zero point
    is rint(2.5) = 2 (half to even), not 3."""
    x = (base.abs() * 40).clamp(max=252.5) - 2.5
    x.view(-1)[0], x.view(-1)[1] = -2.5, 252.5
    return x


def test_fused_observed_path_refuses_non_finite_input_and_keeps_the_ranges():
    layer = ApproxConv2d(2, 3, 3, padding=1, multiplier="mitchell8u", backend="cpu",
                         name="cell.0.op")
    layer(torch.randn(1, 2, 5, 5))   # initializes the observers (Python path)
    before = _observer_state(layer)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.randn(1, 2, 5, 5)
        x[0, 1, 2, 3] = bad
        with pytest.raises(HwcostError, match=r"^layer cell\.0\.op: input contains NaN"):
            layer(x)
        assert all(torch.equal(a, b) for a, b in zip(before, _observer_state(layer)))


def test_fused_linear_and_candidate_blocks_equal_the_op_by_op_path():
    torch.manual_seed(3)
    slow = ApproxLinear(20, 7, multiplier="mitchell8u", backend="reference")
    fast = ApproxLinear(20, 7, multiplier="mitchell8u", backend="cpu")
    fast.load_state_dict(slow.state_dict())
    x = torch.randn(5, 3, 20)
    for scale in (1.0, 2.0, 0.5):   # the first call initializes, the later ones observe
        assert torch.equal(slow(scale * x), fast(scale * x))
    names = ["exact8u", "mitchell8u", "drum8u_k4"]
    slow = ApproxConv2d(4, 4, 3, padding=1, multiplier=names[0], backend="reference")
    fast = ApproxConv2d(4, 4, 3, padding=1, multiplier=names[0], backend="cpu")
    fast.load_state_dict(slow.state_dict())
    for layer in (slow, fast):
        layer.set_candidates(names)
    x = torch.randn(2, 4, 6, 6).repeat(3, 1, 1, 1)
    for scale in (1.0, 3.0):
        assert torch.equal(slow(scale * x), fast(scale * x))
    with pytest.raises(HwcostError, match="cannot be split into 3 equal blocks"):
        fast(x[:4])
    for layer in (slow, fast):   # one sampled candidate on the whole batch
        layer.select_candidate(2)
    assert torch.equal(slow(2 * x[:4]), fast(2 * x[:4]))
    for a, b in zip(_observer_state(slow), _observer_state(fast)):
        assert torch.equal(a, b)


def test_other_dtypes_take_the_op_by_op_path_and_bad_input_is_refused_on_both():
    layer = ApproxConv2d(2, 3, 3, padding=1, multiplier="mitchell8u", backend="cpu").double()
    y = layer(torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True))
    assert y.dtype == torch.float64 and type(y.grad_fn).__name__ == "_LutConvFunctionBackward"
    fast = ApproxConv2d(2, 3, 3, padding=1, multiplier="mitchell8u", backend="cpu")
    with pytest.raises(HwcostError, match="NaN or infinite"):
        fast(torch.full((1, 2, 5, 5), float("nan")))


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16"])
def test_float_baseline_runs_the_same_weights_in_float_and_swaps_back(fmt):
    torch.manual_seed(4)
    conv = nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect")
    layer = ApproxConv2d.from_conv(conv, multiplier="mitchell8u", backend="cpu")
    x = torch.randn(2, 3, 7, 7)
    approx = layer(x).detach()
    layer.set_multiplier(fmt)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[fmt]

    def rounded(t):
        return t.to(dtype).to(torch.float32)

    expected = conv._conv_forward(rounded(x), rounded(conv.weight), rounded(conv.bias))
    assert torch.equal(layer(x), expected)
    assert layer.multiplier_name == fmt and f"multiplier={fmt}" in repr(layer)
    twin = ApproxConv2d.from_conv(conv, multiplier="exact8u", backend="cpu")
    twin.load_state_dict(layer.state_dict())          # the float mode travels in the state
    assert twin.multiplier_name == fmt and torch.equal(twin(x), expected)
    layer.set_multiplier("mitchell8u")                 # back to the LUT, same ranges
    assert torch.equal(layer(x).detach(), approx)
    lin = ApproxLinear(6, 2, multiplier="fp32", backend="cpu")
    xl = torch.randn(4, 6)
    assert torch.equal(lin(xl), F.linear(xl, lin.weight, lin.bias))



def test_set_multiplier_takes_the_typed_arithmetic():
    from core.arithmetic import FLOAT_FORMATS, IntMultiplier
    from multiplier_lib.emulate import set_multiplier

    torch.manual_seed(5)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(2, 2, 6, 6)
    by_name = ApproxConv2d.from_conv(conv, multiplier="fp16", backend="reference")
    typed = ApproxConv2d.from_conv(conv, multiplier=FLOAT_FORMATS["fp16"], backend="reference")
    upper = ApproxConv2d.from_conv(conv, multiplier="FP16", backend="reference")
    for layer in (by_name, typed, upper):
        assert layer.float_format == "fp16" and layer.arithmetic is FLOAT_FORMATS["fp16"]
    assert torch.equal(typed(x), by_name(x)) and torch.equal(upper(x), by_name(x))
    mitchell = generate("mitchell8u")
    typed.set_multiplier(IntMultiplier(mitchell))        # back to a LUT, as an arithmetic
    assert typed.float_format is None and typed.multiplier is mitchell
    assert typed.arithmetic == IntMultiplier(mitchell)
    model = nn.Sequential(ApproxConv2d.from_conv(conv, multiplier="mitchell8u",
                                                 backend="reference"))
    set_multiplier(model, FLOAT_FORMATS["bf16"])
    assert model[0].multiplier_name == "bf16"
    with pytest.raises(HwcostError, match="fp32 is a float format, not a multiplier"):
        typed.set_candidates([FLOAT_FORMATS["fp32"], "exact8u"])

def test_autograd_functions_get_a_frozen_description_not_the_module():
    import dataclasses

    lin = ApproxLinear(5, 3, multiplier="mitchell8u", backend="reference")
    spec = lin.conv_spec((0, 0))
    assert (spec.kernel_size, spec.stride, spec.groups, spec.in_channels,
            spec.out_channels) == ((1, 1), (1, 1), 1, 5, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stride = (2, 2)
    conv = ApproxConv2d(4, 6, 3, padding=2, dilation=2, groups=2, padding_mode="reflect",
                        multiplier="mitchell8u", backend="reference")
    spec = conv.conv_spec((0, 0))
    assert spec.dilation == (2, 2) and spec.groups == 2 and spec.luts[0] is conv.lut
    conv.set_candidates(["exact8u", "mitchell8u"])
    assert conv.conv_spec((0, 0)).candidates and len(conv.conv_spec((0, 0)).luts) == 2


def test_finiteness_check_on_accelerators_is_opt_in(monkeypatch):
    from multiplier_lib.emulate import modules

    layer = ApproxConv2d(1, 1, 1, multiplier="exact8u", backend="reference")
    meta = torch.empty(1, 1, 2, 2, device="meta")      # stands in for a device tensor
    monkeypatch.setattr(modules, "CHECK_FINITE_ON_DEVICE", False)
    layer._check_input(meta)                            # no host sync, no check
    monkeypatch.setattr(modules, "CHECK_FINITE_ON_DEVICE", True)
    with pytest.raises((RuntimeError, NotImplementedError)):
        layer._check_input(meta)                        # it now reads the values
    with pytest.raises(HwcostError, match="NaN"):
        layer._check_input(torch.tensor([[[[float("inf")]]]]))   # CPU: always checked


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.sampled_from([1, 3, 5]),
       st.integers(1, 2), st.integers(1, 2), st.integers(0, 2), st.integers(4, 9),
       st.integers(0, 1000))
def test_depthwise_weight_grad_per_tap_equals_torch(batch, channels, k, stride, dilation, pad,
                                                      size, seed):
    """The per-tap depthwise weight gradient against torch's own, in float64 (exact up to
    summation order) for any kernel, stride, dilation and padding, non-square kernels too."""
    from multiplier_lib.emulate.functional import depthwise_weight_grad

    g = torch.Generator().manual_seed(seed)
    kh, kw = k, max(1, k - 2)
    if size + 2 * pad < dilation * (max(kh, kw) - 1) + 1:
        return
    x = torch.randn(batch, channels, size, size, generator=g, dtype=torch.float64)
    w = torch.randn(channels, 1, kh, kw, generator=g, dtype=torch.float64)
    y = F.conv2d(x, w, None, stride, pad, dilation, channels)
    up = torch.randn(y.shape, generator=g, dtype=torch.float64)
    want = torch.nn.grad.conv2d_weight(x, w.shape, up, stride, pad, dilation, channels)
    got = depthwise_weight_grad(x, up, (kh, kw), (stride, stride), (pad, pad),
                                (dilation, dilation))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_depthwise_layers_take_the_per_tap_weight_gradient(monkeypatch):
    """A dilated depthwise ApproxConv2d's STE backward goes through the per-tap sum (a
    grouped, not depthwise, one and undilated ones, where torch's channels-last kernel is
    faster, do not), and every variant gives the gradient of the dequantized convolution."""
    from multiplier_lib.emulate import functional

    calls = []
    real = functional.depthwise_weight_grad
    monkeypatch.setattr(functional, "depthwise_weight_grad",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    for groups, k, dil, expect in ((8, 5, 2, 1), (8, 3, 2, 1), (4, 5, 2, 0), (8, 5, 1, 0),
                                   (8, 3, 1, 0)):
        calls.clear()
        pad = dil * (k // 2)
        layer = ApproxConv2d(8, 8, k, padding=pad, dilation=dil, groups=groups,
                             multiplier="drum8u_k4", backend="cpu", bias=False)
        x = torch.randn(4, 8, 16, 16, requires_grad=True)
        layer(x)   # first batch: initializes the observers
        y = layer(x)
        assert type(y.grad_fn).__name__.startswith("_FusedConvFunction")
        y.square().sum().backward()
        assert len(calls) == expect
        qw, sw, zw = layer.weight_quant.quantize(layer.weight)
        qx, sx, zx = layer.act_quant.quantize(x)
        wd = ((qw - zw).float() * sw).requires_grad_()
        xd = ((qx - zx).float() * sx).requires_grad_()
        F.conv2d(xd, wd, None, 1, pad, dil, groups).backward(2 * y.detach())
        clip = ((x / sx + zx >= -0.5) & (x / sx + zx <= 255.5)).float()
        torch.testing.assert_close(layer.weight.grad, wd.grad, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(x.grad, xd.grad * clip, rtol=1e-4, atol=1e-5)


_FACTORIZED_REDUCE = r"""
import sys, torch
from multiplier_lib.emulate import ApproxConv2d
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
layer = ApproxConv2d(4, 2, 1, stride=2, bias=False, multiplier="mitchell8u", backend="cpu")
x = torch.randn(8, 4, 32, 32).relu().requires_grad_()
layer(x.detach())   # initialize the observers
for _ in range(3):
    layer.zero_grad()
    x.grad = None
    y = layer(x)
    g = torch.randn_like(y)
    y.backward(g)
qw, sw, zw = layer.weight_quant.quantize(layer.weight)
qx, sx, zx = layer.act_quant.quantize(x)
wd = ((qw - zw).double() * sw.double()).requires_grad_()
xd = ((qx - zx).double() * sx.double()).requires_grad_()
torch.nn.functional.conv2d(xd, wd, None, 2).backward(g.double())
ok = torch.allclose(layer.weight.grad.double(), wd.grad, rtol=1e-4, atol=1e-4)
print("ok" if ok else "wrong weight gradient")
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_strided_pointwise_backward_completes_with_the_right_gradient(threads, tmp_path):
    """DARTS's factorized reduce (a 4 -> 2 channel 1x1 conv, stride 2, 32x32) crashed, hung
    or gave wrong weight gradients when the straight-through backward ran it in torch's
    channels-last kernel; it runs in a child process so a crash or hang fails this test, not
    the suite."""
    import subprocess
    import sys

    script = tmp_path / "reduce.py"
    script.write_text(_FACTORIZED_REDUCE)
    try:
        done = subprocess.run([sys.executable, str(script), str(threads)], capture_output=True,
                              text=True, timeout=120, cwd=Path(__file__).resolve().parents[3])
    except subprocess.TimeoutExpired:
        pytest.fail("the strided 1x1 backward hung")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_ste_layout_rule():
    """Channels-last for stride-1 layers and strided undilated depthwise ones; NCHW for
    strided pointwise, grouped or full convs and strided dilated depthwise ones."""
    from multiplier_lib.emulate.functional import ste_layout

    def spec(cin, cout, groups, stride, dilation):
        return types.SimpleNamespace(in_channels=cin, out_channels=cout, groups=groups,
                                     stride=(stride, stride), dilation=(dilation, dilation))

    cl, nchw = torch.channels_last, torch.contiguous_format
    assert ste_layout(spec(4, 2, 1, 1, 1)) == cl
    assert ste_layout(spec(8, 8, 8, 1, 2)) == cl
    assert ste_layout(spec(8, 8, 8, 2, 1)) == cl
    assert ste_layout(spec(4, 2, 1, 2, 1)) == nchw
    assert ste_layout(spec(8, 8, 2, 2, 1)) == nchw
    assert ste_layout(spec(8, 8, 8, 2, 2)) == nchw
    assert ste_layout(spec(1, 1, 1, 2, 1)) == nchw      # one channel, one group: a dense conv
    assert ste_layout(spec(4, 8, 4, 2, 1)) == nchw      # a depth multiplier is not depthwise


def test_depthwise_is_one_test_for_weights_and_specs():
    from multiplier_lib.emulate.functional import depthwise_shape, is_depthwise
    assert depthwise_shape(8, 8, 8) and not depthwise_shape(1, 1, 1)
    assert not depthwise_shape(4, 8, 4) and not depthwise_shape(8, 8, 4)
    assert is_depthwise(torch.zeros(8, 1, 3, 3), 8, 8)
    assert not is_depthwise(torch.zeros(8, 2, 3, 3), 8, 8)       # not a valid depthwise weight
    assert not is_depthwise(torch.zeros(1, 1, 3, 3), 1, 1)


# (cin, cout, k, stride, padding, dilation, groups, size): depthwise and dense, strides 1-3
# (16-bit window sums in the row pitch, sampled for strides), windows of more than 255 codes
# (32 channels x 3 x 3: 32-bit sums), rows wider than one 16-lane vector and not a multiple
# of it, a depth multiplier.
KERNEL_LEVEL_CASES = [
    (8, 8, 5, 1, 2, 1, 8, 21),
    (8, 8, 3, 1, 2, 2, 8, 17),
    (8, 16, 3, 1, 1, 1, 8, 9),
    (6, 4, 3, 1, 0, 1, 1, 19),
    (32, 4, 3, 1, 1, 1, 1, 7),
    (4, 6, 3, 2, 1, 1, 2, 13),
    (5, 3, 1, 1, 0, 1, 1, 33),
    (8, 8, 5, 2, 2, 1, 8, 19),      # strided depthwise: phase planes, strided 16-bit sums
    (8, 8, 3, 2, 2, 2, 8, 16),
    (6, 12, 3, 3, 1, 1, 6, 14),
]


@pytest.mark.parametrize("case", KERNEL_LEVEL_CASES)
@pytest.mark.parametrize("name", ["drum8u_k4", "exact8s"])
def test_fused_forward_on_every_kernel_level(case, name):
    """The fused forward's quantization, window sums and LUT paths differ by vector level
    (AVX-512 forms, compiled clones, the VBMI direct depthwise path): each level this CPU
    has must give the op-by-op layer's bits, and refuse NaN with frozen ranges too."""
    from multiplier_lib.emulate.backends import cpu
    cin, cout, k, stride, padding, dilation, groups, size = case
    torch.manual_seed(3)
    cfg = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, mode="zeros",
               per_channel=True, symmetric=False, cin=cin, cout=cout, k=k)
    slow, fast = _pair(cfg, name)
    x = torch.randn(3, cin, size, size)
    slow(x)
    fast(x)
    slow.eval()
    fast.eval()
    expected = slow(1.5 * x)
    bad = x.clone()
    bad[1, 0, size // 2, size - 1] = float("inf")
    for level in sorted({0, 1, 2, cpu.detected_level()}):
        if level > cpu.detected_level():
            continue
        previous = cpu._set_simd_level(level)
        try:
            with torch.no_grad():
                assert torch.equal(fast(1.5 * x), expected), f"kernel level {level}"
                with pytest.raises(HwcostError, match="NaN or infinite"):
                    fast(bad)
        finally:
            cpu._set_simd_level(previous)
