"""Every registered emulation backend implements the backend contract (a typing.Protocol):
every function present, with the contract's parameters, and bit-exact against ``reference``;
an incomplete backend is refused; the layers reach a fused path only through the contract.

Triton runs on CPU tensors only under its interpreter (``TRITON_INTERPRET=1``, set before
anything imports triton, as in ``test_backend_triton.py``), on small shapes.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import importlib
import inspect
import sys
import types

import pytest
import torch

from core.errors import HwcostError
from multiplier_lib.emulate import ApproxConv2d, ApproxLinear
from multiplier_lib.emulate import backends as registry
from multiplier_lib.emulate.backends import BACKENDS, EmulationBackend, FusedConv
from multiplier_lib.emulate.backends import reference as ref
from multiplier_lib.emulate.backends.contract import check_backend, conformance_errors


def _protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    """The protocol's methods and their signatures without ``self``, read by the test itself
    (not through the helper under test)."""
    out = {}
    for name, value in vars(protocol).items():
        if name.startswith("_") or not inspect.isfunction(value):
            continue
        sig = inspect.signature(value)
        out[name] = sig.replace(parameters=list(sig.parameters.values())[1:])
    return out


def _parameters(sig: inspect.Signature) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_the_contract_lists_what_the_layers_and_registry_call() -> None:
    assert set(_protocol_methods(EmulationBackend)) == {
        "is_available", "conv2d_lut", "linear_lut", "conv2d_multi_lut", "conv2d_block_lut",
        "fused_conv2d"}
    assert set(_protocol_methods(FusedConv)) == {"approx_conv2d", "approx_conv2d_observed",
                                                  "ste_operands"}


@pytest.mark.parametrize("name", BACKENDS)
def test_every_registered_backend_implements_the_protocol(name: str) -> None:
    module = importlib.import_module(f"multiplier_lib.emulate.backends.{name}")
    assert isinstance(module, EmulationBackend)
    for method, want in _protocol_methods(EmulationBackend).items():
        impl = getattr(module, method, None)
        assert callable(impl), f"{name} has no {method}"
        got = inspect.signature(impl)
        assert _parameters(got) == _parameters(want), f"{name}.{method}{got} != {want}"
    assert conformance_errors(module, EmulationBackend) == []
    assert registry.get(name) is module            # the registry's own check passes too


def test_the_cpu_fused_path_implements_its_protocol() -> None:
    from multiplier_lib.emulate.backends import cpu

    x = torch.zeros(1, 2, 3, 3)
    fused = cpu.fused_conv2d(x, torch.zeros(2, 2, 1, 1))
    if not cpu.is_available():
        assert fused is None
        pytest.skip("the cpu kernel cannot be built here")
    assert isinstance(fused, FusedConv)
    for method, want in _protocol_methods(FusedConv).items():
        got = inspect.signature(getattr(fused, method))
        assert _parameters(got) == _parameters(want), f"cpu fused {method}{got} != {want}"
    # no fused path for what the native kernel does not cover
    assert cpu.fused_conv2d(x.double(), torch.zeros(2, 2, 1, 1).double()) is None
    assert cpu.fused_conv2d(x.to("meta"), torch.zeros(2, 2, 1, 1, device="meta")) is None
    assert ref.fused_conv2d(x, torch.zeros(2, 2, 1, 1)) is None


# ---------------------------------------------------------------- refusing broken backends


def _conv_no_groups(x, w, lut, stride=(1, 1), dilation=(1, 1)):
    return ref.conv2d_lut(x, w, lut, stride, dilation)


def _module(name: str, **functions) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(functions)
    return mod


def _complete(**override) -> dict:
    functions = {name: getattr(ref, name) for name in _protocol_methods(EmulationBackend)}
    functions.update(override)
    return {k: v for k, v in functions.items() if v is not None}


def test_an_incomplete_backend_is_rejected() -> None:
    fake = _module("fake", **_complete(linear_lut=None, fused_conv2d=None))
    assert not isinstance(fake, EmulationBackend)
    errors = conformance_errors(fake, EmulationBackend)
    assert errors == ["has no linear_lut()", "has no fused_conv2d()"]
    with pytest.raises(HwcostError, match="'fake' breaks the backend contract: has no "
                                          r"linear_lut\(\); has no fused_conv2d\(\)"):
        check_backend("fake", fake)


def test_a_backend_with_a_wrong_signature_is_rejected() -> None:
    fake = _module("fake", **_complete(conv2d_lut=_conv_no_groups))
    # presence is all a runtime_checkable Protocol sees; the signature check sees the rest
    assert isinstance(fake, EmulationBackend)
    with pytest.raises(HwcostError, match=r"conv2d_lut\(x, w, lut, stride=\(1, 1\), "
                                          r"dilation=\(1, 1\)\) does not match"):
        check_backend("fake", fake)


def test_the_registry_refuses_a_broken_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _module("multiplier_lib.emulate.backends.broken", **_complete(linear_lut=None))
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(registry, "BACKENDS", (*BACKENDS, "broken"))
    monkeypatch.setattr(registry, "_LOADED", {})
    with pytest.raises(HwcostError, match="'broken' breaks the backend contract: has no "
                                          r"linear_lut\(\)"):
        registry.get("broken")


# ---------------------------------------------------------------- bit-exact behaviour


def _available() -> list[str]:
    names = []
    for name in BACKENDS:
        backend = registry.get(name)
        if name == "triton":     # CPU tensors only under the interpreter
            from multiplier_lib.emulate.backends import triton_kernels

            if not (backend.is_available()
                    and triton_kernels.is_interpreted(triton_kernels.conv2d_lut_kernel)):
                continue
        elif not backend.is_available():
            continue
        names.append(name)
    return names


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_is_bit_exact_on_the_whole_contract(name: str) -> None:
    if name not in _available():
        pytest.skip(f"the {name} backend cannot run on this machine's CPU")
    backend = registry.get(name)
    g = torch.Generator().manual_seed(3)
    luts = [torch.randint(-3000, 3000, (16, 16), generator=g, dtype=torch.int32)
            for _ in range(2)]
    x = torch.randint(0, 16, (2, 4, 5, 5), generator=g, dtype=torch.uint8)
    w = torch.randint(0, 16, (6, 2, 3, 3), generator=g, dtype=torch.uint8)
    args = ((2, 1), (1, 2), 2)
    assert torch.equal(backend.conv2d_lut(x, w, luts[0], *args),
                       ref.conv2d_lut(x, w, luts[0], *args))
    assert torch.equal(backend.conv2d_multi_lut(x, w, luts, *args),
                       torch.stack([ref.conv2d_lut(x, w, lut, *args) for lut in luts]))
    assert torch.equal(backend.conv2d_block_lut(x, w, luts, *args),
                       torch.cat([ref.conv2d_lut(x[i:i + 1], w, lut, *args)
                                  for i, lut in enumerate(luts)]))
    with pytest.raises(HwcostError, match="cannot be split"):
        backend.conv2d_block_lut(x[:1], w, luts, *args)
    xl = torch.randint(0, 16, (3, 7), generator=g, dtype=torch.uint8)
    wl = torch.randint(0, 16, (4, 7), generator=g, dtype=torch.uint8)
    assert torch.equal(backend.linear_lut(xl, wl, luts[1]), ref.linear_lut(xl, wl, luts[1]))


# ---------------------------------------------------------------- layers use the contract


class _CountingFused:
    """A fused path that counts its calls and computes with the cpu backend's."""

    def __init__(self, inner: FusedConv):
        self.inner = inner
        self.calls = {"approx_conv2d": 0, "approx_conv2d_observed": 0, "ste_operands": 0}

    def approx_conv2d(self, x, weight, bias, sx, zx, sw, zw, domains, luts, padding, stride,
                      dilation, groups, replicate=False):
        self.calls["approx_conv2d"] += 1
        return self.inner.approx_conv2d(x, weight, bias, sx, zx, sw, zw, domains, luts,
                                        padding, stride, dilation, groups, replicate)

    def approx_conv2d_observed(self, x, weight, bias, act_range, w_range, qflags, domains, luts,
                               padding, stride, dilation, groups, replicate=False):
        self.calls["approx_conv2d_observed"] += 1
        return self.inner.approx_conv2d_observed(x, weight, bias, act_range, w_range, qflags,
                                                 domains, luts, padding, stride, dilation,
                                                 groups, replicate)

    def ste_operands(self, x, weight, x_codes, w_codes, sx, zx, sw, zw, domains, padding,
                     x_layout="nchw"):
        self.calls["ste_operands"] += 1
        return self.inner.ste_operands(x, weight, x_codes, w_codes, sx, zx, sw, zw, domains,
                                       padding, x_layout)


