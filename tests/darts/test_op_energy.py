"""The search network's op energy table, checked against the costing function itself: its
entries are op blocks priced alone, and the fixed part plus a genotype's chosen entries is the
price of that genotype's network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import HwcostError
from darts.cellgraph import NetworkConfig, list_layers
from darts.genotype import PRIMITIVES, Genotype
from darts.op_energy import OpEnergyTable, build_op_energy_table, search_edges
from darts.op_specs import op_block
from darts.pricing import price_network
from hwmodel.costing import CostContext, price

MULTS = ["exact8u", "trunc8u_k8"]
TINY = {"layers": 3, "channels": 4, "input_size": 8}
CONV_OPS = ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
OP = {op: i for i, op in enumerate(PRIMITIVES)}


@pytest.fixture(scope="module")
def context() -> CostContext:
    return CostContext.for_spec("eyeriss", effort="fast")


@pytest.fixture(scope="module")
def table(context) -> OpEnergyTable:
    return build_op_energy_table(context, MULTS, **TINY)


def energies(table: OpEnergyTable) -> np.ndarray:
    return np.array(table.energy_pj, dtype=np.float64)


def test_shape_metadata_and_none(table):
    E = energies(table)
    assert E.shape == (2, 14, 8, 2) == table.shape
    assert table.ops == tuple(PRIMITIVES) and table.multipliers == tuple(MULTS)
    assert table.arch == "eyeriss" and table.config["layers"] == 3
    assert table.edges == search_edges(4) and len(table.edges) == 14
    assert table.edges[:5] == ((2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert np.all(E[:, :, OP["none"]] == 0)
    assert np.all(E >= 0)
    assert table.fixed_pj > 0


def test_skip_identity_only_at_stride_one(table):
    E = energies(table)
    skip = OP["skip_connect"]
    assert np.all(E[0, :, skip] == 0)  # normal cell: all stride 1
    for e, (_node, j) in enumerate(table.edges):
        if j < 2:  # reduction-cell edge from a cell input: FactorizedReduce
            assert np.all(E[1, e, skip] > 0)
        else:
            assert np.all(E[1, e, skip] == 0)


def test_op_ordering(table):
    E = energies(table)
    assert np.all(E[..., OP["sep_conv_5x5"], :] > E[..., OP["sep_conv_3x3"], :])
    assert np.all(E[..., OP["sep_conv_3x3"], :] > 0)
    assert np.all(E[..., OP["dil_conv_5x5"], :] > E[..., OP["dil_conv_3x3"], :])
    # A sep conv is two dil-conv-shaped halves without dilation: more work than one dil conv.
    assert np.all(E[..., OP["sep_conv_3x3"], :] > E[..., OP["dil_conv_3x3"], :])


def test_cheaper_multiplier_never_costs_more(table):
    E = energies(table)
    for op in CONV_OPS:
        assert np.all(E[..., OP[op], 1] < E[..., OP[op], 0]), op
    for op in ("max_pool_3x3", "avg_pool_3x3"):  # no multiplications: same energy
        assert np.array_equal(E[..., OP[op], 1], E[..., OP[op], 0])


def test_entry_is_the_op_priced_alone_summed_over_cells(context, table):
    """Normal edge 5 (node 4 from node 2) in the one normal cell, and reduction edge 0
    summed over the two reduction cells, priced op block by op block."""
    # tiny network: cell 0 normal (C=4, 8x8), cells 1 and 2 reduce (C=8, 16)
    e = table.edges.index((4, 2))
    for m in MULTS:
        block = op_block("sep_conv_5x5", "x", 4, (8, 8), 1)
        want = price(block.layers, m, context).total("energy_pj")
        assert table.entry("normal", e, "sep_conv_5x5", m) == pytest.approx(want, rel=1e-12)
    # reduction edge 0 (stride 2 from input 0): cell 1 at 8x8 C=8, cell 2 at 4x4 C=16
    want = sum(price(op_block("dil_conv_3x3", "x", c, hw, 2).layers, "exact8u", context)
               .total("energy_pj") for c, hw in ((8, (8, 8)), (16, (4, 4))))
    assert table.entry("reduce", 0, "dil_conv_3x3", "exact8u") == pytest.approx(want, rel=1e-12)


GENOTYPE = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("dil_conv_3x3", 2),
            ("skip_connect", 0), ("max_pool_3x3", 3), ("dil_conv_5x5", 1),
            ("avg_pool_3x3", 4), ("sep_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("skip_connect", 0), ("max_pool_3x3", 1), ("sep_conv_5x5", 2),
            ("dil_conv_3x3", 0), ("skip_connect", 3), ("avg_pool_3x3", 1),
            ("sep_conv_3x3", 4), ("dil_conv_5x5", 0)],
    reduce_concat=[2, 3, 4, 5])


@pytest.mark.parametrize("mult", MULTS)
def test_fixed_plus_chosen_ops_equals_derived_network(context, table, mult):
    """With the first multiplier the fixed part is exact; with another one on every edge the
    fixed part stays the baseline's (the search does not choose for those layers), so the sum
    equals the network with per-edge multipliers over the baseline."""
    edge_mults = [mult if op not in ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3")
                  else None for op, _ in GENOTYPE.normal]
    red_mults = [mult if op not in ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3")
                 else None for op, _ in GENOTYPE.reduce]
    geno = Genotype(**{**vars(GENOTYPE), "multiplier": MULTS[0],
                       "normal_multipliers": edge_mults, "reduce_multipliers": red_mults})
    want = price_network(geno, NetworkConfig(**TINY), context).total("energy_pj")
    got = table.fixed_pj
    for cell in ("normal", "reduce"):
        for k, (op, j) in enumerate(geno.edges(cell)):
            used = mult if op not in ("skip_connect", "max_pool_3x3", "avg_pool_3x3") \
                else MULTS[0]
            got += table.entry(cell, table.edges.index((k // 2 + 2, j)), op, used)
    assert got == pytest.approx(want, rel=1e-9)
    assert list_layers(geno, NetworkConfig(**TINY))     # the network is not empty


def test_reference_is_uniform_expectation_of_the_first_multiplier(table):
    E = energies(table)
    assert table.reference_pj == pytest.approx(float(E[..., 0].mean(-1).sum()) + table.fixed_pj)


def test_save_load_round_trip(table, tmp_path):
    path = tmp_path / "sub" / "table.json"
    table.save(path)
    back = OpEnergyTable.load(path)
    assert back == table
    assert np.array_equal(energies(back), energies(table))
    assert back.fixed_pj == table.fixed_pj and back.reference_pj == table.reference_pj
    doc = json.loads(path.read_text())
    good = json.loads(path.read_text())
    doc["energy_pj"] = doc["energy_pj"][:1]
    path.write_text(json.dumps(doc))
    with pytest.raises(HwcostError, match="shape"):
        OpEnergyTable.load(path)
    good["energy_pj"][1][3] = good["energy_pj"][1][3][:-1]      # ragged
    path.write_text(json.dumps(good))
    with pytest.raises(HwcostError, match="malformed"):
        OpEnergyTable.load(path)
    path.write_text("{}")
    with pytest.raises(HwcostError, match="not an op energy table"):
        OpEnergyTable.load(path)


def test_build_errors(context):
    with pytest.raises(HwcostError, match="at least one multiplier"):
        build_op_energy_table(context, [], **TINY)
    with pytest.raises(HwcostError, match="n_nodes"):
        build_op_energy_table(context, MULTS, n_nodes=0, **TINY)
    with pytest.raises(HwcostError, match="no_such_mult"):
        build_op_energy_table(context, ["exact8u", "no_such_mult"], **TINY)


def test_float_baselines_are_priced_on_the_float_design(context, tmp_path):
    table = build_op_energy_table(context, ["fp32", "exact8u"], **TINY)
    assert table.multipliers == ("fp32", "exact8u")
    sep = PRIMITIVES.index("sep_conv_3x3")
    for cell_rows in table.energy_pj:
        for edge_rows in cell_rows:
            assert edge_rows[sep][0] > 2 * edge_rows[sep][1]   # FP32 MACs and words
    # the first normal edge's sep_conv_3x3 is the same op in every normal cell (one here):
    # the op priced alone on the float design
    c, side = TINY["channels"], TINY["input_size"]
    block = op_block("sep_conv_3x3", "x", c, (side, side), 1)
    alone = price(block.layers, "fp32", context).total("energy_pj")
    assert table.energy_pj[0][0][sep][0] == pytest.approx(alone, rel=1e-12)
    ert = tmp_path / "ert.yaml"
    from hwmodel.energy import write_energy_ert

    write_energy_ert(ert, context.arch, context.base_energy)
    with_ert = CostContext.for_spec("eyeriss", effort="fast", ert=ert)
    with pytest.raises(HwcostError, match="cannot be priced with an ERT"):
        build_op_energy_table(with_ert, ["fp32"], **TINY)
