"""Sampled multiplier search (``multiplier_sampling='gumbel'``): one candidate per edge a step.

Checks: an edge run with a one-hot sample computes exactly the op with that candidate alone
(same weights and ranges) and updates only that candidate's BN statistics; every conv of a
sampled step sees the plain batch, not ``T`` copies (the step's cost does not grow with the
candidates); draws follow softmax(beta) and eval mode takes the argmax; the betas get a
gradient through the sample (a softmax Jacobian row: it sums to zero); switching back to
'all' restores the block mode; settings are checked; a search runs end to end.
"""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from click.testing import CliRunner  # noqa: E402

from core.errors import HwcostError  # noqa: E402
from darts.genotype import PRIMITIVES  # noqa: E402
from darts.genotype_io import load  # noqa: E402
from hwcost.cli import cli  # noqa: E402
from multiplier_lib.emulate.layers import ApproxConv2d  # noqa: E402
from nas.ops import OPS, BlockBatchNorm2d, approx_conv, candidate_conv  # noqa: E402
from nas.search import SearchConfig, run_search  # noqa: E402
from nas.search_cells import MixedOp  # noqa: E402
from nas.search_cnn import SearchCNN  # noqa: E402

NAMES = ["exact8u", "trunc8u_k6c", "drum8u_k4"]


def _freeze_ranges(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, ApproxConv2d):
            m.act_quant.observing = False
            m.weight_quant.observing = False


def _single(mixed: MixedOp, i: int, stride: int, name: str, c: int, backend: str) -> nn.Module:
    """Primitive ``i`` built with multiplier ``name`` alone, holding ``mixed``'s weights and
    quantization ranges, and plain BNs with the chosen block's running statistics."""
    t = NAMES.index(name)
    plain = OPS[PRIMITIVES[i]](c, stride, False, approx_conv(name, backend=backend))
    src = [m for m in mixed.ops[i].modules() if isinstance(m, (ApproxConv2d, BlockBatchNorm2d))]
    dst = [m for m in plain.modules() if isinstance(m, (ApproxConv2d, nn.BatchNorm2d))]
    assert len(src) == len(dst) > 0
    with torch.no_grad():
        for a, b in zip(src, dst):
            if isinstance(a, ApproxConv2d):
                b.weight.copy_(a.weight)
                for q in ("act_quant", "weight_quant"):
                    obs_a, obs_b = getattr(a, q).observer, getattr(b, q).observer
                    obs_b.min_val = obs_a.min_val.clone()
                    obs_b.max_val = obs_a.max_val.clone()
            else:
                b.running_mean.copy_(a.running_mean[t])
                b.running_var.copy_(a.running_var[t])
    _freeze_ranges(plain)
    return plain


def _one_hot(t: int) -> torch.Tensor:
    return nn.functional.one_hot(torch.tensor(t), len(NAMES)).to(torch.float32)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("stride", [1, 2])
def test_a_sampled_edge_is_the_op_with_that_candidate_alone(backend, stride):
    torch.manual_seed(0)
    c = 4
    mixed = MixedOp(c, stride, candidate_conv(NAMES, backend=backend)).train()
    x = torch.rand(3, c, 8, 8) * 2 - 0.5
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    mixed(x, w, torch.softmax(torch.randn(3), 0))   # calibrate the ranges in block mode
    _freeze_ranges(mixed)
    outs = []
    for t, name in enumerate(NAMES):
        for mode in ("train", "eval"):
            mixed.train(mode == "train")
            singles = {i: _single(mixed, i, stride, name, c, backend).train(mode == "train")
                       for i in range(len(PRIMITIVES)) if mixed.multiplying[i]}
            expect = sum(w[i] * (singles[i](x) if i in singles else mixed.ops[i](x))
                         for i in range(len(PRIMITIVES)))
            got = mixed(x, w, _one_hot(t), sampled=True)
            torch.testing.assert_close(got, expect)
            outs.append(got)
    # the candidates differ, so the check above tells them apart
    assert not torch.allclose(outs[0], outs[2]) and not torch.allclose(outs[2], outs[4])


def test_a_sampled_step_updates_only_its_candidates_batch_statistics():
    torch.manual_seed(1)
    mixed = MixedOp(4, 1, candidate_conv(NAMES, backend="reference")).train()
    bns = [m for m in mixed.modules() if isinstance(m, BlockBatchNorm2d)]
    assert bns
    before = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    mixed(torch.randn(2, 4, 6, 6) * 3 + 1, torch.softmax(torch.randn(len(PRIMITIVES)), 0),
          _one_hot(1), sampled=True)
    for bn, (mean, var) in zip(bns, before):
        for t in range(3):
            moved = not torch.equal(bn.running_mean[t], mean[t])
            assert moved == (t == 1), (t, bn)
            assert (not torch.equal(bn.running_var[t], var[t])) == (t == 1)


def _net(sampling: str, backend: str = "reference") -> SearchCNN:
    return SearchCNN(C=2, n_classes=3, n_layers=3, n_nodes=2,
                     conv=approx_conv(NAMES[0], backend=backend), multipliers=NAMES,
                     multiplier_conv=lambda n: approx_conv(n, backend=backend),
                     multiplier_sampling=sampling)


