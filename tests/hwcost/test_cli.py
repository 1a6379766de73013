"""The hwcost CLI: commands work end to end and user mistakes give one line, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from hwcost import __version__
from hwcost.cli import cli
from multiplier_lib import exact_lut
from multiplier_lib.characterize import RECORD_KEYS

SUBCOMMANDS = [["multipliers"], ["multipliers", "import"], ["multipliers", "list"],
               ["multipliers", "show"], ["multipliers", "export"], ["multipliers", "remove"],
               ["characterize"], ["estimate"], ["map"], ["evaluate-mapping"], ["search"],
               ["train"], ["evaluate"]]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_version_and_help():
    assert run("--version").output.strip().endswith(__version__)
    out = run("--help").output
    assert "multipliers" in out and "characterize" in out


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_every_subcommand_help_has_an_example(cmd):
    res = run(*cmd, "--help")
    assert res.exit_code == 0
    assert "Example" in res.output and "hwcost " in res.output


def test_import_list_show_force(tmp_path):
    table = exact_lut(8, 8, False).astype(np.int32)
    table[255, 255] = 0
    path = tmp_path / "mul8u_TEST.npy"
    np.save(path, table)
    res = run("multipliers", "import", str(path))
    assert res.exit_code == 0 and "imported mul8u_TEST" in res.output
    assert "mul8u_TEST" in run("multipliers", "list").output
    again = run("multipliers", "import", str(path))
    assert again.exit_code == 1 and "--force" in again.output
    assert run("multipliers", "import", str(path), "--force").exit_code == 0
    show = json.loads(run("multipliers", "show", "mul8u_TEST", "--format", "json").output)
    assert show["a_bits"] == 8 and show["gates"] is None and len(show["source_sha256"]) == 64


def test_failed_import_leaves_library_unchanged(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, exact_lut(4, 4, False).astype(np.int32))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 100)
    res = run("multipliers", "import", str(good), str(bad))
    assert res.exit_code == 1
    assert "bad.bin" in res.output and "131072" in res.output.replace(",", "")
    assert "good" not in run("multipliers", "list").output.split("multiplier(s)")[1]


def test_characterize_json_matches_closed_form(tmp_path):
    res = run("characterize", "exact8u", "trunc8u_k4", "--format", "json")
    assert res.exit_code == 0
    records = json.loads(res.output)
    assert [tuple(r) for r in records] == [RECORD_KEYS, RECORD_KEYS]
    exact, trunc = records
    assert exact["mae"] == 0 and exact["energy_rel_exact"] == pytest.approx(1.0)
    # dropping columns i+j < 4: each dropped bit is 1 with probability 1/4
    expected_mae = sum(2 ** (i + j) for i in range(8) for j in range(8) if i + j < 4) / 4
    assert trunc["mae"] == pytest.approx(expected_mae)
    assert trunc["bias"] == pytest.approx(-expected_mae)
    assert trunc["energy_rel_exact"] < 1
    assert trunc["gates"]["AND"] < exact["gates"]["AND"]


def test_characterize_table_and_report(tmp_path):
    out = tmp_path / "rep"
    res = run("characterize", "exact8u", "drum8u_k4", "--out", str(out))
    assert res.exit_code == 0
    assert "drum8u_k4" in res.output and "energy_pj" in res.output
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert "drum8u_k4" in (out / "report.md").read_text()


def test_characterize_with_histograms(tmp_path):
    acts = tmp_path / "acts.npy"
    np.save(acts, np.r_[np.ones(16), np.zeros(240)])  # only small activations
    uniform = json.loads(run("characterize", "trunc8u_k6", "--format", "json").output)[0]
    skewed = json.loads(run("characterize", "trunc8u_k6", "--format", "json",
                            "--acts-hist", str(acts)).output)[0]
    assert skewed["mae"] < uniform["mae"]
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(256))
    res = run("characterize", "exact8u", "--acts-hist", str(bad))
    assert res.exit_code == 1 and "bad.npy" in res.output and "positive" in res.output


def test_unknown_multiplier_suggests(tmp_path):
    res = run("characterize", "exact8uu")
    assert res.exit_code == 1
    assert "unknown multiplier" in res.output and "did you mean" in res.output


def test_export_then_import_round_trip(tmp_path):
    v = tmp_path / "bam.v"
    b = tmp_path / "bam.bin"
    assert run("multipliers", "export", "bam8u_h2v6", "--verilog", str(v),
               "--bin", str(b)).exit_code == 0
    assert run("multipliers", "import", str(v), "--name", "bam_v").exit_code == 0
    assert run("multipliers", "import", str(b), "--name", "bam_b").exit_code == 0
    recs = json.loads(run("characterize", "bam8u_h2v6", "bam_v", "bam_b",
                          "--format", "json").output)
    assert recs[0]["mae"] == recs[1]["mae"] == recs[2]["mae"] > 0
    assert recs[0]["gates"] == recs[1]["gates"]
    assert recs[2]["gates"] is None


def test_entry_point_prints_one_line_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "from hwcost.cli import main; main()",
                           "characterize", str(tmp_path / "missing.v")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.v" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("cmd", [["search", "--out", "unused"],
                                 ["train", "genotype.json", "--out", "unused"],
                                 ["evaluate", "ckpt.pt"]])
def test_removed_lowrank_backend_is_an_invalid_choice(cmd):
    command = cli.commands[cmd[0]]
    choices = next(p.type.choices for p in command.params if p.name == "backend")
    assert "lowrank" not in choices and {"auto", "reference", "cpu", "triton"} <= set(choices)
    res = run(cmd[0], "--backend", "lowrank", *cmd[1:])
    assert res.exit_code == 2
    assert "Invalid value for '--backend'" in res.output and "'lowrank'" in res.output


def test_removed_characterize_lowrank_option_is_unknown():
    res = run("characterize", "exact8u", "--lowrank", "4")
    assert res.exit_code == 2 and "No such option" in res.output and "--lowrank" in res.output


def test_remove_checks_every_name_before_deleting_any(tmp_path):
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples" / "multipliers"
    assert run("multipliers", "import", str(examples / "mul8u_bam26.bin")).exit_code == 0
    res = CliRunner().invoke(cli, ["multipliers", "remove", "mul8u_bam26", "nosuch", "other"])
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "'nosuch', 'other' are not in the library" in \
        res.output and "nothing was removed" in res.output
    assert "mul8u_bam26" in run("multipliers", "list").output        # still there
    res = CliRunner().invoke(cli, ["multipliers", "remove", "mul8u_bam26", "mul8u_bam26"])
    assert res.exit_code == 0 and res.output == "removed mul8u_bam26\n"
    assert "mul8u_bam26" not in run("multipliers", "list").output
