"""The cpu backend's float sums for rank-one tables (``lut[a, b] = u[a] * v[b]``): a float32
convolution of ``u[codes]`` with ``v[codes]`` in place of the look-ups.  Bit for bit the
reference backend's sums on every geometry, table shape and sign, for the plain, multi-table
and block forms and the fused layer (quantize, float sums, corrections, scale, bias), with
mode "always" so the tests reach shapes the "auto" rule would leave to the look-ups; and only
where float32 holds the sums exactly."""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multiplier_lib.emulate import ApproxConv2d, ApproxLinear
from multiplier_lib.emulate.backends import cpu
from multiplier_lib.emulate.backends import reference as ref
from multiplier_lib.emulate.factor import FLOAT32_EXACT
from multiplier_lib.generators import generate

if not cpu.is_available():
    if shutil.which("c++") or shutil.which("g++"):
        cpu.build()   # a compiler is present: a failed build is a bug, not a skip
    pytest.skip("no C++ compiler: the cpu backend cannot be built here", allow_module_level=True)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


#: kernel levels with their own code for the float sums: 0 scalar mapping and GEMM, 2 and up
#: the int16-permute mapping and the AVX-512 small GEMM (see cpu.KERNEL_PATHS)
LEVELS = [0, 2]


@contextlib.contextmanager
def kernel_level(level: int) -> Iterator[None]:
    if level > cpu.detected_level():
        pytest.skip(f"this CPU cannot run the {cpu.KERNEL_PATHS[level]} path")
    previous = cpu._set_simd_level(level)
    try:
        yield
    finally:
        cpu._set_simd_level(previous)


@contextlib.contextmanager
def float_sums(mode: str) -> Iterator[None]:
    previous = cpu._set_float_sums(mode)
    try:
        yield
    finally:
        cpu._set_float_sums(previous)


def rank_one_table(seed: int, a_width: int = 256, b_width: int = 256,
                   peak: int = 2**14) -> torch.Tensor:
    """``outer(u, v)`` of random signed integer vectors with ``max|u| = max|v| = top``,
    ``top`` the largest integer with ``top**2 <= peak``."""
    g = torch.Generator().manual_seed(seed)
    top = max(1, int(peak ** 0.5))
    u = torch.randint(-top, top + 1, (a_width,), generator=g)
    v = torch.randint(-top, top + 1, (b_width,), generator=g)
    u[int(torch.randint(a_width, (1,), generator=g))] = -top
    v[int(torch.randint(b_width, (1,), generator=g))] = top
    return torch.outer(u, v).to(torch.int32)


@st.composite
def conv_geometry(draw):
    groups = draw(st.integers(1, 4))
    cg = draw(st.integers(1, 5))
    mg = draw(st.integers(1, 4))
    r, s = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = dilation[0] * (r - 1) + 1 + draw(st.integers(0, 9))
    w = dilation[1] * (s - 1) + 1 + draw(st.integers(0, 9))
    n = draw(st.integers(1, 3))
    widths = draw(st.sampled_from([(256, 256), (256, 16), (16, 256), (16, 16)]))
    return n, groups, cg, mg, (r, s), stride, dilation, (h, w), widths, draw(st.integers(0, 10**6))


def _codes(shape, hi: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, hi, shape, generator=g, dtype=torch.uint8)