@pytest.mark.parametrize("sampling,factor", [("all", 3), ("gumbel", 1), ("per-conv", 1)])
def test_every_edge_conv_sees_the_plain_batch_when_sampled(sampling, factor):
    torch.manual_seed(2)
    net = _net(sampling).train()
    batches = []
    edge_convs = [m for cell in net.cells for edge in cell.edges for m in edge.modules()
                  if isinstance(m, ApproxConv2d) and m.candidates is not None]
    assert edge_convs
    hooks = [m.register_forward_hook(lambda _m, inp, _o: batches.append(inp[0].shape[0]))
             for m in edge_convs]
    net(torch.randn(4, 3, 16, 16)).sum().backward()
    for h in hooks:
        h.remove()
    assert batches and set(batches) == {4 * factor}


def test_draws_follow_softmax_beta_and_eval_takes_the_argmax():
    torch.manual_seed(3)
    net = _net("gumbel").train()
    beta = torch.tensor([[0.0, math.log(2.0), math.log(5.0)]] * net.beta_normal.shape[0])
    net.set_betas(beta, beta)
    draws = torch.stack([net._sample(net.beta_normal) for _ in range(2000)])
    assert set(draws.sum(-1).unique().tolist()) == {1.0}          # one-hot rows
    freq = draws.mean(dim=(0, 1))
    expect = torch.tensor([1.0, 2.0, 5.0]) / 8
    # 2000 x rows draws: the standard error of each frequency is below 0.005
    assert torch.allclose(freq, expect, atol=0.02), freq
    net.eval()
    hard = net._sample(net.beta_normal)
    assert torch.equal(hard, nn.functional.one_hot(torch.full((hard.shape[0],), 2), 3).float())


def test_betas_get_a_gradient_through_the_sample():
    torch.manual_seed(4)
    net = _net("gumbel").train()
    net(torch.randn(4, 3, 16, 16)).square().mean().backward()
    g = torch.cat([net.beta_normal.grad, net.beta_reduce.grad])
    # d h_c / d beta_j = p_c (delta_cj - p_j) / tau: nonzero for every candidate, rows sum to 0
    assert (g != 0).all()
    torch.testing.assert_close(g.sum(dim=1), torch.zeros(g.shape[0]), atol=1e-9, rtol=0)


def test_switching_back_to_all_restores_block_mode():
    torch.manual_seed(5)
    net = _net("gumbel").train()
    net(torch.randn(2, 3, 16, 16))
    edge = net.cells[0].edges[0]
    assert edge._selected is not None
    net.multiplier_sampling = "all"
    net(torch.randn(2, 3, 16, 16))
    assert edge._selected is None
    assert all(m.active_candidate is None for m in edge._candidate_layers)


def test_selection_errors_are_clear():
    layer = candidate_conv(NAMES, backend="reference")(4, 4, 3, 1, 1, 1, 1)
    with pytest.raises(HwcostError, match="candidate 3 does not exist"):
        layer.select_candidate(3)
    with pytest.raises(HwcostError, match="no candidate multipliers"):
        approx_conv("exact8u", backend="reference")(4, 4, 3, 1, 1, 1, 1).select_candidate(0)
    with pytest.raises(HwcostError, match=r"blocks 0\.\.2"):
        BlockBatchNorm2d(4, 3).select_candidate(-1)
    with pytest.raises(HwcostError, match="multiplier_sampling"):
        _net("sometimes")


def test_search_settings_and_cli():
    with pytest.raises(HwcostError, match="multiplier_sampling"):
        SearchConfig.from_settings({"multipliers": "exact8u,trunc8u_k6c",
                                    "multiplier_sampling": "random"})
    with pytest.raises(HwcostError, match="gumbel_tau must be > 0"):
        SearchConfig.from_settings({"multipliers": "exact8u,trunc8u_k6c", "gumbel_tau": 0})
    result = CliRunner().invoke(cli, ["search", "--dataset", "synthetic", "--multipliers",
                                      "exact8u,trunc8u_k6c", "--multiplier-sampling", "gumbel",
                                      "--gumbel-tau", "0.5", "--dry-run"])
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert cfg["multiplier_sampling"] == "gumbel" and cfg["gumbel_tau"] == 0.5


@pytest.mark.parametrize("sampling", ["gumbel", "per-conv"])
def test_a_sampled_or_per_conv_search_runs_end_to_end(tmp_path, sampling):
    cfg = SearchConfig(dataset="synthetic", synthetic_size=32, epochs=1, layers=3, channels=2,
                       batch_size=8, multiplier=None, multipliers=NAMES, backend="cpu",
                       arch="edge", energy_weight=0.1, max_steps=2, seed=3,
                       multiplier_sampling=sampling)
    geno = run_search(cfg, tmp_path / "run")
    saved = load(tmp_path / "run" / "genotype.json")
    assert geno == saved
    names = {m for m in saved.normal_multipliers + saved.reduce_multipliers if m}
    assert names and names <= set(NAMES)
