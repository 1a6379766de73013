"""``ApproxConv2d`` and ``ApproxLinear``: drop-in layers whose products go through a LUT.

The arithmetic of one output (a reduction over ``K`` operand pairs), with activations
``x ~ sx (qx - zx)`` and weights ``w ~ sw (qw - zw)`` quantized onto the multiplier's domain:

    sum_k x_k w_k ~ sx sw [ sum_k LUT[qx_k, qw_k] - zw sum_k qx_k - zx sum_k qw_k + K zx zw ]

``sum LUT`` replaces the exact ``sum qx qw`` and is the only approximate term; it is
computed by a backend (``reference``, ``cpu``, ``triton``) over the raw codes.
The three correction terms are computed exactly (float64 sums of integers), then the result
is scaled by ``sx * sw`` (per output channel for per-channel weights) and the bias added.  With
the exact multiplier the integer accumulator equals the quantized integer convolution
``sum (qx - zx)(qw - zw)`` exactly.

Zero padding pads activation *codes* with the zero point's code, which is exactly a real 0;
other padding modes pad the real input before quantization.

Gradients: the straight-through estimator by default (the gradients of the exact product of
the dequantized operands, masked where an operand was clipped by its quantizer); with
``grad="lut"`` the derivative of the product with respect to each operand is read from
gradient tables made of the LUT by smoothed central differences along that operand, so the
multiplier's actual error shapes the gradient.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import HwcostError

from ..multiplier import Multiplier, operand_values
from .backends import block_conv2d_lut
from .backends import get as get_backend
from .quant import Domain, FakeQuantize

GRAD_MODES = ("ste", "lut")
#: check accelerator inputs for NaN/inf too (costs a host sync per layer; CPU inputs always are)
CHECK_FINITE_ON_DEVICE = os.environ.get("HWCOST_CHECK_FINITE", "") not in ("", "0")
#: float baselines a layer can run in instead of a multiplier (``set_multiplier("fp32")``):
#: operands rounded to the format, products and sums in float32
FLOAT_FORMATS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _float_round(t: torch.Tensor | None, fmt: str) -> torch.Tensor | None:
    dtype = FLOAT_FORMATS[fmt]
    if t is None or dtype == torch.float32:
        return t
    return t.to(dtype).to(t.dtype)
INT32_LIMIT = 2**31 - 1


def _resolve(multiplier: str | Multiplier) -> Multiplier:
    if isinstance(multiplier, Multiplier):
        return multiplier
    from ..library import resolve

    return resolve(multiplier)


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


_LUT_TENSORS: dict[int, tuple[Multiplier, torch.Tensor]] = {}


def _lut_tensor(mult: Multiplier) -> torch.Tensor:
    """One int32 tensor per multiplier object, shared by every layer using it: backends cache
    their prepared tables per tensor, so a supernet's thousand convs with one multiplier
    prepare its tables once, not once per layer."""
    hit = _LUT_TENSORS.get(id(mult))
    if hit is not None and hit[0] is mult:
        return hit[1]
    lut = torch.as_tensor(mult.lut, dtype=torch.int32).contiguous()
    if len(_LUT_TENSORS) > 256:
        _LUT_TENSORS.clear()
    _LUT_TENSORS[id(mult)] = (mult, lut)
    return lut


class _ApproxMixin:
    """Multiplier, quantizers and backend shared by the conv and linear layers."""

    def _init_approx(self, multiplier, backend: str, grad: str, act_observer: str,
                     weight_per_channel: bool, act_symmetric: bool, weight_symmetric: bool,
                     name: str | None) -> None:
        if grad not in GRAD_MODES:
            raise HwcostError(f"unknown gradient mode {grad!r}; expected 'ste' or 'lut'")
        self.layer_name = name or type(self).__name__
        self.backend = backend
        self.grad = grad
        self.keep_accumulator = False  # keep the integer accumulator of the last forward
        self.float_format: str | None = None   # see set_multiplier
        self.candidates: tuple[Multiplier, ...] | None = None   # see set_candidates
        self.candidate_luts: tuple[torch.Tensor, ...] | None = None
        self._act_cfg = (act_observer, act_symmetric)
        self._w_cfg = (weight_per_channel, weight_symmetric)
        self.set_multiplier(multiplier)

    def set_multiplier(self, multiplier: str | Multiplier) -> None:
        """Swap the multiplier (e.g. after training); quantizers follow its operand widths.

        A float format name (``fp32``, ``fp16``, ``bf16``) runs the layer in float instead,
        with the same weights: the baseline an approximate network is compared against.
        The quantizers and the last multiplier are kept, so a later swap back needs no
        recalibration."""
        if isinstance(multiplier, str) and multiplier.lower() in FLOAT_FORMATS:
            if not hasattr(self, "multiplier"):   # constructed as a float layer
                self.set_multiplier("exact8u")
            self.float_format = multiplier.lower()
            self.candidates = None
            self.candidate_luts = None
            return
        self.float_format = None
        try:
            mult = _resolve(multiplier)
        except HwcostError as err:
            raise HwcostError(f"layer {self.layer_name}: {err}") from None
        old = getattr(self, "multiplier", None)
        self.multiplier = mult
        self.candidates = None   # one multiplier again (set_candidates re-adds its list)
        self.candidate_luts = None
        lut = _lut_tensor(mult)
        if hasattr(self, "lut"):
            self.lut = lut
        else:
            self.register_buffer("lut", lut, persistent=False)
        self._grad_tables = None
        self._lut_peak = int(lut.abs().max())
        same_domain = old is not None and (old.a_bits, old.b_bits, old.signed) == (
            mult.a_bits, mult.b_bits, mult.signed)
        if not same_domain:
            act_observer, act_symmetric = self._act_cfg
            per_channel, w_symmetric = self._w_cfg
            self.act_quant = FakeQuantize(Domain(mult.a_bits, mult.signed), act_observer,
                                          None, act_symmetric)
            self.act_quant.observer.sync = True   # one range for all processes (DDP)
            self.weight_quant = FakeQuantize(Domain(mult.b_bits, mult.signed), "minmax",
                                             0 if per_channel else None, w_symmetric)

    def set_candidates(self, multipliers) -> None:
        """Evaluate several multipliers with this layer's one weight tensor (search supernets).

        The batch is then read as ``T = len(multipliers)`` equal blocks, block ``t`` multiplied
        with ``multipliers[t]``: one call quantizes the weights once, runs one kernel pass
        over all blocks and gives one autograd node, and the parameter count does not grow
        with ``T``.  The multipliers must share one operand domain (so one quantizer serves
        them all).  ``None`` or a single multiplier returns to the plain layer.
        """
        if multipliers is None or len(multipliers) <= 1:
            if multipliers:
                self.set_multiplier(multipliers[0])
            self.candidates = None
            self.candidate_luts = None
            return
        mults = []
        for m in multipliers:
            try:
                mults.append(_resolve(m))
            except HwcostError as err:
                raise HwcostError(f"layer {self.layer_name}: {err}") from None
        if self.grad == "lut":
            raise HwcostError(f"layer {self.layer_name}: grad='lut' reads one multiplier's "
                              "gradient tables; use grad='ste' with candidate multipliers")
        first = mults[0]
        for m in mults[1:]:
            if (m.a_bits, m.b_bits, m.signed) != (first.a_bits, first.b_bits, first.signed):
                raise HwcostError(
                    f"layer {self.layer_name}: candidate multipliers must share one operand "
                    f"domain; {first.name} and {m.name} differ in operand bits or signedness")
        self.set_multiplier(first)
        self.candidates = tuple(mults)
        self.candidate_luts = tuple(_lut_tensor(m) for m in mults)
        self._lut_peak = max(int(lut.abs().max()) for lut in self.candidate_luts)

    @property
    def n_candidates(self) -> int:
        return 1 if self.candidates is None else len(self.candidates)

    @property
    def multiplier_name(self) -> str:
        """What the layer computes with: a multiplier's name or a float format."""
        return self.float_format or self.multiplier.name

    def get_extra_state(self):
        # the backend is where the model runs, not what it is: it is not saved
        state = {"multiplier": self.multiplier.name, "grad": self.grad}
        if self.float_format:
            state["float_format"] = self.float_format
        if self.candidates is not None:
            state["candidates"] = [m.name for m in self.candidates]
        return state

    def set_extra_state(self, state) -> None:
        if state.get("float_format"):
            if state.get("multiplier") and state["multiplier"] != self.multiplier.name:
                self.set_multiplier(state["multiplier"])
            self.set_multiplier(state["float_format"])
            self.grad = state.get("grad", self.grad)
            return
        if self.float_format:
            self.float_format = None
        if state.get("candidates"):
            names = [m.name for m in self.candidates] if self.candidates else None
            if names != list(state["candidates"]):
                self.set_candidates(state["candidates"])
        elif state.get("multiplier") and state["multiplier"] != self.multiplier.name:
            self.set_multiplier(state["multiplier"])
        self.grad = state.get("grad", self.grad)

    @property
    def _last_accumulator(self) -> torch.Tensor | None:
        """The integer accumulator of the last forward (with ``keep_accumulator``), float64."""
        return self.__dict__.get("_accumulator_sink", {}).get("accumulator")

    def conv_spec(self, padding: tuple[int, int]) -> ConvSpec:
        """This call's :class:`ConvSpec` (``padding``: zero padding of the codes)."""
        single = self.candidate_luts is None
        return ConvSpec(
            self.layer_name, self.in_channels, self.out_channels, tuple(self.kernel_size),
            tuple(self.stride), tuple(padding), tuple(self.dilation), self.groups, self.grad,
            self.backend, (self.lut,) if single else self.candidate_luts, not single,
            self.act_quant.domain, self.weight_quant.domain, self._lut_peak, self._tables,
            self.__dict__.setdefault("_accumulator_sink", {}) if self.keep_accumulator
            else None)

    def _check_input(self, x: torch.Tensor) -> None:
        """NaN/inf inputs are refused.  On a CPU the check is one pass over the input; on an
        accelerator it would force a host sync per layer, so it runs there only when
        ``HWCOST_CHECK_FINITE=1`` (a debugging aid)."""
        if x.device.type != "cpu" and not CHECK_FINITE_ON_DEVICE:
            return
        lo, hi = torch.aminmax(x.detach())   # one pass; NaN and inf propagate to the ends
        if not (torch.isfinite(lo) and torch.isfinite(hi)):
            raise HwcostError(f"layer {self.layer_name}: input contains NaN or infinite values")

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._grad_tables is None:
            self._grad_tables = gradient_tables(self.lut, self.multiplier.signed)
        return self._grad_tables


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


