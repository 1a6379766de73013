"""The contract every emulation backend implements, as a :class:`typing.Protocol`.

A backend is a module (``reference``, ``cpu``, ``triton``) whose functions satisfy
:class:`EmulationBackend`; the registry (:func:`multiplier_lib.emulate.backends.get`) checks
each one with :func:`check_backend` when it is first loaded, so a backend that lacks a
function or spells its parameters differently is refused by name instead of failing deep in
a forward pass.

* ``conv2d_lut(x, w, lut, stride, dilation, groups) -> int32``
  ``x``: ``uint8`` activation codes ``(N, C, H, W)``, already padded (padding is done by the
  caller with the activation's zero-point code); ``w``: ``uint8`` weight codes
  ``(M, C // groups, R, S)``; ``lut``: ``int32`` ``(2**a_bits, 2**b_bits)``, indexed
  ``lut[activation_code, weight_code]``.  Returns ``(N, M, P, Q)`` with
  ``out[n, m, p, q] = sum_{c, r, s} lut[x[n, g*Cg + c, p*sh + r*dh, q*sw + s*dw], w[m, c, r, s]]``
  where ``g = m // (M // groups)``, ``Cg = C // groups``.
* ``linear_lut(x, w, lut) -> int32``: ``x`` ``(N, K)``, ``w`` ``(M, K)``, ``out[n, m] =
  sum_k lut[x[n, k], w[m, k]]``.
* ``conv2d_multi_lut(x, w, luts, stride, dilation, groups) -> int32``: ``luts`` a sequence of
  T tables of one shape; returns ``(T, N, M, P, Q)``, entry ``t`` equal to
  ``conv2d_lut(x, w, luts[t], ...)``: the candidate multipliers of a search edge evaluated on
  the same codes.
* ``conv2d_block_lut(x, w, luts, stride, dilation, groups) -> int32``: the batch read as
  ``len(luts)`` equal blocks, block ``t`` looked up in ``luts[t]``; returns ``(N, M, P, Q)``.
  A backend without a native form computes both multi-LUT forms by calling ``conv2d_lut``
  once per table (:func:`multi_by_calls`, :func:`blocks_by_calls`).
* ``is_available() -> bool``: whether the backend can run here (a compiler, a device...).
* ``fused_conv2d(x, weight) -> FusedConv | None``: the backend's fused whole-layer path
  (:class:`FusedConv`) when it offers one for these float operands, else ``None``; the layers
  then run op by op (quantize, ``conv2d_lut``, corrections).  Layers ask every backend the
  same question and never name one.

Sums are exact in int32 as long as ``K * max|lut| < 2**31`` (callers check).  Every backend
is bit-exact against ``reference``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch

from core.errors import HwcostError


class NonFiniteInput(HwcostError):
    """A fused call found NaN or an infinity in its activations (the layer names itself in
    the message it raises instead)."""


@runtime_checkable
class FusedConv(Protocol):
    """A whole approximate convolution forward in one call, and the operands its
    straight-through backward needs (rebuilt from the codes, not kept from the forward).

    ``domains`` = ``(a_qmin, a_qmax, a_mask, w_qmin, w_qmax, w_mask, signed)``; ``sx``/``zx``
    the per-tensor activation scale and zero point, ``sw``/``zw`` the weight's (float32/int64,
    one or one per output channel).  With several ``luts`` the batch is one block per table,
    or, with ``replicate``, every table multiplies the whole batch and the output has
    ``len(luts) * M`` channels, a group's ``[table][channel]`` in turn (a per-conv
    multiplier search mixes them).  Results round like the op-by-op path (a rounded product,
    then the bias), bit for bit.
    """

    def approx_conv2d(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      sx: float, zx: int, sw: torch.Tensor, zw: torch.Tensor,
                      domains: tuple[int, ...], luts: tuple[torch.Tensor, ...],
                      padding: tuple[int, int], stride, dilation, groups: int,
                      replicate: bool = False,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The float32 output, the padded activation codes and the weight codes."""
        ...

    def approx_conv2d_observed(self, x: torch.Tensor, weight: torch.Tensor,
                               bias: torch.Tensor | None, act_range: tuple[torch.Tensor, ...],
                               w_range: tuple[torch.Tensor, ...], qflags: tuple[int, ...],
                               domains: tuple[int, ...], luts: tuple[torch.Tensor, ...],
                               padding: tuple[int, int], stride, dilation, groups: int,
                               replicate: bool = False) -> tuple:
        """``approx_conv2d`` with its quantizer parameters picked in the same call: the
        running min-max ranges ``act_range`` (per tensor) and ``w_range`` (per tensor or
        per output channel) are updated in place where ``qflags`` = (observe activations,
        observe weights, activations symmetric, weights symmetric) says so, and the
        parameters follow ``quant.qparams_np``.  Returns the output, the codes, then
        ``sx, zx, sw, zw``; raises :class:`NonFiniteInput` (nothing updated) for NaN or
        infinite activations."""
        ...

    def ste_operands(self, x: torch.Tensor, weight: torch.Tensor, x_codes: torch.Tensor,
                     w_codes: torch.Tensor, sx: float, zx: int, sw: torch.Tensor,
                     zw: torch.Tensor, domains: tuple[int, ...], padding: tuple[int, int],
                     x_layout: str = "nchw",
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dequantized activations (unpadded, in ``x_layout``: "nchw", "channels_last", or
        "none" for an empty tensor when no weight gradient is wanted) and weights, and the
        0/1 masks of where neither quantizer clipped."""
        ...


@runtime_checkable
class EmulationBackend(Protocol):
    """What every emulation backend provides (see the module doc for the semantics)."""

    def is_available(self) -> bool: ...

    def conv2d_lut(self, x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor,
                   stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
                   groups: int = 1) -> torch.Tensor: ...

    def linear_lut(self, x: torch.Tensor, w: torch.Tensor,
                   lut: torch.Tensor) -> torch.Tensor: ...

    def conv2d_multi_lut(self, x: torch.Tensor, w: torch.Tensor,
                         luts: Sequence[torch.Tensor], stride: tuple[int, int] = (1, 1),
                         dilation: tuple[int, int] = (1, 1),
                         groups: int = 1) -> torch.Tensor: ...

    def conv2d_block_lut(self, x: torch.Tensor, w: torch.Tensor,
                         luts: Sequence[torch.Tensor], stride: tuple[int, int] = (1, 1),
                         dilation: tuple[int, int] = (1, 1),
                         groups: int = 1) -> torch.Tensor: ...

    def fused_conv2d(self, x: torch.Tensor, weight: torch.Tensor) -> FusedConv | None: ...


def _members(protocol: type) -> list[str]:
    return [name for name, value in vars(protocol).items()
            if callable(value) and not name.startswith("_")]


def _shape(sig: inspect.Signature) -> list[tuple[str, object, object]]:
    """Names, kinds and defaults: what a caller relies on (annotations are documentation)."""
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def conformance_errors(obj: object, protocol: type) -> list[str]:
    """Every way ``obj`` falls short of ``protocol``: missing members, and members whose
    parameters (names, kinds, defaults) differ from the protocol's; empty when it conforms."""
    errors = []
    for name in _members(protocol):
        impl = getattr(obj, name, None)
        if impl is None or not callable(impl):
            errors.append(f"has no {name}()")
            continue
        want = inspect.signature(getattr(protocol, name))
        want = want.replace(parameters=list(want.parameters.values())[1:])   # drop self
        try:
            got = inspect.signature(impl)
        except (TypeError, ValueError):
            errors.append(f"{name}() has no inspectable signature")
            continue
        if _shape(got) != _shape(want):
            errors.append(f"{name}{got} does not match the contract's {name}{want}")
    return errors


def check_backend(name: str, obj: object) -> None:
    """Raise :class:`HwcostError` unless ``obj`` implements :class:`EmulationBackend`."""
    errors = conformance_errors(obj, EmulationBackend)
    if errors or not isinstance(obj, EmulationBackend):
        raise HwcostError(f"emulation backend {name!r} breaks the backend contract: "
                          + "; ".join(errors or ["not an EmulationBackend"]))


def multi_by_calls(conv2d_lut: Callable[..., torch.Tensor], x: torch.Tensor, w: torch.Tensor,
                   luts: Sequence[torch.Tensor], stride=(1, 1), dilation=(1, 1),
                   groups: int = 1) -> torch.Tensor:
    """``conv2d_multi_lut`` as one ``conv2d_lut`` call per table."""
    luts = list(luts)
    if not luts:
        raise HwcostError("conv2d_multi_lut: no lut given")
    return torch.stack([conv2d_lut(x, w, lut, stride, dilation, groups) for lut in luts])


def blocks_by_calls(conv2d_lut: Callable[..., torch.Tensor], x: torch.Tensor, w: torch.Tensor,
                    luts: Sequence[torch.Tensor], stride=(1, 1), dilation=(1, 1),
                    groups: int = 1) -> torch.Tensor:
    """``conv2d_block_lut`` as one ``conv2d_lut`` call per block."""
    luts = list(luts)
    t = len(luts)
    if t == 0 or x.shape[0] % t:
        raise HwcostError(f"conv2d_block_lut: a batch of {x.shape[0]} cannot be split into "
                          f"{t} equal blocks")
    n = x.shape[0] // t
    return torch.cat([conv2d_lut(x[i * n:(i + 1) * n], w, lut, stride, dilation, groups)
                      for i, lut in enumerate(luts)])
