"""The DARTS ops, each described once, and built from that description as hardware layers.

Every primitive is an :class:`OpSpec`: a torch-free sequence of *stages* (:data:`Stage`:
ReLU, a convolution, batch norm, pooling, DARTS's FactorizedReduce, identity, zero).  Two
builders read the same specs: :func:`stages_block` here turns them into
:class:`~hwmodel.workload.Layer` lists (for :mod:`darts.cellgraph` and the search's per-op
cost tables), and :mod:`nas.ops` turns them into PyTorch modules (convs made by a conv
factory, so exact or approximate).  Adding a primitive means adding its spec to
:data:`OP_SPECS`; :data:`darts.genotype.PRIMITIVES` is the list of its keys.

The specs follow the DARTS evaluation code (CIFAR network):

* ``sep_conv_kxk``: (ReLU, depthwise kxk stride s, pointwise 1x1, BN) then (ReLU, depthwise
  kxk stride 1, pointwise 1x1, BN): 4 conv layers, 2 BNs;
* ``dil_conv_kxk``: ReLU, depthwise kxk dilation 2 stride s, pointwise 1x1, BN: 2 convs;
* ``skip_connect``: identity at stride 1; at stride 2 a FactorizedReduce: ReLU, two 1x1
  stride-2 convs C -> C/2 (the second on the input shifted by one pixel), concat, BN;
* ``max_pool_3x3`` / ``avg_pool_3x3``: one ``pool`` layer (padding 1);
* ``none``: nothing (a zero tensor costs no work).

The cell preprocessing is described the same way (:data:`RELU_CONV_BN`,
:data:`FACTORIZED_REDUCE`).

Every op uses 'same' padding, so the output side is ``ceil(in / stride)``.  ReLU and BN are
not layers (they have no multiplications and fold into neighbours on an accelerator), but BN
has 2 trainable parameters per channel, which :attr:`Block.bn_params` reports so that
parameter counts match the trained network.

Shape conventions for the layers without multiplications: a pooling layer over ``ch``
channels is ``groups=ch, C=1, M=1`` with the window in ``R, S`` (a depthwise conv's loop
nest: one compare/add per ``N*G*P*Q*R*S`` point); an element-wise layer is the same with
``R=S=1`` and ``extra={'op': 'add', 'operands': 2, 'elements': N*ch*H*W, 'channels': ch}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import HwcostError
from hwmodel.workload import Layer

# --------------------------------------------------------------------------------------------
# The stages an op is made of


@dataclass(frozen=True)
class ReLU:
    """A ReLU.  In a sequence of stages each ReLU starts a new ReLU-conv-BN unit (DARTS's
    building block; :mod:`nas.ops` nests the modules of an op with several units)."""


@dataclass(frozen=True)
class Conv:
    """A bias-free convolution with 'same' padding, named ``part`` in layer names.

    A ``depthwise`` conv keeps the channel count (one group per channel); a dense one
    outputs the block's output channels.  A ``strided`` conv takes the op's stride; the
    others run at stride 1.
    """

    part: str
    kernel: int = 1
    dilation: int = 1
    depthwise: bool = False
    strided: bool = False

    @property
    def padding(self) -> int:
        return self.dilation * (self.kernel - 1) // 2


@dataclass(frozen=True)
class BatchNorm:
    """Batch norm over the current channels (2 trainable parameters per channel)."""


@dataclass(frozen=True)
class Pool:
    """A ``kind`` (``'max'`` or ``'avg'``, the latter not counting the padding) pooling of a
    ``window x window`` window at the op's stride, 'same' padding."""

    kind: str
    window: int
    part: str = "pool"

    @property
    def padding(self) -> int:
        return self.window // 2


@dataclass(frozen=True)
class FactorizedReduce:
    """DARTS's FactorizedReduce (ReLU, two offset 1x1 stride-2 convs giving half the output
    channels each, concat, BN): halves the size; the op's stride must be 2."""

    part: str = "fr"


@dataclass(frozen=True)
class Identity:
    """The input itself (stride 1 only)."""


@dataclass(frozen=True)
class Zero:
    """Zeros of the output shape (strided like the op): no work, no parameters."""


Stage = ReLU | Conv | BatchNorm | Pool | FactorizedReduce | Identity | Zero


