"""hwcost's mapper against every Timeloop mapper reference run it reads: the README's table.

For each run of ``tests/hwmodel/timeloop_runs.py`` (the tutorial's mapper exercises 05 and 06,
the four example designs, the ISPASS 2020 Eyeriss-like design from its Jinja template with an
integer and a float MAC, the 2024 tutorial's buffer+DRAM design) it maps the problem with the
run's own ``optimization_metrics`` at the default effort and at a larger budget, and prints
hwcost's energy and objective over Timeloop's, the cycles, the evidence and the time.  Both
sides are priced by hwcost's model with the run's ERT; the model prices Timeloop's own mapping
as Timeloop did (``tests/hwmodel/test_timeloop_reference.py``, ``test_mapper_vs_timeloop.py``).

Run: ``python benchmarks/timeloop_mapper_runs.py [--budget 12000]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hwmodel"))

from timeloop_runs import RUNS  # noqa: E402

from hwmodel.mapper import WORK_BUDGET, Mapper  # noqa: E402
from hwmodel.objectives import parse_objective  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=12_000,
                        help="the larger budget's work units (default %(default)s)")
    args = parser.parse_args()
    print(f"{'run':38} {'metrics':13} {'budget':>7} {'E hw/TL':>8} {'obj hw/TL':>9} "
          f"{'cycles hw':>10} {'cycles TL':>10} {'s':>6}  evidence")
    for name in RUNS:
        run = RUNS[name]()
        objective = parse_objective(run.metrics)
        theirs = objective.value(run.energy_pj, run.cycles)[0]
        for budget in (WORK_BUDGET, args.budget):
            t0 = time.perf_counter()
            found = Mapper(run.arch, run.energy, objective, work_budget=budget).map(
                run.workload)
            seconds = time.perf_counter() - t0
            res = found.result
            ours = objective.value(res.energy_pj, res.cycles)[0]
            evidence = "optimal" if found.optimal else "gap " + ", ".join(
                f"{m} {100 * g:.1f} %" for m, g in zip(objective.key_metrics, found.gaps)
                if m in objective.metrics)
            print(f"{name:38} {run.metrics:13} {budget:7d} {res.energy_pj / run.energy_pj:8.3f}"
                  f" {ours / theirs:9.3f} {res.cycles:10.0f} {run.cycles:10.0f} "
                  f"{seconds:6.2f}  {evidence}")


if __name__ == "__main__":
    main()
