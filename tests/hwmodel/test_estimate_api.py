"""NetworkEstimate's tables: per-group rows add up to the network totals."""

from __future__ import annotations

import pytest

from darts.cellgraph import NetworkConfig, list_layers
from darts.genotype import load
from hwmodel.estimate import NetworkEstimator
from hwmodel.spec import load_arch
from multiplier_lib.library import resolve


def test_groups_add_up_to_the_totals_and_keep_network_order():
    geno = load("examples/small_genotype.json")
    layers = list_layers(geno, NetworkConfig.from_genotype(geno))
    est = NetworkEstimator(load_arch("edge"), effort="fast").estimate(layers,
                                                                      resolve("exact8u"))
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
