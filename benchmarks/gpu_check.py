"""The GPU path in one command: Triton kernel bit-exact, its speed against cuDNN, a search step.

Run on a CUDA machine with triton installed (``pip install -e '.[gpu]'``):
``python benchmarks/gpu_check.py [--budget 220]``.  Three parts, each printed as a table:

1. **bit-exact**: ``ApproxConv2d`` with the ``triton`` backend against the ``reference``
   backend (the pure-torch oracle) on DARTS-shaped layers, float32 and float16 inputs; any
   mismatch is a failure (exit code 1);
2. **speed**: forward and forward+backward of the approximate layer against
   ``F.conv2d`` on cuDNN in fp32 and in TF32, batch 64, times from CUDA events (median of
   repeats after warm-up, Triton compilation excluded);
3. **search**: 20 DARTS search steps (first-order architecture step + weight step) at the
   ApproxDARTS size, 8 cells, 16 channels, batch 64, 32x32, with approximate convolutions
   against the same steps with ``nn.Conv2d``.

A time budget (``--budget`` seconds, default 220 so that the whole run stays under four
minutes) is checked between items; what does not fit is reported as skipped, never silently
dropped.  Without CUDA the script says so in one line and exits with code 2.

``--rehearse`` runs parts 1 and 3 on the CPU through Triton's interpreter on tiny shapes
(part 2 needs CUDA events): the same code paths, so that a lent GPU's few minutes are not
lost to a bug in this script (the test suite runs it).
"""

from __future__ import annotations

import os
import sys

if "--rehearse" in sys.argv:      # before anything imports triton: interpreted kernels
    os.environ["TRITON_INTERPRET"] = "1"

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MULTIPLIER = "trunc8u_k6c"
BATCH = 64
DEVICE = "cuda"
#: (name, in, out, kernel, stride, padding, dilation, groups, input side)
LAYERS = [
    ("stem 3x3 3->48", 3, 48, 3, 1, 1, 1, 1, 32),
    ("pw 1x1 16->16", 16, 16, 1, 1, 0, 1, 1, 32),
    ("pw 1x1 32->32", 32, 32, 1, 1, 0, 1, 1, 16),
    ("pw 1x1 64->64", 64, 64, 1, 1, 0, 1, 1, 8),
    ("dw 3x3 32", 32, 32, 3, 1, 1, 1, 32, 16),
    ("dw 5x5 32", 32, 32, 5, 1, 2, 1, 32, 16),
    ("dil dw 3x3 d2 32", 32, 32, 3, 1, 2, 2, 32, 16),
    ("dw 3x3 s2 16", 16, 16, 3, 2, 1, 1, 16, 32),
]


class Budget:
    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def cuda_ms(fn, repeat: int = 10) -> float:
    """Median milliseconds of ``fn`` on the GPU (CUDA events), after two warm-up calls."""
    fn()
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def make_layers(spec, backend: str):
    from multiplier_lib.emulate.layers import ApproxConv2d

    _name, cin, cout, k, s, p, d, g, side = spec
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, s, p, d, g, bias=False).to(DEVICE)
    approx = ApproxConv2d.from_conv(conv, multiplier=MULTIPLIER, backend=backend).to(DEVICE)
    x = torch.randn(BATCH, cin, side, side, device=DEVICE)
    approx(x)               # calibrate the observers on this batch, then freeze them
    approx.eval()
    return conv, approx, x


def check_exact(budget: Budget) -> bool:
    print(f"1. bit-exact: triton vs reference backend, {MULTIPLIER}, batch {BATCH}")
    print(f"{'layer':22} {'dtype':8} {'max |diff|':>11} {'result':>8}")
    ok = True
    for spec in LAYERS:
        if budget.left() < 60:
            print(f"{spec[0]:22} skipped: time budget")
            continue
        _conv, approx, x = make_layers(spec, "triton")
        for dtype in (torch.float32, torch.float16):
            xin = x.to(dtype)
            with torch.no_grad():
                approx.backend = "triton"
                got = approx(xin)
                approx.backend = "reference"
                want = approx(xin)
            diff = (got.float() - want.float()).abs().max().item()
            same = torch.equal(got, want)
            ok &= same
            print(f"{spec[0]:22} {str(dtype).replace('torch.', ''):8} {diff:11.3g} "
                  f"{'exact' if same else 'MISMATCH':>8}")
    return ok


def forward(layer, x):
    return lambda: layer(x)


def forward_backward(layer, x):
    def run() -> None:
        layer(x).sum().backward()
    return run


