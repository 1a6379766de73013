"""Reference table of Accelergy's own component energies (hwcomponents), for the built-in fit.

Run under a Python >= 3.12 environment with the ``[accelergy]`` extra (see the README's
"Energy of components"; CACTI rebuilt with ``python -m hwmodel.accelergy_estimators
build-cacti``)::

    python benchmarks/accelergy_table.py            # writes hwmodel/data/accelergy_reference.json
    python benchmarks/accelergy_table.py --grid     # writes hwmodel/data/cacti_sram_grid.json
    python benchmarks/accelergy_table.py --heldout  # writes hwmodel/data/accelergy_heldout.json
    python benchmarks/accelergy_table.py --check    # compares the built-in estimators only
    python benchmarks/accelergy_table.py --markdown # the README's fidelity table

Every row is what ``--estimators accelergy`` gives for one component (the same queries,
:mod:`hwmodel.accelergy_estimators`): SRAM and ``smartbuffer_SRAM`` over depths, widths and
banks, register files (``regfile``/``smartbuffer_RF``) and registers, DRAM types, integer
MACs, adders and multipliers of 4-32 bits, at 45 nm and, for a subset, 22, 32 and 65 nm.
Storage figures are per access of one ``width``-bit row (read, write; update = write) and
leak per cycle at 1 ns; compute figures per operation.  Classes hwcomponents has no model
for (``fpmac`` in fp16/bf16/fp32, a ``GDDR5`` DRAM) are listed under ``unsupported``.

The table is checked in with its provenance (package versions, command, date, the CACTI
rebuild) and ``tests/hwmodel/test_estimator_fidelity.py`` holds every built-in figure to
within 25 % of it, on any Python, without hwcomponents.

Two more files come from the same queries:

* ``--grid``: the **SRAM grid** that the built-in SRAM estimator interpolates
  (:func:`hwmodel.estimators.sram_array_pj`): hwcomponents' ``SRAM`` read and write at
  CACTI-native sizes only (width a multiple of 8 and >= 32 bits, >= 64 rows per bank,
  power-of-two banks, CACTI's own technology nodes), where hwcomponents-cacti scales nothing,
  so every figure is CACTI's own answer (at 90 nm through :func:`hwc_technology_nm`, around
  a hwcomponents-cacti slip).  Axes: :data:`GRID_NODES`, :data:`GRID_BANKS`,
  :data:`GRID_WIDTHS` (x2 steps), :data:`GRID_DEPTHS` (x2 steps).  CACTI's read energy jumps
  where it changes the array organisation (it keeps the organisation that minimises access
  time squared x read energy, and neighbouring sizes tie within a few per cent between
  organisations whose energies differ by up to 1.7x), so no smooth formula follows it; a
  table of its answers, interpolated in log space, does between the jumps.
* ``--heldout``: a **validation table** of hwcomponents rows at sizes that are *not* grid
  points (depths between and off the powers of two, widths between the grid's, bank counts
  hwcomponents rounds up, nodes between CACTI's; not 90 nm, where hwcomponents answers
  22 nm x sqrt(90/22), :func:`hwc_technology_nm`), in the reference table's row format
  less the query (:func:`hwmodel.accelergy_estimators.storage_query` gives it); the
  fidelity test holds the built-in SRAM figures to it as well, so the grid is judged on
  sizes it was not built from.

With the rebuilt (``-O0``) CACTI, ``--grid`` took 25 min and ``--heldout`` 7 min on one core;
both ask hwcomponents from one process (:func:`_sram_prices` says why).
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TABLE = ROOT / "hwmodel" / "data" / "accelergy_reference.json"
GRID_TABLE = ROOT / "hwmodel" / "data" / "cacti_sram_grid.json"
HELDOUT_TABLE = ROOT / "hwmodel" / "data" / "accelergy_heldout.json"

SRAM_DEPTHS = (64, 256, 1024, 4096, 16384, 65536)
SRAM_WIDTHS = (16, 32, 64, 128, 256)
SRAM_BANKS = (1, 4, 32)
RF_DEPTHS = (4, 8, 16, 32, 64, 128, 256)
RF_WIDTHS = (8, 16, 32, 64)
REG_WIDTHS = (8, 16, 32, 64)
DRAMS = (("LPDDR4", (16, 32, 64)), ("LPDDR", (32, 64)), ("DDR3", (32, 64)),
         ("HBM2", (1024, 2048)), ("HBM3", (1024, 2048)), ("HBM4", (2048, 4096)))
MAC_WIDTHS = (4, 6, 8, 10, 12, 16, 24, 32)
MAC_ADDERS = ((8, 16), (8, 24), (8, 32), (16, 32), (16, 48))
OTHER_NODES = (22, 32)   # 65 nm: see hwmodel.estimators (CACTI re-organises small arrays)

#: The SRAM grid (module docstring): CACTI's nodes, power-of-two banks (CACTI takes no
#: others; hwcomponents rounds a bank count up), widths and total rows in x2 steps.
GRID_NODES = (22, 32, 45, 65, 90)
GRID_BANKS = (1, 2, 4, 8, 16, 32)
GRID_WIDTHS = (32, 64, 128, 256, 512, 1024)
GRID_DEPTHS = tuple(2 ** k for k in range(6, 18))   # 64 .. 131072 rows
GRID_MIN_ROWS_PER_BANK = 64

#: Held-out sizes: depths off the grid's powers of two (x1.5 steps, round numbers, Eyeriss's
#: 13824) and on them, widths between the grid's (24 is priced as a 32-bit array), bank
#: counts on and off the powers of two; every combination whose CACTI array is not a grid
#: point, at 45 nm, and a fixed subset at 22, 32 and 65 nm and at 28 and 40 nm (which
#: hwcomponents, and the built-in estimator, interpolate between CACTI's nodes).
HELDOUT_DEPTHS = (96, 128, 384, 512, 1000, 1536, 2048, 3000, 6144, 8192, 13824, 24576, 32768)
HELDOUT_WIDTHS = (24, 40, 48, 96, 192, 320)
HELDOUT_BANKS = (1, 2, 3, 8, 16, 27)
HELDOUT_NODES = (22, 28, 32, 40, 65)   # not 90 nm: see hwc_technology_nm
HELDOUT_NODE_SUBSET = ((128, 384, 1000, 3000, 6144, 13824, 24576), (24, 48, 96, 192),
                       (1, 2, 8, 27))
UNSUPPORTED = ({"component": "fpmac", "attributes": {"format": f}} for f in
               ("fp16", "bf16", "fp32"))


def _configs() -> list[tuple[str, dict[str, Any], float]]:
    """(class, attributes, technology nm) of every row."""
    out: list[tuple[str, dict[str, Any], float]] = []
    for cls in ("SRAM", "smartbuffer_SRAM"):
        for d in SRAM_DEPTHS:
            for w in SRAM_WIDTHS:
                for b in SRAM_BANKS:
                    if b > 1 and d * w < 64 * 1024:   # banking tiny arrays is not a design
                        continue
                    out.append((cls, {"depth": d, "width": w, "n_banks": b}, 45.0))
    for cls in ("regfile", "smartbuffer_RF"):
        for d in RF_DEPTHS:
            for w in RF_WIDTHS:
                out.append((cls, {"depth": d, "width": w}, 45.0))
    for w in REG_WIDTHS:
        out.append(("reg", {"depth": 1, "width": w}, 45.0))
    for kind, widths in DRAMS:
        for w in widths:
            out.append(("DRAM", {"type": kind, "width": w}, 45.0))
    for mw in MAC_WIDTHS:
        out.append(("intmac", {"multiplier_width": mw, "adder_width": 2 * mw + 8}, 45.0))
        out.append(("intmultiplier", {"multiplier_width": mw}, 45.0))
    for mw, aw in MAC_ADDERS:
        out.append(("intmac", {"multiplier_width": mw, "adder_width": aw}, 45.0))
    for aw in (8, 16, 24, 32, 48, 64):
        out.append(("intadder", {"adder_width": aw}, 45.0))
    for nm in OTHER_NODES:
        for d, w, b in ((1024, 64, 1), (16384, 64, 32), (4096, 128, 4), (256, 32, 1)):
            out.append(("smartbuffer_SRAM", {"depth": d, "width": w, "n_banks": b}, float(nm)))
        for d, w in ((16, 16), (192, 16)):
            out.append(("smartbuffer_RF", {"depth": d, "width": w}, float(nm)))
        for mw in (8, 16):
            out.append(("intmac", {"multiplier_width": mw, "adder_width": 2 * mw + 8},
                        float(nm)))
    return out


def _row_level(cls: str, attrs: dict[str, Any]) -> Any:
    from hwmodel.arch import StorageLevel

    w = int(attrs["width"])
    return StorageLevel(name="x", component_class=cls, attributes=dict(attrs),
                        depth=attrs.get("depth"), width=w, datawidth=min(w, 8),
                        n_banks=int(attrs.get("n_banks", 1)))


def reference_rows() -> list[dict[str, Any]]:
    """Ask hwcomponents (through the accelergy backend's queries) for every row."""
    from hwmodel import accelergy_estimators as acc

    rows: list[dict[str, Any]] = []
    for cls, attrs, nm in _configs():
        if cls in ("intmac", "intmultiplier", "intadder"):
            q_attrs = dict(attrs)
            parts = acc.compute_parts(cls, q_attrs, nm, int(attrs.get("multiplier_width", 8)))
            name, query, action = acc.compute_query(cls, q_attrs, nm,
                                                    int(attrs.get("multiplier_width", 8)))
            acts = {action: parts.mac.energy_pj}
            if action == "mac":
                acts["multiply"] = parts.multiply_pj
                acts["add"] = parts.add_pj
            model = parts.mac.model
        else:
            priced = acc.storage_actions(_row_level(cls, attrs), dict(attrs), nm)
            name, query, args = acc.storage_query(cls, dict(attrs), nm)
            query = {**query, **{f"action.{k}": v for k, v in args.items()}}
            acts = {a: pj for a, (pj, _src) in priced.actions.items() if a != "update"}
            model = priced.actions["read"][1].split(" ")[0].removeprefix("hwcomponents:")
        for action, pj in acts.items():
            rows.append({"component": cls, "attributes": attrs, "technology_nm": nm,
                         "action": action, "energy_pj": pj, "model": model,
                         "hwcomponents_query": {"name": name, **query}})
    return rows


# --- the SRAM grid and the held-out table --------------------------------------------------


def array_point(width: int, depth: int, banks: int) -> tuple[int, int, int]:
    """(width, rows, banks) of the CACTI array hwcomponents-cacti runs for a memory: width
    rounded up to whole bytes and at least 32 bits, at least 64 rows per *given* bank count,
    banks rounded up to a power of two (its ``_interp_size``)."""
    b = 2 ** math.ceil(math.log2(max(1, banks)))
    return (max(8 * math.ceil(width / 8), 32), max(depth, GRID_MIN_ROWS_PER_BANK * banks), b)


def is_grid_point(width: int, depth: int, banks: int) -> bool:
    w, d, b = array_point(width, depth, banks)
    return w in GRID_WIDTHS and d in GRID_DEPTHS and b in GRID_BANKS


def hwc_technology_nm(nm: float) -> float:
    """The node to ask hwcomponents for to get CACTI's own figures at CACTI node ``nm``.

    hwcomponents-cacti 1.0.40 takes the node in metres and multiplies by 1e9: 90e-9 m
    becomes 90.00000000000001 nm, outside its 22-90 nm table, and is priced by its rule for
    nodes outside it, the 22 nm figure x sqrt(L / 22 nm) (3.2 pJ for a 1024 x 64 bit read
    where CACTI at 90 nm says 20.8 pJ, less than at 45 nm).  Asking for a node a part in
    1e12 below lands inside the table, where hwcomponents-cacti interpolates between 65 and
    90 nm with weight 1 - 1e-11 on CACTI's 90 nm answer.  Other nodes are asked as they are
    (22 and 45 nm come out a hair above the node too, which only puts a weight of 4e-16 on
    the next node).
    """
    if nm == max(GRID_NODES) and nm * 1e-9 * 1e9 > nm:
        return nm * (1 - 1e-12)
    return nm


def _sram_prices(job: tuple[str, int, int, int, float]) -> tuple[float, float, str,
                                                                  dict[str, Any]]:
    """read and write pJ of one memory through the accelergy backend.

    One process at a time: hwcomponents-cacti prunes its folder of CACTI runs to the newest
    200 files without a lock, so a second process deletes a long run's files under it."""
    from hwmodel import accelergy_estimators as acc

    cls, width, depth, banks, nm = job
    attrs = {"depth": depth, "width": width, "n_banks": banks}
    name, query, _args = acc.storage_query(cls, attrs, nm)
    read = acc.action_cost(name, query, "read")
    write = acc.action_cost(name, query, "write")
    return read.energy_pj, write.energy_pj, read.model, {"name": name, **query}


def grid_jobs() -> list[tuple[str, int, int, int, float]]:
    return [("SRAM", w, d, b, hwc_technology_nm(float(nm))) for nm in GRID_NODES
            for b in GRID_BANKS for w in GRID_WIDTHS for d in GRID_DEPTHS
            if d >= GRID_MIN_ROWS_PER_BANK * b]


def grid_table() -> dict[str, Any]:
    """CACTI's SRAM read/write (through hwcomponents) at every grid point."""
    t0 = time.perf_counter()
    jobs = grid_jobs()
    prices = [_sram_prices(j) for j in jobs]
    shape = [[[None] * len(GRID_DEPTHS) for _ in GRID_WIDTHS] for _ in GRID_BANKS]
    values: dict[str, dict[str, Any]] = {"read": {}, "write": {}}
    for (_cls, w, d, b, nm), (read, write, _model, _q) in zip(jobs, prices, strict=True):
        for action, pj in (("read", read), ("write", write)):
            node = values[action].setdefault(f"{round(nm):g}", copy.deepcopy(shape))
            node[GRID_BANKS.index(b)][GRID_WIDTHS.index(w)][GRID_DEPTHS.index(d)] = float(
                f"{pj:.6g}")
    prov = provenance(time.perf_counter() - t0)
    prov["command"] = "python benchmarks/accelergy_table.py --grid"
    prov["models"] = sorted({p[2] for p in prices})
    prov["units"] = "pJ per access of one width-bit row"
    prov["what"] = ("hwcomponents' SRAM read and write, pJ per access of one width-bit row, "
                    "at CACTI-native sizes (hwcomponents-cacti scales nothing there: every "
                    "figure is CACTI's own answer); 90 nm asked as 90 x (1 - 1e-12) nm, "
                    "where hwcomponents-cacti 1.0.40 would otherwise price 22 nm x "
                    "sqrt(90/22) (hwc_technology_nm)")
    return {"provenance": prov,
            "axes": {"technology_nm": list(GRID_NODES), "n_banks": list(GRID_BANKS),
                     "width": list(GRID_WIDTHS), "depth": list(GRID_DEPTHS)},
            "min_rows_per_bank": GRID_MIN_ROWS_PER_BANK,
            "layout": "read|write -> node -> [bank][width][depth] (axes' order); null where "
                      "depth < min_rows_per_bank x banks (not a CACTI-native size)",
            **values}


def heldout_configs() -> list[tuple[str, dict[str, Any], float]]:
    """(class, attributes, nm) of every held-out row: sizes whose CACTI array is off the grid."""
    out: list[tuple[str, dict[str, Any], float]] = []

    def add(w: int, d: int, b: int, nm: float) -> None:
        if b > 1 and d * w < 64 * 1024:   # banking tiny arrays is not a design (as above)
            return
        if is_grid_point(w, d, b):
            return
        out.append(("SRAM", {"depth": d, "width": w, "n_banks": b}, float(nm)))

    for d in HELDOUT_DEPTHS:
        for w in HELDOUT_WIDTHS:
            for b in HELDOUT_BANKS:
                add(w, d, b, 45.0)
    depths, widths, banks = HELDOUT_NODE_SUBSET
    for nm in HELDOUT_NODES:
        for d in depths:
            for w in widths:
                for b in banks:
                    add(w, d, b, float(nm))
    return out


def heldout_rows() -> list[dict[str, Any]]:
    configs = heldout_configs()
    jobs = [(cls, a["width"], a["depth"], a["n_banks"], nm) for cls, a, nm in configs]
    rows: list[dict[str, Any]] = []
    for (cls, attrs, nm), (read, write, model, _query) in zip(
            configs, [_sram_prices(j) for j in jobs], strict=True):
        for action, pj in (("read", read), ("write", write)):
            rows.append({"component": cls, "attributes": attrs, "technology_nm": nm,
                         "action": action, "energy_pj": pj, "model": model})
    return rows


def _rows_json(table: dict[str, Any]) -> str:
    """A table of rows as JSON with one line per row."""
    head = json.dumps({k: v for k, v in table.items() if k != "rows"}, indent=1)[:-2]
    return (head + ',\n "rows": [\n  '
            + ",\n  ".join(json.dumps(r) for r in table["rows"]) + "\n ]\n}")


def provenance(seconds: float) -> dict[str, Any]:
    from hwmodel import accelergy_estimators as acc

    ok, _why = acc.cacti_runs()
    return {
        "generated_by": "benchmarks/accelergy_table.py",
        "command": "python benchmarks/accelergy_table.py",
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()} "
                    f"{' '.join(platform.libc_ver())}",
        "packages": acc.package_versions(),
        "cacti": {"binary_runs": ok, "how": (
            "hwcomponents-cacti's wheel binary needs glibc 2.38; rebuilt from the package's "
            "own C++ sources with its makefile's dbg flags (" + " ".join(acc.CACTI_CXXFLAGS)
            + ") by 'python -m hwmodel.accelergy_estimators build-cacti'")},
        "class_mapping": acc.HWC_CLASS,
        "units": "pJ; storage per access of one width-bit row, leak per instance and 1 ns "
                 "cycle; compute per operation",
        "seconds": round(seconds, 1),
    }