class _LutConvFunction(torch.autograd.Function):
    """Forward through the LUT backend; backward by STE or LUT gradient tables."""

    @staticmethod
    def forward(ctx, x, weight, bias, spec: ConvSpec, x_pad_codes, qx, qw, sx, zx, sw, zw,
                clip_x, clip_w):
        k = qw[0].numel()
        _check_range(spec, k)
        backend = get_backend(spec.backend, x.device.type)
        w_codes = spec.weight_domain.codes(qw).contiguous()
        if not spec.candidates:
            s = backend.conv2d_lut(x_pad_codes, w_codes, spec.luts[0], spec.stride,
                                   spec.dilation, spec.groups)
        else:
            if spec.grad == "lut":
                raise HwcostError(f"layer {spec.name}: grad='lut' cannot be used with "
                                  "candidate multipliers; use grad='ste'")
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
        # fused native path (cpu.approx_conv2d) give the same float32 bits
        out = acc.to(torch.float32) * scale
        if bias is not None:
            out = out + bias.detach().to(torch.float32).view(1, -1, 1, 1)
        ctx.spec = spec
        ctx.save_for_backward(x, weight, qx, qw, sx, zx, sw, zw, clip_x, clip_w, x_pad_codes,
                              w_codes)
        ctx.has_bias = bias is not None
        if spec.keep is not None:
            spec.keep["accumulator"] = acc.to(torch.float64)
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        spec: ConvSpec = ctx.spec
        x, weight, qx, qw, sx, zx, sw, zw, clip_x, clip_w, x_codes, w_codes = ctx.saved_tensors
        g = grad_out.to(torch.float32)
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
                None, None, None, None)


