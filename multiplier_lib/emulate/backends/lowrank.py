"""The low-rank backend: a fast, approximate surrogate of the LUT contract.

Why it works: an approximate multiplier is *almost* a product, so its table splits as
``lut[a, b] = va[a] * vb[b] + E[a, b]`` where ``va``/``vb`` are the numeric operand values of
the codes and ``E`` is the (usually small, usually structured) error table.  The product part
is one ordinary dense convolution of the operand values; the error part, truncated to its
leading ``r`` singular triplets ``E ~ sum_i u_i[a] * v_i[b]``, is ``r`` more dense
convolutions of the codes mapped through ``u_i`` and ``v_i``.  Dense convolutions are what
every BLAS is good at, unlike the gathers of the exact backends.

Precision: at *full* rank (``min(2**a_bits, 2**b_bits)``) the factorisation is exact, and
the convolution runs in ``float64`` so that the rounding noise stays far below 0.5 and the
rounded result equals :mod:`.reference` bit for bit -- the tests hold this backend to that.
Below full rank the result is an approximation anyway (its quality is what
:mod:`multiplier_lib.emulate.fidelity` measures), and the convolution runs in ``float32``,
where CPUs have fast convolution kernels (oneDNN has none for ``float64``): 4-8x faster.
``float32`` holds every integer partial sum below 2**24 exactly; beyond that its rounding
adds an error that the tests measure against ``float64`` (``precise=True`` forces
``float64`` at any rank).

Contract: see :mod:`.reference`; ``conv2d_lut``/``linear_lut`` take an extra ``rank`` and
accept either an ``int32`` LUT or a :class:`LowRank` built by :func:`factorize` (which is how a
caller pins the operand signedness instead of letting it be inferred).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import HwcostError
from ...multiplier import operand_values

#: Rank used when the caller gives none (clamped to the full rank of small tables).
DEFAULT_RANK = 16

#: Upper bound on the elements of one expanded float64 input (``(N, C*(k), H, W)``) so that
#: high ranks on big activations are processed in chunks instead of exhausting memory.
_CHUNK_ELEMENTS = 1 << 24

_CACHE_SIZE = 32
_cache: OrderedDict[tuple, LowRank] = OrderedDict()


@dataclass(frozen=True)
class LowRank:
    """The full SVD of one LUT's error table, truncated on use to ``rank`` terms.

    The full decomposition is kept (it is at most 256x256) so that one cached object serves
    every rank; ``rank`` is only the default number of error terms used.

    Attributes:
        va, vb: operand values of the activation / weight codes, float64 ``(A,)``, ``(B,)``.
        u: left singular vectors scaled by the singular values, float64 ``(A, full_rank)``.
        v: right singular vectors, float64 ``(B, full_rank)``.
        singular_values: descending, float64 ``(full_rank,)``.
        signed: whether the codes were read as two's complement.
        rank: default number of error terms.
    """

    va: torch.Tensor
    vb: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    singular_values: torch.Tensor
    signed: bool
    rank: int

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.va.shape[0]), int(self.vb.shape[0]))

    @property
    def full_rank(self) -> int:
        return min(self.shape)

    def with_rank(self, rank: int) -> LowRank:
        """The same factorisation with another default rank (validated, no recomputation)."""
        return LowRank(self.va, self.vb, self.u, self.v, self.singular_values, self.signed,
                       _check_rank(rank, self.full_rank))

    def factors(self, rank: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Fa, Fb)`` with ``lut ~ Fa @ Fb.T``: column 0 is the exact product, then errors."""
        r = self.rank if rank is None else _check_rank(rank, self.full_rank)
        fa = torch.cat([self.va.unsqueeze(1), self.u[:, :r]], dim=1)
        fb = torch.cat([self.vb.unsqueeze(1), self.v[:, :r]], dim=1)
        return fa, fb

    def approximate_lut(self, rank: int | None = None) -> torch.Tensor:
        """The float64 table the rank-``rank`` surrogate effectively multiplies with."""
        fa, fb = self.factors(rank)
        return fa @ fb.T


def _check_rank(rank: int, full_rank: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int | np.integer):
        raise HwcostError(f"low-rank rank must be an integer, got {rank!r}")
    rank = int(rank)
    if not 0 <= rank <= full_rank:
        raise HwcostError(f"low-rank rank must be 0..{full_rank} (the full rank of this "
                          f"LUT's error table), got {rank}")
    return rank


def _table_bits(n: int, which: str) -> int:
    bits = n.bit_length() - 1
    if n < 2 or 1 << bits != n or bits > 8:
        raise HwcostError(f"low-rank backend: LUT {which} size must be a power of two 2..256, "
                          f"got {n}")
    return bits


def _as_tensor(lut: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(lut)) if isinstance(lut, np.ndarray) else lut
    if t.dim() != 2:
        raise HwcostError(f"low-rank backend: LUT must be 2-D, got shape {tuple(t.shape)}")
    return t.detach().to("cpu")


def factorize(lut: torch.Tensor | np.ndarray, rank: int = DEFAULT_RANK,
              signed: bool | None = None) -> LowRank:
    """Split ``lut`` into exact product plus SVD of the error table (cached per LUT content).

    ``signed=None`` infers the operand encoding from the table itself -- a LUT with a negative
    entry can only come from two's complement operands -- because the backend contract hands
    over a bare table.  Pass ``signed`` explicitly when the multiplier is known.
    """
    t = _as_tensor(lut)
    a_bits = _table_bits(int(t.shape[0]), "row (activation)")
    b_bits = _table_bits(int(t.shape[1]), "column (weight)")
    full = min(t.shape[0], t.shape[1])
    rank = _check_rank(rank, full)
    if signed is None:
        signed = bool((t < 0).any())
    data = t.contiguous().to(torch.int64).numpy()
    key = (tuple(t.shape), bool(signed), hashlib.blake2b(data.tobytes(), digest_size=16).digest())
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit if hit.rank == rank else hit.with_rank(rank)
    va = torch.from_numpy(operand_values(a_bits, signed).astype(np.float64))
    vb = torch.from_numpy(operand_values(b_bits, signed).astype(np.float64))
    err = torch.from_numpy(data.astype(np.float64)) - torch.outer(va, vb)
    u, s, vh = torch.linalg.svd(err, full_matrices=False)
    result = LowRank(va=va, vb=vb, u=(u * s).contiguous(), v=vh.T.contiguous(),
                     singular_values=s, signed=bool(signed), rank=rank)
    _cache[key] = result
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return result


