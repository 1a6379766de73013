"""``mix_candidates``: one input block multiplied by every candidate multiplier, the results
mixed at the layer's output (the per-conv relaxation of a multiplier search).

The oracle is the layer itself with each candidate selected alone (``select_candidate``),
a path that shares no code with the replicated call: with one-hot weights the mix must be
that candidate's output bit for bit (which checks where each table's results land in the
fused kernel's ``[group][table][channel]`` order, on every vector level this CPU has), and
with soft weights the weighted sum of the candidates' outputs, gradients included (those of
the input, the weights and the bias by the straight-through estimate, those of the mix
weights through each candidate's output).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from core.errors import HwcostError  # noqa: E402
from multiplier_lib.emulate.layers import ApproxConv2d, ApproxLinear  # noqa: E402

UNSIGNED = ["drum8u_k4", "exact8u", "mitchell8u"]
SIGNED = ["exact8s", "trunc8s_k4", "perf8s_r2m2"]

# (cin, cout, kernel, stride, padding, dilation, groups, size): dense, depthwise (the direct
# VBMI path at stride 1, phase planes when strided), a depth multiplier, grouped, dilated,
# 1x1, 32-bit window sums (32 channels x 3 x 3)
CASES = [
    (8, 8, 5, 1, 2, 1, 8, 13),
    (8, 8, 3, 2, 2, 2, 8, 12),
    (4, 8, 3, 1, 1, 1, 4, 9),
    (6, 4, 3, 1, 0, 1, 2, 11),
    (4, 6, 3, 2, 1, 1, 1, 9),
    (5, 3, 1, 1, 0, 1, 1, 7),
    (32, 4, 3, 1, 1, 1, 1, 6),
]


def _layer(case, names, backend="cpu", bias=False, keep=False) -> ApproxConv2d:
    cin, cout, k, stride, padding, dilation, groups, _ = case
    layer = ApproxConv2d(cin, cout, k, stride, padding, dilation, groups, bias,
                         multiplier=names[0], backend=backend)
    layer.set_candidates(names)
    layer.keep_accumulator = keep   # True: the op-by-op path on the cpu backend too
    return layer


def _each_candidate(layer, x) -> list[torch.Tensor]:
    outs = []
    for t in range(layer.n_candidates):
        layer.select_candidate(t)
        outs.append(layer(x))
    layer.select_candidate(None)
    return outs


def _mixed(layer, x, weights) -> torch.Tensor:
    layer.mix_candidates(weights)
    try:
        return layer(x)
    finally:
        layer.mix_candidates(None)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("names", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
@pytest.mark.parametrize("batch", [1, 3])
def test_one_hot_mix_is_each_candidate_bit_for_bit_on_every_kernel_level(case, names, batch):
    """Batch 1 of the grouped cases takes the kernel's branch for few (sample, group) pairs
    (all sums first, then the rows in parallel) with 2 threads."""
    from multiplier_lib.emulate.backends import cpu
    torch.manual_seed(5)
    layer = _layer(case, names)
    x = torch.randn(batch, case[0], case[-1], case[-1])
    layer(x.repeat(len(names), 1, 1, 1))   # calibrate the ranges in block mode
    layer.eval()
    with torch.no_grad():
        expected = _each_candidate(layer, 1.5 * x)
    assert not torch.equal(expected[0], expected[2])   # the candidates differ here
    levels = [0] if not cpu.is_available() else range(cpu.detected_level() + 1)
    for level in levels:
        previous = cpu._set_simd_level(level) if cpu.is_available() else None
        try:
            with torch.no_grad():
                for t in range(len(names)):
                    one_hot = torch.nn.functional.one_hot(torch.tensor(t), len(names)).float()
                    got = _mixed(layer, 1.5 * x, one_hot)
                    assert torch.equal(got, expected[t]), (f"kernel level {level}", t)
        finally:
            if previous is not None:
                cpu._set_simd_level(previous)


@pytest.mark.parametrize("backend,keep", [("cpu", False), ("cpu", True), ("reference", False)],
                         ids=["fused", "cpu-op-by-op", "reference"])
@pytest.mark.parametrize("case", CASES[:5])
@pytest.mark.parametrize("batch", [1, 2])
def test_soft_mix_and_its_gradients_are_those_of_the_weighted_sum(backend, keep, case, batch):
    """Batch 1: the op-by-op path's stacked results of a depthwise layer are a strided view
    (a ``view`` of them failed)."""
    torch.manual_seed(6)
    layer = _layer(case, UNSIGNED, backend, bias=True, keep=keep)
    x0 = torch.randn(batch, case[0], case[-1], case[-1])
    g = None
    results = []
    for way in ("mixed", "oracle"):
        layer.train()   # observing: the first way moves the ranges, the second sees the same
        layer.act_quant.observing = layer.weight_quant.observing = way == "mixed"
        x = x0.clone().requires_grad_()
        beta = torch.tensor([0.3, -1.0, 0.8], requires_grad=True)
        w = beta.exp()   # summing to 4.1, not 1: the input's gradient scales with the sum
        if way == "mixed":
            y = _mixed(layer, x, w)
        else:
            outs = _each_candidate(layer, x)
            y = sum(w[t] * outs[t] for t in range(len(outs)))
        if g is None:
            g = torch.randn_like(y)
        layer.zero_grad()
        (y * g).sum().backward()
        results.append((y.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone(),
                        beta.grad))
    (y1, *grads1), (y2, *grads2) = results
    torch.testing.assert_close(y1, y2, rtol=1e-6, atol=1e-6)
    for a, b, what in zip(grads1, grads2, ("input", "weight", "bias", "beta")):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=what)
    assert (grads1[3] != 0).all()   # every candidate's output reaches its beta


def test_linear_layers_mix_too():
    torch.manual_seed(7)
    for backend in ("cpu", "reference"):
        layer = ApproxLinear(12, 5, multiplier=UNSIGNED[0], backend=backend)
        layer.set_candidates(UNSIGNED)
        x = torch.randn(4, 12)
        layer(x.repeat(3, 1))
        layer.eval()
        w = torch.tensor([0.2, 0.5, 0.3])
        with torch.no_grad():
            outs = _each_candidate(layer, x)
            got = _mixed(layer, x, w)
        assert got.shape == (4, 5)
        torch.testing.assert_close(got, sum(w[t] * outs[t] for t in range(3)), rtol=1e-6,
                                   atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_dtypes_mix_at_float32_or_wider_and_empty_batches_mix(dtype):
    torch.manual_seed(9)
    case = CASES[2]   # a depth multiplier
    layer = _layer(case, UNSIGNED).eval()
    x = torch.randn(2, 4, 9, 9)
    layer(x.repeat(3, 1, 1, 1))
    w = torch.tensor([0.2, 0.5, 0.3]).to(dtype)
    with torch.no_grad():
        # each candidate's result (float32 sums, in the input's dtype), mixed in float64
        outs = [o.double() for o in _each_candidate(layer, x.to(dtype))]
        expect = sum(float(w[t]) * outs[t] for t in range(3))
        got = _mixed(layer, x.to(dtype), w)
        assert got.dtype == dtype
        if dtype == torch.float64:   # mixed in float64 itself
            torch.testing.assert_close(got, expect, rtol=1e-12, atol=1e-12)
        else:   # the reference rounds each result to half first: a few half ulps apart
            torch.testing.assert_close(got.double(), expect, rtol=3e-3, atol=3e-3)
        empty = _mixed(layer, x[:0], w)
    assert empty.shape == (0, 8, 9, 9)


def test_a_selected_candidate_overrides_the_mix_and_blocks_come_back_after():
    torch.manual_seed(8)
    case = CASES[0]
    layer = _layer(case, UNSIGNED).eval()
    x = torch.randn(2, 8, 13, 13)
    layer(x.repeat(3, 1, 1, 1))
    with torch.no_grad():
        expected = _each_candidate(layer, x)
        layer.mix_candidates(torch.tensor([0.2, 0.5, 0.3]))
        layer.select_candidate(1)   # a sampled step: the whole batch with candidate 1
        assert torch.equal(layer(x), expected[1])
        layer.select_candidate(None)
        layer.mix_candidates(None)
        blocks = layer(x.repeat(3, 1, 1, 1))   # block mode again: one block per candidate
    assert all(torch.equal(b, e) for b, e in zip(blocks.chunk(3), expected))


def test_mixing_errors_are_clear():
    with pytest.raises(HwcostError, match="mix weights must be a tensor, got list"):
        _layer(CASES[0], UNSIGNED, "reference").mix_candidates([0.2, 0.5, 0.3])
    plain = ApproxConv2d(4, 4, 3, multiplier="exact8u", backend="reference")
    with pytest.raises(HwcostError, match="no candidate multipliers to mix"):
        plain.mix_candidates(torch.ones(2) / 2)
    layer = _layer(CASES[0], UNSIGNED, "reference")
    with pytest.raises(HwcostError, match=r"needs 3 weights, got shape \(2,\)"):
        layer.mix_candidates(torch.ones(2) / 2)
    layer.mix_candidates(torch.ones(3) / 3)
    layer.set_multiplier("exact8u")   # one multiplier again: nothing left to mix
    assert layer.mix_weights is None and layer.candidates is None
