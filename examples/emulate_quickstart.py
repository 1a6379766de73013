"""Approximate a small CNN, calibrate it, compare multipliers, train it a few steps.

Run: ``python examples/emulate_quickstart.py [--backend auto|reference|cpu|triton]``
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from multiplier_lib.emulate import approximate, calibrate, set_multiplier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
                          nn.Conv2d(16, 32, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(32, 10))
    x = torch.randn(32, 3, 16, 16)
    y = torch.randint(0, 10, (32,))
    approx = approximate(model, "exact8u", backend=args.backend, per_layer={"8": "exact8u"})
    calibrate(approx, [x[:16], x[16:]])
    approx.eval()
    reference = model(x)
    for name in ("exact8u", "trunc8u_k6c", "drum8u_k4", "mitchell8u"):
        set_multiplier(approx, name)
        out = approx(x)
        rel = ((out - reference).norm() / reference.norm()).item()
        agree = (out.argmax(1) == reference.argmax(1)).float().mean().item()
        print(f"{name:12} output error vs fp32 {rel:6.3f}, same top-1 {agree:5.1%}")
    set_multiplier(approx, "trunc8u_k6c")
    approx.train()
    opt = torch.optim.SGD(approx.parameters(), lr=0.1, momentum=0.9)
    for step in range(5):
        opt.zero_grad()
        loss = F.cross_entropy(approx(x), y)
        loss.backward()
        opt.step()
        print(f"step {step}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
