"""Same seed, same thread count: the same results, bit for bit, in separate processes (what
the README's worked examples rely on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--dataset", "synthetic", "--epochs", "2", "--layers", "3", "--channels", "2",
        "--batch-size", "8", "--max-steps", "2", "--threads", "1"]


def _run(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "hwcost", *args], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]


def test_search_then_train_twice_gives_identical_files(tmp_path):
    for run in ("a", "b"):
        _run("search", *TINY, "--multipliers", "exact8u,trunc8u_k6c", "--energy-weight", "0.5",
             "--seed", "3", "--out", str(tmp_path / run / "search"))
        _run("train", str(tmp_path / run / "search" / "genotype.json"), *TINY, "--seed", "1",
             "--out", str(tmp_path / run / "train"))
    for name in ("search/genotype.json", "search/search.csv", "train/train.csv",
                 "train/result.json"):
        a = (tmp_path / "a" / name).read_bytes()
        b = (tmp_path / "b" / name).read_bytes()
        assert a == b, name
