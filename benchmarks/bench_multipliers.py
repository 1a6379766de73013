"""Time to import and fully characterize multipliers, against a naive per-pair baseline.

Measured in one run, on this machine:

* ``import+characterize``: read a ~300-gate Verilog netlist, simulate the LUT over all 65,536
  pairs, compute every error metric and the 100,000-pair toggle simulation for energy.
* the whole built-in family set (every example name of every generator family).
* baseline: a plain Python gate-by-gate evaluation of the same netlist, pair by pair (what
  an ad-hoc characterization script does), timed on a sample and scaled to all pairs.

Run: ``python benchmarks/bench_multipliers.py``
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from multiplier_lib.characterize import characterize
from multiplier_lib.export import write_verilog
from multiplier_lib.generators import builtin_examples, generate
from multiplier_lib.importers import import_file
from multiplier_lib.netlist import CELLS, Netlist


def _best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _naive_pairs_per_second(nl: Netlist, pairs: int = 2000) -> float:
    """Evaluate the netlist one operand pair at a time with Python ints."""
    import numpy as np

    t0 = time.perf_counter()
    for p in range(pairs):
        a, b = p % 256, (p * 7) % 256
        values = [0, 1] + [(a >> i) & 1 for i in range(nl.a_bits)]
        values += [(b >> j) & 1 for j in range(nl.b_bits)]
        values += [0] * (nl.n_nets - len(values))
        for g in nl.gates:
            outs = CELLS[g.kind].evaluate(*(np.uint8(values[i]) for i in g.inputs))
            for net, v in zip(g.outputs, outs):
                values[net] = int(v)
    return pairs / (time.perf_counter() - t0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mul8u_bench.v"
        write_verilog(generate("exact8u"), path)
        imported = import_file(path)
        assert imported.netlist is not None
        n_gates = len(imported.netlist.gates)

        def import_and_characterize() -> None:
            characterize(import_file(path))

        t_one = _best_of(import_and_characterize)
        naive_rate = _naive_pairs_per_second(imported.netlist)
        t_naive_lut = 65536 / naive_rate

    names = builtin_examples()
    per_name = []
    t0 = time.perf_counter()
    for name in names:
        s = time.perf_counter()
        characterize(generate(name))
        per_name.append(time.perf_counter() - s)
    t_all = time.perf_counter() - t0

    rows = [
        ("import + characterize, 1 netlist", f"{n_gates} gates", t_one, t_naive_lut / t_one),
        ("baseline: naive per-pair LUT only", f"{n_gates} gates", t_naive_lut, 1.0),
        (f"built-in family set ({len(names)} multipliers)", "generate + characterize",
         t_all, None),
        ("  per multiplier, median", "", statistics.median(per_name), None),
        ("  per multiplier, max", "", max(per_name), None),
    ]
    print(f"{'what':44} {'size':24} {'seconds':>9} {'speed-up vs baseline':>21}")
    for what, size, secs, ratio in rows:
        r = f"{ratio:.0f}x" if ratio is not None else ""
        print(f"{what:44} {size:24} {secs:9.3f} {r:>21}")


if __name__ == "__main__":
    main()
