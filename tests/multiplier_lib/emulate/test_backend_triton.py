"""The triton backend against the reference oracle, run by Triton's CPU interpreter.

There is no GPU in CI, so the kernels run under ``TRITON_INTERPRET=1`` on CPU tensors; the
interpreter executes the same kernel source (same index arithmetic, masks and tiling), which
is what bit-exactness depends on.  Shapes are small because the interpreter is slow.  Triton
fixes interpreted-vs-compiled when it is first imported, so the variable is set at the very top,
before anything imports triton.
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import HwcostError
from multiplier_lib.emulate.backends import reference
from multiplier_lib.emulate.backends import triton as tb

LUT_SHAPES = [(256, 256), (256, 16), (16, 16)]


def _interpreter_active() -> bool:
    """Whether triton was first imported with TRITON_INTERPRET=1 (its own helpers tell)."""
    import triton.language as tl

    return type(tl.sum).__name__ == "InterpretedFunction"


if not _interpreter_active():
    pytest.skip("triton was imported before this module set TRITON_INTERPRET=1; run this file "
                "in its own process", allow_module_level=True)


def _lut(shape: tuple[int, int], seed: int) -> torch.Tensor:
    """A random LUT with negative entries: no structure a buggy kernel could lean on."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-40000, 40000, shape, generator=g, dtype=torch.int32)


def _codes(shape: tuple[int, ...], high: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, shape, generator=g, dtype=torch.uint8)


