"""The ``triton`` backend: LUT-based implicit-GEMM kernels for CUDA tensors.

Implements :class:`.contract.EmulationBackend` (bit-exact ``int32`` against :mod:`.reference`).
The kernel lives in :mod:`.triton_kernels`; its design is described there.  The multi-LUT
forms are one kernel launch per table, and there is no fused whole-layer path.

:mod:`triton` is imported lazily, inside the functions, so that ``hwcost`` imports without the
optional ``gpu`` extra, and so that tests can set ``TRITON_INTERPRET=1`` first: Triton fixes
compiled-vs-interpreted when it is imported (see :mod:`.triton_kernels`).  CPU tensors are
accepted only under the interpreter (slow; meant for tests); otherwise the backend asks for a
CUDA device.

Tile heuristic (:func:`_tiles`), chosen per call from the per-group GEMM shape
``(L = N*P*Q) x (M_g) x (K = Cg*R*S)``:

* ``BLOCK_M = min(32, next_pow2(M_g))`` -- no wasted lanes on depthwise (``M_g = 1``) or small
  layers, 32 channels otherwise;
* ``BLOCK_K = min(32, next_pow2(K))`` when ``BLOCK_M <= 8`` (few channels: longer reduction
  chunks keep the tile busy), else ``min(16, next_pow2(K))``;
* ``BLOCK_L = 64`` when ``BLOCK_M * BLOCK_K <= 256``, else 32 -- together these cap the
  gathered ``(BLOCK_L, BLOCK_K, BLOCK_M)`` block at 16384 int32 values, which is what fits in
  registers of 8 warps without spilling; ``num_warps`` is 4 below 8192 values, 8 above.
"""

from __future__ import annotations

from types import ModuleType

import torch

from core.errors import HwcostError

from .contract import FusedConv, blocks_by_calls, multi_by_calls

_INSTALL_HINT = "the triton backend needs the triton package: pip install -e '.[gpu]'"
_DEVICE_HINT = "the triton backend needs a CUDA device, or TRITON_INTERPRET=1 for testing"


def _triton_importable() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def is_available() -> bool:
    """True when triton is installed and kernels can run (a CUDA device, or the interpreter)."""
    if not _triton_importable():
        return False
    kernels = _kernels()
    if kernels.mode_mismatch():
        return False
    return torch.cuda.is_available() or kernels.is_interpreted(kernels.conv2d_lut_kernel)


def _kernels() -> ModuleType:
    """Import the kernels module on first use (see the module doc for why it is lazy)."""
    if not _triton_importable():
        raise HwcostError(_INSTALL_HINT)
    from . import triton_kernels

    return triton_kernels


def _check(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor, kernels: ModuleType) -> None:
    if x.dtype != torch.uint8 or w.dtype != torch.uint8:
        raise HwcostError(f"activation and weight codes must be uint8, got {x.dtype} and "
                          f"{w.dtype}")
    if lut.dtype != torch.int32 or lut.dim() != 2:
        raise HwcostError(f"the LUT must be a 2-D int32 tensor, got {lut.dtype} "
                          f"{tuple(lut.shape)}")
    devices = {x.device, w.device, lut.device}
    if len(devices) != 1:
        raise HwcostError("activation codes, weight codes and LUT must be on the same device, "
                          f"got {', '.join(sorted(str(d) for d in devices))}")
    if kernels.mode_mismatch():
        raise HwcostError("TRITON_INTERPRET changed between the first import of triton and the "
                          "triton backend's first use; set it before anything imports triton")
    if x.device.type != "cuda" and not kernels.is_interpreted(kernels.conv2d_lut_kernel):
        raise HwcostError(f"{_DEVICE_HINT}; got tensors on {x.device}")


def _next_pow2(v: int) -> int:
    return 1 if v <= 1 else 1 << (v - 1).bit_length()


def _tiles(m_g: int, k: int) -> tuple[int, int, int, int]:
    """``(BLOCK_L, BLOCK_K, BLOCK_M, num_warps)``; the heuristic is in the module doc."""
    block_m = min(32, _next_pow2(m_g))
    block_k = min(32 if block_m <= 8 else 16, _next_pow2(k))
    block_l = 64 if block_m * block_k <= 256 else 32
    num_warps = 4 if block_l * block_k * block_m <= 8192 else 8
    return block_l, block_k, block_m, num_warps


