"""Approximate layers against exact fp32 PyTorch layers on DARTS-shaped layers, batch 64.

For each layer: the time of ``ApproxConv2d``/``ApproxLinear`` (quantization, LUT products,
exact corrections) divided by the time of the same ``nn.Conv2d``/``nn.Linear`` in fp32,
forward and forward+backward, for the ``cpu`` backend on the best kernel path this CPU has,
on that path with look-ups only (``lut only``: no float sums, which a rank-one multiplier
such as the default DRUM or an exact one takes on wide layers; see ``cpu.FLOAT_SUMS_MIN_WORK``)
and on each lower vector path it also has (AVX-512 gathers, AVX2 gathers), all measured in
this process on this machine, plus the geometric means.  A second table gives the fixed
cost of one call on a small layer: the layer's time minus its LUT kernel's time.

Run: ``python benchmarks/bench_emulation.py [--batch 64] [--repeat 3] [--threads N]``

glibc returns freed blocks of a few MB to the kernel and maps them afresh, so a layer whose
output is that large pays ~1 ms of page faults on some calls and not on others (measured: the
same fp32 depthwise conv took 0.16 ms or 2.0 ms by the allocator's state).  The script
therefore re-runs itself with glibc's mmap and trim thresholds fixed (``--allocator fixed``,
the default; both sides run under the same setting) so the ratios compare arithmetic;
``--allocator as-is`` measures the process as it comes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from load_check import warn_if_busy
from torch import nn

from multiplier_lib.emulate import ApproxConv2d, ApproxLinear
from multiplier_lib.emulate.backends import cpu

LAYERS = [
    ("stem 3x3 3->48 @32", lambda: nn.Conv2d(3, 48, 3, padding=1), (3, 32, 32)),
    ("pw 1x1 16 @32", lambda: nn.Conv2d(16, 16, 1), (16, 32, 32)),
    ("pw 1x1 32 @16", lambda: nn.Conv2d(32, 32, 1), (32, 16, 16)),
    ("pw 1x1 64 @8", lambda: nn.Conv2d(64, 64, 1), (64, 8, 8)),
    ("pw 1x1 64 @16", lambda: nn.Conv2d(64, 64, 1), (64, 16, 16)),
    ("dw 3x3 32 @16", lambda: nn.Conv2d(32, 32, 3, padding=1, groups=32), (32, 16, 16)),
    ("dw 5x5 32 @16", lambda: nn.Conv2d(32, 32, 5, padding=2, groups=32), (32, 16, 16)),
    ("dil dw 3x3 d2 32 @16", lambda: nn.Conv2d(32, 32, 3, padding=2, dilation=2, groups=32),
     (32, 16, 16)),
    ("linear 256->10", lambda: nn.Linear(256, 10), (256,)),
]
# DARTS's reduction cells: the stride-2 depthwise convs of the edges from the cell inputs.
# Printed after the geometric means and not in them, so those stay comparable with the
# tables of earlier sessions.
STRIDED_LAYERS = [
    ("s2 dw 3x3 32 @32", lambda: nn.Conv2d(32, 32, 3, 2, padding=1, groups=32), (32, 32, 32)),
    ("s2 dw 5x5 32 @32", lambda: nn.Conv2d(32, 32, 5, 2, padding=2, groups=32), (32, 32, 32)),
    ("s2 dil dw 3x3 d2 32 @32",
     lambda: nn.Conv2d(32, 32, 3, 2, padding=2, dilation=2, groups=32), (32, 32, 32)),
]
# glibc's thresholds, fixed: blocks up to 32 MiB come from the heap, which is not trimmed
# below 256 MiB (see the module docstring).
_FIXED_ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                    "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


def _reexec_env(allocator: str, environ) -> dict[str, str] | None:
    """The environment to re-run this script in for ``--allocator fixed``, or None when
    the process already runs as asked (the thresholds are read once, at start-up)."""
    if allocator != "fixed" or all(environ.get(k) == v for k, v in _FIXED_ALLOCATOR.items()):
        return None
    return {**environ, **_FIXED_ALLOCATOR}


def _variants() -> list[tuple[str, int, str]]:
    """(column name, kernel path level, float sums mode): the best path as the layers run
    it, the same with look-ups only, then the lower vector paths."""
    best = cpu.detected_level()
    short = {1: "avx2", 2: "avx512", 3: "vbmi", 4: "vbmi+vnni"}
    levels = [lv for lv in (2, 1) if lv < best and lv != 3]
    return ([(f"cpu {short.get(best, 'scalar')}", best, "auto"), ("lut only", best, "never")]
            + [(f"cpu {short.get(lv, 'scalar')}", lv, "auto") for lv in levels])


def _time(fn, repeat: int) -> float:
    fn()  # warm-up (also builds the extension)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _approx(module: nn.Module, multiplier: str, backend: str):
    if isinstance(module, nn.Conv2d):
        return ApproxConv2d.from_conv(module, multiplier=multiplier, backend=backend)
    return ApproxLinear.from_linear(module, multiplier=multiplier, backend=backend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--multiplier", default="drum8u_k4")
    parser.add_argument("--allocator", choices=["fixed", "as-is"], default="fixed")
    args = parser.parse_args()
    env = _reexec_env(args.allocator, os.environ)
    if env is not None:
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    multiplier = args.multiplier
    print(cpu.describe_machine())
    warn_if_busy()
    variants = _variants()
    fixed = all(os.environ.get(k) == v for k, v in _FIXED_ALLOCATOR.items())
    print(f"batch {args.batch}, {args.threads} threads, multiplier {multiplier}, allocator "
          f"{'fixed' if fixed else 'as-is'}; "
          "ratio = approximate time / fp32 torch time (same machine, same run)")
    head = f"{'layer':24} {'fp32 fwd ms':>11}"
    for name, *_ in variants:
        head += f" {name + ' fwd':>15} {name + ' f+b':>15}"
    print(head)
    ratios: dict[str, list[float]] = {f"{n} {k}": [] for n, *_ in variants
                                      for k in ("fwd", "f+b")}
    for label, make, shape in LAYERS:
        print(_layer_row(label, make, shape, variants, multiplier, args, ratios))
    row = f"{'geometric mean':24} {'':11}"
    for name, *_ in variants:
        row += (f" {statistics.geometric_mean(ratios[name + ' fwd']):14.2f}x"
                f" {statistics.geometric_mean(ratios[name + ' f+b']):14.2f}x")
    print(row)
    print("reduction-cell layers (stride 2; not in the geometric means):")
    for label, make, shape in STRIDED_LAYERS:
        print(_layer_row(label, make, shape, variants, multiplier, args, None))
    fixed_cost(multiplier, args.repeat)


def _layer_row(label: str, make, shape, variants, multiplier: str, args,
               ratios: dict[str, list[float]] | None) -> str:
    """One table row: the fp32 layer's forward time, then each kernel path's forward and
    forward+backward ratios (appended to ``ratios`` when given)."""
    ref = make()
    x = torch.randn(args.batch, *shape)
    xg = x.clone().requires_grad_()
    t_fwd = _time(lambda ref=ref, x=x: ref(x), args.repeat)
    t_fb = _time(lambda ref=ref, xg=xg: ref(xg).sum().backward(), args.repeat)
    row = f"{label:24} {1000 * t_fwd:11.2f}"
    for name, level, float_sums in variants:
        previous = cpu._set_simd_level(level)
        previous_sums = cpu._set_float_sums(float_sums)
        layer = _approx(ref, multiplier, "cpu")
        layer.eval()
        layer(x)  # calibrate ranges on this batch
        a_fwd = _time(lambda layer=layer, x=x: layer(x), args.repeat)
        layer.train()
        layer.act_quant.observing = layer.weight_quant.observing = False
        a_fb = _time(lambda layer=layer, xg=xg: layer(xg).sum().backward(), args.repeat)
        if ratios is not None:
            ratios[f"{name} fwd"].append(a_fwd / t_fwd)
            ratios[f"{name} f+b"].append(a_fb / t_fb)
        row += f" {a_fwd / t_fwd:14.2f}x {a_fb / t_fb:14.2f}x"
        cpu._set_simd_level(previous)
        cpu._set_float_sums(previous_sums)
    return row


def fixed_cost(multiplier: str, repeat: int) -> None:
    """Per-call cost around the look-ups: a 16-channel 3x3 conv on 8x8, batch 1."""
    print()
    print("fixed cost per call, 16->16 3x3 conv @8x8, batch 1 (microseconds; fp32 and kernel: "
          "best of 10-call rounds; approx: median of interleaved rounds, fixed = approx - "
          "kernel within each round):")
    ref = nn.Conv2d(16, 16, 3, padding=1, bias=False)
    layer = ApproxConv2d.from_conv(ref, multiplier=multiplier, backend="cpu")
    x = torch.randn(1, 16, 8, 8)
    layer(x)
    codes = torch.randint(0, 256, (1, 16, 10, 10), dtype=torch.uint8)
    w_codes = torch.randint(0, 256, (16, 16, 3, 3), dtype=torch.uint8)
    lut = layer.lut
    reps = max(repeat, 200)

    def per_call(fn) -> float:
        return 1e6 * _time(lambda: [fn() for _ in range(10)], reps // 10) / 10

    with torch.no_grad():
        t_ref = per_call(lambda: ref(x))
        t_kernel = per_call(lambda: cpu.conv2d_lut(codes, w_codes, lut))
        layer.eval()
        t_eval, fixed_eval = _paired(lambda: layer(x),
                                     lambda: cpu.conv2d_lut(codes, w_codes, lut), reps)
        layer.train()
        t_train, fixed_train = _paired(lambda: layer(x),
                                       lambda: cpu.conv2d_lut(codes, w_codes, lut), reps)
    xg = x.clone().requires_grad_()
    t_fb = per_call(lambda: layer(xg).sum().backward())
    t_fb_ref = per_call(lambda: ref(xg).sum().backward())
    print(f"{'fp32 conv fwd':34} {t_ref:8.1f}")
    print(f"{'LUT kernel alone (codes in)':34} {t_kernel:8.1f}")
    for what, t, fixed in (("approx fwd, eval (frozen ranges)", t_eval, fixed_eval),
                           ("approx fwd, training (observing)", t_train, fixed_train)):
        shown = f"{fixed:6.1f}" if fixed > 0 else "  <noise (not measurable)"
        print(f"{what:34} {t:8.1f}   fixed {shown}")
    print(f"{'approx fwd+bwd, training':34} {t_fb:8.1f}   fp32 fwd+bwd {t_fb_ref:6.1f}")


def _paired(layer_call, kernel_call, reps: int) -> tuple[float, float]:
    """Median per-call time of ``layer_call`` and the median, over interleaved rounds, of its
    time minus ``kernel_call``'s: both measured in the same round, so a slow moment of the
    machine inflates both and cancels, where the difference of two separate bests could come
    out negative."""
    layer_call(), kernel_call()
    layer_t, diffs = [], []
    for _ in range(max(5, reps // 10)):
        t0 = time.perf_counter()
        for _ in range(10):
            layer_call()
        t1 = time.perf_counter()
        for _ in range(10):
            kernel_call()
        t2 = time.perf_counter()
        layer_t.append((t1 - t0) / 10)
        diffs.append(((t1 - t0) - (t2 - t1)) / 10)
    return 1e6 * statistics.median(layer_t), 1e6 * statistics.median(diffs)


if __name__ == "__main__":
    main()
