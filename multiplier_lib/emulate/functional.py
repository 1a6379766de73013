"""The functional half of the emulation layers: autograd functions over quantized operands.

The arithmetic of one output (a reduction over ``K`` operand pairs), with activations
``x ~ sx (qx - zx)`` and weights ``w ~ sw (qw - zw)`` quantized onto the multiplier's domain:

    sum_k x_k w_k ~ sx sw [ sum_k LUT[qx_k, qw_k] - zw sum_k qx_k - zx sum_k qw_k + K zx zw ]

``sum LUT`` replaces the exact ``sum qx qw`` and is the only approximate term; it is
computed by a backend (``reference``, ``cpu``, ``triton``) over the raw codes.
The three correction terms are computed exactly (float64 sums of integers), then the result
is scaled by ``sx * sw`` (per output channel for per-channel weights) and the bias added.  With
the exact multiplier the integer accumulator equals the quantized integer convolution
``sum (qx - zx)(qw - zw)`` exactly.

Gradients: the straight-through estimator by default (the gradients of the exact product of
the dequantized operands, masked where an operand was clipped by its quantizer); with
``grad="lut"`` the derivative of the product with respect to each operand is read from
gradient tables made of the LUT by smoothed central differences along that operand, so the
multiplier's actual error shapes the gradient.

Nothing here reads a module: a layer (:mod:`.modules`) quantizes its operands and freezes
what the functions need into a :class:`ConvSpec`; :func:`lut_conv2d` runs the op-by-op path
through the backend's ``conv2d_lut``, :func:`fused_lut_conv2d` the whole forward through a
backend's fused path (:class:`.backends.FusedConv`), with the same backward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.arithmetic import FloatFormat
from core.errors import HwcostError

from ..multiplier import operand_values
from .backends import FusedConv, block_conv2d_lut
from .backends import get as get_backend
from .quant import Domain

GRAD_MODES = ("ste", "lut")
INT32_LIMIT = 2**31 - 1


def float_round(t: torch.Tensor | None, fmt: FloatFormat) -> torch.Tensor | None:
    """``t`` rounded to the float format ``fmt`` and back to its own dtype: the operands of a
    float baseline (``set_multiplier("fp16")``), whose products and sums stay in ``t``'s
    dtype."""
    dtype = getattr(torch, fmt.torch_dtype)
    if t is None or dtype == torch.float32:
        return t
    return t.to(dtype).to(t.dtype)


def gradient_tables(lut: torch.Tensor, signed: bool, smooth: int = 2) -> tuple[torch.Tensor,
                                                                               torch.Tensor]:
    """d LUT / d a and d LUT / d b on the operand *value* axes, smoothed over ``smooth``
    neighbours either side (box filter), indexed like the LUT (by codes)."""
    a_bits = int(math.log2(lut.shape[0]))
    b_bits = int(math.log2(lut.shape[1]))
    order_a = torch.argsort(torch.as_tensor(operand_values(a_bits, signed)))
    order_b = torch.argsort(torch.as_tensor(operand_values(b_bits, signed)))
    table = lut.to(torch.float64)[order_a][:, order_b]        # rows/cols by ascending value

    def diff(t: torch.Tensor, dim: int) -> torch.Tensor:
        g = torch.gradient(t, dim=dim)[0] if t.shape[dim] > 1 else torch.zeros_like(t)
        if smooth > 0 and t.shape[dim] > 1:
            k = 2 * smooth + 1
            moved = g.movedim(dim, -1)
            padded = F.pad(moved.reshape(-1, 1, moved.shape[-1]), (smooth, smooth),
                           mode="replicate")
            box = torch.ones(1, 1, k, dtype=g.dtype) / k
            g = F.conv1d(padded, box).reshape(moved.shape).movedim(-1, dim)
        return g

    da = diff(table, 0)
    db = diff(table, 1)
    inv_a = torch.argsort(order_a)
    inv_b = torch.argsort(order_b)
    return da[inv_a][:, inv_b].to(torch.float32), db[inv_a][:, inv_b].to(torch.float32)



@dataclass(frozen=True)
class ConvSpec:
    """Everything the autograd functions need to know about one approximate convolution,
    frozen at the call: they never read the module (an ``ApproxLinear`` is a 1x1 conv here).
    ``padding`` is the zero padding applied to the activation codes (other padding modes pad
    the real input before quantization and leave it (0, 0))."""

    name: str
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    grad: str
    backend: str
    luts: tuple[torch.Tensor, ...]      # one table, or one per candidate block
    candidates: bool
    act_domain: Domain
    weight_domain: Domain
    lut_peak: int
    tables: Callable[[], tuple[torch.Tensor, torch.Tensor]]   # LUT gradient tables (lazy)
    keep: dict | None = None            # receives the accumulator when asked
    #: > 1: the input is one block, multiplied by every one of the ``replicate`` tables of
    #: ``luts`` in one pass; the autograd functions return the results mixed by the weights
    #: they are given (``ApproxConv2d.mix_candidates``)
    replicate: int = 1


class _LutConvFunction(torch.autograd.Function):
    """Forward through the LUT backend; backward by STE or LUT gradient tables."""

    @staticmethod
    def forward(ctx, x, weight, bias, spec: ConvSpec, x_pad_codes, qx, qw, sx, zx, sw, zw,
                clip_x, clip_w, mix=None):
        k = qw[0].numel()
        check_range(spec, k)
        backend = get_backend(spec.backend, x.device.type)
        w_codes = spec.weight_domain.codes(qw).contiguous()
        if not spec.candidates:
            s = backend.conv2d_lut(x_pad_codes, w_codes, spec.luts[0], spec.stride,
                                   spec.dilation, spec.groups)
        else:
            if spec.grad == "lut":
                raise HwcostError(f"layer {spec.name}: grad='lut' cannot be used with "
                                  "candidate multipliers; use grad='ste'")
            if spec.replicate > 1:   # (T, N, M, P, Q): every table over the same codes
                s = backend.conv2d_multi_lut(x_pad_codes, w_codes, spec.luts, spec.stride,
                                             spec.dilation, spec.groups)
            else:
                s = block_conv2d_lut(backend, x_pad_codes, w_codes, spec.luts, spec.stride,
                                     spec.dilation, spec.groups)
        # Exact corrections in int32 (|terms| <= K * 255 * 255, checked above): the window
        # sums of qx once per group (they do not depend on the output channel; float32 holds
        # these integer sums exactly below 2**24), the weight sums per channel.
        m = spec.out_channels
        zw_i = zw.reshape(1, -1, 1, 1).to(torch.int32)
        zx_i = int(zx.reshape(-1)[0])
        acc = s
        if bool((zw_i != 0).any()):
            sum_x = _window_sums(qx, spec, float(zx_i))
            mg = m // spec.groups
            if spec.groups > 1 and mg > 1:
                sum_x = sum_x.repeat_interleave(mg, dim=1)
            acc = acc.addcmul_(sum_x, zw_i, value=-1)
        if zx_i != 0:
            sum_w = qw.to(torch.float64).sum(dim=(1, 2, 3)).round().to(torch.int32)
            acc = acc.sub_(zx_i * (sum_w.view(1, -1, 1, 1) - k * zw_i))
        scale = (sx.reshape(()) * sw.reshape(1, -1, 1, 1)).to(torch.float32)
        # a rounded product, then the bias: no fused multiply-add, so every backend and the
        # fused path (FusedConv.approx_conv2d) give the same float32 bits
        out = acc.to(torch.float32) * scale
        if bias is not None:
            out = out + bias.detach().to(torch.float32).view(1, -1, 1, 1)
        ctx.spec = spec
        if spec.replicate > 1:   # the tables' results stacked along the batch
            out = out.reshape(-1, *out.shape[2:])
            acc = acc.reshape(-1, *acc.shape[2:])
        # mixed in float32 or the input's wider dtype, then rounded once to the input's
        out = out.to(torch.promote_types(out.dtype, x.dtype))
        mixed, kept = _mix_replicas(ctx, out, mix, None)
        ctx.save_for_backward(x, weight, qx, qw, sx, zx, sw, zw, clip_x, clip_w, x_pad_codes,
                              w_codes, *kept)
        ctx.has_bias = bias is not None
        if spec.keep is not None:
            spec.keep["accumulator"] = acc.to(torch.float64)
        return mixed.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        spec: ConvSpec = ctx.spec
        x, weight, qx, qw, sx, zx, sw, zw, clip_x, clip_w, x_codes, w_codes, *kept = \
            ctx.saved_tensors
        g, g_mix = _replica_grads(ctx, grad_out.to(torch.float32), kept)
        sw_b = sw.reshape(-1, 1, 1, 1) if sw.numel() > 1 else sw.reshape(())
        if spec.grad == "ste":
            x_deq = (qx - zx.to(torch.float32)) * sx
            w_deq = (qw - zw.reshape(-1, 1, 1, 1).to(torch.float32)) * sw_b
            gx = torch.nn.grad.conv2d_input(x.shape, w_deq, g, spec.stride, spec.padding,
                                            spec.dilation, spec.groups)
            gw = torch.nn.grad.conv2d_weight(x_deq, weight.shape, g, spec.stride, spec.padding,
                                             spec.dilation, spec.groups)
        else:
            gx, gw = _lut_grads(spec, x, weight, g, x_codes, w_codes, sx, zx, sw, zw)
        if clip_x is not None:
            gx = gx * clip_x.to(gx.dtype)
        if clip_w is not None:
            gw = gw * clip_w.to(gw.dtype)
        gb = g.sum(dim=(0, 2, 3)) if ctx.has_bias else None
        return (gx.to(x.dtype), gw.to(weight.dtype), gb, None, None, None, None, None, None,
                None, None, None, None, g_mix)


def depthwise_shape(in_channels: int, out_channels: int, groups: int) -> bool:
    """One filter per input channel and one output per filter (DARTS's separable and dilated
    convs): the one test of depthwise-ness, for weights and for layer specs alike."""
    return groups > 1 and groups == in_channels == out_channels


def is_depthwise(weight: torch.Tensor, groups: int, in_channels: int) -> bool:
    """:func:`depthwise_shape` of a weight tensor (one input channel per filter)."""
    return depthwise_shape(in_channels, weight.shape[0], groups) and weight.shape[1] == 1


def per_tap_is_faster(kernel: tuple[int, int], dilation, out_pixels: int) -> bool:
    """Where :func:`depthwise_weight_grad` beats torch's own channels-last weight gradient
    (what :func:`ste_conv_backward` runs otherwise; AMD EPYC, AVX2, 1 thread, batch 16):
    torch has no fast path for dilated depthwise kernels (2.3 ms against 1.1 ms for the taps
    on a 5x5, dilation-2, 4-channel 32x32 layer; 1.2 against 0.9 ms at 16x16), while for
    undilated ones channels-last was 2-6x faster than the taps.  On 8x8 outputs the taps
    lose (0.7-0.8x), so those stay with torch."""
    return tuple(dilation) != (1, 1) and out_pixels >= 256


def ste_layout(spec) -> torch.memory_format:
    """The layout :func:`ste_conv_backward` runs a layer's convolution backward in:
    channels-last for stride-1 layers and strided undilated depthwise ones, NCHW otherwise.

    Strided dilated depthwise layers were 2-3.5x slower in channels-last.  Strided 1x1
    convolutions with few channels (DARTS's factorized reduce: 4 -> 2 channels, stride 2,
    32x32) crash, hang or return wrong weight gradients in torch 2.13's channels-last CPU
    kernel (oneDNN's AVX2 1x1 backward-weights), so strided layers other than depthwise
    ones stay in NCHW; ``tests/multiplier_lib/emulate/test_layers.py`` runs that layer in a
    child process."""
    if max(spec.stride) == 1:
        return torch.channels_last
    if depthwise_shape(spec.in_channels, spec.out_channels, spec.groups) and \
            max(spec.dilation) == 1:
        return torch.channels_last
    return torch.contiguous_format


def ste_conv_backward(g: torch.Tensor, x_deq: torch.Tensor, w_deq: torch.Tensor, spec,
                      padding: tuple[int, int], need_x: bool, need_w: bool,
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The straight-through gradients: those of a float convolution of the dequantized
    operands, in the layout :func:`ste_layout` picks.

    Timed on every convolution of a DARTS search step (AMD EPYC, AVX2, 1 thread, batch 16,
    layout copies included), PyTorch's CPU convolution backward in channels-last took
    0.45 against 0.64 s: a dilated 5x5 depthwise input gradient 16 ms against 57 ms, an
    undilated 5x5 depthwise one with its weight gradient 36 against 77 ms, 1x1 convs
    10-20 % less; but strided dilated depthwise layers took 2-3.5x longer.  The results are
    the same sums in another order (tested against the dequantized float convolution's
    gradients)."""
    layout = ste_layout(spec)
    gx, gw, _ = torch.ops.aten.convolution_backward(
        g.contiguous(memory_format=layout), x_deq.contiguous(memory_format=layout),
        w_deq.contiguous(memory_format=layout), None, list(spec.stride), list(padding),
        list(spec.dilation), False, [0, 0], spec.groups, [need_x, need_w, False])
    return gx, gw


def depthwise_weight_grad(x: torch.Tensor, g: torch.Tensor, kernel: tuple[int, int],
                          stride, padding, dilation) -> torch.Tensor:
    """The weight gradient of a depthwise convolution as one multiply-and-sum per tap.

    PyTorch's CPU depthwise weight gradient is slow for 5x5 and dilated kernels (13.9 ms for
    a 5x5, 36-channel 16x16 layer at batch 48, where these ``kh * kw`` reductions take 6.3 ms),
    and a search with ``T`` candidate multipliers runs a ``T``-fold batch.  Used where
    :func:`per_tap_is_faster`.  Equal to ``torch.nn.grad.conv2d_weight`` up to float
    summation order (tested)."""
    kh, kw = kernel
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho, wo = g.shape[2], g.shape[3]
    xp = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    out = torch.empty((x.shape[1], 1, kh, kw), dtype=g.dtype)
    for i in range(kh):
        rows = slice(i * dh, i * dh + (ho - 1) * sh + 1, sh)
        for j in range(kw):
            cols = slice(j * dw, j * dw + (wo - 1) * sw + 1, sw)
            out[:, 0, i, j] = (xp[:, :, rows, cols] * g).sum(dim=(0, 2, 3))
    return out


def check_range(spec: ConvSpec, k: int) -> None:
    """Refuse a layer whose worst-case reduction overflows the int32 accumulator."""
    if k * spec.lut_peak > INT32_LIMIT:
        raise HwcostError(f"layer {spec.name}: a reduction of {k} products of up to "
                          f"{spec.lut_peak} overflows the 32-bit accumulator")


def _domains(spec: ConvSpec) -> tuple[int, ...]:
    a, w = spec.act_domain, spec.weight_domain
    return (a.qmin, a.qmax, a.mask, w.qmin, w.qmax, w.mask, int(a.signed))


class _FusedConvFunction(torch.autograd.Function):
    """Forward as one fused backend call (``FusedConv.approx_conv2d``); backward as
    ``_LutConvFunction``'s, rebuilding the quantized operands and the straight-through masks
    from the codes and the inputs (``FusedConv.ste_operands``) instead of keeping float copies
    of them from the forward pass."""

    @staticmethod
    def forward(ctx, x, weight, bias, spec: ConvSpec, fused: FusedConv, quant: tuple,
                mix=None):
        out, x_codes, w_codes, sx, zx, sw, zw = _fused_call(fused, spec, x, weight, bias, quant)
        ctx.spec = spec
        ctx.fused = fused
        ctx.sx, ctx.zx = sx, zx
        ctx.has_bias = bias is not None
        mixed, kept = _mix_replicas(ctx, out, mix, spec.groups)
        ctx.save_for_backward(x, weight, x_codes, w_codes, sw, zw, *kept)
        return mixed

    @staticmethod
    def backward(ctx, grad_out):
        spec: ConvSpec = ctx.spec
        x, weight, x_codes, w_codes, sw, zw, *kept = ctx.saved_tensors
        g, g_mix = _replica_grads(ctx, grad_out.to(torch.float32), kept)
        a_dom, w_dom = spec.act_domain, spec.weight_domain
        ph, pw = spec.padding
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gx = gw = None
        if spec.grad == "ste":
            per_tap = (need_w and is_depthwise(weight, spec.groups, x.shape[1])
                       and per_tap_is_faster(tuple(weight.shape[2:]), spec.dilation,
                                             g.shape[2] * g.shape[3]))
            layout = ste_layout(spec)
            # the dequantized activations only serve the weight gradient: built in the
            # layout it is computed in, or not at all
            x_layout = ("none" if not need_w else "nchw" if per_tap or
                        layout == torch.contiguous_format else "channels_last")
            x_deq, w_deq, x_mask, w_mask = ctx.fused.ste_operands(
                x, weight, x_codes, w_codes, ctx.sx, ctx.zx, sw, zw, _domains(spec), (ph, pw),
                x_layout)
            if x_layout == "none":   # a stand-in the input gradient does not read
                x_deq = torch.empty(x.shape, dtype=torch.float32, memory_format=layout).zero_()
            gx, gw = ste_conv_backward(g, x_deq, w_deq, spec, (ph, pw), need_x,
                                       need_w and not per_tap)
            if per_tap:
                gw = depthwise_weight_grad(x_deq, g, tuple(weight.shape[2:]), spec.stride,
                                           (ph, pw), spec.dilation)
            # the masks are this call's own tensors: multiplied in place, the gradients come
            # back in the operands' (NCHW) layout
            gx = x_mask.mul_(gx) if need_x else None
            gw = w_mask.mul_(gw) if need_w else None
        else:
            sx = torch.tensor(ctx.sx, dtype=torch.float32)
            zx = torch.tensor(ctx.zx, dtype=torch.int64)
            sw_b = sw.view(-1, 1, 1, 1)
            zw_b = zw.view(-1, 1, 1, 1).to(torch.float32)
            gx, gw = _lut_grads(spec, x, weight, g, x_codes, w_codes, sx, zx, sw, zw)
            # straight-through masks: where the quantizer did not clip (within half a step)
            v = x.detach() / sx + float(ctx.zx)
            gx = gx * ((v >= a_dom.qmin - 0.5) & (v <= a_dom.qmax + 0.5)).to(gx.dtype)
            v = weight.detach() / sw_b + zw_b
            gw = gw * ((v >= w_dom.qmin - 0.5) & (v <= w_dom.qmax + 0.5)).to(gw.dtype)
        gb = g.sum(dim=(0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return (gx if need_x else None, gw if need_w else None, gb, None, None, None, g_mix)


def replica_view(out: torch.Tensor, t: int, groups: int | None) -> torch.Tensor:
    """A replicated call's ``T`` results as ``(B, T, K)``, result ``t`` of output element
    ``(b, k)`` at ``[b, t, k]``.  ``groups`` None: the results stacked along the batch
    (``(T * N, M, P, Q)``, the op-by-op path); else the fused kernel's order, ``(N, groups
    * T * M / groups, P, Q)`` with the channels of a group in ``[table][row]`` order."""
    b = 1 if groups is None else out.shape[0] * groups
    # reshape, not view: the op-by-op path's stacked results can be a strided view (a
    # depthwise layer at batch 1); sizes given, not inferred, for an empty batch
    return out.reshape(b, t, out.numel() // (b * t) if b else 0)


def mix_replicas(out: torch.Tensor, mix: torch.Tensor, groups: int | None) -> torch.Tensor:
    """``sum_t mix[t] * y_t`` of a replicated call's output (see :func:`replica_view`), in
    one pass over the results; ``(N, M, P, Q)``."""
    t = mix.shape[0]
    view = replica_view(out, t, groups)
    # a scaled copy, then scaled adds: matmul and einsum took 1.2-9x as long on the
    # supernet's shapes (a batched vector-matrix product of tiny batches)
    weights = mix.detach().to(out.dtype).tolist()
    mixed = torch.mul(view[:, 0], weights[0])
    for i in range(1, t):
        mixed.add_(view[:, i], alpha=weights[i])
    n = out.shape[0] // t if groups is None else out.shape[0]
    return mixed.reshape(n, out.shape[1] // (1 if groups is None else t), *out.shape[2:])


def _mix_replicas(ctx, out: torch.Tensor, mix: torch.Tensor | None, groups: int | None
                  ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """A replicated call's mixed output, and what its backward keeps: the weights, and the
    results (their dot products with the output gradient are the weights' gradient) when
    the weights want one."""
    ctx.mixing = mix is not None
    ctx.replica_groups = groups
    if mix is None:
        return out, ()
    keep_out = ctx.needs_input_grad[-1]
    return (mix_replicas(out, mix, groups),
            (mix.detach(), out) if keep_out else (mix.detach(),))


def _replica_grads(ctx, g: torch.Tensor, kept) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The output gradient the one straight-through backward of a replicated call takes,
    and the mix weights' gradient.  Each candidate's straight-through estimate is the same
    float convolution, so ``sum_t mix[t] * y_t`` passes back ``sum(mix)`` times the
    output gradient (1 for softmax weights, up to rounding); ``d/d mix[t] = <g, y_t>``."""
    if not ctx.mixing:
        return g, None
    mix = kept[0]
    g_mix = None
    if len(kept) == 2:
        view = replica_view(kept[1], mix.shape[0], ctx.replica_groups)
        # a product and a sum: as fast as einsum or bmm where those are fastest, and 2-5x
        # faster where they are not (timed on the supernet's shapes)
        g_mix = (view.to(g.dtype) * g.reshape(view.shape[0], 1, -1)).sum((0, 2))
        g_mix = g_mix.to(mix.dtype)
    return g * mix.sum().to(g.dtype), g_mix


def _fused_call(fused: FusedConv, spec: ConvSpec, x, weight, bias, quant: tuple) -> tuple:
    """``quant`` is ``("given", sx, zx, sw, zw)`` or ``("observe", act_range, w_range,
    qflags)`` (see ``FusedConv.approx_conv2d_observed``); returns the output, the codes and
    the parameters used.  With ``spec.replicate`` every table multiplies the same codes and
    the output holds each table's result (see :func:`replica_view`)."""
    # by keyword and only when wanted: a fused path written before replication still serves
    # every other call
    replicate = {"replicate": True} if spec.replicate > 1 else {}
    if quant[0] == "observe":
        return fused.approx_conv2d_observed(x, weight, bias, quant[1], quant[2], quant[3],
                                            _domains(spec), spec.luts, spec.padding,
                                            spec.stride, spec.dilation, spec.groups,
                                            **replicate)
    _, sx, zx, sw, zw = quant
    out, x_codes, w_codes = fused.approx_conv2d(x, weight, bias, sx, zx, sw, zw,
                                                _domains(spec), spec.luts, spec.padding,
                                                spec.stride, spec.dilation, spec.groups,
                                                **replicate)
    return out, x_codes, w_codes, sx, zx, sw, zw


def lut_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               spec: ConvSpec, x_codes: torch.Tensor, qx: torch.Tensor, qw: torch.Tensor,
               sx: torch.Tensor, zx: torch.Tensor, sw: torch.Tensor, zw: torch.Tensor,
               clip_x: torch.Tensor | None, clip_w: torch.Tensor | None,
               mix: torch.Tensor | None = None) -> torch.Tensor:
    """The approximate convolution of quantized operands, op by op, with autograd.

    ``x``/``weight``: the float operands (what gradients are for); ``x_codes``: the padded
    activation codes; ``qx``/``qw``: the quantized values with their scales and zero points
    ``sx, zx, sw, zw``; ``clip_x``/``clip_w``: the straight-through masks (or None).  The LUT
    sums come from ``spec.backend``'s ``conv2d_lut`` (``conv2d_block_lut`` with candidates).
    ``mix``: with ``spec.replicate`` tables, the weights the results are mixed with.
    """
    return _LutConvFunction.apply(x, weight, bias, spec, x_codes, qx, qw, sx, zx, sw, zw,
                                  clip_x, clip_w, mix)


def fused_lut_conv2d(fused: FusedConv, x: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None, spec: ConvSpec, quant: tuple,
                     mix: torch.Tensor | None = None) -> torch.Tensor:
    """The whole approximate convolution of float operands in one call of a backend's fused
    path (quantize, pad, LUT sums, corrections, scale, bias), bit-exact with
    :func:`lut_conv2d`; an autograd node only when a gradient is wanted.  ``quant``: the
    quantizer parameters, given or observed in the call (see :func:`_fused_call`); ``mix``:
    with ``spec.replicate`` tables, the weights the results are mixed with."""
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or
                                     (bias is not None and bias.requires_grad) or
                                     (mix is not None and mix.requires_grad)):
        return _FusedConvFunction.apply(x, weight, bias, spec, fused, quant, mix)
    out = _fused_call(fused, spec, x, weight, bias, quant)[0]   # no graph
    return out if mix is None else mix_replicas(out, mix, spec.groups)


def _window_sums(qx: torch.Tensor, conv: ConvSpec, pad_value: float) -> torch.Tensor:
    """Sum of the activation values under every window, per group, as int32 (exact: float32
    holds these integer sums exactly below 2**24, far above K * 255 for real layers)."""
    ph, pw = _same_padding(conv)
    if tuple(conv.kernel_size) == (1, 1) and tuple(conv.stride) == (1, 1) and not (ph or pw):
        n, c, h, w = qx.shape
        sums = qx.view(n, conv.groups, c // conv.groups, h, w).sum(dim=2)
    else:
        cg = conv.in_channels // conv.groups
        ones = torch.ones((conv.groups, cg) + tuple(conv.kernel_size), dtype=torch.float32,
                          device=qx.device)
        sums = F.conv2d(_pad_values(qx, conv, pad_value), ones, None, conv.stride, 0,
                        conv.dilation, conv.groups)
    return sums.round_().to(torch.int32)


def _same_padding(conv: ConvSpec) -> tuple[int, int]:
    return conv.padding


def _pad_values(t: torch.Tensor, conv, value: float) -> torch.Tensor:
    ph, pw = _same_padding(conv)
    if ph == 0 and pw == 0:
        return t
    return F.pad(t, (pw, pw, ph, ph), value=value)


def _lut_grads(conv: ConvSpec, x, weight, g, x_codes, w_codes, sx, zx, sw, zw):
    """Gradients from LUT difference tables: dy/dx = sw (dA[a, w] - zw), dy/dw = sx (dB - zx)."""
    da, db = (t.to(x.device) for t in conv.tables())
    n = x.shape[0]
    m, cg, r, s = weight.shape
    groups = conv.groups
    mg = m // groups
    cols = F.unfold(x_codes.to(torch.float32), (r, s), dilation=conv.dilation,
                    stride=conv.stride).round().long()            # (N, C*R*S, L)
    ell = cols.shape[-1]
    cols = cols.view(n, groups, cg * r * s, ell)
    gl = g.reshape(n, m, ell)
    width = da.shape[1]
    flat_a = da.reshape(-1)
    flat_b = db.reshape(-1)
    swv = sw.reshape(-1).expand(m) if sw.numel() > 1 else sw.reshape(1).expand(m)
    zwv = zw.reshape(-1).expand(m) if zw.numel() > 1 else zw.reshape(1).expand(m)
    grad_cols = torch.zeros(n, groups, cg * r * s, ell, device=x.device)
    gw = torch.zeros(m, cg * r * s, device=x.device)
    wc = w_codes.long().view(m, -1)
    for mi in range(m):
        gi = mi // mg
        idx = cols[:, gi] * width + wc[mi].view(1, -1, 1)          # (N, K, L)
        go = gl[:, mi].unsqueeze(1)                                # (N, 1, L)
        grad_cols[:, gi] += go * swv[mi] * (flat_a[idx] - zwv[mi])
        gw[mi] = (go * sx.reshape(()) * (flat_b[idx] - zx.reshape(()))).sum(dim=(0, 2))
    ph, pw = _same_padding(conv)
    h = x_codes.shape[2]
    wdt = x_codes.shape[3]
    gx_pad = F.fold(grad_cols.view(n, groups * cg * r * s, ell), (h, wdt), (r, s),
                    dilation=conv.dilation, stride=conv.stride)
    gx = gx_pad[:, :, ph:h - ph, pw:wdt - pw] if (ph or pw) else gx_pad
    return gx, gw.view_as(weight)