@st.composite
def conv_configs(draw: st.DrawFn) -> dict:
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 6 // groups))
    cout = groups * draw(st.integers(1, 6 // groups))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers(dilation[0] * (r - 1) + 1, 7))
    w = draw(st.integers(dilation[1] * (s - 1) + 1, 7))
    return {
        "n": draw(st.integers(1, 2)), "cin": cin, "cout": cout, "h": h, "w": w, "r": r, "s": s,
        "stride": stride, "dilation": dilation, "groups": groups,
        "lut_shape": draw(st.sampled_from(LUT_SHAPES)), "seed": draw(st.integers(0, 2**16)),
    }


def _conv_case(cfg: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lut = _lut(cfg["lut_shape"], cfg["seed"])
    x = _codes((cfg["n"], cfg["cin"], cfg["h"], cfg["w"]), lut.shape[0], cfg["seed"] + 1)
    w = _codes((cfg["cout"], cfg["cin"] // cfg["groups"], cfg["r"], cfg["s"]), lut.shape[1],
               cfg["seed"] + 2)
    return x, w, lut


def _assert_conv_exact(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor,
                       stride: tuple[int, int], dilation: tuple[int, int], groups: int) -> None:
    got = tb.conv2d_lut(x, w, lut, stride, dilation, groups)
    want = reference.conv2d_lut(x.contiguous(), w, lut, stride, dilation, groups)
    assert got.dtype == torch.int32
    assert got.shape == want.shape
    assert torch.equal(got, want)


@settings(max_examples=60, deadline=None)
@given(conv_configs())
def test_conv2d_matches_reference(cfg: dict) -> None:
    x, w, lut = _conv_case(cfg)
    _assert_conv_exact(x, w, lut, cfg["stride"], cfg["dilation"], cfg["groups"])


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), k=st.integers(1, 40), m=st.integers(1, 40),
       lut_shape=st.sampled_from(LUT_SHAPES), seed=st.integers(0, 2**16))
def test_linear_matches_reference(n: int, k: int, m: int, lut_shape: tuple[int, int],
                                  seed: int) -> None:
    # k and m up to 40 cross the 16/32-wide K chunks and the 32-wide channel tiles.
    lut = _lut(lut_shape, seed)
    x = _codes((n, k), lut.shape[0], seed + 1)
    w = _codes((m, k), lut.shape[1], seed + 2)
    got = tb.linear_lut(x, w, lut)
    assert got.dtype == torch.int32
    assert torch.equal(got, reference.linear_lut(x, w, lut))


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize(("stride", "dilation"), [((1, 1), (1, 1)), ((2, 2), (1, 1)),
                                                  ((1, 2), (2, 1))])
def test_depthwise_matches_reference(multiplier: int, stride: tuple[int, int],
                                     dilation: tuple[int, int]) -> None:
    lut = _lut((256, 256), 7)
    x = _codes((2, 5, 7, 7), 256, 8)
    w = _codes((5 * multiplier, 1, 3, 3), 256, 9)
    _assert_conv_exact(x, w, lut, stride, dilation, groups=5)


def test_conv2d_several_tiles_in_every_direction() -> None:
    # L = 2*7*7 = 98 > BLOCK_L, 40 channels per group > BLOCK_M = 32, K = 8*9 = 72 > BLOCK_K.
    lut = _lut((256, 16), 11)
    x = _codes((2, 16, 9, 9), 256, 12)
    w = _codes((80, 8, 3, 3), 16, 13)
    _assert_conv_exact(x, w, lut, (1, 1), (1, 1), groups=2)


def test_conv2d_non_contiguous_activations() -> None:
    lut = _lut((256, 256), 21)
    x = _codes((2, 6, 6, 4), 256, 22).permute(0, 3, 1, 2)      # channels-last view (2, 4, 6, 6)
    w = _codes((6, 2, 2, 3), 256, 23)
    assert not x.is_contiguous()
    _assert_conv_exact(x, w, lut, (2, 1), (1, 2), groups=2)


def test_linear_non_contiguous_activations() -> None:
    lut = _lut((256, 256), 31)
    x = _codes((20, 3), 256, 32).t()
    w = _codes((4, 20), 256, 33)
    assert torch.equal(tb.linear_lut(x, w, lut), reference.linear_lut(x.contiguous(), w, lut))


def test_int32_wraparound_matches_reference() -> None:
    # Callers keep sums inside int32; if one does not, both backends wrap the same way.
    lut = torch.full((256, 256), 2**30 - 3, dtype=torch.int32)
    x = _codes((2, 33), 256, 41)
    w = _codes((3, 33), 256, 42)
    assert torch.equal(tb.linear_lut(x, w, lut), reference.linear_lut(x, w, lut))


def test_empty_batch() -> None:
    out = tb.conv2d_lut(torch.zeros((0, 2, 4, 4), dtype=torch.uint8),
                        torch.zeros((3, 2, 3, 3), dtype=torch.uint8), _lut((16, 16), 0))
    assert out.shape == (0, 3, 2, 2) and out.dtype == torch.int32


@pytest.mark.parametrize(("m_g", "k"), [(1, 1), (1, 9), (3, 27), (8, 200), (32, 72),
                                        (64, 4608), (1000, 3)])
def test_tile_heuristic(m_g: int, k: int) -> None:
    block_l, block_k, block_m, num_warps = tb._tiles(m_g, k)
    for block in (block_l, block_k, block_m):
        assert block & (block - 1) == 0                           # powers of two (tl.arange)
    assert block_m <= max(32, m_g) and block_m >= min(m_g, 32)
    assert block_l in (32, 64) and block_k <= 32
    assert block_l * block_k * block_m <= 16384                  # register budget
    assert num_warps in (4, 8)


def test_is_available_under_interpreter() -> None:
    assert tb.is_available()


def test_bad_inputs_are_hwcost_errors() -> None:
    lut = _lut((16, 16), 0)
    x = torch.zeros((1, 4, 5, 5), dtype=torch.uint8)
    with pytest.raises(HwcostError, match="uint8"):
        tb.conv2d_lut(x.to(torch.int32), torch.zeros((2, 4, 3, 3), dtype=torch.uint8), lut)
    with pytest.raises(HwcostError, match="int32"):
        tb.linear_lut(x[0, 0], x[0, 0], lut.to(torch.int64))
    with pytest.raises(HwcostError, match="groups=3"):
        tb.conv2d_lut(x, torch.zeros((2, 4, 3, 3), dtype=torch.uint8), lut, groups=3)
    with pytest.raises(HwcostError, match="larger than"):
        tb.conv2d_lut(x, torch.zeros((2, 4, 7, 7), dtype=torch.uint8), lut)


def test_missing_triton_asks_for_the_gpu_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "triton", None)           # makes `import triton` fail
    assert not tb.is_available()
    with pytest.raises(HwcostError, match=r"pip install -e '\.\[gpu\]'"):
        tb.linear_lut(torch.zeros((1, 2), dtype=torch.uint8),
                      torch.zeros((1, 2), dtype=torch.uint8), _lut((16, 16), 0))


def _run_fresh(script: str) -> str:
    """Run ``script`` in a fresh process without TRITON_INTERPRET; returns its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


_CALL = """
    from multiplier_lib.emulate.backends import triton as tb
    from core.errors import HwcostError
    x = torch.zeros((1, 1, 3, 3), dtype=torch.uint8)
    print("AVAILABLE", tb.is_available())
    try:
        tb.conv2d_lut(x, x, torch.zeros((16, 16), dtype=torch.int32))
    except HwcostError as err:
        print("ERR", err)
    else:
        print("NO ERROR")
"""


def test_cpu_tensors_without_interpreter_are_refused() -> None:
    # A fresh process: the interpreter mode is fixed per process when triton is imported.
    out = _run_fresh("import torch\n" + textwrap.dedent(_CALL))
    assert "AVAILABLE False" in out
    assert "ERR the triton backend needs a CUDA device, or TRITON_INTERPRET=1" in out


def test_interpreter_requested_too_late_is_explained() -> None:
    out = _run_fresh("import os, torch, triton\nos.environ['TRITON_INTERPRET'] = '1'\n"
                     + textwrap.dedent(_CALL))
    assert "ERR TRITON_INTERPRET changed between the first import of triton" in out
