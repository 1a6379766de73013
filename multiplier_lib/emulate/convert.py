"""Whole-model conversion, in the spirit of ``torch.ao.quantization``'s prepare/convert.

``approximate`` swaps every ``nn.Conv2d``/``nn.Linear`` (filtered by name) for its
approximate twin, keeping weights; ``calibrate`` runs data through the model with observers
on, then freezes the quantization ranges; ``set_multiplier`` swaps multipliers after
training, per layer or for all layers.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable

import torch
from torch import nn

from core.errors import HwcostError

from .modules import ApproxConv2d, ApproxLinear, MultiplierSpec

APPROX_TYPES = (ApproxConv2d, ApproxLinear)


def _matches(name: str, patterns: Iterable[str] | None) -> bool:
    return patterns is not None and any(fnmatch.fnmatchcase(name, p) for p in patterns)


def approximate(model: nn.Module, multiplier: MultiplierSpec = "exact8u", *,
                include: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
                per_layer: dict[str, MultiplierSpec] | None = None, backend: str = "auto",
                grad: str = "ste", act_observer: str = "minmax",
                weight_per_channel: bool = True, act_symmetric: bool = False,
                weight_symmetric: bool = False, inplace: bool = False) -> nn.Module:
    """A model whose convolutions and linear layers multiply approximately.

    ``include``/``exclude`` are glob patterns on module names (``"cells.*.conv"``);
    ``per_layer`` maps exact module names to their own multiplier.
    """
    if not inplace:
        model = copy.deepcopy(model)
    include = list(include) if include is not None else None
    exclude = list(exclude) if exclude is not None else None
    per_layer = dict(per_layer or {})
    names = {name for name, _ in model.named_modules()}
    unknown = sorted(set(per_layer) - names)
    if unknown:
        raise HwcostError(f"per_layer names no module of the model: {', '.join(unknown)}")
    cfg = {"backend": backend, "grad": grad, "act_observer": act_observer,
           "weight_per_channel": weight_per_channel, "act_symmetric": act_symmetric,
           "weight_symmetric": weight_symmetric}
    replaced = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, APPROX_TYPES) or not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        if include is not None and not _matches(name, include):
            continue
        if _matches(name, exclude):
            continue
        mult = per_layer.get(name, multiplier)
        if isinstance(module, nn.Conv2d):
            if module.__class__ is not nn.Conv2d:
                raise HwcostError(f"layer {name}: {type(module).__name__} is not supported "
                                  "(only plain nn.Conv2d and nn.Linear are approximated)")
            new = ApproxConv2d.from_conv(module, multiplier=mult, name=name, **cfg)
        else:
            new = ApproxLinear.from_linear(module, multiplier=mult, name=name, **cfg)
        _set_module(model, name, new)
        replaced += 1
    if replaced == 0:
        raise HwcostError("no nn.Conv2d or nn.Linear layer matched: nothing to approximate")
    return model


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def approx_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, APPROX_TYPES)]


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable, max_batches: int | None = None) -> nn.Module:
    """Observe activation and weight ranges on ``batches`` (tensors or (x, y) pairs), then
    freeze them."""
    was_training = model.training
    layers = approx_layers(model)
    for _, layer in layers:
        layer.act_quant.observing = True
        layer.weight_quant.observing = True
    model.train()
    seen = 0
    for batch in batches:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        model(x)
        seen += 1
        if max_batches is not None and seen >= max_batches:
            break
    if seen == 0:
        raise HwcostError("calibration needs at least one batch")
    for _, layer in layers:
        layer.act_quant.observing = False
        layer.weight_quant.observing = False
    model.train(was_training)
    return model


def set_multiplier(model: nn.Module, multiplier: MultiplierSpec,
                   layers: Iterable[str] | None = None) -> None:
    """Swap the multiplier of the named approximate layers (all of them by default).

    ``multiplier``: a multiplier's name or ``Multiplier``, a float format's name, or a
    :mod:`core.arithmetic` ``IntMultiplier`` / ``FloatFormat``."""
    found = dict(approx_layers(model))
    targets = list(layers) if layers is not None else list(found)
    missing = [t for t in targets if t not in found]
    if missing:
        raise HwcostError(f"not approximate layers of the model: {', '.join(missing)}")
    for t in targets:
        found[t].set_multiplier(multiplier)


def set_backend(model: nn.Module, backend: str) -> None:
    for _, layer in approx_layers(model):
        layer.backend = backend
