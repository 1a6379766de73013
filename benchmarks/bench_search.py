"""Time of one DARTS search step with approximate emulation against plain float convolutions.

A step is what ``nas.search`` does per batch: a first-order architecture update on a
validation batch and a weight update on a training batch.  The supernet is DARTS's search
network shrunk to fit this machine (``--layers``, ``--channels``, ``--batch``); the same
step with ``nn.Conv2d`` everywhere is the baseline, measured in the same run.  The last row
also searches a multiplier per edge among ``--candidates`` (shared weights, one pass).

Run: ``python benchmarks/bench_search.py [--layers 5] [--channels 8] [--batch 16]``
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from multiplier_lib.emulate.backends import cpu
from nas.architect import Architect
from nas.ops import approx_conv, plain_conv
from nas.search_cnn import SearchCNN


def step_time(conv, args, repeat: int, candidates: list[str] | None = None) -> float:
    torch.manual_seed(0)
    model = SearchCNN(args.channels, 10, args.layers, conv=conv, multipliers=candidates,
                      multiplier_conv=(lambda names: approx_conv(names, backend="cpu"))
                      if candidates else None)
    w_opt = torch.optim.SGD(model.weights(), 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.alphas(), 3e-4, betas=(0.5, 0.999))

    def loss_fn(net, x, y):
        return F.cross_entropy(net(x), y)

    architect = Architect(model, loss_fn, a_opt, "first")
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))

    def one() -> None:
        architect.step(x, y, x, y, 0.025, w_opt)
        w_opt.zero_grad()
        loss_fn(model, x, y).backward()
        w_opt.step()

    one()  # warm-up: observers, extension build
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        one()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--multiplier", default="trunc8u_k6c")
    parser.add_argument("--candidates", default="exact8u,trunc8u_k6c,drum8u_k4",
                        help="multipliers searched per edge in the last row")
    args = parser.parse_args()
    base = step_time(plain_conv, args, args.repeat)
    print(cpu.describe_machine())
    print(f"search step: {args.layers} cells, {args.channels} channels, batch {args.batch}, "
          f"32x32, multiplier {args.multiplier}")
    print(f"{'variant':24} {'seconds':>9} {'ratio vs float':>15}")
    print(f"{'float nn.Conv2d':24} {base:9.3f} {1.0:14.2f}x")
    t = step_time(approx_conv(args.multiplier, backend="cpu"), args, args.repeat)
    print(f"{'approx cpu':24} {t:9.3f} {t / base:14.2f}x")
    names = args.candidates.split(",")
    t = step_time(approx_conv(args.multiplier, backend="cpu"), args, args.repeat, names)
    label = f"approx cpu, {len(names)}/edge"
    print(f"{label:24} {t:9.3f} {t / base:14.2f}x   (per-edge search among {args.candidates})")


if __name__ == "__main__":
    main()
