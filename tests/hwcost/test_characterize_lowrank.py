"""``hwcost characterize --lowrank R`` adds the surrogate's fidelity, and only when asked."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hwcost.cli import cli
from multiplier_lib import generate
from multiplier_lib.characterize import RECORD_KEYS
from multiplier_lib.emulate.fidelity import fidelity


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_json_gains_a_lowrank_object_only_with_the_option():
    plain = json.loads(run("characterize", "mitchell8u", "--format", "json").output)
    assert tuple(plain[0]) == RECORD_KEYS
    res = run("characterize", "mitchell8u", "exact8ux4", "--lowrank", "4", "--format", "json")
    assert res.exit_code == 0
    mitchell, exact = json.loads(res.output)
    assert tuple(mitchell) == (*RECORD_KEYS, "lowrank")
    assert {k: v for k, v in mitchell.items() if k != "lowrank"} == plain[0]
    assert mitchell["lowrank"] == fidelity(generate("mitchell8u"), 4).as_dict()
    assert 0.9 < mitchell["lowrank"]["energy_captured"] < 1
    assert 0 < mitchell["lowrank"]["error_left"] < 0.1
    assert exact["lowrank"] == {"rank": 4, "energy_captured": 1.0, "error_left": 0.0,
                                "output_rel_error": 0.0}


def test_table_gains_columns_only_with_the_option(tmp_path):
    plain = run("characterize", "drum8u_k4").output
    assert "lr_rank" not in plain
    out = tmp_path / "rep"
    res = run("characterize", "drum8u_k4", "--lowrank", "2", "--out", str(out))
    assert res.exit_code == 0
    header, _rule, row = res.output.splitlines()[:3]
    assert header.split()[-3:] == ["lr_rank", "lr_energy%", "lr_err_left%"]
    assert row.split()[-3:] == ["2", "100", "0"]  # drum8u_k4's error table has rank 2
    assert "lowrank" not in (out / "report.md").read_text()


def test_invalid_rank_is_one_line_naming_the_multiplier():
    res = run("characterize", "exact8u", "exact8ux4", "--lowrank", "17")
    assert res.exit_code == 1
    assert "exact8ux4" in res.output and "0..16" in res.output
    assert "Traceback" not in res.output
    neg = run("characterize", "exact8u", "--lowrank", "-1")
    assert neg.exit_code == 1 and "0..256" in neg.output
