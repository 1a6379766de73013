"""The ``cpu`` backend must equal the reference backend bit for bit, on every kernel path.

The native kernel has several code paths that a single random test would rarely all reach:
AVX2 or scalar, plain / 2-channel / 4-channel packed tables (packing depends on the LUT's value
range and on how much each table is reused), the direct depthwise path (with and without
horizontal-stride phase splitting), the im2col path, and the parallel splits for many or few
(sample, group) pairs.  Every property test therefore runs under each ISA x packing mode, with
LUTs whose ranges select each packing flavour.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import HwcostError
from multiplier_lib.emulate.backends import block_conv2d_lut, cpu, get
from multiplier_lib.emulate.backends import reference as ref

if not cpu.is_available():
    if shutil.which("c++") or shutil.which("g++"):
        # A compiler is present, so a failed build is a bug, not a reason to skip.
        cpu.build()
    pytest.skip("no C++ compiler: the cpu backend cannot be built here", allow_module_level=True)

# (kernel path level, minimum table reuse before packing): 0 forces packing even on tiny
# shapes.  Levels: see cpu.KERNEL_PATHS; a level the CPU lacks is skipped with its reason.
MODES = {"scalar": (0, 256), "scalar-packed": (0, 0), "avx2": (1, 256), "avx2-packed": (1, 0),
         "avx512": (2, 256), "avx512-packed": (2, 0), "vbmi": (3, 256), "vbmi-vnni": (4, 256)}
SETTINGS = settings(max_examples=75, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def mode(name: str) -> Iterator[None]:
    simd, reuse = MODES[name]
    if simd > cpu.detected_level():
        pytest.skip(f"this CPU cannot run the {cpu.KERNEL_PATHS[simd]} path (best: "
                    f"{cpu.KERNEL_PATHS[cpu.detected_level()]})")
    old_simd = cpu._set_simd_level(simd)
    old_reuse = cpu._set_pack_min_reuse(reuse)
    try:
        yield
    finally:
        cpu._set_simd_level(old_simd)
        cpu._set_pack_min_reuse(old_reuse)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_lut(kind: str, seed: int, shape: tuple[int, int] = (256, 256)) -> torch.Tensor:
    """LUTs whose value ranges pick each packing flavour (s16, u16, none)."""
    g = _gen(seed)
    lo, hi = {"s16": (-(2**15), 2**15), "u16": (0, 2**16), "wide": (-(2**22), 2**22)}[kind]
    return torch.randint(lo, hi, shape, generator=g, dtype=torch.int32)


def codes(shape: tuple[int, ...], hi: int, seed: int) -> torch.Tensor:
    return torch.randint(0, hi, shape, generator=_gen(seed), dtype=torch.uint8)


@st.composite
def conv_case(draw, depthwise: bool = False):
    groups = draw(st.integers(1, 8 if depthwise else 3))
    cg = 1 if depthwise else draw(st.integers(1, max(1, 8 // groups)))
    mg = draw(st.integers(1, 2 if depthwise else 4))
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # Depthwise cases reach 4-row groups of every row class (dilation 3 groups rows 3
    # apart) for the row-packed tables.
    h = dh * (r - 1) + 1 + draw(st.integers(0, 14 if depthwise else 8))
    # Depthwise cases need >= 8 output columns to take the direct path.
    wmin = dw * (s - 1) + 1 + (7 * sw if depthwise else 0)
    w = wmin + draw(st.integers(0, 12 if depthwise else 8))
    n = draw(st.integers(1, 3))
    lut_kind = draw(st.sampled_from(["s16", "u16", "wide", "8x4", "4x8"]))
    seed = draw(st.integers(0, 2**31 - 1))
    return n, groups, cg, mg, (r, s), (sh, sw), (dh, dw), (h, w), lut_kind, seed


def run_conv_case(case, mode_name: str) -> None:
    n, groups, cg, mg, (r, s), stride, dilation, (h, w), lut_kind, seed = case
    a_width, b_width = {"8x4": (256, 16), "4x8": (16, 256)}.get(lut_kind, (256, 256))
    lut = make_lut("s16" if lut_kind in ("8x4", "4x8") else lut_kind, seed, (a_width, b_width))
    x = codes((n, groups * cg, h, w), a_width, seed + 1)
    wt = codes((groups * mg, cg, r, s), b_width, seed + 2)
    expected = ref.conv2d_lut(x, wt, lut, stride, dilation, groups)
    with mode(mode_name):
        got = cpu.conv2d_lut(x, wt, lut, stride, dilation, groups)
    assert got.dtype == torch.int32 and got.shape == expected.shape
    assert torch.equal(got, expected)


@pytest.mark.parametrize("mode_name", list(MODES))
@SETTINGS
@given(case=conv_case())
def test_conv2d_matches_reference(mode_name, case):
    run_conv_case(case, mode_name)


@pytest.mark.parametrize("mode_name", list(MODES))
@SETTINGS
@given(case=conv_case(depthwise=True))
def test_depthwise_direct_path_matches_reference(mode_name, case):
    run_conv_case(case, mode_name)


def _multi_case(case, kinds: tuple[str, ...], batch_blocks: int = 1):
    """LUTs of the given kinds and codes for ``case`` (the batch repeated ``batch_blocks``
    times as separate random samples)."""
    n, groups, cg, mg, (r, s), stride, dilation, (h, w), lut_kind, seed = case
    a_width, b_width = {"8x4": (256, 16), "4x8": (16, 256)}.get(lut_kind, (256, 256))
    luts = [make_lut(kind, seed + 10 * t, (a_width, b_width)) for t, kind in enumerate(kinds)]
    x = codes((n * batch_blocks, groups * cg, h, w), a_width, seed + 1)
    wt = codes((groups * mg, cg, r, s), b_width, seed + 2)
    return luts, x, wt, stride, dilation, groups


def run_multi_lut_case(case, mode_name: str, kinds: tuple[str, ...]) -> None:
    """One kernel pass over T tables equals T separate reference convolutions."""
    luts, x, wt, stride, dilation, groups = _multi_case(case, kinds)
    with mode(mode_name):
        got = cpu.conv2d_multi_lut(x, wt, luts, stride, dilation, groups)
    assert got.dtype == torch.int32
    assert got.shape[0] == len(luts)
    for t, lut in enumerate(luts):
        assert torch.equal(got[t], ref.conv2d_lut(x, wt, lut, stride, dilation, groups))


# table sets: all packable alike, mixed packing flavours (the kernel must fall back), one
TABLE_SETS = [("s16", "s16", "s16"), ("u16", "u16"), ("s16", "u16", "wide"), ("wide",)]


@pytest.mark.parametrize("mode_name", list(MODES))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=conv_case(), kinds=st.sampled_from(TABLE_SETS))
def test_multi_lut_conv2d_equals_separate_reference_calls(mode_name, case, kinds):
    if case[8] in ("8x4", "4x8"):
        kinds = ("s16",) * len(kinds)
    run_multi_lut_case(case, mode_name, kinds)


@pytest.mark.parametrize("mode_name", list(MODES))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=conv_case(depthwise=True), kinds=st.sampled_from(TABLE_SETS))
def test_multi_lut_depthwise_direct_path(mode_name, case, kinds):
    if case[8] in ("8x4", "4x8"):
        kinds = ("s16",) * len(kinds)
    run_multi_lut_case(case, mode_name, kinds)


def run_block_case(case, mode_name: str, kinds: tuple[str, ...]) -> None:
    """Block t of the batch looked up in table t equals a reference call per block."""
    luts, x, wt, stride, dilation, groups = _multi_case(case, kinds, batch_blocks=len(kinds))
    n = case[0]
    with mode(mode_name):
        got = cpu.conv2d_block_lut(x, wt, luts, stride, dilation, groups)
    expected = torch.cat([ref.conv2d_lut(x[t * n:(t + 1) * n], wt, lut, stride, dilation,
                                         groups) for t, lut in enumerate(luts)])
    assert torch.equal(got, expected)
    # the backend-independent entry point takes the native op, and falls back to per-block
    # calls on backends without one (here: the reference)
    assert torch.equal(block_conv2d_lut(ref, x, wt, luts, stride, dilation, groups), expected)


@pytest.mark.parametrize("mode_name", list(MODES))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=conv_case(), kinds=st.sampled_from(TABLE_SETS))
def test_block_lut_conv2d_equals_reference_per_block(mode_name, case, kinds):
    if case[8] in ("8x4", "4x8"):
        kinds = ("s16",) * len(kinds)
    run_block_case(case, mode_name, kinds)


@pytest.mark.parametrize("mode_name", list(MODES))
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=conv_case(depthwise=True), kinds=st.sampled_from(TABLE_SETS))
def test_block_lut_depthwise(mode_name, case, kinds):
    if case[8] in ("8x4", "4x8"):
        kinds = ("s16",) * len(kinds)
    run_block_case(case, mode_name, kinds)


def test_block_lut_refuses_a_batch_that_does_not_split():
    x, w = codes((5, 2, 4, 4), 256, 0), codes((2, 2, 1, 1), 256, 1)
    luts = [make_lut("s16", 0), make_lut("s16", 1)]
    with pytest.raises(HwcostError, match="cannot be split into 2 equal blocks"):
        cpu.conv2d_block_lut(x, w, luts)
    with pytest.raises(HwcostError, match="cannot be split into 2 equal blocks"):
        block_conv2d_lut(ref, x, w, luts)


def test_vbmi_byte_planes_rebuild_every_entry():
    """The planes hold entry - centre as int16 (low byte, high byte); wide tables have none."""
    lut = make_lut("u16", 3)
    pr = cpu._prepare(lut)
    lo = pr.planes[:, 0].to(torch.int32)
    hi = pr.planes[:, 1].to(torch.int8).to(torch.int32)
    assert torch.equal((hi * 256 + lo)[:, :256] + pr.centre, lut.t())
    assert cpu._prepare(make_lut("wide", 3)).planes.numel() == 0


def test_multi_lut_refuses_tables_of_different_shapes():
    x, w = codes((1, 2, 4, 4), 16, 0), codes((2, 2, 1, 1), 16, 1)
    with pytest.raises(HwcostError, match="luts of different shapes"):
        cpu.conv2d_multi_lut(x, w, [make_lut("s16", 0), make_lut("s16", 1, (16, 16))])
    with pytest.raises(HwcostError, match="no lut given"):
        cpu.conv2d_multi_lut(x, w, [])


@pytest.mark.parametrize("mode_name", list(MODES))
@SETTINGS
@given(n=st.integers(1, 70), m=st.integers(1, 70), k=st.integers(1, 300),
       lut_kind=st.sampled_from(["s16", "u16", "wide", "8x4"]), seed=st.integers(0, 2**31 - 1))
def test_linear_matches_reference(mode_name, n, m, k, lut_kind, seed):
    b_width = 16 if lut_kind == "8x4" else 256
    lut = make_lut("s16" if lut_kind == "8x4" else lut_kind, seed, (256, b_width))
    x, w = codes((n, k), 256, seed + 1), codes((m, k), b_width, seed + 2)
    with mode(mode_name):
        got = cpu.linear_lut(x, w, lut)
    assert got.dtype == torch.int32
    assert torch.equal(got, ref.linear_lut(x, w, lut))


@pytest.mark.parametrize("mode_name", ["scalar", "avx2", "avx512", "vbmi", "vbmi-vnni"])
@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "groups"), [
    ((3, 8, 24, 24), (8, 8, 1, 1), 1, 1),     # 576 positions a sample: full VBMI tiles + tails
    ((4, 16, 8, 8), (32, 16, 1, 1), 1, 1),    # 1x1: no im2col, 4-channel packed tables
    ((2, 3, 18, 18), (12, 3, 3, 3), 1, 1),    # stem-like 3x3 via im2col
    ((2, 16, 19, 19), (16, 1, 5, 5), 2, 16),  # depthwise 5x5 stride 2: phase split
    ((4, 8, 12, 12), (16, 4, 3, 3), 2, 2),    # grouped, strided, im2col
])
def test_layer_shapes_match_reference_with_default_packing(mode_name, x_shape, w_shape, stride,
                                                           groups):
    for kind in ("s16", "u16", "wide"):
        lut = make_lut(kind, 7)
        x, w = codes(x_shape, 256, 1), codes(w_shape, 256, 2)
        expected = ref.conv2d_lut(x, w, lut, (stride, stride), (1, 1), groups)
        with mode(mode_name):
            got = cpu.conv2d_lut(x, w, lut, (stride, stride), (1, 1), groups)
        assert torch.equal(got, expected), kind


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "dilation"), [
    ((16, 4, 20, 20), (4, 1, 5, 5), 1, 1),    # 16 rows: 4 groups of 4
    ((16, 4, 22, 21), (8, 1, 3, 3), 1, 1),    # depth multiplier 2; 20 rows: tail of 0, 17 cols
    ((16, 4, 23, 23), (4, 1, 3, 3), 1, 2),    # dilation 2: two row classes, 19 rows (tails)
    ((16, 4, 35, 35), (4, 1, 5, 5), 2, 1),    # stride 2: kd = 2, phase split, 16 rows
    ((16, 4, 40, 40), (4, 1, 5, 5), 2, 2),    # stride 2 dilation 2
])
def test_row_packed_depthwise_at_default_settings(x_shape, w_shape, stride, dilation, threads):
    """Shapes where the default rule picks row-packed tables (DARTS-sized planes at batch 16),
    including tail rows, several row classes and a depth multiplier, for 16-bit LUTs of
    both signs and a wide one that must not pack."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for kind in ("s16", "u16", "wide"):
            lut = make_lut(kind, 11)
            x, w = codes(x_shape, 256, 3), codes(w_shape, 256, 4)
            args = ((stride, stride), (dilation, dilation), x_shape[1])
            expected = ref.conv2d_lut(x, w, lut, *args)
            assert torch.equal(cpu.conv2d_lut(x, w, lut, *args), expected), kind
    finally:
        torch.set_num_threads(old_threads)


