"""A multiplier imported into a custom library folder is usable by every command that takes
a multiplier, given --library, and unknown without it (no environment is mutated)."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from hwcost.cli import cli

GENO = "examples/small_genotype.json"


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_custom_library_multiplier_in_search_train_evaluate_and_estimate(tmp_path):
    lib = tmp_path / "mylib"
    npy = tmp_path / "m.v"
    assert run("multipliers", "export", "mitchell8u", "--verilog", npy).exit_code == 0
    res = run("multipliers", "import", npy, "--name", "mymul", "--library", lib)
    assert res.exit_code == 0, res.output
    home = os.environ.get("HWCOST_HOME")
    small = ["--dataset", "synthetic", "--epochs", "1", "--layers", "3", "--channels", "2",
             "--batch-size", "8", "--max-steps", "1", "--backend", "cpu", "--arch", "edge"]

    res = run("search", *small, "--multiplier", "mymul", "--out", tmp_path / "s")
    assert res.exit_code == 1 and "unknown multiplier 'mymul'" in res.output
    res = run("search", *small, "--multiplier", "mymul", "--library", lib, "--out",
              tmp_path / "s")
    assert res.exit_code == 0, res.output
    assert os.environ.get("HWCOST_HOME") == home          # nothing global was changed
    geno = tmp_path / "s" / "genotype.json"
    assert json.loads(geno.read_text())["multiplier"] == "mymul"

    res = run("train", geno, *small, "--out", tmp_path / "t")
    assert res.exit_code == 1 and "mymul" in res.output    # refused before training
    res = run("train", geno, *small, "--library", lib, "--out", tmp_path / "t")
    assert res.exit_code == 0, res.output

    ckpt = tmp_path / "t" / "checkpoint.pt"
    res = run("evaluate", ckpt, "--multiplier", "mymul", "--multiplier", "exact8u",
              "--arch", "edge", "--format", "json")   # the training run's library is kept
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["multiplier"] for r in rows] == ["mymul", "exact8u"]

    res = run("estimate", GENO, "--arch", "edge", "--multiplier", "mymul", "--multiplier",
              "mitchell8u", "--library", lib, "--format", "json")
    assert res.exit_code == 0, res.output
    totals = json.loads(res.output)["totals"]
    # the imported netlist is mitchell8u's: the same circuit, the same energy
    assert totals["mymul"]["macs"] == totals["mitchell8u"]["macs"] > 0
    assert totals["mymul"]["energy_pj"] == totals["mitchell8u"]["energy_pj"]
