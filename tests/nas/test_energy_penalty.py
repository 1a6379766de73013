"""The search-time energy table and penalty, checked against the hardware model itself."""

from __future__ import annotations

import json
import math

import pytest
import torch

from core.errors import HwcostError
from darts.cellgraph import NetworkConfig, list_layers
from darts.genotype import PRIMITIVES, Genotype
from darts.op_specs import op_block
from hwmodel.estimate import NetworkEstimator
from hwmodel.spec import load_arch
from multiplier_lib.library import resolve
from nas.energy_penalty import (
    OpEnergyTable,
    build_energy_table,
    energy_penalty,
    expected_energy,
    search_edges,
)

MULTS = ["exact8u", "trunc8u_k8"]
TINY = {"layers": 3, "channels": 4, "input_size": 8}
CONV_OPS = ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
OP = {op: i for i, op in enumerate(PRIMITIVES)}


@pytest.fixture(scope="module")
def arch():
    return load_arch("eyeriss")


@pytest.fixture(scope="module")
def table(arch) -> OpEnergyTable:
    return build_energy_table(arch, MULTS, **TINY)


def test_shape_metadata_and_none(table):
    E = table.to_tensor()
    assert E.shape == (2, 14, 8, 2) and E.dtype == torch.float64
    assert table.ops == tuple(PRIMITIVES) and table.multipliers == tuple(MULTS)
    assert table.arch == "eyeriss" and table.config["layers"] == 3
    assert table.edges == search_edges(4) and len(table.edges) == 14
    assert table.edges[:5] == ((2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert torch.all(E[:, :, OP["none"]] == 0)
    assert torch.all(E >= 0)
    assert table.fixed_pj > 0


def test_skip_identity_only_at_stride_one(table):
    E = table.to_tensor()
    skip = OP["skip_connect"]
    assert torch.all(E[0, :, skip] == 0)  # normal cell: all stride 1
    for e, (_node, j) in enumerate(table.edges):
        if j < 2:  # reduction-cell edge from a cell input: FactorizedReduce
            assert torch.all(E[1, e, skip] > 0)
        else:
            assert torch.all(E[1, e, skip] == 0)


def test_op_ordering(table):
    E = table.to_tensor()
    assert torch.all(E[..., OP["sep_conv_5x5"], :] > E[..., OP["sep_conv_3x3"], :])
    assert torch.all(E[..., OP["sep_conv_3x3"], :] > 0)
    assert torch.all(E[..., OP["dil_conv_5x5"], :] > E[..., OP["dil_conv_3x3"], :])
    # A sep conv is two dil-conv-shaped halves without dilation: more work than one dil conv.
    assert torch.all(E[..., OP["sep_conv_3x3"], :] > E[..., OP["dil_conv_3x3"], :])


def test_cheaper_multiplier_never_costs_more(table):
    E = table.to_tensor()
    for op in CONV_OPS:
        assert torch.all(E[..., OP[op], 1] < E[..., OP[op], 0]), op
    for op in ("max_pool_3x3", "avg_pool_3x3"):  # no multiplications: same energy
        assert torch.equal(E[..., OP[op], 1], E[..., OP[op], 0])


def test_entry_matches_independent_estimate(arch, table):
    """Normal edge 5 (node 4 from node 2) summed over the normal cells 0 by hand."""
    est = NetworkEstimator(arch, "energy", None, resolve, effort="fast")
    # tiny network: cell 0 normal (C=4, 8x8), cells 1 and 2 reduce (C=8, 16)
    e = table.edges.index((4, 2))
    for m in MULTS:
        block = op_block("sep_conv_5x5", "x", 4, (8, 8), 1)
        want = est.estimate(list(block.layers), resolve(m)).total("energy_pj")
        assert table.entry("normal", e, "sep_conv_5x5", m) == pytest.approx(want, rel=1e-12)
    # reduction edge 0 (stride 2 from input 0): cell 1 at 8x8 C=8, cell 2 at 4x4 C=16
    want = sum(
        est.estimate(list(op_block("dil_conv_3x3", "x", c, hw, 2).layers),
                     resolve("exact8u")).total("energy_pj")
        for c, hw in ((8, (8, 8)), (16, (4, 4))))
    assert table.entry("reduce", 0, "dil_conv_3x3", "exact8u") == pytest.approx(want, rel=1e-12)


def test_fixed_plus_chosen_ops_equals_derived_network(arch, table):
    genotype = Genotype(
        normal=[("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("dil_conv_3x3", 2),
                ("skip_connect", 0), ("max_pool_3x3", 3), ("dil_conv_5x5", 1),
                ("avg_pool_3x3", 4), ("sep_conv_3x3", 2)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("skip_connect", 0), ("max_pool_3x3", 1), ("sep_conv_5x5", 2),
                ("dil_conv_3x3", 0), ("skip_connect", 3), ("avg_pool_3x3", 1),
                ("sep_conv_3x3", 4), ("dil_conv_5x5", 0)],
        reduce_concat=[2, 3, 4, 5])
    layers = list_layers(genotype, NetworkConfig(**TINY))
    est = NetworkEstimator(arch, "energy", None, resolve, effort="fast")
    want = est.estimate(layers, resolve("exact8u")).total("energy_pj")
    got = table.fixed_pj
    for cell in ("normal", "reduce"):
        for k, (op, j) in enumerate(genotype.edges(cell)):
            got += table.entry(cell, table.edges.index((k // 2 + 2, j)), op, "exact8u")
    assert got == pytest.approx(want, rel=1e-9)


def test_reference_is_uniform_expectation(table):
    zeros = torch.zeros(14, 8, dtype=torch.float64)
    got = expected_energy(table, zeros, zeros)
    assert float(got) == pytest.approx(table.reference_pj, rel=1e-12)
    E = table.to_tensor()
    assert table.reference_pj == pytest.approx(float(E[..., 0].mean(-1).sum()) + table.fixed_pj)


def test_one_hot_alphas_give_chosen_ops(table):
    E = table.to_tensor()
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


def test_save_load_round_trip(table, tmp_path):
    path = tmp_path / "sub" / "table.json"
    table.save(path)
    back = OpEnergyTable.load(path)
    assert back == table
    assert torch.equal(back.to_tensor(), table.to_tensor())
    assert back.fixed_pj == table.fixed_pj and back.reference_pj == table.reference_pj
    doc = json.loads(path.read_text())
    doc["energy_pj"] = doc["energy_pj"][:1]
    path.write_text(json.dumps(doc))
    with pytest.raises(HwcostError, match="shape"):
        OpEnergyTable.load(path)
    path.write_text("{}")
    with pytest.raises(HwcostError, match="not an op energy table"):
        OpEnergyTable.load(path)


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


def test_penalty_gradient_flows():
    exp = torch.tensor(150.0, requires_grad=True)
    for kind in ("additive", "fbnet", "target"):
        exp.grad = None
        energy_penalty(torch.tensor(1.0), exp, 100.0, kind, target=120.0).backward()
        assert float(exp.grad) > 0, kind


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
    with pytest.raises(HwcostError, match="at least one multiplier"):
        build_energy_table("eyeriss", [], **TINY)


def test_float_baselines_are_priced_on_the_float_design():
    from hwmodel.estimate import estimate_float

    table = build_energy_table("eyeriss", ["fp32", "exact8u"], **TINY)
    assert table.multipliers == ("fp32", "exact8u")
    sep = PRIMITIVES.index("sep_conv_3x3")
    for cell_rows in table.energy_pj:
        for edge_rows in cell_rows:
            assert edge_rows[sep][0] > 2 * edge_rows[sep][1]   # FP32 MACs and words
    # one entry recomputed independently: the first normal edge's sep_conv_3x3, channels C,
    # input HxW (TINY's sizes), priced by estimate_float
    c, side = TINY["channels"], TINY["input_size"]
    block = op_block("sep_conv_3x3", "x", c, (side, side), 1)
    alone = estimate_float(load_arch("eyeriss"), block.layers, "fp32", effort="fast")
    assert table.energy_pj[0][0][sep][0] >= alone.total("energy_pj") * 0.999
    with pytest.raises(HwcostError, match="cannot be priced with an ERT"):
        build_energy_table("eyeriss", ["fp32"], ert="x.yaml", **TINY)
