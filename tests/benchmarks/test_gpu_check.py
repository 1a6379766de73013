"""benchmarks/gpu_check.py must work the first time it meets a GPU: its code paths are
rehearsed here on the CPU (Triton's interpreter, tiny shapes), and on a machine without
CUDA it must say so in one line and exit 2, not crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_one_line_and_exit_2():
    res = run()
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device here")
    assert "Traceback" not in res.stderr


def test_rehearsal_runs_every_check_and_finds_the_kernel_exact():
    pytest.importorskip("triton")
    res = run("--rehearse")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [ln for ln in res.stdout.splitlines() if ln.endswith(("exact", "MISMATCH"))]
    # every small layer, float32 and float16 inputs
    assert len(rows) == 6 and all(r.endswith(" exact") for r in rows)
    assert "ms/step over 1 steps" in res.stdout and "bit-exact: yes" in res.stdout