def speed(budget: Budget) -> None:
    print(f"\n2. speed: approximate (triton) / cuDNN, batch {BATCH}, median of 10")
    print(f"{'layer':22} {'fp32 ms':>8} {'tf32 ms':>8} {'approx ms':>9} {'/fp32':>7} "
          f"{'/tf32':>7} | {'f+b fp32':>9} {'f+b approx':>10} {'/fp32':>7}")
    ratios = {"fwd_fp32": [], "fwd_tf32": [], "fb_fp32": []}
    for spec in LAYERS:
        if budget.left() < 45:
            print(f"{spec[0]:22} skipped: time budget")
            continue
        conv, approx, x = make_layers(spec, "triton")
        approx.train()
        x_req = x.clone().requires_grad_(True)
        with torch.no_grad():
            torch.backends.cudnn.allow_tf32 = False
            fp32 = cuda_ms(forward(conv, x))
            torch.backends.cudnn.allow_tf32 = True
            tf32 = cuda_ms(forward(conv, x))
            torch.backends.cudnn.allow_tf32 = False
            ap = cuda_ms(forward(approx, x))
        fb32 = cuda_ms(forward_backward(conv, x_req))
        fbap = cuda_ms(forward_backward(approx, x_req))
        ratios["fwd_fp32"].append(ap / fp32)
        ratios["fwd_tf32"].append(ap / tf32)
        ratios["fb_fp32"].append(fbap / fb32)
        print(f"{spec[0]:22} {fp32:8.3f} {tf32:8.3f} {ap:9.3f} {ap / fp32:6.1f}x "
              f"{ap / tf32:6.1f}x | {fb32:9.3f} {fbap:10.3f} {fbap / fb32:6.1f}x")
    if ratios["fwd_fp32"]:
        gm = {k: statistics.geometric_mean(v) for k, v in ratios.items()}
        print(f"{'geometric mean':22} {'':8} {'':8} {'':9} {gm['fwd_fp32']:6.1f}x "
              f"{gm['fwd_tf32']:6.1f}x | {'':9} {'':10} {gm['fb_fp32']:6.1f}x")


def search_step(architect, model, loss_fn, w_opt, x, y):
    """One step as ``nas.search`` takes it: architecture step, then weight step."""
    def step() -> None:
        architect.step(x, y, x, y, 0.025, w_opt)
        w_opt.zero_grad()
        loss_fn(model, x, y).backward()
        w_opt.step()
    return step


def search_steps(budget: Budget, steps: int = 20, cells: int = 8, channels: int = 16,
                 side: int = 32, backend: str = "triton") -> None:
    from nas.architect import Architect
    from nas.ops import approx_conv, plain_conv
    from nas.search_cnn import SearchCNN

    print(f"\n3. search: {steps} DARTS steps, {cells} cells, {channels} channels, batch "
          f"{BATCH}, {side}x{side}")
    results = {}
    for name, conv in (("float nn.Conv2d", plain_conv),
                       (f"approx {backend}", approx_conv(MULTIPLIER, backend=backend))):
        if budget.left() < 20:
            print(f"{name:18} skipped: time budget")
            continue
        torch.manual_seed(0)
        model = SearchCNN(channels, 10, cells, conv=conv).to(DEVICE)
        w_opt = torch.optim.SGD(model.weights(), 0.025, momentum=0.9, weight_decay=3e-4)
        a_opt = torch.optim.Adam(model.alphas(), 3e-4, betas=(0.5, 0.999))

        def loss_fn(net, x, y):
            return F.cross_entropy(net(x), y)

        architect = Architect(model, loss_fn, a_opt, "first")
        x = torch.randn(BATCH, 3, side, side, device=DEVICE)
        y = torch.randint(0, 10, (BATCH,), device=DEVICE)
        step = search_step(architect, model, loss_fn, w_opt, x, y)
        step()                                     # compile kernels, calibrate observers
        sync()
        t0 = time.perf_counter()
        done = 0
        while done < steps and budget.left() > 5:
            step()
            done += 1
        sync()
        per_step = (time.perf_counter() - t0) / max(done, 1)
        results[name] = per_step
        print(f"{name:18} {per_step * 1000:9.1f} ms/step over {done} steps")
    if len(results) == 2:
        ratio = results[f"approx {backend}"] / results["float nn.Conv2d"]
        print(f"{'ratio approx/float':18} {ratio:9.2f}x")


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def rehearse() -> int:
    """Parts 1 and 3 on the CPU, interpreted, tiny: the script's own code paths."""
    global BATCH, DEVICE, LAYERS
    BATCH, DEVICE = 2, "cpu"
    LAYERS = [(n, cin, cout, k, s, p, d, g, 6) for n, cin, cout, k, s, p, d, g, _ in LAYERS
              if cin <= 16]
    budget = Budget(600)
    print("rehearsal on the CPU (Triton interpreter, tiny shapes; no timings mean anything)\n")
    exact = check_exact(budget)
    # the step's code path; the kernel itself was exercised above (interpreted search steps
    # would take minutes)
    search_steps(budget, steps=1, cells=1, channels=4, side=8, backend="reference")
    print(f"\nbit-exact: {'yes' if exact else 'NO'}")
    return 0 if exact else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=220.0,
                        help="seconds for the whole check (default 220)")
    parser.add_argument("--rehearse", action="store_true",
                        help="run the checks on the CPU through Triton's interpreter, tiny")
    args = parser.parse_args()
    if args.rehearse:
        return rehearse()
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}); this check needs an NVIDIA GPU and triton",
              file=sys.stderr)
        return 2
    try:
        import triton
    except ImportError:
        print("gpu_check: triton is not installed (pip install -e '.[gpu]')", file=sys.stderr)
        return 2
    budget = Budget(args.budget)
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, CUDA "
          f"{torch.version.cuda}, triton {triton.__version__}\n")
    exact = check_exact(budget)
    speed(budget)
    search_steps(budget)
    print(f"\nbit-exact: {'yes' if exact else 'NO'}; "
          f"{args.budget - budget.left():.0f} s of {args.budget:.0f} s used")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