def test_exact_product_lut_gives_integer_convolution():
    a = torch.arange(256, dtype=torch.int64)
    lut = (a.view(-1, 1) * a.view(1, -1)).to(torch.int32)
    x, w = codes((3, 6, 11, 13), 256, 3), codes((4, 3, 3, 2), 256, 4)
    got = cpu.conv2d_lut(x, w, lut, (2, 1), (1, 2), 2)
    exact = F.conv2d(x.double(), w.double(), stride=(2, 1), dilation=(1, 2), groups=2)
    assert torch.equal(got, exact.round().to(torch.int32))
    xl, wl = codes((5, 40), 256, 5), codes((7, 40), 256, 6)
    assert torch.equal(cpu.linear_lut(xl, wl, lut), (xl.long() @ wl.long().t()).to(torch.int32))


def test_non_contiguous_inputs_are_accepted():
    lut = make_lut("s16", 1)
    x = codes((2, 4, 9, 10), 256, 7).transpose(2, 3)  # (2, 4, 10, 9), not contiguous
    w = codes((3, 4, 2, 2), 256, 8)
    assert not x.is_contiguous()
    assert torch.equal(cpu.conv2d_lut(x, w, lut), ref.conv2d_lut(x.contiguous(), w, lut))
    lut_t = make_lut("u16", 2).t()
    xl, wl = codes((4, 6), 256, 9), codes((5, 6), 256, 10)
    assert torch.equal(cpu.linear_lut(xl, wl, lut_t), ref.linear_lut(xl, wl, lut_t))


