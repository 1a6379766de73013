"""benchmarks/bench_search.py times the same supernet four ways: its plain DARTS reference
must be hwcost's search network (same parameters, same MACs), and the script must run
end to end on tiny shapes and print every row of its table."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_search.py"


def _module():
    if str(SCRIPT.parent) not in sys.path:   # its sibling modules, as when run as a script
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_search", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def one_thread():
    """One torch thread (as the script's default): on a busy 2-core machine a second
    thread spins waiting for a core and slows the forwards several times."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("layers,channels,nodes", [(3, 4, 4), (5, 8, 4), (4, 2, 2)])
def test_reference_is_the_same_supernet(layers, channels, nodes):
    bench = _module()
    args = SimpleNamespace(layers=layers, channels=channels, nodes=nodes, batch=2,
                           input_size=16, classes=10, multiplier="trunc8u_k6c",
                           candidates="exact8u,trunc8u_k6c,drum8u_k4")
    ref, _ = bench.build("a", args)
    ours, _ = bench.build("b", args)
    assert bench.n_weights(ref) == bench.n_weights(ours)
    assert bench.count_macs(ref, args) == bench.count_macs(ours, args)
    assert [tuple(a.shape) for a in ref.alphas()] == [tuple(a.shape) for a in ours.alphas()]


def test_reference_primitives_are_darts_order():
    from darts.genotype import PRIMITIVES

    assert tuple(PRIMITIVES) == _module().REF_PRIMITIVES


def test_runs_and_prints_every_row():
    res = subprocess.run([sys.executable, str(SCRIPT), "--channels", "2", "--batch", "2",
                          "--input-size", "8", "--warmup", "0", "--repeat", "1"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "thread(s)" in out and "avx2" in out and "cpu backend" in out
    for row in "abcdef":
        assert f"\n({row}) " in out
    assert "3 candidates, per conv" in out
    assert "<= 1.3x (b)" in out and "<= 1.6x (b)" in out
