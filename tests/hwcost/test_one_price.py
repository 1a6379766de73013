"""One network, one arithmetic, one accelerator: the same energy through every entry point.

A per-edge search on the synthetic task gives a genotype with per-edge multipliers; its energy
is then asked of ``hwcost estimate``, the search's own summary, the search's op energy table
and the differentiable penalty at one-hot weights, ``hwcost train``'s report, ``hwcost
evaluate`` and a sweep point, with and without a forced ``--multiplier``.  Each pair is
compared to the last bit a float sum allows: the entry points must share one costing function,
not agree roughly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from darts.cellgraph import NetworkConfig
from darts.genotype import PRIMITIVES
from darts.genotype_io import load
from darts.op_energy import build_op_energy_table
from darts.pricing import price_network
from hwcost.cli import cli
from hwmodel.costing import CostContext
from nas.energy_penalty import expected_energy

MULTS = ["exact8u", "trunc8u_k8"]
FORCED = "drum8u_k4"
TINY = ["--dataset", "synthetic", "--input-size", "8", "--epochs", "1", "--layers", "3",
        "--channels", "2", "--batch-size", "16", "--max-steps", "1"]
#: the trained network as estimate prices it: TINY's cells, channels and image size
TRAINED = ["--layers", "3", "--channels", "2", "--input", "8x8"]


def invoke(*args: str) -> str:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.stdout


def estimate(genotype: Path, *extra: str) -> float:
    out = invoke("estimate", genotype, "--arch", "eyeriss", "--format", "json", *extra)
    doc = json.loads(out)
    return next(iter(doc["totals"].values()))["energy_pj"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search")
    invoke("search", *TINY, "--multipliers", ",".join(MULTS), "--energy-weight", "0.5",
           "--out", out)
    return out


def test_search_summary_is_the_estimate_of_its_genotype(searched):
    geno = load(searched / "genotype.json")
    assert geno.normal_multipliers is not None and geno.multiplier == MULTS[0]
    summary = json.loads((searched / "estimate.json").read_text())
    assert summary["energy_pj"] == pytest.approx(estimate(searched / "genotype.json"),
                                                 rel=1e-12)


def test_penalty_at_the_chosen_weights_is_the_estimate_at_the_search_size(searched):
    """One-hot alphas on the kept edges ('none' elsewhere) and one-hot betas on their
    multipliers: the expected energy is the network the genotype describes, at the search
    network's size, as the estimate command prices it with the same mapper effort."""
    geno = load(searched / "genotype.json")
    context = CostContext.for_spec("eyeriss", effort="fast")
    table = build_op_energy_table(context, MULTS, layers=3, channels=2, input_size=8,
                                  classes=10)
    weights = []
    for cell in ("normal", "reduce"):
        alpha = torch.full((len(table.edges), len(PRIMITIVES)), -60.0, dtype=torch.float64)
        beta = torch.full((len(table.edges), len(MULTS)), -60.0, dtype=torch.float64)
        alpha[:, PRIMITIVES.index("none")] = 60.0
        beta[:, 0] = 60.0
        for k, ((op, j), mult) in enumerate(zip(geno.edges(cell), geno.edge_multipliers(cell))):
            e = table.edges.index((k // 2 + 2, j))
            alpha[e] = -60.0
            alpha[e, PRIMITIVES.index(op)] = 60.0
            beta[e] = -60.0
            beta[e, MULTS.index(mult)] = 60.0
        weights.append((alpha, beta))
    (a_n, b_n), (a_r, b_r) = weights
    penalty = float(expected_energy(table, a_n, a_r, b_n, b_r))
    network = NetworkConfig.from_genotype(geno, layers=3, channels=2, input_size=8,
                                          classes=10)
    priced = price_network(geno, network, context).total("energy_pj")
    assert penalty == pytest.approx(priced, rel=1e-9)
    cli_fast = estimate(searched / "genotype.json", "--effort", "fast", *TRAINED,
                        "--classes", "10")
    assert priced == pytest.approx(cli_fast, rel=1e-12)


@pytest.mark.parametrize("forced", [None, FORCED])
def test_train_and_evaluate_report_the_estimate(searched, tmp_path, forced):
    """``--multiplier`` replaces every multiplier, per-edge ones included, in the network
    train builds, in train's and evaluate's energy and in estimate alike."""
    geno = searched / "genotype.json"
    force = [] if forced is None else ["--multiplier", forced]
    out = tmp_path / "train"
    invoke("train", geno, *TINY, *force, "--out", out)
    reported = json.loads((out / "result.json").read_text())["energy_pj"]
    wanted = estimate(geno, *TRAINED, *force)
    assert reported == pytest.approx(wanted, rel=1e-12)
    rows = json.loads(invoke("evaluate", out / "checkpoint.pt", "--format", "json"))
    assert rows[0]["multiplier"] == "as trained"
    assert rows[0]["energy_pj"] == pytest.approx(wanted, rel=1e-12)
    if forced is None:     # a swap after training replaces the per-edge ones too
        swapped = json.loads(invoke("evaluate", out / "checkpoint.pt", "--multiplier", FORCED,
                                    "--format", "json"))
        assert swapped[0]["energy_pj"] == pytest.approx(
            estimate(geno, *TRAINED, "--multiplier", FORCED),
            rel=1e-12)
        # (above or below: drum8u_k4 costs more than trunc8u_k8, less than exact8u)
        assert swapped[0]["energy_pj"] != pytest.approx(wanted, rel=1e-6)


def test_forced_multiplier_differs_from_the_per_edge_price(searched):
    """The disagreement this test file exists for: a forced multiplier must reach the edges
    the genotype chose for (so the per-edge and forced prices differ), and forcing the
    genotype's own network-wide multiplier is not the per-edge price either."""
    geno = searched / "genotype.json"
    own = estimate(geno)
    forced_first = estimate(geno, "--multiplier", MULTS[0])
    forced_other = estimate(geno, "--multiplier", MULTS[1])
    doc = load(geno)
    chosen = {m for cell in ("normal", "reduce") for m in doc.edge_multipliers(cell)}
    if MULTS[1] in chosen:      # the search put the cheap multiplier on some edge
        assert forced_other < own < forced_first
    else:
        assert own == pytest.approx(forced_first, rel=1e-12)


def test_sweep_point_reports_the_estimate(tmp_path):
    from nas.sweep import load_sweep, run_point

    path = tmp_path / "sweep.yaml"
    path.write_text(
        "data: {dataset: synthetic, synthetic_size: 64, input_size: 8}\n"
        f"grid:\n  multipliers: [[{', '.join(MULTS)}]]\n  energy_weight: [0.5]\n"
        "  arch: [eyeriss]\n"
        "search: {epochs: 1, layers: 3, channels: 2, batch_size: 16, max_steps: 1}\n"
        "train: {epochs: 1, layers: 3, channels: 2, batch_size: 16, max_steps: 1}\n"
        "baseline: fp32\nresources: {cpus: 1}\n")
    sweep = load_sweep(path)
    (point,) = sweep.points
    row = run_point(sweep, point, tmp_path / "point")
    assert row["status"] == "done", row.get("error")
    geno = tmp_path / "found.json"
    geno.write_text(json.dumps(row["genotype"]))
    assert row["energy_uj"] * 1e6 == pytest.approx(
        estimate(geno, *TRAINED), rel=1e-9)
    assert row["baseline_energy_uj"] * 1e6 == pytest.approx(
        estimate(geno, *TRAINED, "--multiplier", "fp32"), rel=1e-9)