def _register(monkeypatch: pytest.MonkeyPatch, name: str, module: types.ModuleType) -> None:
    monkeypatch.setitem(sys.modules, f"multiplier_lib.emulate.backends.{name}", module)
    monkeypatch.setattr(registry, "BACKENDS", (*BACKENDS, name))
    monkeypatch.setattr(registry, "_LOADED", {})


def test_layers_take_any_backends_fused_path_through_the_contract(monkeypatch) -> None:
    from multiplier_lib.emulate.backends import cpu

    if not cpu.is_available():
        pytest.skip("the cpu kernel cannot be built here")
    assert isinstance(_CountingFused(cpu._FUSED), FusedConv)
    fused = _CountingFused(cpu.fused_conv2d(torch.zeros(1), torch.zeros(1)))
    lut_calls = []

    def conv2d_lut(x, w, lut, stride=(1, 1), dilation=(1, 1), groups=1):
        lut_calls.append(1)
        return ref.conv2d_lut(x, w, lut, stride, dilation, groups)

    def fused_conv2d(x, weight):
        return fused if x.dtype == torch.float32 else None

    _register(monkeypatch, "fusing", _module(
        "fusing", **_complete(conv2d_lut=conv2d_lut, fused_conv2d=fused_conv2d)))
    torch.manual_seed(0)
    layer = ApproxConv2d(3, 4, 3, padding=1, multiplier="mitchell8u", backend="fusing")
    twin = ApproxConv2d(3, 4, 3, padding=1, multiplier="mitchell8u", backend="reference")
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    out = layer(x)
    assert fused.calls["approx_conv2d"] == 1 and not lut_calls
    out.sum().backward()
    assert fused.calls["ste_operands"] == 1
    assert torch.equal(out.detach(), twin(x).detach())
    # with the observers initialized, the fused call observes and picks parameters itself
    out = layer(2 * x)
    assert fused.calls["approx_conv2d_observed"] == 1 and fused.calls["approx_conv2d"] == 1
    out.sum().backward()
    assert fused.calls["ste_operands"] == 2
    assert torch.equal(out.detach(), twin(2 * x).detach())
    layer(x.double())                     # the backend declines: op by op, via conv2d_lut
    assert lut_calls and fused.calls["approx_conv2d"] == 1
    layer.keep_accumulator = True         # the accumulator is only kept op by op
    layer(x.detach())
    assert fused.calls["approx_conv2d"] == 1
    lin = ApproxLinear(5, 2, multiplier="mitchell8u", backend="fusing")
    lin(torch.randn(3, 5))
    assert fused.calls["approx_conv2d"] == 2