def _check_range(spec: ConvSpec, k: int) -> None:
    if k * spec.lut_peak > INT32_LIMIT:
        raise HwcostError(f"layer {spec.name}: a reduction of {k} products of up to "
                          f"{spec.lut_peak} overflows the 32-bit accumulator")


def _fused_backend(layer, x: torch.Tensor):
    """The cpu backend module when this forward can run as one native call, else None.

    The fused call covers float32 CPU tensors on the ``cpu`` backend (``auto`` on a CPU);
    the op-by-op path remains for other dtypes and backends and for ``keep_accumulator``.
    """
    if (x.device.type != "cpu" or layer.backend not in ("auto", "cpu") or layer.keep_accumulator
            or x.dtype != torch.float32 or layer.weight.dtype != torch.float32):
        return None
    from .backends import cpu

    return cpu if cpu.is_available() else None


def _domains(spec: ConvSpec) -> tuple[int, ...]:
    a, w = spec.act_domain, spec.weight_domain
    return (a.qmin, a.qmax, a.mask, w.qmin, w.qmax, w.mask, int(a.signed))


def _fused_native(spec: ConvSpec, x, weight, bias, sx, zx, sw, zw):
    from .backends import cpu

    return cpu.approx_conv2d(x, weight, bias, sx, zx, sw, zw, _domains(spec), spec.luts,
                             spec.padding, spec.stride, spec.dilation, spec.groups)


