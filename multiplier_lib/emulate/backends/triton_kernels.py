"""Triton kernels of the ``triton`` backend (imported lazily by :mod:`.triton`).

This module imports :mod:`triton` at import time, so :mod:`.triton` imports it only inside its
functions: ``hwcost`` must import without the optional ``gpu`` extra, and Triton decides once,
when :mod:`triton.language` is first imported (its own ``tl.sum`` etc. are jitted then) and when
a kernel is decorated, whether kernels are compiled for the GPU or run by its CPU interpreter
(``TRITON_INTERPRET=1``).  Tests therefore set the variable before anything imports triton;
:func:`mode_mismatch` detects a process where that order was broken.

The single kernel, :func:`conv2d_lut_kernel`, is an implicit GEMM whose multiply-accumulate
is replaced by a table look-up:

* the output is viewed as a matrix ``(L, M)`` with ``L = N*P*Q`` output positions (batch folded
  in) and ``M`` output channels; a program owns one ``(BLOCK_L, BLOCK_M)`` tile of one group
  (grid axes: L tiles, M tiles within a group, groups), so grouped and depthwise convolutions
  (``Cg = 1``) are the same kernel with a different grid;
* the reduction ``K = Cg*R*S`` is walked in ``BLOCK_K`` chunks; for each chunk the kernel
  computes, for every ``(l, k)`` pair, the input coordinate ``(n, g*Cg + c, p*sh + r*dh,
  q*sw + s*dw)`` and loads the activation code directly from ``x`` (no im2col tensor is ever
  materialised: a 3x3 convolution would otherwise read/write 9x its input), loads the
  ``(BLOCK_K, BLOCK_M)`` weight codes, forms the ``(BLOCK_L, BLOCK_K, BLOCK_M)`` flat indices
  ``a * B + w`` and gathers the products from the LUT, then reduces over the K axis with
  ``tl.sum`` into an ``int32`` accumulator (int32 wrap-around matches the reference's final
  ``int64 -> int32`` cast, so results are bit-exact even if a caller overflows);
* a fully-connected layer is the same kernel with ``R = S = H = W = 1``.

The LUT is gathered straight from global memory: an 8x8 table is 256 KiB of int32, which
stays resident in L2 (and partly L1) after the first tiles touch it.  On a GPU one could stage
it in shared memory instead (an 8x8 int32 table does not fit the 48-228 KiB per block, but an
int16 copy -- most approximate-multiplier products fit 16 bits -- or a per-tile slice
``lut[:, w_tile]`` of ``2**a * BLOCK_M`` entries does); Triton does not expose indexed
shared-memory gathers directly, which is why this kernel relies on the cache hierarchy.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl


def is_interpreted(fn: Any) -> bool:
    """Whether a jitted function runs in Triton's CPU interpreter (and so takes CPU tensors)."""
    return type(fn).__name__ == "InterpretedFunction"


def mode_mismatch() -> bool:
    """True when our kernel and :mod:`triton.language` were jitted in different modes.

    That happens when triton was imported before ``TRITON_INTERPRET`` was set (or unset) and
    this module after; the kernel would then fail with an obscure error inside Triton.
    """
    return is_interpreted(conv2d_lut_kernel) != is_interpreted(tl.sum)


@triton.jit
def conv2d_lut_kernel(
    x_ptr, w_ptr, lut_ptr, out_ptr,
    # activation geometry and element strides (x may be non-contiguous)
    C_G, P, Q, M, M_G, K, L,
    sxn, sxc, sxh, sxw,
    # convolution parameters
    SH, SW, DH, DW,
    R: tl.constexpr, S: tl.constexpr, LUT_B: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_M: tl.constexpr,
):
    """One ``(BLOCK_L, BLOCK_M)`` output tile of group ``program_id(2)``; see the module doc."""
    pid_l = tl.program_id(0)
    pid_m = tl.program_id(1)
    g = tl.program_id(2)

    # Output positions of the tile, decomposed into (n, p, q); int64 so that offsets into
    # large activation/output tensors cannot overflow.
    offs_l = pid_l.to(tl.int64) * BLOCK_L + tl.arange(0, BLOCK_L).to(tl.int64)
    mask_l = offs_l < L
    pq = P * Q
    n_idx = offs_l // pq
    rem = offs_l % pq
    p_idx = rem // Q
    q_idx = rem % Q
    x_row = n_idx * sxn + (g * C_G).to(tl.int64) * sxc + (p_idx * SH) * sxh + (q_idx * SW) * sxw

    # Output channels of the tile (within the group) and their global index.
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M_G
    m_glob = g * M_G + offs_m
    w_col = m_glob.to(tl.int64) * K

    acc = tl.zeros((BLOCK_L, BLOCK_M), dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        # k enumerates (c, r, s) in the weight's memory order.
        c_idx = offs_k // (R * S)
        r_idx = (offs_k // S) % R
        s_idx = offs_k % S
        x_k = c_idx.to(tl.int64) * sxc + (r_idx * DH) * sxh + (s_idx * DW) * sxw

        a_ptrs = x_ptr + (x_row[:, None] + x_k[None, :])
        a = tl.load(a_ptrs, mask=mask_l[:, None] & mask_k[None, :], other=0).to(tl.int32)
        w_ptrs = w_ptr + (w_col[None, :] + offs_k[:, None])
        wk = tl.load(w_ptrs, mask=mask_k[:, None] & mask_m[None, :], other=0).to(tl.int32)

        idx = a[:, :, None] * LUT_B + wk[None, :, :]                     # (BL, BK, BM)
        valid = mask_l[:, None, None] & mask_k[None, :, None] & mask_m[None, None, :]
        prod = tl.load(lut_ptr + idx, mask=valid, other=0)
        acc += tl.sum(prod, axis=1)

    out_ptrs = out_ptr + ((n_idx * M)[:, None] + m_glob[None, :].to(tl.int64)) * pq \
        + rem[:, None]
    tl.store(out_ptrs, acc, mask=mask_l[:, None] & mask_m[None, :])