def _operands(case):
    n, groups, cg, mg, (r, s), _stride, _dil, (h, w), (aw, bw), seed = case
    k = cg * r * s
    # the largest peak whose sums float32 still holds exactly: every case sits at the bound
    lut = rank_one_table(seed, aw, bw, peak=(FLOAT32_EXACT - 1) // k)
    x = _codes((n, groups * cg, h, w), aw, seed + 1)
    wt = _codes((groups * mg, cg, r, s), bw, seed + 2)
    return lut, x, wt


@SETTINGS
@given(case=conv_geometry())
def test_float_sums_equal_the_reference_look_ups(case):
    lut, x, wt = _operands(case)
    _, groups, *_rest = case
    stride, dilation = case[5], case[6]
    expected = ref.conv2d_lut(x, wt, lut, stride, dilation, groups)
    with float_sums("always"):
        assert cpu._float_sums(cpu._prepare(lut).factors, cpu._prepare(lut).factor_peak,
                               wt[0].numel(), wt.shape[0] // groups).numel()
        got = cpu.conv2d_lut(x, wt, lut, stride, dilation, groups)
    assert torch.equal(got, expected)


@settings(max_examples=30, deadline=None)
@given(case=conv_geometry(), tables=st.integers(2, 3))
def test_multi_and_block_forms(case, tables):
    lut, x, wt = _operands(case)
    groups, stride, dilation = case[1], case[5], case[6]
    luts = [lut] + [rank_one_table(case[-1] + t, *lut.shape, peak=int(lut.abs().max()) or 1)
                    for t in range(1, tables)]
    with float_sums("always"):
        multi = cpu.conv2d_multi_lut(x, wt, luts, stride, dilation, groups)
        blocks = cpu.conv2d_block_lut(torch.cat([x] * tables), wt, luts, stride, dilation,
                                      groups)
    for t, table in enumerate(luts):
        expected = ref.conv2d_lut(x, wt, table, stride, dilation, groups)
        assert torch.equal(multi[t], expected)
        assert torch.equal(blocks[t * x.shape[0]:(t + 1) * x.shape[0]], expected)


def _layer_pair(make, name: str):
    slow, fast = make("reference", name), make("cpu", name)
    fast.load_state_dict(slow.state_dict())
    return slow, fast


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", ["exact8u", "exact8s", "drum8u_k4", "perf8u_r2m2", "exact8ux4"])
@pytest.mark.parametrize(("shape", "conv"), [
    ((2, 6, 9, 9), dict(out_channels=5, kernel_size=3, padding=1)),
    ((2, 6, 9, 9), dict(out_channels=6, kernel_size=3, stride=2, padding=2, dilation=2,
                        groups=3)),
    ((3, 8, 7, 7), dict(out_channels=8, kernel_size=5, padding=2, groups=8)),
    ((2, 16, 5, 5), dict(out_channels=12, kernel_size=1)),
])
def test_fused_layer_equals_the_reference_layer(name, shape, conv, level):
    """Training steps (observers moving, gradients) and eval, through the one-call fused
    path with float sums: the reference layer's float32 bits."""
    torch.manual_seed(3)

    def make(backend, multiplier):
        return ApproxConv2d(shape[1], backend=backend, multiplier=multiplier, **conv)

    slow, fast = _layer_pair(make, name)
    with float_sums("always"), kernel_level(level):
        for scale in (1.0, 3.0):
            x = scale * torch.randn(shape)
            xs, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
            ys, yf = slow(xs), fast(xf)
            assert torch.equal(ys, yf)
            g = torch.randn_like(ys)
            ys.backward(g)
            yf.backward(g)
            torch.testing.assert_close(xf.grad, xs.grad, rtol=1e-5, atol=1e-5)
        slow.eval()
        fast.eval()
        with torch.no_grad():
            x = torch.randn(shape)
            assert torch.equal(slow(x), fast(x))


@pytest.mark.parametrize(("batch", "features", "outputs"), [
    (5, 40, 7),        # the small in-thread GEMM
    (64, 256, 10),     # a classifier: still small (163,840 products)
    (70, 200, 30),     # above the small GEMM's limit: torch's GEMM
])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", ["exact8u", "drum8u_k4"])
def test_linear_layers(batch, features, outputs, name, level):
    torch.manual_seed(5)

    def make(backend, multiplier):
        return ApproxLinear(features, outputs, backend=backend, multiplier=multiplier)

    slow, fast = _layer_pair(make, name)
    x = torch.randn(batch, features)
    with float_sums("always"), kernel_level(level), torch.no_grad():
        assert torch.equal(slow(x), fast(x))


@contextlib.contextmanager
def off_by_one_factors(monkeypatch, code: int) -> Iterator[None]:
    """Every table's factor u of ``code`` made one larger: results differ from the
    reference exactly where the float sums run."""
    real = cpu._factor_table

    def off_by_one(table):
        factors, peak = real(table)
        factors = factors.clone()
        factors[0, 0, code] += 1
        return factors, peak

    monkeypatch.setattr(cpu, "_factor_table", off_by_one)
    _forget_prepared_tables()
    try:
        yield
    finally:
        monkeypatch.undo()
        _forget_prepared_tables()


def _forget_prepared_tables() -> None:
    for cache in (cpu._prepared, cpu._plans, cpu._stacks):
        cache.clear()


def _drum_case():
    lut = torch.from_numpy(np.asarray(generate("drum8u_k4").lut))
    x = _codes((2, 8, 6, 6), 256, 1)
    wt = _codes((4, 8, 3, 3), 256, 2)
    return lut, x, wt, ref.conv2d_lut(x, wt, lut)


def test_the_float_path_is_the_one_that_runs(monkeypatch):
    """The equality tests above exercise the float path: corrupted factors show."""
    lut, x, wt, expected = _drum_case()
    with off_by_one_factors(monkeypatch, int(x[0, 0, 0, 0])):
        with float_sums("always"):
            assert not torch.equal(cpu.conv2d_lut(x, wt, lut), expected)
        with float_sums("never"):
            assert torch.equal(cpu.conv2d_lut(x, wt, lut), expected)


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_fused_layers_run_the_float_path(monkeypatch, kind):
    """Positive control for the fused call: corrupted factors change a layer's output while
    float sums run, and not while they are off (so the layer tests above reach it)."""
    torch.manual_seed(11)
    layer = (ApproxConv2d(8, 8, 3, padding=1, multiplier="drum8u_k4", backend="cpu")
             if kind == "conv" else ApproxLinear(64, 32, multiplier="drum8u_k4", backend="cpu"))
    x = torch.randn(4, 8, 6, 6) if kind == "conv" else torch.randn(8, 64)
    layer.eval()
    with torch.no_grad():
        layer(x)                                    # calibrates the observers
        good = layer(x)
        codes = layer.act_quant.domain.codes(layer.act_quant.quantize(x)[0])
        with off_by_one_factors(monkeypatch, int(codes.reshape(-1)[0])):
            with float_sums("always"):
                assert not torch.equal(layer(x), good)
            with float_sums("never"):
                assert torch.equal(layer(x), good)


def test_extreme_sums_at_the_bound_are_exact():
    """Every product at the table's peak, all of one sign, K at the largest value float32
    holds: the sums reach 2**24 - 1 at most and must come out exact (random codes stay far
    below the bound)."""
    k = 9 * 7                                                  # 3x3 kernel, 7 channels
    top = math.isqrt((FLOAT32_EXACT - 1) // k)                 # k * (top + 1)**2 >= 2**24
    assert k * top * top < FLOAT32_EXACT <= k * (top + 1) ** 2
    u = torch.arange(256)
    u[255] = -top                                              # code 255: the peak
    v = -u
    lut = torch.outer(u, v).to(torch.int32)
    x = torch.full((2, 7, 6, 6), 255, dtype=torch.uint8)
    wt = torch.full((3, 7, 3, 3), 255, dtype=torch.uint8)
    expected = ref.conv2d_lut(x, wt, lut)
    assert int(expected.min()) == int(expected.max()) == -k * top * top
    with float_sums("always"):
        assert torch.equal(cpu.conv2d_lut(x, wt, lut), expected)


@pytest.mark.skipif(not torch.backends.nnpack.is_available(), reason="torch without NNPACK")
@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
def test_no_float_sums_where_torch_would_convolve_by_winograd(monkeypatch):
    """With oneDNN off, torch runs this 3x3 float convolution (batch 16) through NNPACK,
    whose Winograd transform is not exact on integers; the kernel asks torch's own backend
    selection and looks up instead (corrupted factors do not show), in the plain and the
    fused call."""
    lut, x, wt, _ = _drum_case()
    x = _codes((16, 8, 8, 8), 256, 5)
    expected = ref.conv2d_lut(x, wt, lut)
    layer = ApproxConv2d(8, 8, 3, multiplier="drum8u_k4", backend="cpu").eval()
    xl = torch.randn(16, 8, 8, 8)
    with torch.no_grad():
        layer(xl)
        good = layer(xl)
    with torch.backends.mkldnn.flags(enabled=False):
        backend = torch._C._select_conv_backend(x.float(), wt.float(), None, [1, 1], [0, 0],
                                                [1, 1], False, [0, 0], 1, None)
        assert "Nnpack" in str(backend)
        with off_by_one_factors(monkeypatch, int(x[0, 0, 0, 0])), float_sums("always"):
            assert torch.equal(cpu.conv2d_lut(x, wt, lut), expected)
        codes = layer.act_quant.domain.codes(layer.act_quant.quantize(xl)[0])
        with off_by_one_factors(monkeypatch, int(codes.reshape(-1)[0])), \
                float_sums("always"), torch.no_grad():
            assert torch.equal(layer(xl), good)


def test_no_float_sums_under_onednn_fpmath_env(monkeypatch):
    """oneDNN's own ONEDNN_DEFAULT_FPMATH_MODE=BF16 lets it round float32 work whatever
    torch's settings say: the kernel reads it and looks up."""
    assert cpu._fp32_is_exact()
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "BF16")
    assert not cpu._fp32_is_exact()
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT")
    assert cpu._fp32_is_exact()


@pytest.mark.parametrize("setting", ["conv bf16", "conv tf32", "mkldnn bf16", "all bf16",
                                     "matmul medium"])
def test_no_float_sums_while_float32_convolutions_are_rounded(monkeypatch, setting):
    """A user who lets oneDNN round float32 convolutions or products (to bfloat16, TF32)
    gets the look-ups, in the plain and the fused calls: corrupted factors do not show."""
    lut, x, wt, expected = _drum_case()
    holder, _, value = {"conv bf16": (torch.backends.mkldnn.conv, "", "bf16"),
                        "conv tf32": (torch.backends.mkldnn.conv, "", "tf32"),
                        "mkldnn bf16": (torch.backends.mkldnn, "", "bf16"),
                        "all bf16": (torch.backends, "", "bf16"),
                        "matmul medium": (None, "", "medium")}[setting]
    previous = (torch.get_float32_matmul_precision() if holder is None
                else holder.fp32_precision)
    assert cpu._fp32_is_exact()
    layer = ApproxLinear(64, 32, multiplier="drum8u_k4", backend="cpu").eval()
    xl = torch.randn(8, 64)
    with torch.no_grad():
        good = layer(xl)
    try:
        if holder is None:
            torch.set_float32_matmul_precision(value)
        else:
            holder.fp32_precision = value
        assert not cpu._fp32_is_exact()
        with off_by_one_factors(monkeypatch, int(x[0, 0, 0, 0])), float_sums("always"):
            assert torch.equal(cpu.conv2d_lut(x, wt, lut), expected)
            codes = layer.act_quant.domain.codes(layer.act_quant.quantize(xl)[0])
            with off_by_one_factors(monkeypatch, int(codes.reshape(-1)[0])), torch.no_grad():
                assert torch.equal(layer(xl), good)
    finally:
        if holder is None:
            torch.set_float32_matmul_precision(previous)
        else:
            holder.fp32_precision = previous
    assert cpu._fp32_is_exact()


def test_sums_float32_cannot_hold_take_the_look_ups():
    """K * peak >= 2**24: the Python side passes no factors (and the look-ups stay exact),
    and the kernel itself refuses factors it cannot sum exactly."""
    k = 9
    lut = rank_one_table(7, peak=FLOAT32_EXACT // k + 10_000)   # top 1366
    pr = cpu._prepare(lut)
    assert pr.factors.numel() and k * pr.factor_peak >= FLOAT32_EXACT
    with float_sums("always"):
        assert cpu._float_sums(pr.factors, pr.factor_peak, k, 64).numel() == 0
        x = _codes((1, 1, 5, 5), 256, 3)
        wt = _codes((2, 1, 3, 3), 256, 4)
        assert torch.equal(cpu.conv2d_lut(x, wt, lut), ref.conv2d_lut(x, wt, lut))
    with pytest.raises(RuntimeError, match="not be exact in float32"):
        cpu._load().conv2d(x, wt, pr.lut_t, pr.planes.unsqueeze(0), cpu._centres(pr.centre),
                           1, 1, 1, 1, 1, pr.pack, 0, pr.factors)


def test_auto_mode_keeps_thin_layers_on_the_look_ups():
    pr = cpu._prepare(torch.from_numpy(np.asarray(generate("drum8u_k4").lut)))
    wide, thin = (64, 64), (9, 1)                    # a 64-channel 1x1 conv, a 3x3 depthwise
    with float_sums("auto"):
        assert cpu._float_sums(pr.factors, pr.factor_peak, *wide).numel()
        assert cpu._float_sums(pr.factors, pr.factor_peak, *thin).numel() == 0
    with float_sums("never"):
        assert cpu._float_sums(pr.factors, pr.factor_peak, *wide).numel() == 0
    mitchell = cpu._prepare(torch.from_numpy(np.asarray(generate("mitchell8u").lut)))
    with float_sums("always"):
        assert mitchell.factors.numel() == 0
        assert cpu._float_sums(mitchell.factors, mitchell.factor_peak, *wide).numel() == 0
    with pytest.raises(Exception, match="float sums mode 'sometimes'"):
        cpu._set_float_sums("sometimes")
