"""The per-conv relaxation of the multiplier search (``multiplier_sampling='per-conv'``).

Oracle: the same op evaluated with every candidate conv patched to return the explicit
weighted sum of its candidates' outputs, each computed alone (``select_candidate``), so the
check shares no code with the replicated kernel call or its autograd.  Checks: edge outputs
and the gradients of the input, the conv weights and the betas agree with it; one-hot betas
give the op with that candidate alone; plain BNs follow the convs; nothing of a step's graph
stays on the layers; the supernet has the parameters of the block form; settings and CLI.
(Every edge conv seeing the plain batch, and a search end to end:
``test_sampled_multipliers.py``; killed and resumed: ``test_search.py``.)
"""

from __future__ import annotations

import contextlib
import json

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from click.testing import CliRunner  # noqa: E402

from darts.genotype import PRIMITIVES  # noqa: E402
from hwcost.cli import cli  # noqa: E402
from multiplier_lib.emulate.layers import ApproxConv2d  # noqa: E402
from nas.ops import BlockBatchNorm2d, approx_conv, candidate_conv, mixes_at_conv, per_conv_mixing  # noqa: E402
from nas.search import SearchConfig  # noqa: E402
from nas.search_cells import MixedOp  # noqa: E402
from nas.search_cnn import SearchCNN  # noqa: E402

NAMES = ["exact8u", "trunc8u_k6c", "drum8u_k4"]


@contextlib.contextmanager
def _explicit_mix(module: nn.Module, weights: torch.Tensor):
    """Every candidate conv in ``module`` computes ``sum_t weights[t] * conv_t(x)``, each
    ``conv_t`` the layer with candidate ``t`` selected alone."""
    convs = [m for m in module.modules()
             if isinstance(m, ApproxConv2d) and m.candidates is not None]
    assert convs

    def mixed_forward(layer, original):
        def forward(x):
            outs = []
            for t in range(len(weights)):
                layer.select_candidate(t)
                outs.append(original(x))
            layer.select_candidate(None)
            return sum(weights[t] * outs[t] for t in range(len(weights)))
        return forward

    for layer in convs:
        layer.forward = mixed_forward(layer, layer.forward)
    try:
        yield
    finally:
        for layer in convs:
            del layer.forward


def _edge(stride: int, backend: str) -> MixedOp:
    return MixedOp(4, stride, per_conv_mixing(candidate_conv(NAMES, backend=backend)))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("stride", [1, 2])
def test_an_edge_is_its_ops_with_every_conv_mixing_its_candidates(backend, stride):
    torch.manual_seed(0)
    edge = _edge(stride, backend).train()
    assert edge.mixes_at_conv and sum(edge.multiplying) >= 4
    x0 = torch.rand(3, 4, 8, 8) * 2 - 0.5
    alpha = torch.randn(len(PRIMITIVES))
    beta0 = torch.tensor([0.4, -0.7, 0.2])
    edge(x0, torch.softmax(alpha, 0), torch.softmax(beta0, 0))   # calibrate the ranges
    for m in edge.modules():
        if isinstance(m, ApproxConv2d):
            m.act_quant.observing = m.weight_quant.observing = False
    results = []
    for way in ("per-conv", "oracle"):
        x = x0.clone().requires_grad_()
        beta = beta0.clone().requires_grad_()
        w, b = torch.softmax(alpha, 0), torch.softmax(beta, 0)
        if way == "per-conv":
            y = edge(x, w, b)
        else:
            with _explicit_mix(edge, b):
                y = sum(w[i] * op(x) for i, op in enumerate(edge.ops))
        edge.zero_grad()
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        conv_grads = [m.weight.grad.clone() for m in edge.modules()
                      if isinstance(m, ApproxConv2d)]
        results.append((y.detach(), x.grad, beta.grad, conv_grads))
    (y1, gx1, gb1, gw1), (y2, gx2, gb2, gw2) = results
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx1, gx2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gb1, gb2, rtol=1e-4, atol=1e-6)
    assert (gb1 != 0).all()
    for a, b in zip(gw1, gw2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert all(m.mix_weights is None for m in edge._candidate_layers)   # no graph kept


def test_one_hot_betas_give_the_op_with_that_candidate_alone():
    torch.manual_seed(1)
    edge = _edge(1, "cpu").eval()
    x = torch.randn(2, 4, 8, 8)
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    edge.train()
    edge(x, w, torch.ones(3) / 3)   # calibrate
    edge.eval()
    outs = []
    with torch.no_grad():
        for t in range(3):
            one_hot = nn.functional.one_hot(torch.tensor(t), 3).float()
            edge._select(t)   # every conv with candidate t alone, on the plain batch
            expect = sum(w[i] * op(x) for i, op in enumerate(edge.ops))
            edge._select(None)
            got = edge(x, w, one_hot)
            torch.testing.assert_close(got, expect, rtol=1e-6, atol=1e-6)
            outs.append(got)
    assert not torch.allclose(outs[0], outs[2])


def _net(sampling: str) -> SearchCNN:
    return SearchCNN(C=2, n_classes=3, n_layers=3, n_nodes=2,
                     conv=approx_conv(NAMES[0], backend="reference"), multipliers=NAMES,
                     multiplier_conv=lambda n: approx_conv(n, backend="reference"),
                     multiplier_sampling=sampling)


def test_plain_bns_follow_the_mixing_convs_and_the_betas_learn():
    # (that every edge conv sees the plain batch: test_sampled_multipliers.py)
    torch.manual_seed(2)
    net = _net("per-conv").train()
    net(torch.randn(4, 3, 16, 16)).sum().backward()
    assert not any(isinstance(m, BlockBatchNorm2d) for m in net.modules())
    assert net.beta_normal.grad is not None and (net.beta_normal.grad != 0).any()
    blocks = _net("all")
    assert any(isinstance(m, BlockBatchNorm2d) for m in blocks.modules())
    assert sum(p.numel() for p in net.parameters()) == \
        sum(p.numel() for p in blocks.parameters())


def test_the_factory_wrapper_keeps_what_a_supernet_reads():
    factory = candidate_conv(NAMES, backend="reference")
    mixing = per_conv_mixing(factory)
    assert mixes_at_conv(mixing) and not mixes_at_conv(factory)
    assert mixing.multipliers == tuple(NAMES) and mixing.n_candidates == 3
    single = approx_conv("exact8u", backend="reference")
    assert per_conv_mixing(single) is single   # nothing to mix


def test_search_settings_and_cli_accept_per_conv():
    cfg = SearchConfig.from_settings({"multipliers": "exact8u,trunc8u_k6c",
                                      "multiplier_sampling": "per-conv"})
    assert cfg.multiplier_sampling == "per-conv"
    result = CliRunner().invoke(cli, ["search", "--dataset", "synthetic", "--multipliers",
                                      "exact8u,trunc8u_k6c", "--multiplier-sampling",
                                      "per-conv", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["multiplier_sampling"] == "per-conv"