def test_lut_changed_in_place_is_noticed():
    lut = make_lut("s16", 3)
    x, w = codes((2, 8), 256, 1), codes((3, 8), 256, 2)
    before = cpu.linear_lut(x, w, lut)
    lut += 1
    after = cpu.linear_lut(x, w, lut)
    assert torch.equal(after, before + 8)


def u8(*shape: int, fill: int = 0) -> torch.Tensor:
    return torch.full(shape, fill, dtype=torch.uint8)


@pytest.mark.parametrize(("call", "message"), [
    (lambda lut: cpu.conv2d_lut(torch.zeros(1, 1, 3, 3), u8(1, 1, 1, 1), lut), "uint8"),
    (lambda lut: cpu.conv2d_lut(u8(1, 1, 3, 3), u8(1, 1, 1, 1), lut.long()), "int32"),
    (lambda lut: cpu.conv2d_lut(u8(1, 1, 3, 3), u8(1, 1, 4, 4), lut), "smaller"),
    (lambda lut: cpu.conv2d_lut(u8(1, 4, 3, 3), u8(3, 2, 1, 1), lut, groups=2), "groups"),
    (lambda lut: cpu.conv2d_lut(u8(1, 1, 3, 3), u8(1, 1, 1, 1), lut, stride=(0, 1)), "stride"),
    (lambda lut: cpu.conv2d_lut(u8(1, 3, 3), u8(1, 1, 1), lut), "4-D"),
    (lambda lut: cpu.linear_lut(u8(2, 3), u8(2, 4), lut), "features"),
    (lambda lut: cpu.linear_lut(u8(2, 3), u8(2, 3, fill=16), lut[:, :16]), "weight code 16"),
    (lambda lut: cpu.linear_lut(u8(2, 3, fill=200), u8(2, 3), lut[:16]), "activation code 200"),
    (lambda lut: cpu.linear_lut(u8(2, 3), u8(2, 3), lut.view(1, 256, 256)), "shape"),
    (lambda lut: cpu.linear_lut(u8(2, 3), u8(2, 3), torch.zeros(512, 2, dtype=torch.int32)),
     "shape"),
])
def test_bad_arguments_raise_hwcost_error(call, message):
    lut = make_lut("s16", 0)
    with pytest.raises(HwcostError, match=message):
        call(lut)


