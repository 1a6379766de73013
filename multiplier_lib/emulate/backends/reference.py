"""The reference backend: pure torch, slow, obviously correct; the oracle of every test.

Contract shared by every backend (``cpu``, ``triton``):

* ``conv2d_lut(x, w, lut, stride, dilation, groups) -> int32``
  ``x``: ``uint8`` activation codes ``(N, C, H, W)``, already padded (padding is done by the
  caller with the activation's zero-point code); ``w``: ``uint8`` weight codes
  ``(M, C // groups, R, S)``; ``lut``: ``int32`` ``(2**a_bits, 2**b_bits)``, indexed
  ``lut[activation_code, weight_code]``.  Returns ``(N, M, P, Q)`` with
  ``out[n, m, p, q] = sum_{c, r, s} lut[x[n, g*Cg + c, p*sh + r*dh, q*sw + s*dw], w[m, c, r, s]]``
  where ``g = m // (M // groups)``, ``Cg = C // groups``.
* ``linear_lut(x, w, lut) -> int32``: ``x`` ``(N, K)``, ``w`` ``(M, K)``, ``out[n, m] =
  sum_k lut[x[n, k], w[m, k]]``.
* ``conv2d_multi_lut(x, w, luts, stride, dilation, groups) -> int32`` (where a backend has
  it): ``luts`` a sequence of T tables of one shape; returns ``(T, N, M, P, Q)``, entry ``t``
  equal to ``conv2d_lut(x, w, luts[t], ...)``: the candidate multipliers of a search edge
  evaluated on the same codes.

Sums are exact in int32 as long as ``K * max|lut| < 2**31`` (callers check).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _unfold_codes(x: torch.Tensor, kernel: tuple[int, int], stride, dilation) -> torch.Tensor:
    """im2col of integer codes, exactly (codes < 2**24 are exact in float32)."""
    cols = F.unfold(x.to(torch.float32), kernel, dilation=dilation, stride=stride)
    return cols.round().to(torch.long)


def conv2d_lut(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor, stride=(1, 1),
               dilation=(1, 1), groups: int = 1) -> torch.Tensor:
    n, _c, h, wd = x.shape
    m, cg, r, s = w.shape
    p = (h - dilation[0] * (r - 1) - 1) // stride[0] + 1
    q = (wd - dilation[1] * (s - 1) - 1) // stride[1] + 1
    cols = _unfold_codes(x, (r, s), stride, dilation)          # (N, C*R*S, P*Q)
    cols = cols.view(n, groups, cg * r * s, p * q)
    mg = m // groups
    wcodes = w.to(torch.long).view(groups, mg, cg * r * s)
    width = lut.shape[1]
    flat = lut.reshape(-1).to(torch.int64)
    out = torch.empty(n, groups, mg, p * q, dtype=torch.int64)
    for g in range(groups):
        a = cols[:, g]                                          # (N, K, L)
        for j in range(mg):
            idx = a * width + wcodes[g, j].view(1, -1, 1)       # (N, K, L)
            out[:, g, j] = flat[idx].sum(dim=1)
    return out.view(n, m, p, q).to(torch.int32)


def conv2d_multi_lut(x: torch.Tensor, w: torch.Tensor, luts, stride=(1, 1), dilation=(1, 1),
                     groups: int = 1) -> torch.Tensor:
    return torch.stack([conv2d_lut(x, w, lut, stride, dilation, groups) for lut in luts])


def linear_lut(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    width = lut.shape[1]
    flat = lut.reshape(-1).to(torch.int64)
    idx = x.to(torch.long).unsqueeze(1) * width + w.to(torch.long).unsqueeze(0)  # (N, M, K)
    return flat[idx].sum(dim=2).to(torch.int32)
