"""The module half of the emulation layers: ``ApproxConv2d`` and ``ApproxLinear``.

Drop-in ``nn.Conv2d`` / ``nn.Linear`` replacements whose products go through a multiplier's
LUT (the arithmetic is described in :mod:`.functional`).  A layer owns its multiplier, its
quantizers (:mod:`.quant`) and the name of its backend; each forward quantizes the operands
and calls the functional ops.  When the layer's backend offers a fused path for the operands
(``backend.fused_conv2d(x, weight)``, see :class:`.backends.FusedConv`), the whole forward
is one backend call; otherwise it runs op by op.  The layer never names a backend.

Zero padding pads activation *codes* with the zero point's code, which is exactly a real 0;
other padding modes pad the real input before quantization.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from core.arithmetic import Arithmetic, FloatFormat, IntMultiplier, float_format
from core.errors import HwcostError

from ..multiplier import Multiplier
from .backends import FusedConv, NonFiniteInput
from .backends import get as get_backend
from .functional import (
    GRAD_MODES,
    ConvSpec,
    check_range,
    float_round,
    fused_lut_conv2d,
    gradient_tables,
    lut_conv2d,
)
from .quant import Domain, FakeQuantize, range_sync_enabled

#: check accelerator inputs for NaN/inf too (costs a host sync per layer; CPU inputs always are)
CHECK_FINITE_ON_DEVICE = os.environ.get("HWCOST_CHECK_FINITE", "") not in ("", "0")
#: what ``set_multiplier`` and the layers' ``multiplier=`` accept
MultiplierSpec = str | Multiplier | IntMultiplier | FloatFormat


def _resolve(multiplier: MultiplierSpec) -> Multiplier:
    if isinstance(multiplier, Multiplier):
        return multiplier
    if isinstance(multiplier, IntMultiplier):
        return multiplier.multiplier
    if isinstance(multiplier, FloatFormat):
        raise HwcostError(f"{multiplier.name} is a float format, not a multiplier")
    from ..library import resolve

    return resolve(multiplier)


_LUT_TENSORS: dict[int, tuple[Multiplier, torch.Tensor, int]] = {}


def _lut_entry(mult: Multiplier) -> tuple[torch.Tensor, int]:
    """One int32 tensor per multiplier object, shared by every layer using it, and its
    largest magnitude: backends cache their prepared tables per tensor, so a supernet's
    thousand convs with one multiplier prepare its tables once (and scan it for its peak
    once), not once per layer."""
    hit = _LUT_TENSORS.get(id(mult))
    if hit is not None and hit[0] is mult:
        return hit[1], hit[2]
    lut = torch.as_tensor(mult.lut, dtype=torch.int32).contiguous()
    if len(_LUT_TENSORS) > 256:
        _LUT_TENSORS.clear()
    peak = int(lut.abs().max())
    _LUT_TENSORS[id(mult)] = (mult, lut, peak)
    return lut, peak


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
        self.float_arithmetic: FloatFormat | None = None   # see set_multiplier
        self.candidates: tuple[Multiplier, ...] | None = None   # see set_candidates
        self.candidate_luts: tuple[torch.Tensor, ...] | None = None
        self.candidate_peaks: tuple[int, ...] | None = None
        #: with candidates: the one that multiplies the whole batch (a sampled search step),
        #: or None (the batch is read as one block per candidate)
        self.active_candidate: int | None = None
        #: with candidates: the weights mixing every candidate's product of the *same* batch
        #: (see mix_candidates), or None
        self.mix_weights: torch.Tensor | None = None
        self._act_cfg = (act_observer, act_symmetric)
        self._w_cfg = (weight_per_channel, weight_symmetric)
        self.set_multiplier(multiplier)

    def set_multiplier(self, multiplier: MultiplierSpec) -> None:
        """Swap the multiplier (e.g. after training); quantizers follow its operand widths.

        ``multiplier``: a name, a ``Multiplier``, or a :mod:`core.arithmetic` arithmetic
        (``IntMultiplier`` or ``FloatFormat``).  A float format (``FloatFormat`` or its name:
        ``fp32``, ``fp16``, ``bf16``) runs the layer in float instead, with the same weights:
        the baseline an approximate network is compared against.  The quantizers and the last
        multiplier are kept, so a later swap back needs no recalibration."""
        fmt = float_format(multiplier)
        if fmt is not None:
            if not hasattr(self, "multiplier"):   # constructed as a float layer
                self.set_multiplier("exact8u")
            self.float_arithmetic = fmt
            self._drop_candidates()
            return
        self.float_arithmetic = None
        try:
            mult = _resolve(multiplier)
        except HwcostError as err:
            raise HwcostError(f"layer {self.layer_name}: {err}") from None
        old = getattr(self, "multiplier", None)
        self.multiplier = mult
        self._drop_candidates()   # one multiplier again (set_candidates re-adds its list)
        lut, peak = _lut_entry(mult)
        if hasattr(self, "lut"):
            self.lut = lut
        else:
            self.register_buffer("lut", lut, persistent=False)
        self._grad_tables = None
        self._lut_peak = peak
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
            self._drop_candidates()
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
        entries = [_lut_entry(m) for m in mults]
        self.candidate_luts = tuple(lut for lut, _ in entries)
        self.candidate_peaks = tuple(peak for _, peak in entries)
        self._lut_peak = max(self.candidate_peaks)
        self.active_candidate = None

    def _drop_candidates(self) -> None:
        self.candidates = None
        self.candidate_luts = None
        self.candidate_peaks = None
        self.active_candidate = None
        self.mix_weights = None

    def mix_candidates(self, weights: torch.Tensor | None) -> None:
        """Multiply the whole batch with every candidate and return ``sum_t weights[t] *
        y_t`` (None: stop).  This is the per-conv relaxation of a multiplier search
        (the mixed-precision DNAS supernets' composite convolution): the layer's input is
        one block, quantized once, and each candidate's products are mixed at this layer's
        output, so the layers around it run once whatever the number of candidates.
        ``weights`` may carry a gradient: it reaches them through each candidate's output,
        while the straight-through gradient of the input and the weights is that of one
        float convolution scaled by ``sum(weights)``.  The layer holds ``weights`` until
        told None: a caller passing a tensor of this step's graph clears it after the
        forward (as :class:`nas.search_cells.MixedOp` does), or the next backward would
        reach into a freed graph.  A kept accumulator (``keep_accumulator``) then stacks
        the candidates' sums along the batch, ``(T * N, ...)``."""
        if weights is not None:
            if not isinstance(weights, torch.Tensor):
                raise HwcostError(f"layer {self.layer_name}: mix weights must be a tensor, "
                                  f"got {type(weights).__name__}")
            if self.candidates is None:
                raise HwcostError(f"layer {self.layer_name}: has no candidate multipliers to "
                                  f"mix")
            if weights.shape != (len(self.candidates),):
                raise HwcostError(f"layer {self.layer_name}: mixing {len(self.candidates)} "
                                  f"candidates needs {len(self.candidates)} weights, got "
                                  f"shape {tuple(weights.shape)}")
        self.mix_weights = weights

    @property
    def _replicas(self) -> int:
        """How many candidates multiply this forward's one input block (1: no mixing)."""
        if self.mix_weights is None or self.candidates is None or \
                self.active_candidate is not None:
            return 1
        return len(self.candidates)

    @property
    def _mix(self) -> torch.Tensor | None:
        """This forward's mix weights (with the conv spec's ``replicate``), or None."""
        return self.mix_weights if self._replicas > 1 else None

    def select_candidate(self, index: int | None) -> None:
        """Multiply the whole batch with candidate ``index`` (None: every candidate, one block
        each).  A sampled multiplier search (GDAS-style, :mod:`nas.search_cells`) runs each
        step on one candidate per edge, so its cost does not grow with the candidates."""
        if index is not None:
            if self.candidates is None:
                raise HwcostError(f"layer {self.layer_name}: has no candidate multipliers to "
                                  f"select from")
            if not 0 <= index < len(self.candidates):
                raise HwcostError(f"layer {self.layer_name}: candidate {index} does not exist "
                                  f"(0..{len(self.candidates) - 1})")
        self.active_candidate = index

    @property
    def n_candidates(self) -> int:
        return 1 if self.candidates is None else len(self.candidates)

    @property
    def n_blocks(self) -> int:
        """Equal blocks this layer reads its batch as: one per candidate, or 1 (no
        candidates, or one of them selected for the whole batch)."""
        if self.candidates is None or self.active_candidate is not None or \
                self.mix_weights is not None:
            return 1
        return len(self.candidates)

    @property
    def float_format(self) -> str | None:
        """The name of the float format the layer runs in, or None (it runs its multiplier)."""
        return None if self.float_arithmetic is None else self.float_arithmetic.name

    @property
    def arithmetic(self) -> Arithmetic:
        """What the layer computes with, as a :mod:`core.arithmetic` type."""
        return self.float_arithmetic or IntMultiplier(self.multiplier)

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
        if not isinstance(state, dict):
            raise HwcostError(f"layer {self.layer_name}: saved state is "
                              f"{type(state).__name__}, not a mapping")
        named = [state.get("multiplier"), state.get("float_format"),
                 *(state.get("candidates") or [])]
        for name in named:   # a saved state names library entries, never code to compile
            if not (name is None or isinstance(name, str)) or \
                    (isinstance(name, str) and name.strip().lower().endswith(".c")):
                raise HwcostError(f"layer {self.layer_name}: saved state names {name!r}; a "
                                  "saved network names library entries, not C models")
        if state.get("float_format"):
            if state.get("multiplier") and state["multiplier"] != self.multiplier.name:
                self.set_multiplier(state["multiplier"])
            self.set_multiplier(state["float_format"])
            self.grad = state.get("grad", self.grad)
            return
        self.float_arithmetic = None
        if state.get("candidates"):
            names = [m.name for m in self.candidates] if self.candidates else None
            if names != list(state["candidates"]):
                self.set_candidates(state["candidates"])
        elif state.get("multiplier") and state["multiplier"] != self.multiplier.name:
            self.set_multiplier(state["multiplier"])
        self.grad = state.get("grad", self.grad)

    def check_loaded_state(self) -> None:
        """After a state dict from a file: the quantizers' ranges fit this layer (their shape
        is taken from the file, since an unobserved range has none), so a crafted or foreign
        checkpoint is refused here instead of failing inside the first forward."""
        out_channels = self.weight.shape[0]
        for what, quant, allowed in (("activation", self.act_quant, {0, 1}),
                                     ("weight", self.weight_quant, {0, 1, out_channels})):
            obs = quant.observer
            lo, hi = obs.min_val, obs.max_val
            if lo.dim() > 1 or lo.shape != hi.shape or lo.numel() not in allowed or \
                    (lo.numel() and not (torch.isfinite(lo).all() and torch.isfinite(hi).all()
                                         and (lo <= hi).all())):
                raise HwcostError(f"layer {self.layer_name}: the {what} range has shape "
                                  f"{tuple(lo.shape)} / {tuple(hi.shape)} or values that do not "
                                  f"fit (expected {sorted(allowed)} finite entries, min <= max)")

    @property
    def _last_accumulator(self) -> torch.Tensor | None:
        """The integer accumulator of the last forward (with ``keep_accumulator``), float64."""
        return self.__dict__.get("_accumulator_sink", {}).get("accumulator")

    def conv_spec(self, padding: tuple[int, int]) -> ConvSpec:
        """This call's :class:`ConvSpec` (``padding``: zero padding of the codes)."""
        luts, peak, blocks = (self.lut,), self._lut_peak, False
        if self.candidate_luts is not None:
            active = self.active_candidate
            if active is None:
                luts, blocks = self.candidate_luts, True
            else:
                luts, peak = (self.candidate_luts[active],), self.candidate_peaks[active]
        children = self._modules   # not nn.Module.__getattr__ (see _observed_quant)
        act = children["act_quant"] if "act_quant" in children else self.act_quant
        wgt = children["weight_quant"] if "weight_quant" in children else self.weight_quant
        return ConvSpec(
            self.layer_name, self.in_channels, self.out_channels, tuple(self.kernel_size),
            tuple(self.stride), tuple(padding), tuple(self.dilation), self.groups, self.grad,
            self.backend, luts, blocks, act.domain, wgt.domain, peak, self._tables,
            self.__dict__.setdefault("_accumulator_sink", {}) if self.keep_accumulator
            else None, self._replicas)

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


def _fused_path(layer, x: torch.Tensor) -> FusedConv | None:
    """The fused path the layer's backend offers for this forward, else None (op by op).

    Whether there is one is the backend's answer (``fused_conv2d``: dtype, device, a built
    kernel); a layer keeping its integer accumulator always runs op by op.
    """
    if layer.keep_accumulator:
        return None
    return get_backend(layer.backend, x.device.type).fused_conv2d(x, layer.weight)


def _observed_quant(layer, weight: torch.Tensor) -> tuple | None:
    """The fused call's ``("observe", ...)`` argument when it can update this layer's
    observers and pick the quantizer parameters itself: running min-max observers (or
    ranges not being observed), already initialized, not being reduced over processes,
    activations per tensor, weights per tensor or per output channel.  None otherwise: the
    Python path below handles every observer and first calibration."""
    # Submodules and buffers read from nn.Module's own dicts: its __getattr__ fallback cost
    # about 0.5 us a name, a third of this function on every fused forward.
    children = layer._modules
    aq, wq = children.get("act_quant"), children.get("weight_quant")
    if aq is None or wq is None:     # quantizers held otherwise: the Python path
        return None
    ao, wo = aq._modules.get("observer"), wq._modules.get("observer")
    if ao is None or wo is None:
        return None
    observe_a, observe_w = aq.observing and aq.training, wq.observing and wq.training
    if ((ao.sync or wo.sync) and range_sync_enabled()) or aq.axis is not None or \
            wq.axis not in (None, 0):
        return None
    if (observe_a and ao.kind != "minmax") or (observe_w and wo.kind != "minmax"):
        return None
    rows = weight.shape[0] if wq.axis == 0 else 1
    a_buf, w_buf = ao._buffers, wo._buffers
    a_lo, a_hi, w_lo, w_hi = (a_buf.get("min_val"), a_buf.get("max_val"),
                              w_buf.get("min_val"), w_buf.get("max_val"))
    for t, n in ((a_lo, 1), (a_hi, 1), (w_lo, rows), (w_hi, rows)):
        if t is None or t.dim() != 1 or t.numel() != n or t.dtype != torch.float32 or \
                not t.is_contiguous() or t.device.type != "cpu":
            return None
    return ("observe", (a_lo, a_hi), (w_lo, w_hi),
            (int(observe_a), int(observe_w), int(aq.symmetric), int(wq.symmetric)))


def _fused_forward(layer, fused: FusedConv, x: torch.Tensor, weight: torch.Tensor, bias,
                   pad) -> torch.Tensor:
    """The whole conv in one fused backend call (:func:`.functional.fused_lut_conv2d`).
    Where the call can also observe the ranges and pick the quantizer parameters
    (:func:`_observed_quant`) it does; otherwise range check, observers and parameters take
    a handful of small ops here first."""
    t = layer.n_blocks
    if t > 1 and x.shape[0] % t:
        raise HwcostError(f"layer {layer.layer_name}: a batch of {x.shape[0]} cannot be split "
                          f"into {t} equal blocks, one per candidate multiplier")
    spec = layer.conv_spec(pad)
    check_range(spec, weight[0].numel())
    quant = _observed_quant(layer, weight)
    if quant is None:
        lo, hi = torch.aminmax(x.detach())
        if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
            raise HwcostError(f"layer {layer.layer_name}: input contains NaN or infinite "
                              "values")
        sx, zx = layer.act_quant.fast_params(x, (lo.reshape(1), hi.reshape(1)))
        wq = layer.weight_quant
        w_range = None
        if wq.observing and wq.training and wq.observer.kind != "percentile":
            rows = weight.shape[0] if wq.axis == 0 else 1
            w_range = torch.aminmax(weight.detach().reshape(rows, -1), dim=1)
        sw, zw = wq.fast_params(weight, w_range)
        quant = ("given", float(sx.reshape(-1)[0]), int(zx.reshape(-1)[0]),
                 torch.from_numpy(sw.reshape(-1)), torch.from_numpy(zw.reshape(-1)))
    try:
        return fused_lut_conv2d(fused, x, weight, bias, spec, quant, layer._mix)
    except NonFiniteInput:
        raise HwcostError(f"layer {layer.layer_name}: input contains NaN or infinite "
                          "values") from None


class ApproxConv2d(_ApproxMixin, nn.Conv2d):
    """A ``Conv2d`` whose multiplications are those of an approximate multiplier."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 multiplier: MultiplierSpec = "exact8u", backend: str = "auto",
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
        fmt = self.float_arithmetic
        if fmt is not None:
            return self._conv_forward(float_round(x, fmt), float_round(self.weight, fmt),
                                      float_round(self.bias, fmt))
        ph, pw = self._pad_amount
        fused = _fused_path(self, x)
        if fused is not None:
            if self.padding_mode != "zeros":
                if ph or pw:
                    x = F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode)
                ph = pw = 0
            return _fused_forward(self, fused, x, self.weight, self.bias, (ph, pw))
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
        return lut_conv2d(x, self.weight, self.bias, spec, codes.contiguous(), qx, qw, sx, zx,
                          sw, zw, clip_x, clip_w, self._mix)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", multiplier={self.multiplier_name}, "
                f"backend={self.backend}, grad={self.grad}")


class ApproxLinear(_ApproxMixin, nn.Linear):
    """A ``Linear`` layer computed as a 1x1 approximate convolution."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 multiplier: MultiplierSpec = "exact8u", backend: str = "auto",
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
        fmt = self.float_arithmetic
        if fmt is not None:
            return F.linear(float_round(x, fmt), float_round(self.weight, fmt),
                            float_round(self.bias, fmt))
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features, 1, 1)
        w4 = self.weight.view(self.out_features, self.in_features, 1, 1)
        fused = _fused_path(self, x)
        if fused is not None:
            out = _fused_forward(self, fused, x2, w4, self.bias, (0, 0))
            return out.reshape(*lead, self.out_features)
        self._check_input(x)
        need = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        qx, sx, zx, clip_x = self.act_quant.quantize_with_mask(x2, need)
        qw, sw, zw, clip_w = self.weight_quant.quantize_with_mask(w4, need)
        codes = self.act_quant.domain.codes(qx).contiguous()
        out = lut_conv2d(x2, w4, self.bias, self.conv_spec((0, 0)), codes, qx, qw, sx, zx, sw,
                         zw, clip_x, clip_w, self._mix)
        return out.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", multiplier={self.multiplier_name}, "
                f"backend={self.backend}, grad={self.grad}")