@dataclass(frozen=True)
class OpSpec:
    """One op as stages; ``strided_stages`` replaces ``stages`` at a stride above 1 where the
    op is built differently there (``skip_connect``: a FactorizedReduce, not an identity)."""

    name: str
    stages: tuple[Stage, ...]
    strided_stages: tuple[Stage, ...] | None = None

    def at(self, stride: int) -> tuple[Stage, ...]:
        """The stages of this op at ``stride``."""
        if stride != 1 and self.strided_stages is not None:
            return self.strided_stages
        return self.stages

    def multiplies(self, stride: int) -> bool:
        """Whether the op at ``stride`` holds a conv (so a multiplier choice means something)."""
        return any(isinstance(s, Conv | FactorizedReduce) for s in self.at(stride))


def _sep_conv(k: int) -> tuple[Stage, ...]:
    return (ReLU(), Conv("dw1", k, depthwise=True, strided=True), Conv("pw1"), BatchNorm(),
            ReLU(), Conv("dw2", k, depthwise=True), Conv("pw2"), BatchNorm())


def _dil_conv(k: int) -> tuple[Stage, ...]:
    return (ReLU(), Conv("dw", k, dilation=2, depthwise=True, strided=True), Conv("pw"),
            BatchNorm())


#: every DARTS primitive, in DARTS's order (the order of the architecture weights)
OP_SPECS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("none", (Zero(),)),
    OpSpec("max_pool_3x3", (Pool("max", 3),)),
    OpSpec("avg_pool_3x3", (Pool("avg", 3),)),
    OpSpec("skip_connect", (Identity(),), strided_stages=(FactorizedReduce(),)),
    OpSpec("sep_conv_3x3", _sep_conv(3)),
    OpSpec("sep_conv_5x5", _sep_conv(5)),
    OpSpec("dil_conv_3x3", _dil_conv(3)),
    OpSpec("dil_conv_5x5", _dil_conv(5)),
)}

#: the preprocessing of a cell input of the same size as the cell: ReLU, 1x1 conv, BN
RELU_CONV_BN = OpSpec("relu_conv_bn", (ReLU(), Conv("conv"), BatchNorm()))
#: the preprocessing of a cell input twice the cell's size (after a reduction cell), stride 2
FACTORIZED_REDUCE = OpSpec("factorized_reduce", (FactorizedReduce(),))


# --------------------------------------------------------------------------------------------
# The same ops as hardware layers


@dataclass(frozen=True)
class Block:
    """The layers of one op or building block, its BN parameters and its output size."""

    layers: tuple[Layer, ...]
    bn_params: int
    out_channels: int
    out_hw: tuple[int, int]

    @property
    def weight_params(self) -> int:
        """Conv/FC weights (and the FC bias, kept in ``extra['bias']``)."""
        return sum(layer.params + layer.extra.get("bias", 0) for layer in self.layers)


