"""The DARTS ops as PyTorch modules, with every convolution made by a *conv factory*.

The same op definitions serve the supernet (:mod:`nas.search_cnn`, ``affine=False``) and the
evaluation network (:mod:`nas.augment_cnn`, ``affine=True``).  They describe exactly the
blocks that :mod:`nas.ops_spec` lists as hardware layers (same convs, same order, same
shapes), so parameter and MAC counts of the two agree; ``tests/nas/test_models.py`` checks it.

Convolutions are not built directly but through a :data:`ConvFactory`, so one op definition
gives both an exact network (:func:`plain_conv`, ``nn.Conv2d``) and one whose products go
through an approximate multiplier's LUT (:func:`approx_conv`, ``ApproxConv2d``), without the
op code knowing which.  Factories build bias-free convs: every DARTS conv is followed by BN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from multiplier_lib.errors import HwcostError

if TYPE_CHECKING:
    from multiplier_lib.multiplier import Multiplier

#: ``conv(in_ch, out_ch, kernel, stride, padding, dilation, groups)`` -> a bias-free conv.
ConvFactory = Callable[[int, int, int, int, int, int, int], nn.Module]


def plain_conv(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int,
               dilation: int, groups: int) -> nn.Module:
    """The exact conv: ``nn.Conv2d`` without bias (a BN always follows)."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, groups, bias=False)


def approx_conv(multiplier: str | Multiplier, backend: str = "auto",
                grad: str = "ste") -> ConvFactory:
    """A factory of ``ApproxConv2d`` layers computing their products with ``multiplier``.

    The multiplier is resolved once here, not per layer: a supernet builds thousands of
    convs, and one shared :class:`Multiplier` means one LUT in memory (the layers' LUT
    buffers view the same array) and no repeated library look-ups.
    """
    from multiplier_lib.emulate.layers import ApproxConv2d
    from multiplier_lib.library import resolve

    mult = resolve(multiplier) if isinstance(multiplier, str) else multiplier

    def make(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, dilation: int,
             groups: int) -> nn.Module:
        return ApproxConv2d(in_ch, out_ch, kernel, stride, padding, dilation, groups, False,
                            "zeros", multiplier=mult, backend=backend, grad=grad)

    make.multiplier = mult.name  # type: ignore[attr-defined]  # for reprs and debugging
    return make


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


class StdConv(nn.Module):
    """ReLU, conv, BN: DARTS's ``ReLUConvBN`` (cell preprocessing uses it as a 1x1 conv)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True, conv: ConvFactory = plain_conv):
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            conv(c_in, c_out, kernel, stride, padding, 1, 1),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


ReLUConvBN = StdConv


class DilConv(nn.Module):
    """ReLU, depthwise kxk (dilated, strided), pointwise 1x1, BN: ``dil_conv_kxk``.

    With ``dilation=1`` it is also one half of a separable conv.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 dilation: int, affine: bool = True, conv: ConvFactory = plain_conv):
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            conv(c_in, c_in, kernel, stride, padding, dilation, c_in),
            conv(c_in, c_out, 1, 1, 0, 1, 1),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SepConv(nn.Module):
    """``sep_conv_kxk``: two stacked ReLU-depthwise-pointwise-BN blocks, only the first strided.

    DARTS stacks two (rather than one) to give the op more depth for its parameter count.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True, conv: ConvFactory = plain_conv):
        super().__init__()
        self.net = nn.Sequential(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine, conv),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine, conv),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


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
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

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


def _pool(kind: str, stride: int) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(3, stride, 1)
    return nn.AvgPool2d(3, stride, 1, count_include_pad=False)


#: op name -> ``(C, stride, affine, conv) -> module`` for every DARTS primitive.
OPS: dict[str, Callable[[int, int, bool, ConvFactory], nn.Module]] = {
    "none": lambda c, stride, affine, conv: Zero(stride),
    "avg_pool_3x3": lambda c, stride, affine, conv: _pool("avg", stride),
    "max_pool_3x3": lambda c, stride, affine, conv: _pool("max", stride),
    "skip_connect": lambda c, stride, affine, conv: (
        Identity() if stride == 1 else FactorizedReduce(c, c, affine, conv)),
    "sep_conv_3x3": lambda c, stride, affine, conv: SepConv(c, c, 3, stride, 1, affine, conv),
    "sep_conv_5x5": lambda c, stride, affine, conv: SepConv(c, c, 5, stride, 2, affine, conv),
    "dil_conv_3x3": lambda c, stride, affine, conv: DilConv(c, c, 3, stride, 2, 2, affine, conv),
    "dil_conv_5x5": lambda c, stride, affine, conv: DilConv(c, c, 5, stride, 4, 2, affine, conv),
}


def has_conv(module: nn.Module) -> bool:
    """Whether ``module`` multiplies (holds a conv): only such ops care about a multiplier."""
    return any(isinstance(m, nn.Conv2d) for m in module.modules())
