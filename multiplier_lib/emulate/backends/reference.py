"""The reference backend: pure torch, slow, obviously correct; the oracle of every test.

It implements :class:`.contract.EmulationBackend` (the contract every backend shares, with the
semantics of each function) in the most direct way: an unfold of the codes and one table
gather per output channel.  It has no fused path, and its multi-LUT forms are one
``conv2d_lut`` call per table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .contract import FusedConv, blocks_by_calls, multi_by_calls


def is_available() -> bool:
    """Pure torch: always."""
    return True


def fused_conv2d(x: torch.Tensor, weight: torch.Tensor) -> FusedConv | None:
    """No fused path: the layers run op by op on this backend."""
    return None


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
    return multi_by_calls(conv2d_lut, x, w, luts, stride, dilation, groups)


def conv2d_block_lut(x: torch.Tensor, w: torch.Tensor, luts, stride=(1, 1), dilation=(1, 1),
                     groups: int = 1) -> torch.Tensor:
    return blocks_by_calls(conv2d_lut, x, w, luts, stride, dilation, groups)


def linear_lut(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    width = lut.shape[1]
    flat = lut.reshape(-1).to(torch.int64)
    idx = x.to(torch.long).unsqueeze(1) * width + w.to(torch.long).unsqueeze(0)  # (N, M, K)
    return flat[idx].sum(dim=2).to(torch.int32)
