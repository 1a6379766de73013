"""The costing function: per-group tables, per-layer arithmetic, provenance, and a property
over random layer lists (a network's price is the sum of its layers, each priced alone with
the arithmetic it ends up with, and its MAC energy is MACs x the arithmetic's own energy)."""

from __future__ import annotations

import random

import pytest

from core.arithmetic import float_format
from core.errors import HwcostError
from darts.cellgraph import NetworkConfig, list_layers
from darts.genotype_io import load
from hwmodel.costing import CostContext, price
from hwmodel.energy import build_energy_table
from hwmodel.float_formats import float_variant
from hwmodel.workload import Layer
from multiplier_lib.library import resolve

POOL = ["exact8u", "trunc8u_k6c", "drum8u_k4", "fp16", None]


@pytest.fixture(scope="module")
def edge() -> CostContext:
    return CostContext.for_spec("edge", effort="fast")


def test_groups_add_up_to_the_totals_and_keep_network_order(edge):
    geno = load("examples/small_genotype.json")
    layers = list_layers(geno, NetworkConfig.from_genotype(geno))
    est = price(layers, "exact8u", edge)
    groups = est.by_group()
    totals = est.totals()
    assert groups[0]["name"] == "stem" and groups[-1]["name"] == "classifier"
    assert sum(g["layers"] for g in groups) == len(layers)
    assert sum(g["macs"] for g in groups) == totals["macs"]
    assert sum(g["energy_pj"] for g in groups) == pytest.approx(totals["energy_pj"])
    for lv in est.level_names:
        assert sum(g[f"{lv}_pj"] for g in groups) == pytest.approx(totals["levels_pj"][lv])
    assert totals["energy_pj"] == pytest.approx(totals["arithmetic_pj"] + totals["memory_pj"])
    row = est.layers[0].row(est.level_names)
    assert row["name"] == layers[0].name and row["energy_pj"] == est.layers[0].energy_pj


def random_layer(rng: random.Random, i: int) -> Layer:
    kind = rng.choice(["conv", "conv", "fc", "pool", "eltwise"])
    mult = rng.choice(POOL)
    if kind == "conv":
        return Layer(f"l{i}", "conv", C=rng.choice([1, 3, 8]), M=rng.choice([2, 8, 16]),
                     P=rng.choice([1, 4, 7]), Q=rng.choice([1, 4, 7]), R=rng.choice([1, 3]),
                     S=rng.choice([1, 3]), groups=rng.choice([1, 1, 2]), multiplier=mult)
    if kind == "fc":
        return Layer(f"l{i}", "fc", C=rng.choice([8, 32]), M=rng.choice([4, 10]),
                     multiplier=mult)
    if kind == "pool":
        return Layer(f"l{i}", "pool", C=1, M=1, P=4, Q=4, R=3, S=3, groups=8,
                     extra={"op": "max"}, multiplier=mult)
    return Layer(f"l{i}", "eltwise", P=4, Q=4, groups=rng.choice([4, 8]),
                 extra={"op": "add", "operands": rng.choice([2, 3])}, multiplier=mult)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per_edge", ["keep", "override"])
def test_network_price_is_the_sum_of_its_layers_priced_alone(edge, seed, per_edge):
    rng = random.Random(seed)
    layers = [random_layer(rng, i) for i in range(rng.randint(1, 7))]
    base = rng.choice(["exact8u", "trunc8u_k6c", "fp32", None])
    whole = price(layers, base, edge, per_edge)
    alone_total = 0.0
    for layer, cost in zip(layers, whole.layers):
        used = layer.multiplier if per_edge == "keep" and layer.multiplier else base
        label = used or "exact (built-in)"
        assert cost.multiplier == label
        alone = price([layer], used, edge, "override")
        assert alone.layers[0].energy_pj == pytest.approx(cost.energy_pj, rel=1e-12)
        alone_total += alone.total("energy_pj")
        # the MAC energy is every MAC at the arithmetic's own multiply and add energies, the
        # table built directly (the float ones on the design rebuilt for the format's words)
        if layer.kind in ("conv", "fc"):
            fmt = float_format(used)
            arch = edge.arch if fmt is None else float_variant(edge.arch, fmt)
            mult = None if used is None or fmt is not None else resolve(used)
            table = build_energy_table(arch, mult)
            assert cost.multiply_pj == pytest.approx(layer.macs * table.multiply(), rel=1e-12)
            assert cost.add_pj == pytest.approx(layer.macs * table.add(), rel=1e-12)
        else:
            assert cost.macs == 0 and cost.multiply_pj == 0.0
    assert whole.total("energy_pj") == pytest.approx(alone_total, rel=1e-12)
    assert whole.macs == sum(layer.macs for layer in layers)
    used_labels = {c.multiplier for c in whole.layers}
    assert set(whole.provenance["arithmetic"]) == used_labels
    assert whole.provenance["per_edge"] == per_edge


def test_provenance_names_the_context_and_every_arithmetic(edge):
    layers = [Layer("a", "conv", C=8, M=8, P=4, Q=4, R=3, S=3, multiplier="drum8u_k4"),
              Layer("b", "conv", C=8, M=8, P=4, Q=4, R=3, S=3)]
    cost = price(layers, "fp16", edge)
    prov = cost.provenance
    assert prov["arch"] == edge.arch.name and prov["effort"] == "fast"
    assert prov["estimators"] == "builtin" and prov["ert"] is None
    assert set(prov["arithmetic"]) == {"drum8u_k4", "fp16"}
    assert "drum8u_k4" in prov["arithmetic"]["drum8u_k4"]["multiply"]["source"]
    assert prov["arithmetic"]["fp16"]["design"].endswith("(fp16)")
    assert "FP16" in prov["arithmetic"]["fp16"]["multiply"]["source"]


def test_mistakes_are_one_clear_error(edge, tmp_path):
    with pytest.raises(HwcostError, match="per_edge must be 'keep' or 'override'"):
        price([], "exact8u", edge, "replace")
    with pytest.raises(HwcostError, match="unknown mapper effort 'quick'"):
        CostContext.for_spec("edge", effort="quick")
    with pytest.raises(HwcostError, match="no_such_multiplier"):
        price([Layer("a", "fc", C=4, M=4)], "no_such_multiplier", edge)
    from hwmodel.energy import write_energy_ert

    ert = write_energy_ert(tmp_path / "ert.yaml", edge.arch, edge.base_energy)
    with_ert = CostContext.for_spec("edge", effort="fast", ert=ert)
    with pytest.raises(HwcostError, match="fp32: a float baseline cannot be priced with an ERT"):
        price([Layer("a", "fc", C=4, M=4)], "fp32", with_ert)
    # the ERT written from the context's own table prices the integer design identically
    layer = Layer("a", "conv", C=8, M=8, P=4, Q=4, R=3, S=3)
    assert price([layer], "trunc8u_k6c", with_ert).total("energy_pj") == pytest.approx(
        price([layer], "trunc8u_k6c", edge).total("energy_pj"), rel=1e-9)
