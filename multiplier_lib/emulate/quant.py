"""Quantization onto a multiplier's operand domain: observers, parameters, fake-quant modules.

An approximate multiplier multiplies *codes*: ``lut[a_code, w_code]`` for 8-bit (or N-bit)
operands, unsigned (``mul8u``: codes 0..255 are the values) or signed (``mul8s``: codes are
two's complement bit patterns of -128..127).  Real tensors are mapped onto those values with
an affine quantizer ``x ~ scale * (q - zero_point)``, ``q`` clamped to the domain:

* **asymmetric**: ``[min, max]`` spans the whole domain, any zero point;
* **symmetric**: zero maps to the domain's centre (0 for signed operands, the middle code
  ``2**(bits-1)`` for unsigned ones unless the data is non-negative, e.g. after ReLU, where
  zero maps to code 0 and the full range is used).

Ranges come from observers (min-max, moving-average min-max, percentile), per tensor or per
output channel (weights).  The approximate part of a layer is the sum of ``lut[qa, qw]`` over
the reduction; zero-point and scale corrections are applied exactly afterwards (see
:mod:`multiplier_lib.emulate.functional`), as TFApprox does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.errors import HwcostError

OBSERVERS = ("minmax", "moving_average", "percentile")

#: whether observers marked ``sync`` reduce their ranges over torch.distributed processes
#: (set by multi-process training, so that every process quantizes alike)
_RANGE_SYNC = False


def set_range_sync(enabled: bool) -> bool:
    """Turn the cross-process range reduction on or off; returns the previous setting."""
    global _RANGE_SYNC
    previous, _RANGE_SYNC = _RANGE_SYNC, bool(enabled)
    return previous


def range_sync_enabled() -> bool:
    """Whether observers marked ``sync`` currently reduce over processes."""
    return _RANGE_SYNC


def sync_range(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The min over processes of ``lo`` and max of ``hi`` (one all-reduce), when enabled."""
    if not _RANGE_SYNC:
        return lo, hi
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return lo, hi
    n = lo.numel()
    t = torch.cat([-lo.detach().reshape(-1), hi.detach().reshape(-1)]).to(torch.float32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return (-t[:n]).reshape(lo.shape).to(lo.dtype), t[n:].reshape(hi.shape).to(hi.dtype)


@dataclass(frozen=True)
class Domain:
    """The integer values one multiplier operand can take."""

    bits: int
    signed: bool

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    def codes(self, q: torch.Tensor) -> torch.Tensor:
        """LUT index of each integer value (two's complement bit pattern when signed)."""
        if not self.signed:
            return q.to(torch.uint8)
        return (q.to(torch.int16) & self.mask).to(torch.uint8)


class Observer(nn.Module):
    """Tracks the range of what it sees, per tensor (``axis=None``) or along ``axis``."""

    def __init__(self, kind: str = "minmax", axis: int | None = None, momentum: float = 0.1,
                 percentile: float = 99.99):
        super().__init__()
        if kind not in OBSERVERS:
            raise HwcostError(f"unknown observer {kind!r}; expected one of "
                              f"{', '.join(OBSERVERS)}")
        if not 50.0 < percentile <= 100.0:
            raise HwcostError(f"percentile must be in (50, 100], got {percentile}")
        self.kind = kind
        self.axis = axis
        self.sync = False   # reduce ranges over processes (activations; see sync_range)
        self.momentum = momentum
        self.percentile = percentile
        self.register_buffer("min_val", torch.tensor([]))
        self.register_buffer("max_val", torch.tensor([]))

    @property
    def initialized(self) -> bool:
        return self.min_val.numel() > 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # ranges have no shape until observed: take the checkpoint's shape
        for name in ("min_val", "max_val"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _reduce(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().to(torch.float32)
        if self.axis is None:
            flat = x.reshape(1, -1)
        else:
            flat = x.transpose(0, self.axis).reshape(x.shape[self.axis], -1)
        if self.kind == "percentile" and flat.shape[1] > 1:
            q = torch.tensor([1 - self.percentile / 100, self.percentile / 100],
                             device=flat.device)
            lo_hi = torch.quantile(flat, q.to(flat.dtype), dim=1)
            lo, hi = lo_hi[0], lo_hi[1]
        else:
            lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
        return lo, hi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self._reduce(x)
        if self.sync:
            lo, hi = sync_range(lo, hi)
        if not self.initialized:
            self.min_val, self.max_val = lo, hi
        elif self.kind == "moving_average":
            m = self.momentum
            self.min_val = self.min_val * (1 - m) + lo * m
            self.max_val = self.max_val * (1 - m) + hi * m
        else:
            self.min_val = torch.minimum(self.min_val, lo)
            self.max_val = torch.maximum(self.max_val, hi)
        return x


def qparams(lo: torch.Tensor, hi: torch.Tensor, domain: Domain,
            symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point (float, int64) for ranges ``[lo, hi]`` on ``domain``."""
    lo = torch.minimum(lo, torch.zeros_like(lo))   # the range always contains 0, so that
    hi = torch.maximum(hi, torch.zeros_like(hi))   # zero padding stays exact
    eps = torch.finfo(torch.float32).eps
    if symmetric:
        amax = torch.maximum(-lo, hi)
        if domain.signed:
            scale = amax / domain.qmax
            zp = torch.zeros_like(amax, dtype=torch.int64)
        else:
            nonneg = lo >= 0
            half = 1 << (domain.bits - 1)
            scale = torch.where(nonneg, hi / domain.qmax, amax / (half - 1 if half > 1 else 1))
            zp = torch.where(nonneg, torch.zeros_like(lo, dtype=torch.int64),
                             torch.full_like(lo, half, dtype=torch.int64))
    else:
        scale = (hi - lo) / (domain.qmax - domain.qmin)
        zp = torch.zeros_like(lo, dtype=torch.int64)
        safe = torch.clamp(scale, min=eps)
        zp = (domain.qmin - torch.round(lo / safe)).to(torch.int64)
        zp = torch.clamp(zp, domain.qmin, domain.qmax)
    scale = torch.clamp(scale, min=eps)
    return scale.to(torch.float32), zp


def qparams_np(lo: np.ndarray, hi: np.ndarray, domain: Domain,
               symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`qparams` in numpy float32, value for value.

    A layer calls it on every forward; as torch ops on a few scalars it cost ~40 us of
    dispatch, which dominated small layers.  ``tests/multiplier_lib/emulate/test_quant.py``
    checks it against :func:`qparams`.
    """
    f32 = np.float32
    if np.size(lo) == 1 and np.size(hi) == 1:
        scale1, zp1 = _qparams_scalar(f32(np.ravel(lo)[0]), f32(np.ravel(hi)[0]), domain,
                                      symmetric)
        return np.full(np.shape(lo), scale1, dtype=f32), np.full(np.shape(lo), zp1,
                                                                 dtype=np.int64)
    lo = np.minimum(np.asarray(lo, dtype=f32), f32(0))
    hi = np.maximum(np.asarray(hi, dtype=f32), f32(0))
    eps = f32(np.finfo(np.float32).eps)
    if symmetric:
        amax = np.maximum(-lo, hi)
        if domain.signed:
            scale = amax / f32(domain.qmax)
            zp = np.zeros(amax.shape, dtype=np.int64)
        else:
            nonneg = lo >= 0
            half = 1 << (domain.bits - 1)
            scale = np.where(nonneg, hi / f32(domain.qmax),
                             amax / f32(half - 1 if half > 1 else 1)).astype(f32)
            zp = np.where(nonneg, 0, half).astype(np.int64)
    else:
        scale = (hi - lo) / f32(domain.qmax - domain.qmin)
        safe = np.maximum(scale, eps)
        zp = (f32(domain.qmin) - np.rint(lo / safe)).astype(np.int64)
        zp = np.clip(zp, domain.qmin, domain.qmax)
    return np.maximum(scale, eps).astype(f32), zp


_EPS32 = np.float32(np.finfo(np.float32).eps)


def _qparams_scalar(lo: np.float32, hi: np.float32, domain: Domain,
                    symmetric: bool) -> tuple[np.float32, int]:
    """One range's :func:`qparams_np` with float32 scalars (array calls cost ~1 us each)."""
    f32 = np.float32
    lo = min(lo, f32(0))
    hi = max(hi, f32(0))
    if symmetric:
        amax = max(-lo, hi)
        if domain.signed:
            scale, zp = amax / f32(domain.qmax), 0
        elif lo >= 0:
            scale, zp = hi / f32(domain.qmax), 0
        else:
            half = 1 << (domain.bits - 1)
            scale, zp = amax / f32(half - 1 if half > 1 else 1), half
    else:
        scale = (hi - lo) / f32(domain.qmax - domain.qmin)
        safe = max(scale, _EPS32)
        zp = int(f32(domain.qmin) - np.rint(lo / safe))
        zp = min(max(zp, domain.qmin), domain.qmax)
    return f32(max(scale, _EPS32)), zp


class FakeQuantize(nn.Module):
    """Observer plus quantizer for one operand of an approximate layer.

    In calibration mode (``observing``) it updates its observer; ``quantize`` maps a tensor
    to integer values of the domain with the current parameters (per channel along ``axis``).
    """

    def __init__(self, domain: Domain, observer: str = "minmax", axis: int | None = None,
                 symmetric: bool = False, momentum: float = 0.1, percentile: float = 99.99):
        super().__init__()
        self.domain = domain
        self.symmetric = symmetric
        self.axis = axis
        self.observer = Observer(observer, axis, momentum, percentile)
        self.observing = True

    def extra_repr(self) -> str:
        kind = "signed" if self.domain.signed else "unsigned"
        where = "per-tensor" if self.axis is None else f"per-channel(axis={self.axis})"
        return (f"{self.domain.bits}-bit {kind}, {self.observer.kind}, {where}, "
                f"{'symmetric' if self.symmetric else 'asymmetric'}")

    def params(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.observer.initialized:
            if x is None:
                raise HwcostError("quantizer has seen no data: run a calibration pass")
            self.observer(x)
        return qparams(self.observer.min_val, self.observer.max_val, self.domain,
                       self.symmetric)

    def _shape(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        if self.axis is None:
            return t.reshape(())
        shape = [1] * ndim
        shape[self.axis] = -1
        return t.reshape(shape)

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Integer values (as float32), scale and zero point broadcastable against ``x``."""
        q, scale, zp, _ = self.quantize_with_mask(x, need_mask=False)
        return q, scale, zp

    def quantize_with_mask(self, x: torch.Tensor, need_mask: bool = True):
        """``quantize`` plus where the straight-through estimator passes gradients (values
        the quantizer did not clip, within half a step of the domain's ends)."""
        if self.observing and self.training:
            self.observer(x)
        scale, zp = self.params(x)
        scale = self._shape(scale, x.dim())
        zp = self._shape(zp, x.dim())
        v = x.detach().to(torch.float32) / scale + zp.to(torch.float32)
        q = torch.round(v).clamp_(self.domain.qmin, self.domain.qmax)
        mask = None
        if need_mask:
            mask = (v >= self.domain.qmin - 0.5) & (v <= self.domain.qmax + 0.5)
        return q, scale, zp, mask

    def observe_range(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Feed the observer a range already reduced (what ``Observer.forward`` would
        compute from the tensor), in calibration mode only."""
        if not (self.observing and self.training):
            return
        obs = self.observer
        if not obs.initialized:
            obs.min_val, obs.max_val = lo.clone(), hi.clone()
        elif obs.kind == "moving_average":
            m = obs.momentum
            obs.min_val = obs.min_val * (1 - m) + lo * m
            obs.max_val = obs.max_val * (1 - m) + hi * m
        else:   # in place: no module attribute traffic on the hot path
            torch.minimum(obs.min_val, lo, out=obs.min_val)
            torch.maximum(obs.max_val, hi, out=obs.max_val)

    def fast_params(self, x: torch.Tensor,
                    x_range: tuple[torch.Tensor, torch.Tensor] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Observe ``x`` (when calibrating) and return float32 scales and int64 zero points
        as numpy arrays (one entry per tensor or per channel).  ``x_range`` passes a min-max
        range the caller already has (per tensor: shape (1,)); the percentile observer
        always reduces ``x`` itself."""
        obs = self.observer
        if x_range is not None and obs.sync and self.observing and self.training:
            x_range = sync_range(*x_range)
        if self.observing and self.training:
            if x_range is not None and obs.kind == "minmax" and obs.initialized:
                # running min-max in place through numpy views: a few microseconds, where
                # torch ops on these tiny tensors cost several each
                mn, mx = obs.min_val.detach().numpy(), obs.max_val.detach().numpy()
                np.minimum(mn, x_range[0].detach().numpy(), out=mn)
                np.maximum(mx, x_range[1].detach().numpy(), out=mx)
            elif x_range is not None and obs.kind != "percentile":
                self.observe_range(*x_range)
            else:
                obs(x)
        elif not obs.initialized:
            obs(x)
        lo, hi = obs.min_val.detach().numpy(), obs.max_val.detach().numpy()
        # keyed on the range values: unchanged ranges (inference, frozen observers, a training
        # batch inside the running range) reuse the parameters
        key = (lo.tobytes(), hi.tobytes(), self.symmetric)
        cached = self.__dict__.get("_fast_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        params = qparams_np(lo, hi, self.domain, self.symmetric)
        self.__dict__["_fast_cache"] = (key, params)
        return params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantized ``x`` (dequantized values), for inspection and QAT views."""
        q, scale, zp = self.quantize(x)
        return (q - zp).to(x.dtype) * scale
