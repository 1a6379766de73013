"""The DARTS ops and building blocks as :class:`~hwmodel.workload.Layer` lists.

This is the one place that knows what an op *is* in hardware terms, so the network builder
(:mod:`darts.cellgraph`) and, later, per-op cost tables for the search share one definition.
The blocks follow the DARTS evaluation code (CIFAR network):

* ``sep_conv_kxk``: (ReLU, depthwise kxk stride s, pointwise 1x1, BN) then (ReLU, depthwise
  kxk stride 1, pointwise 1x1, BN): 4 conv layers, 2 BNs;
* ``dil_conv_kxk``: ReLU, depthwise kxk dilation 2 stride s, pointwise 1x1, BN: 2 convs;
* ``skip_connect``: identity at stride 1; at stride 2 a FactorizedReduce: ReLU, two 1x1
  stride-2 convs C -> C/2 (the second on the input shifted by one pixel), concat, BN;
* ``max_pool_3x3`` / ``avg_pool_3x3``: one ``pool`` layer (padding 1);
* ``none``: nothing (a zero tensor costs no work).

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

#: op -> (family, kernel, dilation) for every DARTS primitive.
OP_SPECS: dict[str, tuple[str, int, int]] = {
    "none": ("none", 0, 1),
    "max_pool_3x3": ("pool", 3, 1),
    "avg_pool_3x3": ("pool", 3, 1),
    "skip_connect": ("skip", 1, 1),
    "sep_conv_3x3": ("sep", 3, 1),
    "sep_conv_5x5": ("sep", 5, 1),
    "dil_conv_3x3": ("dil", 3, 2),
    "dil_conv_5x5": ("dil", 5, 2),
}


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
    conv = _conv(f"{prefix}.conv", c_in, c_out, hw, 1, 1, batch=batch, multiplier=multiplier)
    return Block((conv,), 2 * c_out, c_out, hw)


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


def op_block(op: str, prefix: str, channels: int, hw: tuple[int, int], stride: int, *,
             batch: int = 1, multiplier: str | None = None) -> Block:
    """The layers of DARTS op ``op`` on ``channels`` channels (in = out channels).

    Layer names are ``prefix`` plus a part name (``.dw1``, ``.pw1``, ``.fr.conv1``...).
    ``multiplier`` lands on the multiplying layers (convs) only.
    """
    if op not in OP_SPECS:
        raise HwcostError(f"unknown DARTS op {op!r}")
    family, k, dil = OP_SPECS[op]
    out = (out_side(hw[0], stride), out_side(hw[1], stride))
    c = channels
    common = {"batch": batch, "multiplier": multiplier}
    if family == "none":
        return Block((), 0, c, out)
    if family == "pool":
        kind = "max" if op.startswith("max") else "avg"
        return Block((pool_layer(f"{prefix}.pool", kind, c, hw, k, stride, batch=batch),),
                     0, c, out)
    if family == "skip":
        if stride == 1:
            return Block((), 0, c, hw)
        return factorized_reduce(f"{prefix}.fr", c, c, hw, **common)
    if family == "sep":
        layers = (
            _conv(f"{prefix}.dw1", c, c, hw, k, stride, groups=c, **common),
            _conv(f"{prefix}.pw1", c, c, out, 1, 1, **common),
            _conv(f"{prefix}.dw2", c, c, out, k, 1, groups=c, **common),
            _conv(f"{prefix}.pw2", c, c, out, 1, 1, **common),
        )
        return Block(layers, 4 * c, c, out)
    # dil
    layers = (
        _conv(f"{prefix}.dw", c, c, hw, k, stride, dilation=dil, groups=c, **common),
        _conv(f"{prefix}.pw", c, c, out, 1, 1, **common),
    )
    return Block(layers, 2 * c, c, out)