def _resolve(lut: torch.Tensor | np.ndarray | LowRank, rank: int | None) -> tuple[LowRank, int]:
    if isinstance(lut, LowRank):
        r = lut.rank if rank is None else _check_rank(rank, lut.full_rank)
        return lut, r
    if rank is None:
        t = _as_tensor(lut)
        rank = min(DEFAULT_RANK, int(t.shape[0]), int(t.shape[1]))
    lr = factorize(lut, rank)
    return lr, lr.rank


def _chunks(total: int, per_item: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_ELEMENTS // max(1, per_item))
    return [(i, min(i + step, total)) for i in range(0, total, step)]


def _dtype(lr: LowRank, rank: int, precise: bool | None) -> torch.dtype:
    """float64 where exactness is promised (full rank, or asked for), float32 otherwise."""
    if precise is None:
        precise = rank == lr.full_rank
    return torch.float64 if precise else torch.float32


def conv2d_lowrank_float(x: torch.Tensor, w: torch.Tensor,
                         lut: torch.Tensor | np.ndarray | LowRank, stride=(1, 1),
                         dilation=(1, 1), groups: int = 1,
                         rank: int | None = None,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The surrogate convolution, unrounded (what fidelity studies look at).

    All ``rank + 1`` terms go through *one* grouped convolution: the codes are mapped
    through the ``k = rank + 1`` factor columns by one embedding look-up in channels-last
    order, which lays term ``i`` of channel ``c`` at channel ``c * k + i`` without a copy
    (the convolution reads the channels-last view directly), and the weights are laid out
    the same way, so the channel reduction of the convolution also sums over the terms.
    Batches too large for one expanded input are processed in slices.
    """
    lr, r = _resolve(lut, rank)
    fa, fb = lr.factors(r)
    fa, fb = fa.to(x.device, dtype), fb.to(x.device, dtype)
    n, c, h, wd = x.shape
    m, cg, kr, ks = w.shape
    if c != cg * groups or m % groups:
        raise HwcostError(f"low-rank conv2d: {c} input channels and weight {tuple(w.shape)} "
                          f"do not fit groups={groups}")
    k = r + 1
    # (M, Cg, R, S) codes -> (M, Cg, R, S, k) values -> (M, Cg*k, R, S), channel c*k + i
    wb = F.embedding(w.to(torch.long), fb).permute(0, 1, 4, 2, 3).reshape(m, cg * k, kr, ks)
    codes = x.permute(0, 2, 3, 1).to(torch.long)                  # (N, H, W, C)
    parts = []
    for lo, hi in _chunks(n, c * h * wd * k):
        # (n', H, W, C, k) -> (n', H, W, C*k) -> the NCHW view of that channels-last tensor
        xa = F.embedding(codes[lo:hi], fa).view(hi - lo, h, wd, c * k).permute(0, 3, 1, 2)
        parts.append(F.conv2d(xa, wb, stride=tuple(stride), dilation=tuple(dilation),
                              groups=groups))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def linear_lowrank_float(x: torch.Tensor, w: torch.Tensor,
                         lut: torch.Tensor | np.ndarray | LowRank,
                         rank: int | None = None,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The surrogate ``linear``, unrounded: one matmul over ``K * (rank + 1)``."""
    lr, r = _resolve(lut, rank)
    fa, fb = lr.factors(r)
    fa, fb = fa.to(x.device, dtype), fb.to(x.device, dtype)
    n, kdim = x.shape
    m = w.shape[0]
    xi, wi = x.to(torch.long), w.to(torch.long)
    out = None
    for lo, hi in _chunks(r + 1, n * kdim):
        xa = fa[:, lo:hi][xi].reshape(n, -1)
        wb = fb[:, lo:hi][wi].reshape(m, -1)
        part = xa @ wb.T
        out = part if out is None else out + part
    assert out is not None
    return out


def conv2d_lut(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor | np.ndarray | LowRank,
               stride=(1, 1), dilation=(1, 1), groups: int = 1,
               rank: int | None = None, precise: bool | None = None) -> torch.Tensor:
    """Contract ``conv2d_lut``, rounded to ``int32``; ``rank=None`` means ``DEFAULT_RANK``
    (clamped to the table's full rank) or, for a :class:`LowRank`, its own rank; ``precise``
    as in the module docstring (None: float64 at full rank only)."""
    lr, r = _resolve(lut, rank)
    out = conv2d_lowrank_float(x, w, lr, stride, dilation, groups, r, _dtype(lr, r, precise))
    return out.round().to(torch.int32)


def linear_lut(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor | np.ndarray | LowRank,
               rank: int | None = None, precise: bool | None = None) -> torch.Tensor:
    """Contract ``linear_lut``, rounded to ``int32`` (``rank``, ``precise`` as in
    :func:`conv2d_lut`)."""
    lr, r = _resolve(lut, rank)
    return linear_lowrank_float(x, w, lr, r, _dtype(lr, r, precise)).round().to(torch.int32)
