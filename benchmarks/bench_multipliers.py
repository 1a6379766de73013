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

from load_check import warn_if_busy

from multiplier_lib.characterize import characterize
from multiplier_lib.generators import builtin_examples, generate
from multiplier_lib.importers import import_file
from multiplier_lib.netlist import CELLS, Netlist


def _expression_verilog(nl: Netlist, name: str) -> str:
    """The netlist in EvoApprox expression style, adders split into 2-input gates (~300)."""
    def net(n: int) -> str:
        return nl.net_names[n] if nl.is_primary(n) and n > 1 else (
            "1'b0" if n == 0 else "1'b1" if n == 1 else f"n{n}")

    lines = [f"module {name}(A, B, O);", "  input [7:0] A;", "  input [7:0] B;",
             "  output [15:0] O;"]
    body = []
    extra = nl.n_nets
    for g in nl.gates:
        i = [net(x) for x in g.inputs]
        o = [net(x) for x in g.outputs]
        if g.kind == "AND":
            body.append(f"  assign {o[0]} = {i[0]} & {i[1]};")
        elif g.kind == "HA":
            body += [f"  assign {o[0]} = {i[0]} ^ {i[1]};", f"  assign {o[1]} = {i[0]} & {i[1]};"]
        elif g.kind == "FA":
            t, u, v = f"n{extra}", f"n{extra + 1}", f"n{extra + 2}"
            extra += 3
            body += [f"  assign {t} = {i[0]} ^ {i[1]};", f"  assign {o[0]} = {t} ^ {i[2]};",
                     f"  assign {u} = {i[0]} & {i[1]};", f"  assign {v} = {t} & {i[2]};",
                     f"  assign {o[1]} = {u} | {v};"]
        else:
            raise ValueError(f"benchmark netlist has an unexpected {g.kind}")
    wires = sorted({w.split()[1] for w in body if w.split()[1].startswith("n")})
    lines.append(f"  wire {', '.join(wires)};")
    lines += body
    lines += [f"  assign O[{k}] = {net(n)};" for k, n in enumerate(nl.outputs)]
    return "\n".join([*lines, "endmodule", ""])


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
    warn_if_busy()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mul8u_bench.v"
        exact = generate("exact8u").netlist
        assert exact is not None
        path.write_text(_expression_verilog(exact, "mul8u_bench"))
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