def out_side(side: int, stride: int) -> int:
    """Output side of a 'same'-padded window: ``ceil(side / stride)``."""
    return -(-side // stride)


def _conv(name: str, c_in: int, c_out: int, hw: tuple[int, int], kernel: int, stride: int,
          *, batch: int, multiplier: str | None, dilation: int = 1, groups: int = 1,
          extra: dict | None = None) -> Layer:
    """A conv Layer; ``c_in``/``c_out`` are the full channel counts (split per group here)."""
    return Layer(name=name, kind="conv", N=batch, C=c_in // groups, M=c_out // groups,
                 P=out_side(hw[0], stride), Q=out_side(hw[1], stride), R=kernel, S=kernel,
                 stride=(stride, stride), dilation=(dilation, dilation), groups=groups,
                 multiplier=multiplier, extra=dict(extra or {}))


def relu_conv_bn(prefix: str, c_in: int, c_out: int, hw: tuple[int, int], *, batch: int = 1,
                 multiplier: str | None = None) -> Block:
    """DARTS's cell preprocessing ReLU, 1x1 conv, BN (changes channels, keeps size)."""
    return stages_block(RELU_CONV_BN.stages, prefix, c_in, c_out, hw, 1, batch=batch,
                        multiplier=multiplier)


def factorized_reduce(prefix: str, c_in: int, c_out: int, hw: tuple[int, int], *,
                      batch: int = 1, multiplier: str | None = None) -> Block:
    """Halve the size with two offset 1x1 stride-2 convs, each giving half the channels.

    DARTS shifts the second conv's input by one pixel (``x[:, :, 1:, 1:]``) and concatenates;
    with an odd side the two halves differ in size and DARTS itself fails, hence the errors.
    """
    if c_out % 2:
        raise HwcostError(f"{prefix}: FactorizedReduce needs an even channel count, got "
                          f"{c_out} (choose an even number of channels)")
    if hw[0] % 2 or hw[1] % 2:
        raise HwcostError(f"{prefix}: FactorizedReduce needs an even input size, got "
                          f"{hw[0]}x{hw[1]} (DARTS's network fails there too; use an input size "
                          "divisible by 4)")
    convs = tuple(
        _conv(f"{prefix}.conv{i}", c_in, c_out // 2, hw, 1, 2, batch=batch,
              multiplier=multiplier, extra={"input_offset": i - 1})
        for i in (1, 2))
    return Block(convs, 2 * c_out, c_out, (hw[0] // 2, hw[1] // 2))


def pool_layer(name: str, op: str, channels: int, hw: tuple[int, int], window: int,
               stride: int, *, batch: int = 1, padding: int = 1) -> Layer:
    """A max/avg pooling layer as a depthwise loop nest (see the module docstring)."""
    return Layer(name=name, kind="pool", N=batch, C=1, M=1, P=out_side(hw[0], stride),
                 Q=out_side(hw[1], stride), R=window, S=window, stride=(stride, stride),
                 groups=channels, extra={"op": op, "channels": channels, "padding": padding})


def add_layer(name: str, channels: int, hw: tuple[int, int], *, batch: int = 1,
              operands: int = 2) -> Layer:
    """The sum of a DARTS node's inputs (``operands - 1`` adds per element)."""
    return Layer(name=name, kind="eltwise", N=batch, C=1, M=1, P=hw[0], Q=hw[1],
                 groups=channels,
                 extra={"op": "add", "operands": operands, "channels": channels,
                        "elements": batch * channels * hw[0] * hw[1]})


def stages_block(stages: tuple[Stage, ...], prefix: str, c_in: int, c_out: int,
                 hw: tuple[int, int], stride: int, *, batch: int = 1,
                 multiplier: str | None = None) -> Block:
    """The hardware layers of ``stages`` (an :class:`OpSpec`'s) from ``c_in`` channels of size
    ``hw`` to ``c_out`` channels, the strided stages at ``stride``.

    Layer names are ``prefix`` plus the stage's part name (``.dw1``, ``.fr.conv1``...);
    ``multiplier`` lands on the multiplying layers (convs) only.
    """
    layers: list[Layer] = []
    bn_params = 0
    c, size = c_in, hw
    for stage in stages:
        if isinstance(stage, Conv):
            s = stride if stage.strided else 1
            groups = c if stage.depthwise else 1
            c_next = c if stage.depthwise else c_out
            layers.append(_conv(f"{prefix}.{stage.part}", c, c_next, size, stage.kernel, s,
                                batch=batch, multiplier=multiplier, dilation=stage.dilation,
                                groups=groups))
            c, size = c_next, (out_side(size[0], s), out_side(size[1], s))
        elif isinstance(stage, BatchNorm):
            bn_params += 2 * c
        elif isinstance(stage, Pool):
            layers.append(pool_layer(f"{prefix}.{stage.part}", stage.kind, c, size,
                                     stage.window, stride, batch=batch, padding=stage.padding))
            size = (out_side(size[0], stride), out_side(size[1], stride))
        elif isinstance(stage, FactorizedReduce):
            if stride != 2:
                raise ValueError(f"{prefix}: a FactorizedReduce halves the size; stride "
                                 f"{stride} asked")
            block = factorized_reduce(f"{prefix}.{stage.part}", c, c_out, size, batch=batch,
                                      multiplier=multiplier)
            layers.extend(block.layers)
            bn_params += block.bn_params
            c, size = block.out_channels, block.out_hw
        elif isinstance(stage, Zero):
            size = (out_side(size[0], stride), out_side(size[1], stride))
        elif isinstance(stage, Identity):
            if stride != 1:
                raise ValueError(f"{prefix}: an identity cannot have stride {stride}")
        elif not isinstance(stage, ReLU):
            raise TypeError(f"not an op stage: {stage!r}")
    return Block(tuple(layers), bn_params, c, size)


def op_block(op: str, prefix: str, channels: int, hw: tuple[int, int], stride: int, *,
             batch: int = 1, multiplier: str | None = None) -> Block:
    """The layers of DARTS op ``op`` on ``channels`` channels (in = out channels).

    Layer names are ``prefix`` plus a part name (``.dw1``, ``.pw1``, ``.fr.conv1``...).
    ``multiplier`` lands on the multiplying layers (convs) only.
    """
    if op not in OP_SPECS:
        raise HwcostError(f"unknown DARTS op {op!r}")
    return stages_block(OP_SPECS[op].at(stride), prefix, channels, channels, hw, stride,
                        batch=batch, multiplier=multiplier)