def builtin_figure(row: dict[str, Any]) -> float | None:
    """The built-in estimator's figure for a reference row (None for leak: not modelled)."""
    from hwmodel.estimators import MACEstimator, find_estimator

    action = row["action"]
    if action == "leak":
        return None
    cls, attrs, nm = row["component"], dict(row["attributes"]), row["technology_nm"]
    if cls in ("intmac", "intmultiplier", "intadder"):
        b = MACEstimator(None).breakdown(cls, attrs, nm)
        return {"mac": b.mac_pj, "multiply": b.multiply_pj, "add": b.add_pj}[action]
    est, c = find_estimator(cls, attrs)
    return est.estimate(c, attrs, "update" if action == "update" else action, nm)


def compare(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row with the built-in figure and the ratio built-in / hwcomponents."""
    out = []
    for row in table["rows"]:
        b = builtin_figure(row)
        if b is None:
            continue
        ref = row["energy_pj"]
        out.append({**row, "builtin_pj": b, "ratio": b / ref if ref > 0 else float("inf")})
    return out


def _grid_json(grid: dict[str, Any]) -> str:
    """The grid as JSON with one line per (action, node, banks, width): a depth row."""
    head = {k: v for k, v in grid.items() if k not in ("read", "write")}
    text = json.dumps(head, indent=1)[:-2]
    for action in ("read", "write"):
        nodes = []
        for node, per_bank in grid[action].items():
            banks = ",\n".join("   [" + ",\n    ".join(json.dumps(row) for row in per_width)
                               + "]" for per_width in per_bank)
            nodes.append(f'  "{node}": [\n{banks}\n  ]')
        text += f',\n "{action}": {{\n' + ",\n".join(nodes) + "\n }"
    return text + "\n}"


def _write(path: Path, table: dict[str, Any], text: str | None = None) -> None:
    from core.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, (text or json.dumps(table, indent=1)) + "\n")


def _report(name: str, table: dict[str, Any]) -> None:
    cmp = compare(table)
    worst = sorted(cmp, key=lambda r: abs(math.log(r["ratio"])), reverse=True)
    print(f"--- {name}")
    for r in worst[:15]:
        print(f"{r['component']:16s} {json.dumps(r['attributes']):55s} {r['technology_nm']:4.0f}"
              f" {r['action']:8s} builtin {r['builtin_pj']:9.4f} hwc {r['energy_pj']:9.4f} "
              f"ratio {r['ratio']:.3f}")
    bad = [r for r in cmp if not 0.8 <= r["ratio"] <= 1.25]
    print(f"{len(cmp)} rows compared, {len(bad)} outside 25 %, ratios "
          f"{min(r['ratio'] for r in cmp):.3f}-{max(r['ratio'] for r in cmp):.3f}")


def markdown_summary(table: dict[str, Any]) -> str:
    """The README's fidelity table: per component class and action, the ratio range over all
    rows and the row furthest from hwcomponents, with both figures."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in compare(table):
        groups.setdefault((r["component"], r["action"]), []).append(r)
    lines = ["| component | action | rows | built-in / Accelergy | furthest row | built-in pJ "
             "| Accelergy pJ | ratio |", "|---|---|---:|---:|---|---:|---:|---:|"]
    for (cls, action), rows in sorted(groups.items()):
        worst = max(rows, key=lambda r: abs(math.log(r["ratio"])))
        attrs = ", ".join(f"{k} {v}" for k, v in worst["attributes"].items())
        lines.append(
            f"| `{cls}` | {action} | {len(rows)} | {min(r['ratio'] for r in rows):.3f}-"
            f"{max(r['ratio'] for r in rows):.3f} | {attrs}, {worst['technology_nm']:g} nm | "
            f"{worst['builtin_pj']:.4g} | {worst['energy_pj']:.4g} | {worst['ratio']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=TABLE)
    parser.add_argument("--grid", action="store_true",
                        help=f"write the SRAM grid ({GRID_TABLE.relative_to(ROOT)}) instead")
    parser.add_argument("--heldout", action="store_true",
                        help=f"write the held-out table ({HELDOUT_TABLE.relative_to(ROOT)}) "
                             "instead")
    parser.add_argument("--check", action="store_true",
                        help="only compare the built-in estimators with the checked-in tables")
    parser.add_argument("--markdown", action="store_true",
                        help="print the README's fidelity table of the checked-in table")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_summary(json.loads(args.out.read_text())))
        return 0
    if args.check:
        pass
    elif args.grid or args.heldout:
        if args.grid:
            grid = grid_table()
            _write(GRID_TABLE, grid, _grid_json(grid))
            print(f"{len(grid_jobs())} grid points -> {GRID_TABLE} "
                  f"({grid['provenance']['seconds']} s)")
        if args.heldout:
            t0 = time.perf_counter()
            rows = heldout_rows()
            prov = provenance(time.perf_counter() - t0)
            prov["command"] = "python benchmarks/accelergy_table.py --heldout"
            prov["units"] = "pJ per access of one width-bit row"
            prov["what"] = ("validation rows at sizes whose CACTI array is not a point of "
                            f"{GRID_TABLE.name} (benchmarks/accelergy_table.py: "
                            "HELDOUT_*); read and write only; hwcomponents was asked what "
                            "storage_query gives for the row, as for the reference table")
            held = {"provenance": prov, "rows": rows}
            _write(HELDOUT_TABLE, held, _rows_json(held))
            print(f"{len(rows)} held-out rows -> {HELDOUT_TABLE} ({prov['seconds']} s)")
    else:
        t0 = time.perf_counter()
        rows = reference_rows()
        table = {"provenance": provenance(time.perf_counter() - t0),
                 "unsupported": [{**u, "why": "no hwcomponents model of this class"}
                                 for u in UNSUPPORTED]
                 + [{"component": "DRAM", "attributes": {"type": "GDDR5"},
                     "why": "hwcomponents-cacti has no GDDR5 model"}],
                 "rows": rows}
        _write(args.out, table)
        print(f"{len(rows)} rows -> {args.out} ({table['provenance']['seconds']} s)")
    _report(str(args.out.name), json.loads(args.out.read_text()))
    if HELDOUT_TABLE.exists():
        _report(HELDOUT_TABLE.name, json.loads(HELDOUT_TABLE.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
