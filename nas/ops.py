"""The DARTS ops as PyTorch modules, built from their specs, every convolution made by a
*conv factory*.

Each op is described once, torch-free, in :mod:`darts.op_specs` (a sequence of stages:
ReLU, conv, BN, pooling, FactorizedReduce, identity, zero); :func:`build_op` turns a spec
into modules here, as :func:`darts.op_specs.stages_block` turns it into hardware layers, so
the two list the same convs in the same order with the same shapes and their parameter and
MAC counts agree (``tests/nas/test_models.py`` checks every primitive).  The modules nest
as the hand-written ``ReLUConvBN``/``DilConv``/``SepConv`` they replace did (:class:`Chain`),
so parameter names, and the checkpoints that hold them, are unchanged.  The same ops serve
the supernet (:mod:`nas.search_cnn`, ``affine=False``) and the evaluation network
(:mod:`nas.augment_cnn`, ``affine=True``).

Convolutions are not built directly but through a :data:`ConvFactory`, so one op definition
gives both an exact network (:func:`plain_conv`, ``nn.Conv2d``) and one whose products go
through an approximate multiplier's LUT (:func:`approx_conv`, ``ApproxConv2d``), without the
op code knowing which.  Factories build bias-free convs: every DARTS conv is followed by BN.

Candidate multipliers (the supernet's multiplier search): :func:`candidate_conv` (or
:func:`approx_conv` given a list) builds layers that hold *one* weight tensor and read their
input batch as ``T`` equal blocks, block ``t`` multiplied with candidate ``t``
(``ApproxConv2d.set_candidates``).  Such a factory carries ``n_candidates``; an op built with
it follows each conv with a :class:`BlockBatchNorm2d` (one set of batch statistics per
block) instead of ``nn.BatchNorm2d`` (:func:`batch_norm`).  Every other factory, in
particular those of the evaluation network, gets ``nn.BatchNorm2d`` exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from core.arithmetic import float_format
from core.errors import HwcostError
from darts import op_specs
from darts.op_specs import OP_SPECS, OpSpec, Stage

if TYPE_CHECKING:
    from multiplier_lib.multiplier import Multiplier

#: ``conv(in_ch, out_ch, kernel, stride, padding, dilation, groups)`` -> a bias-free conv.
ConvFactory = Callable[[int, int, int, int, int, int, int], nn.Module]


def plain_conv(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int,
               dilation: int, groups: int) -> nn.Module:
    """The exact conv: ``nn.Conv2d`` without bias (a BN always follows)."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, groups, bias=False)


def approx_conv(multiplier: str | Multiplier | Sequence[str | Multiplier],
                backend: str = "auto", grad: str = "ste",
                resolve: Callable[[str], Multiplier] | None = None) -> ConvFactory:
    """A factory of ``ApproxConv2d`` layers computing their products with ``multiplier``.

    The multiplier is resolved once here, not per layer: a supernet builds thousands of
    convs, and one shared :class:`Multiplier` means one LUT in memory (the layers' LUT
    buffers view the same array) and no repeated library look-ups.

    Given a list or tuple of multipliers this is :func:`candidate_conv` (one shared weight
    tensor per layer, the batch read as one block per candidate).  ``resolve`` (a
    :class:`~multiplier_lib.library.MultiplierResolver`) names the run's library; the
    default library otherwise.
    """
    if isinstance(multiplier, (list, tuple)):
        return candidate_conv(multiplier, backend, grad, resolve)
    from multiplier_lib.emulate.layers import ApproxConv2d

    if resolve is None:
        from multiplier_lib.library import resolve

    fmt = float_format(multiplier)
    if fmt is not None:
        mult = fmt.name    # a float baseline: the layers run in float
    else:
        mult = resolve(multiplier) if isinstance(multiplier, str) else multiplier

    def make(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, dilation: int,
             groups: int) -> nn.Module:
        return ApproxConv2d(in_ch, out_ch, kernel, stride, padding, dilation, groups, False,
                            "zeros", multiplier=mult, backend=backend, grad=grad)

    make.multiplier = getattr(mult, "name", mult)  # type: ignore[attr-defined]  # for reprs
    return make