def test_backends_without_a_fused_path_run_op_by_op(monkeypatch) -> None:
    lut_calls = []

    def conv2d_lut(x, w, lut, stride=(1, 1), dilation=(1, 1), groups=1):
        lut_calls.append(1)
        return ref.conv2d_lut(x, w, lut, stride, dilation, groups)

    _register(monkeypatch, "plain", _module("plain", **_complete(conv2d_lut=conv2d_lut)))
    layer = ApproxConv2d(2, 3, 3, multiplier="mitchell8u", backend="plain")
    layer(torch.randn(1, 2, 5, 5))
    assert lut_calls == [1]


def test_auto_falls_back_to_reference_with_one_warning_when_the_kernel_cannot_build(
        monkeypatch, capsys):
    """Without a compiler ``auto`` still runs (the portable backend, said once on stderr);
    an explicit ``cpu`` keeps failing with the build's own message."""
    from core.errors import HwcostError
    from multiplier_lib.emulate import backends
    from multiplier_lib.emulate.backends import cpu

    error = HwcostError("the cpu emulation backend needs a C++ compiler to build its kernel, "
                        "and 'nosuchcxx' was not found; install one")
    monkeypatch.setattr(cpu, "is_available", lambda: False)
    monkeypatch.setattr(cpu, "_build_error", error)
    monkeypatch.setattr(backends, "_LOADED", {})
    first = backends.get("auto")
    second = backends.get("auto")
    assert first is second is backends.get("reference")
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "'nosuchcxx' was not found" in err
    assert "falls back to the portable 'reference'" in err and "\n" == err[-1]
    monkeypatch.setattr(cpu, "is_available", lambda: True)
    assert backends.get("auto") is backends.get("cpu")