def test_possible_int32_overflow_is_refused():
    lut = torch.full((256, 256), 2**24, dtype=torch.int32)
    x, w = codes((1, 200), 256, 1), codes((1, 200), 256, 2)
    with pytest.raises(HwcostError, match="overflow"):
        cpu.linear_lut(x, w, lut)
    # Just below the bound is fine (and exact).
    ok = cpu.linear_lut(x[:, :127], w[:, :127], lut)
    assert int(ok[0, 0]) == 127 * 2**24


def test_registry_and_build_helpers(monkeypatch, tmp_path):
    assert get("cpu") is cpu
    assert get("auto", "cpu") is cpu
    assert cpu.is_available()
    cpu.build()  # cached: a no-op now
    monkeypatch.setenv("HWCOST_CACHE", str(tmp_path))
    assert cpu._cache_root() == tmp_path / "torch_extensions"
    monkeypatch.delenv("HWCOST_CACHE")
    assert cpu._cache_root().parts[-3:] == (".cache", "hwcost", "torch_extensions")


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-hwcost")
    with pytest.raises(HwcostError, match="C\\+\\+ compiler"):
        cpu._compile()


def test_build_failure_message_names_the_first_compiler_error():
    log = ("[1/2] c++ -MMD ... -c lut_kernels.cpp\nFAILED: lut_kernels.o\n"
           "lut_kernels.cpp:3:10: fatal error: torch/library.h: No such file or directory\n"
           "compilation terminated.\nninja: build stopped: subcommand failed.\n")
    assert cpu._first_error_line("Error building extension 'x': " + log) == (
        "lut_kernels.cpp:3:10: fatal error: torch/library.h: No such file or directory")


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as the fake compiler")
def test_failed_build_reports_the_compiler_error(monkeypatch, tmp_path):
    fake = tmp_path / "fake-cxx"
    fake.write_text('#!/bin/sh\ncase "$*" in *--version*|*-dumpversion*|*-E*) exec g++ "$@";; '
                    'esac\necho "lut_kernels.cpp:1:1: error: simulated failure" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setenv("HWCOST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HwcostError, match=r"failed: lut_kernels\.cpp:1:1: error: simulated"):
        cpu._compile()


def test_benchmarks_name_the_cpu_and_the_kernel_path_that_ran():
    line = cpu.describe_machine()
    assert line.startswith("CPU ") and "cpu backend path: " in line
    assert cpu.KERNEL_PATHS[cpu._simd_level()] in line
    with mode("scalar"):
        assert "cpu backend path: portable (scalar)" in cpu.describe_machine()


@pytest.mark.parametrize("signed", [False, True])
def test_ste_operands_layouts_hold_the_same_values(signed):
    """The straight-through operands in channels-last layout are the NCHW ones element for
    element (only the strides differ), "none" builds no activations, and the masks and the
    weight operands do not depend on the layout."""
    g = _gen(5)
    x = torch.randn(3, 5, 6, 7, generator=g) * 3
    w = torch.randn(4, 5, 3, 3, generator=g)
    domains = (-128, 127, 255, -128, 127, 255, 1) if signed else (0, 255, 255, 0, 255, 255, 0)
    sw, zw = torch.rand(4, generator=g) + 0.01, torch.randint(0, 20, (4,), generator=g)
    lut = (make_lut("s16", 1),)
    out = cpu.approx_conv2d(x, w, None, 0.02, 7, sw, zw, domains, lut, (1, 2), (1, 1), (1, 1), 1)
    _, x_codes, w_codes = out
    args = (x, w, x_codes, w_codes, 0.02, 7, sw, zw, domains, (1, 2))
    nchw = cpu.ste_operands(*args, "nchw")
    cl = cpu.ste_operands(*args, "channels_last")
    none = cpu.ste_operands(*args, "none")
    assert nchw[0].is_contiguous() and cl[0].is_contiguous(memory_format=torch.channels_last)
    assert not cl[0].is_contiguous() and torch.equal(cl[0], nchw[0])
    assert none[0].numel() == 0
    for other in (cl, none):
        for a, b in zip(nchw[1:], other[1:]):
            assert torch.equal(a, b)
    # the dequantized values are the codes' values: (q - zx) * sx, clipped where the mask is 0
    q = x_codes[:, :, 1:-1, 2:-2].to(torch.int32)
    if signed:
        q = torch.where(q > 127, q - 256, q)
    torch.testing.assert_close(nchw[0], (q.float() - 7) * 0.02, rtol=0, atol=1e-6)
    assert 0 < nchw[2].sum() < nchw[2].numel()   # some activations clipped, some not