def candidate_conv(multipliers: Sequence[str | Multiplier], backend: str = "auto",
                   grad: str = "ste",
                   resolve: Callable[[str], Multiplier] | None = None) -> ConvFactory:
    """A factory of ``ApproxConv2d`` layers that evaluate every candidate multiplier at once.

    Each layer has one weight tensor; with ``T = len(multipliers) > 1`` it reads its input
    batch as ``T`` equal blocks and multiplies block ``t`` with ``multipliers[t]`` in one
    kernel pass (``ApproxConv2d.set_candidates``).  ``T == 1`` gives plain layers, as
    :func:`approx_conv` does.  The factory carries ``n_candidates`` (``T``) so that ops built
    with it normalise each block separately (:func:`batch_norm`), and ``multipliers`` (the
    names, in block order).

    Multipliers are resolved and checked once, here: they must share one operand domain
    (one quantizer serves all blocks), and ``grad='lut'`` is refused for ``T > 1`` (gradient
    tables belong to one multiplier).
    """
    from multiplier_lib.emulate.layers import ApproxConv2d

    if resolve is None:
        from multiplier_lib.library import resolve
    if isinstance(multipliers, str) or not multipliers:
        raise HwcostError("candidate_conv needs a non-empty list of multipliers, got "
                          f"{multipliers!r}")
    floats = [m for m in multipliers if float_format(m) is not None]
    if floats and len(multipliers) > 1:
        raise HwcostError(f"{floats[0]} cannot be a candidate of a per-edge multiplier search "
                          "(a float op shares no quantizer with LUT ops); search it alone "
                          f"with --multiplier {floats[0]}")
    if floats:
        return approx_conv(floats[0], backend, grad, resolve)
    mults = tuple(resolve(m) if isinstance(m, str) else m for m in multipliers)
    names = tuple(m.name for m in mults)
    if len(set(names)) != len(names):
        raise HwcostError(f"candidate multipliers must be distinct, got {list(names)}")
    first = mults[0]
    for m in mults[1:]:
        if (m.a_bits, m.b_bits, m.signed) != (first.a_bits, first.b_bits, first.signed):
            raise HwcostError(
                f"candidate multipliers must share one operand domain (bits and signedness): "
                f"{first.name} is {first.a_bits}x{first.b_bits}-bit "
                f"{'signed' if first.signed else 'unsigned'}, {m.name} is "
                f"{m.a_bits}x{m.b_bits}-bit {'signed' if m.signed else 'unsigned'}")
    if grad == "lut" and len(mults) > 1:
        raise HwcostError("grad='lut' reads one multiplier's gradient tables; use grad='ste' "
                          "when searching candidate multipliers")

    def make(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, dilation: int,
             groups: int) -> nn.Module:
        layer = ApproxConv2d(in_ch, out_ch, kernel, stride, padding, dilation, groups, False,
                             "zeros", multiplier=first, backend=backend, grad=grad)
        if len(mults) > 1:
            layer.set_candidates(list(mults))
        return layer

    make.multiplier = first.name  # type: ignore[attr-defined]
    make.multipliers = names  # type: ignore[attr-defined]
    make.n_candidates = len(mults)  # type: ignore[attr-defined]
    return make


def n_candidates(conv: ConvFactory) -> int:
    """How many candidate multipliers the convs of ``conv`` evaluate (1: plain)."""
    return int(getattr(conv, "n_candidates", 1))


def mixes_at_conv(conv: ConvFactory) -> bool:
    """Whether the convs of ``conv`` mix their candidates' products themselves
    (:func:`per_conv_mixing`) instead of reading their batch as one block per candidate."""
    return bool(getattr(conv, "mixes_at_conv", False)) and n_candidates(conv) > 1