class _FusedConvFunction(torch.autograd.Function):
    """Forward as one native call (``cpu.approx_conv2d``); backward as ``_LutConvFunction``'s,
    rebuilding the quantized operands and the straight-through masks from the codes and
    the inputs instead of keeping float copies of them from the forward pass."""

    @staticmethod
    def forward(ctx, x, weight, bias, spec: ConvSpec, sx, zx, sw, zw):
        out, x_codes, w_codes = _fused_native(spec, x, weight, bias, sx, zx, sw, zw)
        ctx.spec = spec
        ctx.sx, ctx.zx = sx, zx
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight, x_codes, w_codes, sw, zw)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        spec: ConvSpec = ctx.spec
        x, weight, x_codes, w_codes, sw, zw = ctx.saved_tensors
        g = grad_out.to(torch.float32)
        a_dom, w_dom = spec.act_domain, spec.weight_domain
        sx = torch.tensor(ctx.sx, dtype=torch.float32)
        zx = torch.tensor(ctx.zx, dtype=torch.int64)
        sw_b = sw.view(-1, 1, 1, 1)
        zw_b = zw.view(-1, 1, 1, 1).to(torch.float32)
        ph, pw = spec.padding
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gx = gw = None
        if spec.grad == "ste":
            from .backends import cpu

            x_deq, w_deq, x_mask, w_mask = cpu.ste_operands(
                x, weight, x_codes, w_codes, ctx.sx, ctx.zx, sw, zw, _domains(spec), (ph, pw))
            gx, gw, _ = torch.ops.aten.convolution_backward(
                g, x_deq, w_deq, None, list(spec.stride), [ph, pw], list(spec.dilation), False,
                [0, 0], spec.groups, [need_x, need_w, False])
            gx = gx * x_mask if need_x else None
            gw = gw * w_mask if need_w else None
        else:
            gx, gw = _lut_grads(spec, x, weight, g, x_codes, w_codes, sx, zx, sw, zw)
            # straight-through masks: where the quantizer did not clip (within half a step)
            v = x.detach() / sx + float(ctx.zx)
            gx = gx * ((v >= a_dom.qmin - 0.5) & (v <= a_dom.qmax + 0.5)).to(gx.dtype)
            v = weight.detach() / sw_b + zw_b
            gw = gw * ((v >= w_dom.qmin - 0.5) & (v <= w_dom.qmax + 0.5)).to(gw.dtype)
        gb = g.sum(dim=(0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return (gx if need_x else None, gw if need_w else None, gb, None, None, None, None,
                None)


def _fused_forward(layer, x: torch.Tensor, weight: torch.Tensor, bias, pad) -> torch.Tensor:
    """Range check, observers and quantizer parameters with a handful of small ops, then the
    whole conv in one native call (``_FusedConvFunction``)."""
    lo, hi = torch.aminmax(x.detach())
    if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        raise HwcostError(f"layer {layer.layer_name}: input contains NaN or infinite values")
    t = layer.n_candidates
    if t > 1 and x.shape[0] % t:
        raise HwcostError(f"layer {layer.layer_name}: a batch of {x.shape[0]} cannot be split "
                          f"into {t} equal blocks, one per candidate multiplier")
    sx, zx = layer.act_quant.fast_params(x, (lo.reshape(1), hi.reshape(1)))
    wq = layer.weight_quant
    w_range = None
    if wq.observing and wq.training and wq.observer.kind != "percentile":
        rows = weight.shape[0] if wq.axis == 0 else 1
        w_range = torch.aminmax(weight.detach().reshape(rows, -1), dim=1)
    sw, zw = wq.fast_params(weight, w_range)
    spec = layer.conv_spec(pad)
    _check_range(spec, weight[0].numel())
    args = (float(sx.reshape(-1)[0]), int(zx.reshape(-1)[0]),
            torch.from_numpy(sw.reshape(-1)), torch.from_numpy(zw.reshape(-1)))
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or
                                     (bias is not None and bias.requires_grad)):
        return _FusedConvFunction.apply(x, weight, bias, spec, *args)
    return _fused_native(spec, x, weight, bias, *args)[0]   # no graph: skip autograd


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


class ApproxConv2d(_ApproxMixin, nn.Conv2d):
    """A ``Conv2d`` whose multiplications are those of an approximate multiplier."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 multiplier: str | Multiplier = "exact8u", backend: str = "auto",
                 grad: str = "ste", act_observer: str = "minmax",
                 weight_per_channel: bool = True, act_symmetric: bool = False,
                 weight_symmetric: bool = False, name: str | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)
        if isinstance(self.padding, str):
            if self.padding == "valid":
                pad = (0, 0)
            else:  # 'same': torch requires stride 1; split the total evenly when possible
                total = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
                if any(t % 2 for t in total):
                    raise HwcostError(f"layer {name or 'ApproxConv2d'}: padding='same' with "
                                      "an even kernel extent is not supported")
                pad = tuple(t // 2 for t in total)
        else:
            pad = tuple(self.padding)
        self._pad_amount = pad
        self._init_approx(multiplier, backend, grad, act_observer, weight_per_channel,
                          act_symmetric, weight_symmetric, name)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, **kwargs) -> ApproxConv2d:
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                    conv.padding_mode, **kwargs)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer.to(conv.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.float_format:
            fmt = self.float_format
            return self._conv_forward(_float_round(x, fmt), _float_round(self.weight, fmt),
                                      _float_round(self.bias, fmt))
        ph, pw = self._pad_amount
        if _fused_backend(self, x) is not None:
            if self.padding_mode != "zeros":
                if ph or pw:
                    x = F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode)
                ph = pw = 0
            return _fused_forward(self, x, self.weight, self.bias, (ph, pw))
        self._check_input(x)
        if self.padding_mode != "zeros" and (ph or pw):
            x = F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode)
        need = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        qx, sx, zx, clip_x = self.act_quant.quantize_with_mask(x, need)
        qw, sw, zw, clip_w = self.weight_quant.quantize_with_mask(self.weight, need)
        codes = self.act_quant.domain.codes(qx)
        if self.padding_mode == "zeros" and (ph or pw):
            zcode = int(self.act_quant.domain.codes(zx.reshape(1))[0])
            codes = F.pad(codes, (pw, pw, ph, ph), value=zcode)
        spec = self.conv_spec((ph, pw) if self.padding_mode == "zeros" else (0, 0))
        return _LutConvFunction.apply(x, self.weight, self.bias, spec, codes.contiguous(), qx,
                                      qw, sx, zx, sw, zw, clip_x, clip_w)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", multiplier={self.multiplier_name}, "
                f"backend={self.backend}, grad={self.grad}")


class ApproxLinear(_ApproxMixin, nn.Linear):
    """A ``Linear`` layer computed as a 1x1 approximate convolution."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 multiplier: str | Multiplier = "exact8u", backend: str = "auto",
                 grad: str = "ste", act_observer: str = "minmax",
                 weight_per_channel: bool = True, act_symmetric: bool = False,
                 weight_symmetric: bool = False, name: str | None = None):
        super().__init__(in_features, out_features, bias)
        self._conv = None
        self._init_approx(multiplier, backend, grad, act_observer, weight_per_channel,
                          act_symmetric, weight_symmetric, name)

    @classmethod
    def from_linear(cls, lin: nn.Linear, **kwargs) -> ApproxLinear:
        layer = cls(lin.in_features, lin.out_features, lin.bias is not None, **kwargs)
        with torch.no_grad():
            layer.weight.copy_(lin.weight)
            if lin.bias is not None:
                layer.bias.copy_(lin.bias)
        return layer.to(lin.weight.device)

    # the conv function reads these attributes
    stride = (1, 1)
    dilation = (1, 1)
    groups = 1
    padding_mode = "zeros"
    _pad_amount = (0, 0)

    @property
    def in_channels(self) -> int:
        return self.in_features

    @property
    def out_channels(self) -> int:
        return self.out_features

    @property
    def kernel_size(self) -> tuple[int, int]:
        return (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.float_format:
            fmt = self.float_format
            return F.linear(_float_round(x, fmt), _float_round(self.weight, fmt),
                            _float_round(self.bias, fmt))
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features, 1, 1)
        w4 = self.weight.view(self.out_features, self.in_features, 1, 1)
        if _fused_backend(self, x) is not None:
            out = _fused_forward(self, x2, w4, self.bias, (0, 0))
            return out.reshape(*lead, self.out_features)
        self._check_input(x)
        need = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        qx, sx, zx, clip_x = self.act_quant.quantize_with_mask(x2, need)
        qw, sw, zw, clip_w = self.weight_quant.quantize_with_mask(w4, need)
        codes = self.act_quant.domain.codes(qx).contiguous()
        out = _LutConvFunction.apply(x2, w4, self.bias, self.conv_spec((0, 0)), codes, qx, qw,
                                     sx, zx, sw, zw, clip_x, clip_w)
        return out.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", multiplier={self.multiplier_name}, "
                f"backend={self.backend}, grad={self.grad}")
