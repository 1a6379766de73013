"""One macro plan; the search network, evaluation network, layer graph and energy table built
from it must agree on cells, shapes, parameters, MACs and energy."""

from __future__ import annotations

import pytest
import torch

from core.errors import HwcostError
from darts.cellgraph import NetworkConfig, build_graph, list_layers, mac_count, parameter_count
from darts.genotype import Genotype
from darts.macro import plan_network
from darts.op_energy import build_op_energy_table, fixed_layers, search_layers
from hwmodel.costing import CostContext, price
from nas.augment_cnn import AugmentCNN
from nas.search_cnn import SearchCNN

# 5 cells (reductions at 1 and 3), 8 channels, 16x16 input, 7 classes, 4 search nodes
NET = {"channels": 8, "layers": 5, "input_size": 16, "classes": 7}
GENOTYPE = Genotype(
    normal=[("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("skip_connect", 0),
            ("max_pool_3x3", 2), ("sep_conv_5x5", 3), ("avg_pool_3x3", 1),
            ("dil_conv_3x3", 4), ("sep_conv_3x3", 0)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("skip_connect", 0), ("sep_conv_5x5", 1), ("max_pool_3x3", 2),
            ("dil_conv_3x3", 0), ("sep_conv_3x3", 3), ("skip_connect", 1),
            ("avg_pool_3x3", 4), ("dil_conv_5x5", 1)],
    reduce_concat=[2, 3, 4, 5])


def test_plan_by_hand():
    """Channels, sizes and FactorizedReduce positions worked out on paper for a small net."""
    plan = plan_network(channels=4, layers=5, input_size=16, concat=(4, 3), classes=7)
    assert plan.reduction_cells == (1, 3) and plan.stem_channels == 12
    got = [(c.cell_type, c.reduction_prev, c.c_pp, c.c_p, c.c, c.c_out, c.hw_pp[0], c.hw_p[0],
            c.hw[0]) for c in plan.cells]
    assert got == [
        ("normal", False, 12, 12, 4, 16, 16, 16, 16),
        ("reduce", False, 12, 16, 8, 24, 16, 16, 8),
        ("normal", True, 16, 24, 8, 32, 16, 8, 8),
        ("reduce", False, 24, 32, 16, 48, 8, 8, 4),
        ("normal", True, 32, 48, 16, 64, 8, 4, 4),
    ]
    assert plan.out_channels == 64 and plan.aux_cell == 3
    assert [plan.cells[1].edge_stride(j) for j in range(4)] == [2, 2, 1, 1]
    assert plan.cells[1].edge_input_hw(0) == (16, 16) and plan.cells[1].edge_input_hw(2) == (8, 8)
    pre0, pre1 = plan.cells[2].preprocess()
    assert [layer.stride for layer in pre0.layers] == [(2, 2), (2, 2)] and pre0.out_hw == (8, 8)
    assert pre1.out_hw == (8, 8) and pre1.layers[0].C == 24


def test_plan_refusals():
    # 6 cells, input 6: cell 5 follows a reduction whose input was 3x3, which a
    # FactorizedReduce cannot halve
    with pytest.raises(HwcostError, match=r"cell5.normal.pre0: FactorizedReduce needs an even"):
        plan_network(channels=4, layers=6, input_size=6, concat=(4, 4))
    with pytest.raises(HwcostError, match="network layers must be a positive integer"):
        plan_network(channels=4, layers=0, concat=(4, 4))
    with pytest.raises(HwcostError, match="network reduce concat must be a positive integer"):
        plan_network(channels=4, layers=3, concat=(4, 0))


def _layer_params(layers) -> int:
    return sum(layer.params + layer.extra.get("bias", 0) for layer in layers)


def _layer_macs(layers) -> int:
    return sum(layer.macs for layer in layers if layer.kind in ("conv", "fc"))


@pytest.fixture(scope="module")
def plans():
    search = SearchCNN(NET["channels"], NET["classes"], NET["layers"], 4,
                       input_size=NET["input_size"])
    augment = AugmentCNN(GENOTYPE, C=NET["channels"], n_classes=NET["classes"],
                         n_layers=NET["layers"], input_size=NET["input_size"])
    config = NetworkConfig(**NET)
    graph = build_graph(GENOTYPE, config)
    return search, augment, config, graph


def test_all_four_share_one_plan(plans):
    search, augment, _config, graph = plans
    plan = plan_network(**NET, concat=(4, 4))
    # with a 4-node concat on both cell types the genotype's plan is the search plan
    assert search.plan == augment.plan == graph.graph["plan"] == plan


def test_search_network_matches_its_layer_list(plans, count_forward):
    search = plans[0]
    plan = search.plan
    layers = search_layers(plan, 4)
    # weights: every conv of every op on every edge, the stem BN (the only affine BN of the
    # supernet) and the classifier; the architecture parameters are not weights
    want = _layer_params(layers) + 2 * plan.stem_channels
    assert sum(p.numel() for p in search.weights()) == want
    x = torch.randn(2, 3, NET["input_size"], NET["input_size"])
    counts = count_forward(search, x)
    assert counts.conv + counts.fc == 2 * _layer_macs(layers)
    assert counts.cell_shapes == [(2, c.c_out, *c.hw) for c in plan.cells]


def test_evaluation_network_matches_the_layer_graph(plans, count_forward):
    _search, augment, config, graph = plans
    assert sum(p.numel() for p in augment.parameters()) == parameter_count(GENOTYPE, config)
    x = torch.randn(1, 3, NET["input_size"], NET["input_size"])
    counts = count_forward(augment, x)
    shapes = counts.cell_shapes
    assert counts.conv + counts.fc == mac_count(GENOTYPE, config)
    plan = graph.graph["plan"]
    assert shapes == [(1, c.c_out, *c.hw) for c in plan.cells]
    outs = [graph.nodes[f"{c.name}.out"]["shape"] for c in plan.cells]
    assert outs == shapes


def test_energy_table_prices_the_search_layers():
    """Energy is additive over layers, so the fixed part plus every table entry (first
    multiplier) is the estimate of the whole supernet's layer list, and the fixed part plus
    a genotype's entries is the estimate of its evaluation network at the search size."""
    context = CostContext.for_spec("eyeriss", effort="fast")
    table = build_op_energy_table(context, ["exact8u"], n_nodes=4,
                                  **{k: NET[k] for k in ("channels", "layers", "input_size",
                                                         "classes")})
    plan = plan_network(**NET, concat=(4, 4))

    def energy(layers) -> float:
        return price(layers, "exact8u", context).total("energy_pj")

    assert table.fixed_pj == pytest.approx(energy(fixed_layers(plan, 4)), rel=1e-12)
    everything = energy(search_layers(plan, 4))
    assert table.fixed_pj + sum(row[0] for t in table.energy_pj for e in t for row in e) == \
        pytest.approx(everything, rel=1e-9)
    derived = energy(list_layers(GENOTYPE, NetworkConfig(**NET)))
    got = table.fixed_pj
    for cell in ("normal", "reduce"):
        for k, (op, j) in enumerate(GENOTYPE.edges(cell)):
            got += table.entry(cell, table.edges.index((k // 2 + 2, j)), op, "exact8u")
    assert got == pytest.approx(derived, rel=1e-9)