def per_conv_mixing(conv: ConvFactory) -> ConvFactory:
    """``conv``, a candidate factory, made for the per-conv relaxation of a multiplier
    search: its layers take one input block and return the mix of every candidate's
    products (``ApproxConv2d.mix_candidates``, weights set per edge by
    :class:`nas.search_cells.MixedOp`), and the BN after each of them is a plain
    ``nn.BatchNorm2d``, since the batch is no longer one block per candidate.

    Why a second relaxation: the block form runs each multiplying op's whole chain (its
    convs, BNs, ReLUs and their backward) once per candidate, so a step costs about ``T``
    times as much in those ops, however cheap the look-ups.  Mixed at each conv, only the
    look-ups repeat per candidate; the price is that a mixed op is no longer the convex
    mix of the single-multiplier ops (the nonlinearities between its convs see mixed
    products), as in the mixed-precision DNAS supernets (Wu et al. 2018), which mix their
    candidate precisions at every layer.  With one-hot weights both forms compute the
    single-multiplier op."""
    if n_candidates(conv) <= 1:
        return conv

    def make(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, dilation: int,
             groups: int) -> nn.Module:
        return conv(in_ch, out_ch, kernel, stride, padding, dilation, groups)

    for attr in ("multiplier", "multipliers", "n_candidates"):
        if hasattr(conv, attr):
            setattr(make, attr, getattr(conv, attr))
    make.mixes_at_conv = True  # type: ignore[attr-defined]
    return make


