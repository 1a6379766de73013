"""Mapper speed and quality on the DARTS_V2 evaluation network, against baselines run here.

For every distinct conv/FC layer shape of DARTS_V2 (20 cells, 36 channels, CIFAR-10) on a
bundled architecture it prints hwcost's mapper at its default effort (time, energy and the
evidence it gives: "opt" when proven optimal, else the gap to its lower bound) and a
random-sampling mapper (Timeloop's default search strategy: uniformly sampled factorizations
and loop orders, best of N valid ones) given the same per-access energies.  Then the wall
time of the whole ``hwcost estimate``-equivalent pipeline, and the mapper's mean and slowest
layer time on every bundled design.  Then, if ZigZag (PyPI
``zigzag-dse``, KU Leuven's DSE framework; see ``zigzag_bridge.py``) is installed, one table
per design (default: the Eyeriss-like ``eyeriss`` and the TPU-like ``systolic``) with
hwcost's mapper and ZigZag's mapper (its spatial-mapping generator and LOMA temporal search)
side by side.  Then, if AccelForge (PyPI ``accelforge``, Python >= 3.12, the Timeloop group's
optimal mapper; see ``accelforge_bridge.py``) is installed, hwcost's mapper against
AccelForge's on small layers (AccelForge takes minutes per real layer): AccelForge's own
energy of its best mapping, that mapping priced by hwcost's model (the like-for-like
figure), and both mappers' times.  Missing optional tools are reported, not fatal.

Run: ``python benchmarks/bench_mapper.py [--arch eyeriss] [--samples 2000] [--layers 6]
[--no-designs] [--no-zigzag] [--zigzag-archs eyeriss,systolic] [--zigzag-lpf 6] [--show-mappings]
[--no-accelforge] [--accelforge-archs edge,eyeriss] [--accelforge-timeout 600]``
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from pathlib import Path

import accelforge_bridge as af
import zigzag_bridge as zz
from load_check import warn_if_busy

from darts.cellgraph import NetworkConfig, list_layers
from darts.genotype_io import load
from hwmodel.costing import CostContext, price
from hwmodel.energy import build_energy_table
from hwmodel.mapper import Mapper
from hwmodel.mapping import LevelMapping, Mapping
from hwmodel.model import MappingError, evaluate
from hwmodel.spec import load_arch
from hwmodel.workload import Layer

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


#: small layers: AccelForge's optimal mapper takes minutes per real layer (48 s to 37 min
#: measured on DARTS-sized and VGG layers)
ACCELFORGE_LAYERS = (
    Layer("conv3x3", "conv", C=8, M=8, P=4, Q=4, R=3, S=3),
    Layer("pointwise", "conv", C=16, M=16, P=8, Q=8),
    Layer("depthwise", "conv", C=1, M=1, P=8, Q=8, R=3, S=3, groups=8),
)


def accelforge_tables(designs: list[str], timeout_s: float, show_mappings: bool) -> None:
    """Per design: hwcost's mapper against AccelForge's on small layers, same energies."""
    settings = af.AccelForgeSettings()
    print(f"\nAccelForge settings: {settings.describe()}")
    for name in designs:
        arch = load_arch(name)
        energy = build_energy_table(arch)
        print(f"\n{name}: hwcost (default effort) vs AccelForge, energy objective. "
              "'AF own' is AccelForge's estimate of its best mapping in its own model; "
              "'AF@hwcost' is that mapping priced by hwcost's model (the like-for-like "
              "figure; hwcost's mapping can be priced only by hwcost)")
        print(f"{'layer':24} {'hwcost pJ':>12} {'evidence':>10} {'AF own pJ':>12} "
              f"{'AF@hwcost pJ':>13} {'hw/AF@hw':>9} {'hwcost s':>9} {'AF map s':>9} "
              f"{'t AF/hw':>8}")
        for layer in ACCELFORGE_LAYERS:
            wl = layer.workload()
            t0 = time.perf_counter()
            found = Mapper(arch, energy).map(wl)
            t_hw = time.perf_counter() - t0
            res = af.run_accelforge(arch, wl, energy, "energy", timeout_s, settings)
            ev = "opt" if found.optimal else f"gap {100 * (found.gap or 0):.0f}%"
            if res is None:
                print(f"{layer.shape_text():24} {found.result.energy_pj:12.0f} {ev:>10} "
                      "AccelForge gave no answer (see above)")
                continue
            priced = res.hwcost
            ratio = found.result.energy_pj / priced.energy_pj if priced else float("nan")
            af_own = res.energy_pj if res.energy_pj is not None else float("nan")
            print(f"{layer.shape_text():24} {found.result.energy_pj:12.0f} {ev:>10} "
                  f"{af_own:12.0f} "
                  f"{priced.energy_pj if priced else float('nan'):13.0f} {ratio:9.4f} "
                  f"{t_hw:9.2f} {res.map_s:9.1f} {res.map_s / t_hw:7.0f}x")
            if show_mappings:
                print(f"    hwcost: {found.mapping.short(arch.names)}")
                print(f"    AccelForge: {res.tree()}"
                      + (f"; as Timeloop levels {res.mapping.short(arch.names)}"
                         if res.mapping else ""))


def design_times(layers: list[Layer]) -> None:
    """Every bundled design, every distinct DARTS_V2 shape, the mapper at its default
    effort (what ``hwcost map`` runs): the slowest layer is what a user waits for."""
    designs = sorted(p.stem for p in (ROOT / "arch_specs").glob("*.yaml"))
    print(f"\nmapper at its default effort on every bundled design ({len(layers)} DARTS_V2 "
          "shapes each)")
    print(f"{'design':10} {'mean ms':>8} {'max ms':>8}  {'slowest shape':44} {'optimal':>8}")
    for design in designs:
        arch = load_arch(design)
        energy = build_energy_table(arch)
        times, proven = [], 0
        for layer in layers:
            t0 = time.perf_counter()
            found = Mapper(arch, energy).map(layer.workload())
            times.append((time.perf_counter() - t0, layer.shape_text()))
            proven += found.optimal
        worst = max(times)
        print(f"{design:10} {1000 * statistics.mean(t for t, _ in times):8.1f} "
              f"{1000 * worst[0]:8.1f}  {worst[1]:44} {proven:>4}/{len(layers)}")


def main() -> None:
    warn_if_busy()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="eyeriss",
                        help="design of the random-baseline table (default eyeriss)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--layers", type=int, default=None,
                        help="only the first N distinct conv/FC shapes (default: all 19)")
    parser.add_argument("--no-designs", action="store_true",
                        help="skip the per-design time table")
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
                        help="print each tool's chosen mapping under the comparison rows")
    parser.add_argument("--no-accelforge", action="store_true",
                        help="skip the AccelForge tables")
    parser.add_argument("--accelforge-archs", default="edge,eyeriss",
                        help="designs of the AccelForge tables, comma separated")
    parser.add_argument("--accelforge-timeout", type=float, default=600,
                        help="seconds AccelForge may take per layer (it has no anytime "
                        "answer; default %(default)s)")
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
    header = (f"{'layer shape':44} {'ours ms':>8} {'ours pJ/MAC':>11} {'evidence':>9} "
              f"{'random ms':>10} {'random pJ/MAC':>13} {'energy ratio':>12} {'t rnd/ours':>10}")
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
        evidence = "opt" if found.optimal else f"gap {100 * (found.gap or 0):.0f}%"
        print(f"{layer.shape_text():44} {1000 * (t1 - t0):8.1f} {ours_e:11.3f} "
              f"{evidence:>9} {1000 * (t2 - t1):10.1f} {rand_e:13.3f} {ours_e / rand_e:12.3f} "
              f"{(t2 - t1) / (t1 - t0):9.2f}x")
    finite = [r for r in ratios if not math.isnan(r)]
    geo = statistics.geometric_mean(finite) if finite else float("nan")
    print(f"{'mean / geomean':44} {1000 * statistics.mean(ours_t):8.1f} {'':11} {'':9} "
          f"{1000 * statistics.mean(rand_t):10.1f} {'':13} {geo:12.3f} "
          f"{statistics.mean(rand_t) / statistics.mean(ours_t):9.2f}x")

    t0 = time.perf_counter()
    est = price(layers, "exact8u", CostContext(arch))
    wall = time.perf_counter() - t0
    print(f"\nwhole DARTS_V2 estimate on {args.arch} (map {n_all} shapes, price "
          f"{len(layers)} layers): {wall:.2f} s, {est.total('energy_pj') / 1e6:.1f} uJ")

    if args.no_designs:
        print("\nper-design times skipped (--no-designs)")
    else:
        design_times(list(shapes.values()))

    if args.no_zigzag:
        print("\nZigZag comparison skipped (--no-zigzag)")
    elif (missing := zz.zigzag_missing()):
        print(f"\n{missing}\n(no ZigZag comparison; it is an optional benchmark dependency, "
              "not a dependency of hwcost)")
    else:
        settings = zz.ZigZagSettings(lpf_limit=args.zigzag_lpf,
                                     spatial_mappings=args.zigzag_spatial)
        designs = [d.strip() for d in args.zigzag_archs.split(",") if d.strip()]
        zigzag_tables(chosen, designs, settings, args.show_mappings)

    if args.no_accelforge:
        print("\nAccelForge comparison skipped (--no-accelforge)")
    elif (missing := af.accelforge_missing()):
        print(f"\n{missing}\n(no AccelForge comparison; it is an optional benchmark "
              "dependency, not a dependency of hwcost)")
    else:
        designs = [d.strip() for d in args.accelforge_archs.split(",") if d.strip()]
        accelforge_tables(designs, args.accelforge_timeout, args.show_mappings)


if __name__ == "__main__":
    main()
