"""Approximate layers against exact fp32 PyTorch layers on DARTS-shaped layers, batch 64.

For each layer: the time of ``ApproxConv2d``/``ApproxLinear`` (quantization, LUT products,
exact corrections) divided by the time of the same ``nn.Conv2d``/``nn.Linear`` in fp32,
forward and forward+backward, for the ``cpu`` backend, all measured in this process on this
machine, plus the geometric means.

Run: ``python benchmarks/bench_emulation.py [--batch 64] [--repeat 3] [--threads N]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
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
VARIANTS = [("cpu", {"backend": "cpu"})]


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    multiplier = args.multiplier
    print(cpu.describe_machine())
    print(f"batch {args.batch}, {args.threads} threads, multiplier {multiplier}; "
          "ratio = approximate time / fp32 torch time (same machine, same run)")
    head = f"{'layer':24} {'fp32 fwd ms':>11}"
    for name, _ in VARIANTS:
        head += f" {name + ' fwd':>15} {name + ' f+b':>15}"
    print(head)
    ratios: dict[str, list[float]] = {f"{n} {k}": [] for n, _ in VARIANTS for k in ("fwd",
                                                                                      "f+b")}
    for label, make, shape in LAYERS:
        ref = make()
        x = torch.randn(args.batch, *shape)
        xg = x.clone().requires_grad_()
        t_fwd = _time(lambda ref=ref, x=x: ref(x), args.repeat)
        t_fb = _time(lambda ref=ref, xg=xg: ref(xg).sum().backward(), args.repeat)
        row = f"{label:24} {1000 * t_fwd:11.2f}"
        for name, cfg in VARIANTS:
            layer = _approx(ref, multiplier, cfg["backend"])
            layer.eval()
            layer(x)  # calibrate ranges on this batch
            a_fwd = _time(lambda layer=layer, x=x: layer(x), args.repeat)
            layer.train()
            layer.act_quant.observing = layer.weight_quant.observing = False
            a_fb = _time(lambda layer=layer, xg=xg: layer(xg).sum().backward(), args.repeat)
            ratios[f"{name} fwd"].append(a_fwd / t_fwd)
            ratios[f"{name} f+b"].append(a_fb / t_fb)
            row += f" {a_fwd / t_fwd:14.2f}x {a_fb / t_fb:14.2f}x"
        print(row)
    row = f"{'geometric mean':24} {'':11}"
    for name, _ in VARIANTS:
        row += (f" {statistics.geometric_mean(ratios[name + ' fwd']):14.2f}x"
                f" {statistics.geometric_mean(ratios[name + ' f+b']):14.2f}x")
    print(row)


if __name__ == "__main__":
    main()
