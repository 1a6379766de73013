"""Candidate multipliers share one weight tensor per conv in the search supernet.

Checks: the parameter count does not depend on the number of candidates ``T``; block ``t`` of
a multiplying op in candidate mode is what the same op computes with multiplier ``t`` alone
(same weights, same quantization ranges); the BN of a candidate block does not see the other
blocks; gradients reach the shared weights and the betas; state survives a round trip; an
old per-copy checkpoint is refused with one clear error.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from core.errors import HwcostError  # noqa: E402
from darts.genotype import PRIMITIVES  # noqa: E402
from multiplier_lib.emulate.layers import ApproxConv2d  # noqa: E402
from nas import checkpoint  # noqa: E402
from nas.ops import (  # noqa: E402
    OPS,
    BlockBatchNorm2d,
    approx_conv,
    candidate_conv,
    has_conv,
    n_candidates,
)
from nas.search_cells import MixedOp  # noqa: E402
from nas.search_cnn import SearchCNN  # noqa: E402

NAMES = ["exact8u", "trunc8u_k6c", "drum8u_k4"]
BACKEND = "reference"


def _weights(model: SearchCNN) -> int:
    return sum(p.numel() for p in model.weights())


def _freeze_ranges(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, ApproxConv2d):
            m.act_quant.observing = False
            m.weight_quant.observing = False


def _plain_copy(cand_op: nn.Module, primitive: str, stride: int, name: str,
                c: int) -> nn.Module:
    """``primitive`` built with the single multiplier ``name``, holding ``cand_op``'s weights
    and quantization ranges (observers frozen)."""
    plain = OPS[primitive](c, stride, False, approx_conv(name, backend=BACKEND))
    src = [m for m in cand_op.modules() if isinstance(m, ApproxConv2d)]
    dst = [m for m in plain.modules() if isinstance(m, ApproxConv2d)]
    assert len(src) == len(dst) > 0
    with torch.no_grad():
        for a, b in zip(src, dst):
            b.weight.copy_(a.weight)
            for q in ("act_quant", "weight_quant"):
                obs_a, obs_b = getattr(a, q).observer, getattr(b, q).observer
                obs_b.min_val = obs_a.min_val.clone()
                obs_b.max_val = obs_a.max_val.clone()
    _freeze_ranges(plain)
    return plain


# ---------------------------------------------------------------------------------------------
# Parameter count


def test_parameter_count_does_not_grow_with_candidates():
    kw = dict(C=4, n_layers=3, n_nodes=2)
    one = SearchCNN(**kw, multipliers=NAMES[:1],
                    multiplier_conv=lambda n: approx_conv(n, backend=BACKEND))
    three = SearchCNN(**kw, multipliers=NAMES,
                      multiplier_conv=lambda n: approx_conv(n, backend=BACKEND))
    plain = SearchCNN(**kw)
    assert _weights(three) == _weights(one) == _weights(plain)
    assert three.beta_normal.shape == (5, 3) and one.beta_normal.shape == (5, 1)
    # what one copy per candidate would have had: the multiplying ops' parameters T times
    per_copy = sum(p.numel() for cell in one.cells for edge in cell.edges
                   for op in edge.ops if has_conv(op) for p in op.parameters())
    assert per_copy > 0
    old_design = _weights(one) + (len(NAMES) - 1) * per_copy
    assert _weights(three) < old_design
    # and the conv layers really evaluate every candidate
    edge = three.cells[0].edges[0]
    convs = [m for m in edge.modules() if isinstance(m, ApproxConv2d)]
    assert convs and all(m.n_candidates == 3 for m in convs)


def test_candidate_conv_checks_its_multipliers():
    conv = candidate_conv(NAMES, backend=BACKEND)
    assert n_candidates(conv) == 3 and conv.multipliers == tuple(NAMES)
    assert n_candidates(candidate_conv(NAMES[:1], backend=BACKEND)) == 1
    assert n_candidates(approx_conv("exact8u", backend=BACKEND)) == 1
    layer = conv(4, 4, 3, 1, 1, 1, 1)
    assert [m.name for m in layer.candidates] == NAMES and layer.bias is None
    # one resolved multiplier per factory, shared by every layer it builds
    assert conv(4, 4, 1, 1, 0, 1, 1).candidates[1] is layer.candidates[1]
    with pytest.raises(HwcostError, match="operand domain"):
        candidate_conv(["exact8u", "exact8s"])
    with pytest.raises(HwcostError, match="grad='ste'"):
        candidate_conv(NAMES, grad="lut")
    with pytest.raises(HwcostError, match="distinct"):
        candidate_conv(["exact8u", "exact8u"])
    with pytest.raises(HwcostError, match="non-empty"):
        candidate_conv([])
    with pytest.raises(HwcostError, match="candidate"):
        SearchCNN(C=2, n_layers=3, multipliers=NAMES,
                  multiplier_conv=lambda names: approx_conv(names[0], backend=BACKEND))


# ---------------------------------------------------------------------------------------------
# Equivalence with single-multiplier ops


@pytest.mark.parametrize("primitive,stride", [("sep_conv_3x3", 1), ("dil_conv_5x5", 1),
                                              ("sep_conv_5x5", 2), ("skip_connect", 2)])
def test_candidate_blocks_equal_single_multiplier_ops(primitive, stride):
    torch.manual_seed(0)
    c = 4
    mixed = MixedOp(c, stride, candidate_conv(NAMES, backend=BACKEND))
    i = PRIMITIVES.index(primitive)
    assert mixed.multiplying[i]
    mixed.train()
    x = torch.rand(3, c, 8, 8) * 2 - 0.5
    mixed.candidate_outputs(i, x)          # observe ranges on the candidate batch
    _freeze_ranges(mixed)
    blocks = mixed.candidate_outputs(i, x)
    assert blocks.shape == (3, 3, c, 8 // stride, 8 // stride)
    for t, name in enumerate(NAMES):
        plain = _plain_copy(mixed.ops[i], primitive, stride, name, c).train()
        torch.testing.assert_close(blocks[t], plain(x))
    # the candidates do differ (else the check above would prove nothing)
    assert not torch.allclose(blocks[0], blocks[1]) and not torch.allclose(blocks[0], blocks[2])


def test_mixed_op_mixes_candidates_with_beta():
    torch.manual_seed(1)
    c = 4
    mixed = MixedOp(c, 1, candidate_conv(NAMES, backend=BACKEND)).train()
    x = torch.randn(2, c, 6, 6)
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    beta = torch.softmax(torch.randn(3), 0)
    mixed(x, w, beta)
    _freeze_ranges(mixed)
    out = mixed(x, w, beta)
    expect = sum(w[i] * (beta.view(3, 1, 1, 1, 1) * mixed.candidate_outputs(i, x)).sum(0)
                 if mixed.multiplying[i] else w[i] * mixed.ops[i](x)
                 for i in range(len(PRIMITIVES)))
    torch.testing.assert_close(out, expect)
    with pytest.raises(HwcostError, match="3 multiplier weights"):
        mixed(x, w, None)


def test_one_candidate_is_the_plain_op():
    mixed = MixedOp(4, 1, approx_conv(NAMES[:1], backend=BACKEND))
    assert mixed.n_candidates == 1 and not any(mixed.multiplying)
    assert not any(isinstance(m, BlockBatchNorm2d) for m in mixed.modules())
    x = torch.randn(2, 4, 6, 6)
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    assert mixed(x, w, None).shape == x.shape


# ---------------------------------------------------------------------------------------------
# Per-block batch norm


def test_block_batch_norm_normalises_each_block_alone():
    torch.manual_seed(2)
    t, n, c = 3, 4, 5
    bbn = BlockBatchNorm2d(c, t, affine=False).train()
    refs = [nn.BatchNorm2d(c, affine=False).train() for _ in range(t)]
    # blocks with very different statistics
    x = torch.cat([torch.randn(n, c, 6, 6) * (1 + 3 * k) + 2 * k for k in range(t)])
    for _ in range(2):
        y = bbn(x)
        want = torch.cat([bn(x[k * n:(k + 1) * n]) for k, bn in enumerate(refs)])
        torch.testing.assert_close(y, want)
    assert bbn.running_mean.shape == bbn.running_var.shape == (t, c)
    torch.testing.assert_close(bbn.running_mean, torch.stack([bn.running_mean for bn in refs]))
    torch.testing.assert_close(bbn.running_var, torch.stack([bn.running_var for bn in refs]))
    assert int(bbn.num_batches_tracked) == 2
    # a block's output ignores the other blocks (on a copy: train mode updates statistics)
    probe = copy.deepcopy(bbn)
    x2 = x.clone()
    x2[n:] = torch.randn(2 * n, c, 6, 6) * 10
    torch.testing.assert_close(probe(x2)[:n], probe(x)[:n])
    assert not torch.allclose(probe(x2)[n:], probe(x)[n:])
    # eval: per-block running statistics
    bbn.eval()
    for bn in refs:
        bn.eval()
    torch.testing.assert_close(bbn(x), torch.cat([bn(x[k * n:(k + 1) * n])
                                                  for k, bn in enumerate(refs)]))
    with pytest.raises(HwcostError, match="equal blocks"):
        bbn(torch.randn(4, c, 2, 2))


def test_block_batch_norm_affine_is_shared():
    bbn = BlockBatchNorm2d(6, 4, affine=True)
    assert sum(p.numel() for p in bbn.parameters()) == 12   # 2 * C, whatever the blocks
    with torch.no_grad():
        bbn.weight.fill_(2.0)
        bbn.bias.fill_(0.5)
    y = bbn.train()(torch.randn(8, 6, 3, 3))
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.full((6,), 0.5))


# ---------------------------------------------------------------------------------------------
# Gradients


def test_shared_weight_gradient_is_the_sum_over_candidates():
    torch.manual_seed(3)
    c = 4
    primitive = "sep_conv_3x3"
    i = PRIMITIVES.index(primitive)
    mixed = MixedOp(c, 1, candidate_conv(NAMES, backend=BACKEND)).train()
    x = torch.randn(2, c, 6, 6)
    mixed.candidate_outputs(i, x)
    _freeze_ranges(mixed)
    coef = torch.tensor([0.2, 0.5, 0.3])
    r = torch.randn(2, c, 6, 6)
    loss = (coef.view(3, 1, 1, 1, 1) * mixed.candidate_outputs(i, x) * r).sum()
    loss.backward()
    shared = [m.weight for m in mixed.ops[i].modules() if isinstance(m, ApproxConv2d)]
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in shared)
    total = [torch.zeros_like(w) for w in shared]
    for t, name in enumerate(NAMES):
        plain = _plain_copy(mixed.ops[i], primitive, 1, name, c).train()
        (coef[t] * plain(x) * r).sum().backward()
        for acc, m in zip(total, [m for m in plain.modules() if isinstance(m, ApproxConv2d)]):
            acc += m.weight.grad
    for w, g in zip(shared, total):
        torch.testing.assert_close(w.grad, g)


def test_gradients_reach_shared_weights_and_betas():
    torch.manual_seed(4)
    model = SearchCNN(C=2, n_layers=3, multipliers=NAMES,
                      multiplier_conv=lambda n: approx_conv(n, backend=BACKEND))
    y = model(torch.randn(2, 3, 8, 8))
    torch.nn.functional.cross_entropy(y, torch.tensor([1, 4])).backward()
    for name, p in model.named_alphas():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # every edge's beta row moves (each edge has multiplying ops)
    assert (model.beta_normal.grad.abs().sum(dim=1) > 0).all()
    assert (model.beta_reduce.grad.abs().sum(dim=1) > 0).all()
    conv_weights = [m.weight for cell in model.cells for edge in cell.edges
                    for m in edge.modules() if isinstance(m, ApproxConv2d)]
    assert conv_weights and all(w.grad is not None and w.grad.abs().sum() > 0
                                for w in conv_weights)


# ---------------------------------------------------------------------------------------------
# State


def test_state_round_trip_keeps_candidates_and_block_statistics():
    def build(seed: int) -> SearchCNN:
        torch.manual_seed(seed)
        return SearchCNN(C=2, n_layers=3, n_nodes=2, multipliers=NAMES,
                         multiplier_conv=lambda n: approx_conv(n, backend=BACKEND))

    a = build(5).train()
    x = torch.randn(2, 3, 8, 8)
    a(x)
    bn = next(m for m in a.modules() if isinstance(m, BlockBatchNorm2d))
    assert not torch.allclose(bn.running_mean[0], bn.running_mean[1])
    b = build(6)
    b.load_state_dict(a.state_dict())
    a.eval()
    b.eval()
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x))


def test_old_per_copy_checkpoint_is_refused_in_one_line(tmp_path):
    from nas.search import SearchConfig, run_search

    cfg = SearchConfig(dataset="synthetic", synthetic_size=32, epochs=1, layers=3, channels=2,
                       batch_size=8, multiplier=None, multipliers=["exact8u", "trunc8u_k8"],
                       backend=BACKEND, arch="edge", max_steps=1, seed=3)
    cfg.validate()
    out = tmp_path / "old"
    run_search(cfg, out)            # a complete checkpoint, whose weights are then re-laid
    state = checkpoint.load(out / "checkpoint.pt")
    # the old layout: every multiplying op as a list of copies, one per multiplier
    old = {}
    for key, value in state["model"].items():
        parts = key.split(".")
        if len(parts) > 5 and parts[2] == "edges" and parts[4] == "ops":
            for copy in range(2):
                old[".".join(parts[:6] + [str(copy)] + parts[6:])] = value
        else:
            old[key] = value
    checkpoint.save(out / "checkpoint.pt", {**state, "model": old})
    with pytest.raises(HwcostError, match="does not match") as err:
        run_search(cfg, out, resume=True)
    msg = str(err.value)
    assert "\n" not in msg and "checkpoint.pt" in msg and "unexpected" in msg
