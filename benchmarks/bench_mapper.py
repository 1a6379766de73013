"""Mapper speed and quality on the DARTS_V2 evaluation network, against baselines run here.

For every distinct conv/FC layer shape of DARTS_V2 (20 cells, 36 channels, CIFAR-10) on a
bundled architecture it prints the mapper's time and energy, and those of a random-sampling
mapper (Timeloop's default search strategy: uniformly sampled factorizations and loop orders,
best of N valid ones) given the same per-access energies.  Then the wall time of the whole
``hwcost estimate``-equivalent pipeline.  If the ``zigzag`` package (PyPI ``zigzag-dse``) is
importable its numbers would belong beside these; it is not a dependency of hwcost and the
script says so when it is missing.

Run: ``python benchmarks/bench_mapper.py [--arch eyeriss] [--samples 2000]``
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="eyeriss")
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()

    geno = load(ROOT / "examples" / "darts_v2.json")
    layers = list_layers(geno, NetworkConfig.from_genotype(geno))
    arch = load_arch(args.arch)
    energy = build_energy_table(arch)
    shapes = {}
    for layer in layers:
        if layer.kind in ("conv", "fc"):
            shapes.setdefault(layer.workload().key(), layer)

    print(f"DARTS_V2 on {args.arch}: {len(layers)} layers, {len(shapes)} distinct conv/FC "
          f"shapes; random baseline: best of {args.samples} samples")
    header = (f"{'layer shape':44} {'ours ms':>8} {'ours pJ/MAC':>11} {'random ms':>10} "
              f"{'random pJ/MAC':>13} {'energy ratio':>12} {'speed-up':>8}")
    print(header)
    ours_t, rand_t, ratios = [], [], []
    for layer in shapes.values():
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
    geo = statistics.geometric_mean(ratios)
    print(f"{'mean / geomean':44} {1000 * statistics.mean(ours_t):8.1f} {'':11} "
          f"{1000 * statistics.mean(rand_t):10.1f} {'':13} {geo:12.3f} "
          f"{statistics.mean(rand_t) / statistics.mean(ours_t):7.0f}x")

    t0 = time.perf_counter()
    est = NetworkEstimator(arch).estimate(layers, generate("exact8u"))
    wall = time.perf_counter() - t0
    print(f"\nwhole DARTS_V2 estimate on {args.arch} (map {len(shapes)} shapes, price "
          f"{len(layers)} layers): {wall:.2f} s, {est.total('energy_pj') / 1e6:.1f} uJ")
    if importlib.util.find_spec("zigzag") is None:
        print("zigzag (PyPI zigzag-dse) is not installed: no ZigZag column "
              "(its published figure is about 7 s per conv layer on a CPU)")


if __name__ == "__main__":
    main()
