"""Benchmarks that cannot print nonsense: a warning when the machine is shared, and a fixed
cost measured within interleaved rounds (never the difference of two separate bests)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(("others", "warned"), [(0.0, False), (1.0, True), (3.0, True),
                                                (None, False)])
def test_a_shared_machine_is_announced(monkeypatch, capsys, others, warned):
    mod = _load("load_check")
    monkeypatch.setattr(mod, "busy_elsewhere", lambda: others)
    assert mod.warn_if_busy() is warned
    out = capsys.readouterr().out
    assert ("timings below are unreliable" in out) is warned
    if warned:
        assert out.count("\n") == 1 and f"{others:g} other task(s)" in out


def test_every_timing_benchmark_checks_the_load():
    for name in ("bench_emulation", "bench_mapper", "bench_multipliers", "bench_search"):
        assert "warn_if_busy()" in (BENCH / f"{name}.py").read_text(), name


def test_fixed_cost_is_the_median_difference_within_rounds():
    """A layer of 3 ms around a kernel of 1 ms: the fixed cost is ~2 ms, whatever moment of
    the run each is timed in; a layer no slower than its kernel gives a fixed cost <= 0,
    which the table prints as not measurable rather than as a negative time."""
    mod = _load("bench_emulation")
    total, fixed = mod._paired(lambda: time.sleep(0.003), lambda: time.sleep(0.001), 50)
    assert 2900 <= total <= 6000 and 1500 <= fixed <= 3500
    _, none = mod._paired(lambda: time.sleep(0.001), lambda: time.sleep(0.001), 50)
    assert abs(none) < 500


def test_emulation_benchmark_reruns_itself_with_a_fixed_allocator_once():
    mod = _load("bench_emulation")
    env = mod._reexec_env("fixed", {"PATH": "/bin", "MALLOC_MMAP_THRESHOLD_": "1"})
    assert env["PATH"] == "/bin"
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(32 << 20)
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(256 << 20)
    assert mod._reexec_env("fixed", env) is None        # already fixed: no second re-run
    assert mod._reexec_env("as-is", {"PATH": "/bin"}) is None
