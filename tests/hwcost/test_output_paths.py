"""Output paths that cannot be written, as a class: every output option of every command,
given each kind of bad path, answers one line before any work and creates nothing; a command
that fails later leaves no empty output folder behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwcost.cli import cli

ROOT = Path(__file__).resolve().parents[2]
GENO = str(ROOT / "examples" / "small_genotype.json")
TINY = ["--dataset", "synthetic", "--epochs", "1", "--layers", "3", "--channels", "2",
        "--batch-size", "4", "--max-steps", "1"]

#: command lines with a folder output; {} is the path
FOLDER_OPTIONS = {
    "characterize --out": ["characterize", "exact8u", "--out", "{}"],
    "search --out": ["search", *TINY, "--out", "{}"],
    "train --out": ["train", GENO, *TINY, "--out", "{}"],
    "sweep --out": ["sweep", str(ROOT / "examples" / "sweep_synthetic.yaml"), "--out", "{}"],
    "experiment --out": ["experiment", "--quick", "--out", "{}"],
    "estimate --export-timeloop": ["estimate", GENO, "--arch", "eyeriss", "--effort", "fast",
                                   "--export-timeloop", "{}"],
}
#: command lines with a file output
FILE_OPTIONS = {
    "estimate --plot": ["estimate", GENO, "--arch", "eyeriss", "--effort", "fast", "--plot",
                        "{}"],
    "estimate --write-ert": ["estimate", GENO, "--arch", "eyeriss", "--effort", "fast",
                             "--write-ert", "{}"],
    "map --out": ["map", "--arch", "eyeriss", "--problem", "p.yaml", "--out", "{}"],
    "multipliers export --verilog": ["multipliers", "export", "exact8u", "--verilog", "{}"],
    "multipliers export --bin": ["multipliers", "export", "exact8u", "--bin", "{}"],
    "multipliers export --npy": ["multipliers", "export", "exact8u", "--npy", "{}"],
}


def _bad_folders(tmp: Path) -> dict[str, str]:
    (tmp / "afile").write_text("x")
    return {
        "under a file": str(tmp / "afile" / "run"),
        "a file": str(tmp / "afile"),
        "/proc": "/proc/hwcost-out-test/run",
        "a name too long": str(tmp / ("n" * 300) / "run"),
        "a NUL byte": str(tmp / "a\0b"),
    }


def _bad_files(tmp: Path) -> dict[str, str]:
    (tmp / "afile").write_text("x")
    (tmp / "adir").mkdir()
    os.mkfifo(tmp / "afifo")
    (tmp / "alink").symlink_to(tmp / "afile")
    return {
        "a missing folder": str(tmp / "nope" / "out.x"),
        "under a file": str(tmp / "afile" / "out.x"),
        "/proc": "/proc/hwcost-out-test.x",
        "a folder": str(tmp / "adir"),
        "a fifo": str(tmp / "afifo"),
        "a symlink": str(tmp / "alink"),
        "a name too long": str(tmp / ("n" * 300 + ".x")),
    }


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _check_refused(tmp_path: Path, argv: list[str], path: str) -> None:
    before = _tree(tmp_path)
    res = CliRunner().invoke(cli, [a.replace("{}", path) for a in argv])
    text = res.output.strip()
    assert res.exit_code != 0, text
    assert len(text.splitlines()) == 1 and text.startswith("Error:"), text
    assert "Traceback" not in text
    assert _tree(tmp_path) == before          # nothing created, nothing replaced
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("option", sorted(FOLDER_OPTIONS))
@pytest.mark.parametrize("kind", ["under a file", "a file", "/proc", "a name too long",
                                  "a NUL byte"])
def test_unwritable_output_folders_are_one_line(tmp_path, option, kind):
    _check_refused(tmp_path, FOLDER_OPTIONS[option], _bad_folders(tmp_path)[kind])


@pytest.mark.parametrize("option", sorted(FILE_OPTIONS))
@pytest.mark.parametrize("kind", ["a missing folder", "under a file", "/proc", "a folder",
                                  "a fifo", "a symlink", "a name too long"])
def test_unwritable_output_files_are_one_line(tmp_path, option, kind):
    _check_refused(tmp_path, FILE_OPTIONS[option], _bad_files(tmp_path)[kind])


def test_a_command_that_fails_later_leaves_no_empty_folder(tmp_path):
    out = tmp_path / "new" / "deeper" / "run"
    res = CliRunner().invoke(cli, ["train", GENO, "--dataset", "cifar10", "--data-dir",
                                   str(tmp_path / "no-data"), "--out", str(out)])
    assert res.exit_code == 1 and "CIFAR-10 data not found" in res.output
    assert not (tmp_path / "new").exists()


def test_a_failed_command_keeps_a_folder_that_existed_or_holds_files(tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    res = CliRunner().invoke(cli, ["train", GENO, "--dataset", "cifar10", "--data-dir",
                                   str(tmp_path / "no-data"), "--out", str(keep)])
    assert res.exit_code == 1 and keep.is_dir()


def test_good_output_paths_are_created_and_kept(tmp_path):
    out = tmp_path / "new" / "report"
    res = CliRunner().invoke(cli, ["characterize", "exact8u", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.md").is_file()
    res = CliRunner().invoke(cli, ["multipliers", "export", "exact8u", "--npy",
                                   str(tmp_path / "exact.npy")])
    assert res.exit_code == 0 and (tmp_path / "exact.npy").stat().st_size > 0