def _launch(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor, out: torch.Tensor,
            p: int, q: int, groups: int, stride: tuple[int, int],
            dilation: tuple[int, int], kernels: ModuleType) -> None:
    """Launch the implicit-GEMM kernel writing ``out`` ``(N, M, P, Q)``; ``w`` contiguous."""
    import triton

    n = x.shape[0]
    m, cg, r, s = w.shape
    m_g = m // groups
    k = cg * r * s
    l_total = n * p * q
    if out.numel() == 0:
        return
    if k == 0:
        out.zero_()
        return
    block_l, block_k, block_m, num_warps = _tiles(m_g, k)
    grid = (triton.cdiv(l_total, block_l), triton.cdiv(m_g, block_m), groups)
    kernels.conv2d_lut_kernel[grid](
        x, w, lut.contiguous(), out,
        cg, p, q, m, m_g, k, l_total,
        *x.stride(),
        stride[0], stride[1], dilation[0], dilation[1],
        R=r, S=s, LUT_B=lut.shape[1],
        BLOCK_L=block_l, BLOCK_K=block_k, BLOCK_M=block_m,
        num_warps=num_warps,
    )


def conv2d_lut(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor,
               stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
               groups: int = 1) -> torch.Tensor:
    """LUT convolution of pre-padded uint8 codes; see :mod:`.reference` for the contract."""
    kernels = _kernels()
    _check(x, w, lut, kernels)
    if x.dim() != 4 or w.dim() != 4:
        raise HwcostError(f"conv2d_lut expects 4-D x and w, got {tuple(x.shape)} and "
                          f"{tuple(w.shape)}")
    n, c, h, wd = x.shape
    m, cg, r, s = w.shape
    sh, sw = (int(v) for v in stride)
    dh, dw = (int(v) for v in dilation)
    if groups < 1 or c % groups or m % groups or cg != c // groups:
        raise HwcostError(f"conv2d_lut: {c} input and {m} output channels with weights "
                          f"{tuple(w.shape)} do not fit groups={groups}")
    p = (h - dh * (r - 1) - 1) // sh + 1
    q = (wd - dw * (s - 1) - 1) // sw + 1
    if p < 1 or q < 1:
        raise HwcostError(f"conv2d_lut: kernel {r}x{s} (dilation {dh}x{dw}) is larger than the "
                          f"padded input {h}x{wd}")
    out = torch.empty((n, m, p, q), dtype=torch.int32, device=x.device)
    _launch(x, w.contiguous(), lut, out, p, q, groups, (sh, sw), (dh, dw), kernels)
    return out


def linear_lut(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """LUT matrix product ``(N, K) x (M, K)^T``: the conv kernel with ``R = S = H = W = 1``."""
    kernels = _kernels()
    _check(x, w, lut, kernels)
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise HwcostError(f"linear_lut expects x (N, K) and w (M, K), got {tuple(x.shape)} and "
                          f"{tuple(w.shape)}")
    n, k = x.shape
    m = w.shape[0]
    out = torch.empty((n, m, 1, 1), dtype=torch.int32, device=x.device)
    _launch(x[:, :, None, None],
            w.contiguous().view(m, k, 1, 1), lut, out, 1, 1, 1, (1, 1), (1, 1), kernels)
    return out.view(n, m)


def conv2d_multi_lut(x: torch.Tensor, w: torch.Tensor, luts,
                     stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
                     groups: int = 1) -> torch.Tensor:
    """``(T, N, M, P, Q)``: one ``conv2d_lut`` launch per table."""
    return multi_by_calls(conv2d_lut, x, w, luts, stride, dilation, groups)


def conv2d_block_lut(x: torch.Tensor, w: torch.Tensor, luts,
                     stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
                     groups: int = 1) -> torch.Tensor:
    """The batch as ``len(luts)`` blocks: one ``conv2d_lut`` launch per block."""
    return blocks_by_calls(conv2d_lut, x, w, luts, stride, dilation, groups)


def fused_conv2d(x: torch.Tensor, weight: torch.Tensor) -> FusedConv | None:
    """No fused path: the layers run op by op on this backend."""
    return None