class BlockBatchNorm2d(nn.Module):
    """Batch norm over a batch of ``n_blocks`` equal blocks, each with its own statistics.

    A candidate-multiplier op's batch is ``T`` blocks, one per candidate multiplier
    (:func:`candidate_conv`).  A plain ``nn.BatchNorm2d`` would pool their statistics, so a
    candidate's output would depend on what the other candidates computed; here block ``t``
    is normalised with the mean and variance of block ``t`` alone, exactly as
    ``nn.BatchNorm2d`` normalises the same tensor in a network with that one multiplier.

    Running statistics are kept per block (buffers of shape ``(n_blocks, C)``): the candidates'
    activations have different statistics (that is what their errors do), so one shared
    running estimate would normalise every candidate in eval mode with a mixture that matches
    none of them, and a candidate's eval output would again depend on the others.  The
    optional affine parameters (``affine=True``) are shared across blocks, like the conv
    weights, so the parameter count does not depend on ``n_blocks``.  With ``n_blocks == 1``
    this computes what ``nn.BatchNorm2d`` computes.
    """

    def __init__(self, num_features: int, n_blocks: int, affine: bool = False,
                 eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        if n_blocks < 1:
            raise HwcostError(f"BlockBatchNorm2d needs at least one block, got {n_blocks}")
        self.num_features = num_features
        self.n_blocks = n_blocks
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        if affine:
            self.weight: nn.Parameter | None = nn.Parameter(torch.ones(num_features))
            self.bias: nn.Parameter | None = nn.Parameter(torch.zeros(num_features))
        else:
            self.weight = None
            self.bias = None
        self.register_buffer("running_mean", torch.zeros(n_blocks, num_features))
        self.register_buffer("running_var", torch.ones(n_blocks, num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        #: a block selected for the whole batch (a sampled multiplier search), or None
        self.active_candidate: int | None = None

    def select_candidate(self, index: int | None) -> None:
        """Normalise the whole batch as block ``index`` (with that block's running
        statistics), or, with None, read it as ``n_blocks`` blocks again."""
        if index is not None and not 0 <= index < self.n_blocks:
            raise HwcostError(f"BlockBatchNorm2d has blocks 0..{self.n_blocks - 1}, not {index}")
        self.active_candidate = index

    def _momentum(self) -> float:
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative average, as nn.BatchNorm2d
                momentum = 1.0 / float(self.num_batches_tracked)
        return momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = self.active_candidate
        if active is not None:
            if x.dim() != 4 or x.shape[1] != self.num_features:
                raise HwcostError(f"BlockBatchNorm2d({self.num_features}) cannot read an input "
                                  f"of shape {tuple(x.shape)}")
            # the row views share the buffers' storage: training updates block `active` only
            return F.batch_norm(x, self.running_mean[active], self.running_var[active],
                                self.weight, self.bias, self.training, self._momentum(),
                                self.eps)
        t = self.n_blocks
        if x.dim() != 4 or x.shape[0] % t or x.shape[1] != self.num_features:
            raise HwcostError(f"BlockBatchNorm2d({self.num_features}, n_blocks={t}) cannot "
                              f"read an input of shape {tuple(x.shape)} as {t} equal blocks")
        n, (c, h, w) = x.shape[0] // t, x.shape[1:]
        # blocks side by side as channels: (T*N, C, H, W) -> (N, T*C, H, W), so that one
        # batch_norm call gives every (block, channel) pair its own statistics
        xb = x.view(t, n, c, h, w).transpose(0, 1).reshape(n, t * c, h, w)
        weight = self.weight.repeat(t) if self.weight is not None else None
        bias = self.bias.repeat(t) if self.bias is not None else None
        y = F.batch_norm(xb, self.running_mean.view(-1), self.running_var.view(-1), weight,
                         bias, self.training, self._momentum(), self.eps)
        return y.view(n, t, c, h, w).transpose(0, 1).reshape(t * n, c, h, w)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, n_blocks={self.n_blocks}, eps={self.eps}, "
                f"momentum={self.momentum}, affine={self.affine}")


def batch_norm(c: int, affine: bool, conv: ConvFactory) -> nn.Module:
    """The BN that follows a conv of ``conv``: per-block for candidate factories that read
    one block per candidate, else plain."""
    blocks = n_candidates(conv)
    if blocks > 1 and not mixes_at_conv(conv):
        return BlockBatchNorm2d(c, blocks, affine=affine)
    return nn.BatchNorm2d(c, affine=affine)


class Zero(nn.Module):
    """The ``none`` op: zeros of the op's output shape (stride-aware, so node sums work)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x * 0.0
        return x[:, :, :: self.stride, :: self.stride] * 0.0


class Identity(nn.Module):
    """``skip_connect`` at stride 1; its own class so drop-path can recognise and spare it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FactorizedReduce(nn.Module):
    """Halve the size with two 1x1 stride-2 convs, the second on the input shifted by a pixel.

    A single strided 1x1 conv would only ever see the even pixels; the shifted twin sees the
    odd ones, and each gives half of the output channels.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True,
                 conv: ConvFactory = plain_conv):
        super().__init__()
        if c_out % 2:
            raise HwcostError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU()
        self.conv1 = conv(c_in, c_out // 2, 1, 2, 0, 1, 1)
        self.conv2 = conv(c_in, c_out // 2, 1, 2, 0, 1, 1)
        self.bn = batch_norm(c_out, affine, conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv1(x), self.conv2(x[:, :, 1:, 1:])], dim=1))


class DropPath(nn.Module):
    """Drop the whole op output per sample with probability ``p`` (training only).

    ``p`` is an attribute, not a constructor constant, because DARTS raises it linearly over
    the epochs; the network sets it on every instance (see ``AugmentCNN.drop_path_prob``).
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x / keep * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


#: the stages a ReLU-conv-BN unit is made of (any other stage is a module by itself)
_UNIT_STAGES = (op_specs.ReLU, op_specs.Conv, op_specs.BatchNorm)


class Chain(nn.Module):
    """The ReLU-conv-BN units of an op spec, in ``net``: the unit's modules when the op has
    one unit (``dil_conv``, the ReLU-1x1 conv-BN preprocessing), else one :class:`Chain` per
    unit (``sep_conv``: two units, only the first strided).  This is the nesting of the
    hand-written ``StdConv``/``DilConv``/``SepConv`` modules it replaces, so parameter names
    (``net.1.weight``, ``net.0.net.1.weight``...) and saved checkpoints are unchanged.  ``op``
    (the spec's name) only labels the module's repr."""

    def __init__(self, net: nn.Sequential, op: str = ""):
        super().__init__()
        self.net = net
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def extra_repr(self) -> str:
        return f"op={self.op}" if self.op else ""


def _whole_stage(stage: Stage, c_in: int, c_out: int, stride: int, affine: bool,
                 conv: ConvFactory) -> nn.Module:
    """The module of a stage that is an op by itself (pool, FactorizedReduce, identity, zero)."""
    if isinstance(stage, op_specs.Pool):
        if stage.kind == "max":
            return nn.MaxPool2d(stage.window, stride, stage.padding)
        return nn.AvgPool2d(stage.window, stride, stage.padding, count_include_pad=False)
    if isinstance(stage, op_specs.FactorizedReduce):
        if stride != 2:
            raise ValueError(f"a FactorizedReduce halves the size; stride {stride} asked")
        return FactorizedReduce(c_in, c_out, affine, conv)
    if isinstance(stage, op_specs.Identity):
        if stride != 1:
            raise ValueError(f"an identity cannot have stride {stride}")
        return Identity()
    if isinstance(stage, op_specs.Zero):
        return Zero(stride)
    raise TypeError(f"not an op stage: {stage!r}")


def build_op(stages: OpSpec | tuple[Stage, ...], c_in: int, c_out: int, stride: int,
             affine: bool, conv: ConvFactory) -> nn.Module:
    """The PyTorch module of an op spec (or of its ``stages``) from ``c_in`` to ``c_out``
    channels at ``stride``, its convs made by ``conv``.

    A spec of one whole stage is that stage's module (``nn.MaxPool2d``, :class:`Identity`,
    :class:`FactorizedReduce`, :class:`Zero`...); ReLU-conv-BN units make a :class:`Chain`.
    The BNs follow the conv factory (:func:`batch_norm`: per candidate block for candidate
    factories).
    """
    name = ""
    if isinstance(stages, OpSpec):
        name, stages = stages.name, stages.at(stride)
    if len(stages) == 1 and not isinstance(stages[0], _UNIT_STAGES):
        return _whole_stage(stages[0], c_in, c_out, stride, affine, conv)
    units: list[list[nn.Module]] = []
    c = c_in
    for stage in stages:
        if isinstance(stage, op_specs.ReLU) or not units:
            units.append([])
        if isinstance(stage, op_specs.ReLU):
            units[-1].append(nn.ReLU())
        elif isinstance(stage, op_specs.Conv):
            c_next = c if stage.depthwise else c_out
            units[-1].append(conv(c, c_next, stage.kernel, stride if stage.strided else 1,
                                  stage.padding, stage.dilation, c if stage.depthwise else 1))
            c = c_next
        elif isinstance(stage, op_specs.BatchNorm):
            units[-1].append(batch_norm(c, affine, conv))
        else:
            units[-1].append(_whole_stage(stage, c, c_out, stride, affine, conv))
            c = c_out
    if len(units) == 1:
        return Chain(nn.Sequential(*units[0]), name)
    return Chain(nn.Sequential(*(Chain(nn.Sequential(*unit)) for unit in units)), name)


def _op_builder(spec: OpSpec) -> Callable[[int, int, bool, ConvFactory], nn.Module]:
    def build(c: int, stride: int, affine: bool, conv: ConvFactory) -> nn.Module:
        return build_op(spec, c, c, stride, affine, conv)

    return build


#: op name -> ``(C, stride, affine, conv) -> module`` for every DARTS primitive, built from
#: its spec (:data:`darts.op_specs.OP_SPECS`)
OPS: dict[str, Callable[[int, int, bool, ConvFactory], nn.Module]] = {
    name: _op_builder(spec) for name, spec in OP_SPECS.items()}


def has_conv(module: nn.Module) -> bool:
    """Whether ``module`` multiplies (holds a conv): only such ops care about a multiplier."""
    return any(isinstance(m, nn.Conv2d) for m in module.modules())
