"""Mapper speed and quality on the DARTS_V2 evaluation network, against baselines run here.

For every distinct conv/FC layer shape of DARTS_V2 (20 cells, 36 channels, CIFAR-10) on a
bundled architecture it prints the mapper's time and energy, and those of a random-sampling
mapper (Timeloop's default search strategy: uniformly sampled factorizations and loop orders,
best of N valid ones) given the same per-access energies.  Then the wall time of the whole
``hwcost estimate``-equivalent pipeline.  Then, if ZigZag (PyPI ``zigzag-dse``, KU Leuven's
DSE framework; an optional benchmark dependency, see ``zigzag_bridge.py``) is installed, one
table per design (default: the Eyeriss-like ``eyeriss`` and the TPU-like ``systolic``) with
hwcost's mapper and ZigZag's mapper (its spatial-mapping generator and LOMA temporal search)
side by side on the same layers, hardware and per-access energies.  Without ZigZag the script
says so and how to install it.

Run: ``python benchmarks/bench_mapper.py [--arch eyeriss] [--samples 2000] [--layers 6]
[--no-zigzag] [--zigzag-archs eyeriss,systolic] [--zigzag-lpf 6] [--show-mappings]``
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from pathlib import Path

import zigzag_bridge as zz

from hwmodel.energy import build_energy_table
from hwmodel.estimate import NetworkEstimator
from hwmodel.mapper import Mapper
from hwmodel.mapping import LevelMapping, Mapping
from hwmodel.model import MappingError, evaluate
from hwmodel.spec import load_arch
from multiplier_lib import generate
from nas.cellgraph import NetworkConfig, list_layers
from nas.genotype import load

ROOT = Path(__file__).resolve().parents[1]


def _random_split(n: int, slots: int, rng: random.Random) -> list[int]:
    out = [1] * slots
    p = 2
    while n > 1:
        while n % p == 0:
            out[rng.randrange(slots)] *= p
            n //= p
        p += 1
    return out


def random_search(arch, workload, energy, samples: int, seed: int = 0):
    """Best of ``samples`` uniformly random mappings (invalid ones count as tries)."""
    rng = random.Random(seed)
    slots = [(i, k) for i, lv in enumerate(arch.levels) for k in ("t", "x", "y")
             if k == "t" or (k == "x" and lv.fanout_x > 1) or (k == "y" and lv.fanout_y > 1)]
    names = {ds.name for ds in workload.data_spaces}
    keep = [frozenset(names) if i == 0 else frozenset(
        d for d in names if lv.may_keep(d)) for i, lv in enumerate(arch.levels)]
    best = None
    for _ in range(samples):
        fac = {}
        for d, b in workload.dims:
            for slot, f in zip(slots, _random_split(b, len(slots), rng)):
                fac[(slot, d)] = f
        levels = []
        for i, _lv in enumerate(arch.levels):
            t = [(d, fac[((i, "t"), d)]) for d, _ in workload.dims if fac[((i, "t"), d)] > 1]
            rng.shuffle(t)
            levels.append(LevelMapping(
                t, [(d, fac.get(((i, "x"), d), 1)) for d, _ in workload.dims
                    if fac.get(((i, "x"), d), 1) > 1],
                [(d, fac.get(((i, "y"), d), 1)) for d, _ in workload.dims
                 if fac.get(((i, "y"), d), 1) > 1], keep[i]))
        try:
            res = evaluate(arch, workload, Mapping(levels), energy)
        except MappingError:
            continue
        if best is None or res.energy_pj < best.energy_pj:
            best = res
    return best


def zigzag_tables(shapes: list, designs: list[str], settings: zz.ZigZagSettings,
                  show_mappings: bool) -> None:
    """Per design: hwcost's mapper against ZigZag's on the same layers and energies."""
    print(f"\nZigZag settings: {settings.describe()}")
    for name in designs:
        arch = load_arch(name)
        energy = build_energy_table(arch)
        try:
            accelerator = zz.build_accelerator(arch, energy)
        except zz.ZigZagUnsupported as exc:
            print(f"\n{name}: ZigZag cannot express this design: {exc}")
            continue
        print(f"\nDARTS_V2 on {name}, hwcost vs ZigZag ({len(shapes)} distinct conv/FC shapes). "
              "Energy: each tool's own estimate of its own best (minimal-energy) mapping, both "
              "with hwcost's per-access energies for this design (hwcost: Timeloop-equivalent "
              "model; ZigZag: its own cost model); cycles likewise; time = each mapper's "
              "wall time for the layer")
        print("\n".join(zz.describe_hardware(arch, energy)))
        print(f"{'layer shape':36} {'hwcost pJ':>13} {'ZigZag pJ':>13} {'E hw/ZZ':>8} "
              f"{'hw cycles':>10} {'ZZ cycles':>10} {'hwcost ms':>9} {'ZigZag s':>8} "
              f"{'t ZZ/hw':>8}")
        e_ratios, t_ratios, hw_t, zz_t = [], [], [], []
        for layer in shapes:
            wl = layer.workload()
            t0 = time.perf_counter()
            found = Mapper(arch, energy).map(wl)
            t_hw = time.perf_counter() - t0
            ours = found.result
            try:
                res = zz.run_zigzag(arch, energy, layer, settings, accelerator=accelerator)
            except Exception as exc:   # ZigZag's own errors (no valid mapping, ...)
                print(f"{layer.shape_text():36} {ours.energy_pj:13.0f} ZigZag failed: "
                      f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
                continue
            e_ratios.append(ours.energy_pj / res.energy_pj)
            t_ratios.append(res.wall_s / t_hw)
            hw_t.append(t_hw)
            zz_t.append(res.wall_s)
            print(f"{layer.shape_text():36} {ours.energy_pj:13.0f} {res.energy_pj:13.0f} "
                  f"{e_ratios[-1]:8.3f} {ours.cycles:10.0f} {res.cycles:10.0f} "
                  f"{1000 * t_hw:9.1f} {res.wall_s:8.2f} {t_ratios[-1]:7.0f}x")
            if show_mappings:
                print(f"    hwcost: {found.mapping.short(arch.names)}; MAC "
                      f"{ours.mac_energy_pj:.0f} pJ, memory {ours.memory_energy_pj:.0f} pJ")
                print(f"    ZigZag: spatial {res.spatial}; MAC {res.mac_energy_pj:.0f} pJ, "
                      f"memory {res.memory_energy_pj:.0f} pJ ("
                      + ", ".join(f"{k} {v:.0f}" for k, v in res.memory_pj.items()) + ")")
                print(f"            temporal (innermost memory first) {res.temporal}")
        if e_ratios:
            print(f"{'mean / geomean':36} {'':13} {'':13} "
                  f"{statistics.geometric_mean(e_ratios):8.3f} {'':10} {'':10} "
                  f"{1000 * statistics.mean(hw_t):9.1f} {statistics.mean(zz_t):8.2f} "
                  f"{statistics.geometric_mean(t_ratios):7.0f}x")
            print(f"hwcost lower on {sum(r < 1 for r in e_ratios)} of {len(e_ratios)} layers, "
                  f"ZigZag lower on {sum(r > 1 for r in e_ratios)}; ZigZag total "
                  f"{sum(zz_t):.1f} s, hwcost total {sum(hw_t):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="eyeriss",
                        help="design of the random-baseline table (default eyeriss)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--layers", type=int, default=None,
                        help="only the first N distinct conv/FC shapes (default: all 19)")
    parser.add_argument("--no-zigzag", action="store_true", help="skip the ZigZag tables")
    parser.add_argument("--zigzag-archs", default="eyeriss,systolic",
                        help="designs of the ZigZag tables, comma separated")
    parser.add_argument("--zigzag-lpf", type=int, default=zz.ZigZagSettings.lpf_limit,
                        help="ZigZag LOMA lpf_limit (default %(default)s, ZigZag's default; "
                        "5 is about 5x faster)")
    parser.add_argument("--zigzag-spatial", type=int,
                        default=zz.ZigZagSettings.spatial_mappings,
                        help="spatial mappings ZigZag generates per layer (default %(default)s)")
    parser.add_argument("--show-mappings", action="store_true",
                        help="print each tool's chosen mapping under the ZigZag tables' rows")
    args = parser.parse_args()

    geno = load(ROOT / "examples" / "darts_v2.json")
    layers = list_layers(geno, NetworkConfig.from_genotype(geno))
    arch = load_arch(args.arch)
    energy = build_energy_table(arch)
    shapes = {}
    for layer in layers:
        if layer.kind in ("conv", "fc"):
            shapes.setdefault(layer.workload().key(), layer)
    n_all = len(shapes)
    chosen = list(shapes.values())[:args.layers]
    limited = f" (first {len(chosen)} of them)" if len(chosen) < n_all else ""

    print(f"DARTS_V2 on {args.arch}: {len(layers)} layers, {n_all} distinct conv/FC "
          f"shapes{limited}; random baseline: best of {args.samples} samples")
    header = (f"{'layer shape':44} {'ours ms':>8} {'ours pJ/MAC':>11} {'random ms':>10} "
              f"{'random pJ/MAC':>13} {'energy ratio':>12} {'speed-up':>8}")
    print(header)
    ours_t, rand_t, ratios = [], [], []
    for layer in chosen:
        wl = layer.workload()
        t0 = time.perf_counter()
        found = Mapper(arch, energy).map(wl)
        t1 = time.perf_counter()
        rand = random_search(arch, wl, energy, args.samples)
        t2 = time.perf_counter()
        ours_t.append(t1 - t0)
        rand_t.append(t2 - t1)
        ours_e = found.result.energy_pj / wl.computes
        rand_e = rand.energy_pj / wl.computes if rand is not None else float("nan")
        ratios.append(ours_e / rand_e)
        print(f"{layer.shape_text():44} {1000 * (t1 - t0):8.1f} {ours_e:11.3f} "
              f"{1000 * (t2 - t1):10.1f} {rand_e:13.3f} {ours_e / rand_e:12.3f} "
              f"{(t2 - t1) / (t1 - t0):7.0f}x")
    finite = [r for r in ratios if not math.isnan(r)]
    geo = statistics.geometric_mean(finite) if finite else float("nan")
    print(f"{'mean / geomean':44} {1000 * statistics.mean(ours_t):8.1f} {'':11} "
          f"{1000 * statistics.mean(rand_t):10.1f} {'':13} {geo:12.3f} "
          f"{statistics.mean(rand_t) / statistics.mean(ours_t):7.0f}x")

    t0 = time.perf_counter()
    est = NetworkEstimator(arch).estimate(layers, generate("exact8u"))
    wall = time.perf_counter() - t0
    print(f"\nwhole DARTS_V2 estimate on {args.arch} (map {n_all} shapes, price "
          f"{len(layers)} layers): {wall:.2f} s, {est.total('energy_pj') / 1e6:.1f} uJ")

    if args.no_zigzag:
        print("\nZigZag comparison skipped (--no-zigzag)")
        return
    missing = zz.zigzag_missing()
    if missing:
        print(f"\n{missing}\n(no ZigZag comparison; it is an optional benchmark dependency, "
              "not a dependency of hwcost)")
        return
    settings = zz.ZigZagSettings(lpf_limit=args.zigzag_lpf,
                                 spatial_mappings=args.zigzag_spatial)
    designs = [d.strip() for d in args.zigzag_archs.split(",") if d.strip()]
    zigzag_tables(chosen, designs, settings, args.show_mappings)


if __name__ == "__main__":
    main()
