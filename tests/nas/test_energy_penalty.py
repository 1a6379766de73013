"""The differentiable energy term: the expectation of the op energy table under softmaxed
weights, its gradients (checked against finite differences) and the three penalty forms."""

from __future__ import annotations

import math

import pytest
import torch

from core.errors import HwcostError
from darts.genotype import PRIMITIVES
from darts.op_energy import OpEnergyTable, build_op_energy_table
from hwmodel.costing import CostContext
from nas.energy_penalty import energy_penalty, expected_energy, table_tensor

MULTS = ["exact8u", "trunc8u_k8"]
TINY = {"layers": 3, "channels": 4, "input_size": 8}
OP = {op: i for i, op in enumerate(PRIMITIVES)}


@pytest.fixture(scope="module")
def table() -> OpEnergyTable:
    return build_op_energy_table(CostContext.for_spec("eyeriss", effort="fast"), MULTS, **TINY)


def test_tensor_view(table):
    E = table_tensor(table)
    assert E.shape == table.shape and E.dtype == torch.float64
    assert float(E[1, 3, 4, 1]) == table.energy_pj[1][3][4][1]
    assert table_tensor(table) is E          # built once


def test_reference_is_uniform_expectation(table):
    zeros = torch.zeros(14, 8, dtype=torch.float64)
    got = expected_energy(table, zeros, zeros)
    assert float(got) == pytest.approx(table.reference_pj, rel=1e-12)


def test_one_hot_alphas_give_chosen_ops(table):
    E = table_tensor(table)
    choice = torch.tensor([e % 8 for e in range(14)])
    a_n = torch.zeros(14, 8)
    a_r = torch.zeros(14, 8)
    a_n[torch.arange(14), choice] = 50.0
    a_r[torch.arange(14), (choice + 3) % 8] = 50.0
    want = (E[0, torch.arange(14), choice, 1].sum() + E[1, torch.arange(14), (choice + 3) % 8, 1]
            .sum() + table.fixed_pj)
    got = expected_energy(table, a_n, a_r, multiplier_index=1)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    # betas: one-hot on multiplier 1 gives the same
    b = torch.zeros(14, 2)
    b[:, 1] = 50.0
    assert float(expected_energy(table, a_n, a_r, b, b)) == pytest.approx(float(want), rel=1e-5)


def test_gradient_descent_moves_to_cheap_ops_and_multiplier(table):
    a_n = torch.zeros(14, 8, requires_grad=True)
    a_r = torch.zeros(14, 8, requires_grad=True)
    b_n = torch.zeros(14, 2, requires_grad=True)
    b_r = torch.zeros(14, 2, requires_grad=True)
    opt = torch.optim.SGD([a_n, a_r, b_n, b_r], lr=1.0)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = expected_energy(table, a_n, a_r, b_n, b_r) / table.reference_pj
        loss.backward()
        losses.append(float(loss.detach()))
        opt.step()
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]
    for a in (a_n, a_r):
        w = torch.softmax(a.detach(), -1)
        assert torch.all(w[:, OP["none"]] > 1 / 8)
        assert torch.all(w[:, OP["sep_conv_5x5"]] < 1 / 8)
        assert torch.all(w[:, OP["none"]] > w[:, OP["sep_conv_3x3"]])
    for b in (b_n, b_r):
        w = torch.softmax(b.detach(), -1)
        assert torch.all(w[:, 1] > 0.5)  # truncated multiplier is cheaper on every edge


def test_penalty_values():
    ce = torch.tensor(2.0)
    exp = torch.tensor(150.0)
    assert float(energy_penalty(ce, exp, 100.0, "additive", weight=0.5)) == pytest.approx(2.75)
    want = 2.0 * 0.2 * (math.log(150.0) / math.log(100.0)) ** 0.6
    got = energy_penalty(ce, exp, 100.0, "fbnet", weight=0.2, beta_exp=0.6)
    assert float(got) == pytest.approx(want)
    assert float(energy_penalty(ce, exp, None, "target", weight=2.0, target=100.0)) == \
        pytest.approx(3.0)
    assert float(energy_penalty(ce, exp, None, "target", weight=2.0, target=200.0)) == 2.0


def _central_difference(f, x: float, h: float) -> float:
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("kind", ["additive", "fbnet", "target"])
@pytest.mark.parametrize("expected", [150.0, 90.0])
def test_penalty_gradient_matches_finite_differences(kind, expected):
    """d loss / d expected and d loss / d ce by autograd against central differences of the
    same function in float64 (the target hinge is checked on both sides of its knee)."""
    target, ref, weight = 120.0, 100.0, 0.7

    def loss(ce: torch.Tensor, exp: torch.Tensor) -> torch.Tensor:
        return energy_penalty(ce, exp, ref, kind, weight=weight, target=target)

    ce = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    exp = torch.tensor(expected, dtype=torch.float64, requires_grad=True)
    loss(ce, exp).backward()
    d_exp = _central_difference(
        lambda x: float(loss(ce.detach(), torch.tensor(x, dtype=torch.float64))), expected, 1e-4)
    d_ce = _central_difference(
        lambda x: float(loss(torch.tensor(x, dtype=torch.float64), exp.detach())), 1.3, 1e-6)
    assert float(exp.grad) == pytest.approx(d_exp, rel=1e-6, abs=1e-12)
    assert float(ce.grad) == pytest.approx(d_ce, rel=1e-6)
    if kind == "target" and expected < target:
        assert float(exp.grad) == 0.0        # below the budget: no push at all
    else:
        assert float(exp.grad) > 0


def test_expected_energy_gradient_matches_finite_differences(table):
    """gradcheck perturbs every alpha and beta logit in float64 and compares the numerical
    Jacobian with autograd's."""
    gen = torch.Generator().manual_seed(0)
    args = [torch.randn(14, 8, generator=gen, dtype=torch.float64, requires_grad=True),
            torch.randn(14, 8, generator=gen, dtype=torch.float64, requires_grad=True),
            torch.randn(14, 2, generator=gen, dtype=torch.float64, requires_grad=True),
            torch.randn(14, 2, generator=gen, dtype=torch.float64, requires_grad=True)]
    scale = table.reference_pj

    def normalised(a_n, a_r, b_n, b_r):
        return expected_energy(table, a_n, a_r, b_n, b_r) / scale

    assert torch.autograd.gradcheck(normalised, args, eps=1e-6, atol=1e-8, rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "latency"}, "unknown energy penalty kind"),
    ({"kind": "target"}, "needs a target"),
    ({"kind": "target", "target": 0.0}, "target must be a positive"),
    ({"weight": 0.0}, "weight must be a positive"),
    ({"weight": -1.0, "kind": "fbnet"}, "weight must be a positive"),
    ({"kind": "fbnet", "beta_exp": 0.0}, "beta_exp must be a positive"),
    ({"reference": 0.0}, "reference must be a positive"),
    ({"kind": "fbnet", "reference": 0.5}, "reference > 1"),
])
def test_penalty_errors(kwargs, match):
    args = {"reference": 100.0, **kwargs}
    reference = args.pop("reference")
    with pytest.raises(HwcostError, match=match):
        energy_penalty(torch.tensor(1.0), torch.tensor(150.0), reference, **args)


def test_expected_energy_errors(table):
    z = torch.zeros(14, 8)
    with pytest.raises(HwcostError, match="shape"):
        expected_energy(table, torch.zeros(14, 7), z)
    with pytest.raises(HwcostError, match="both"):
        expected_energy(table, z, z, torch.zeros(14, 2))
    with pytest.raises(HwcostError, match="out of range"):
        expected_energy(table, z, z, multiplier_index=2)
