"""Time of one DARTS search step: hwcost's supernet against a plain PyTorch DARTS.

A step is what a first-order DARTS search does per batch: an architecture update (Adam on
the alphas) on a validation batch, then a weight update (SGD with momentum, gradient
clipping) on a training batch.  The same supernet (the 8 DARTS primitives, ``--nodes``
intermediate nodes, ``--layers`` cells with reductions at ``layers // 3`` and
``2 * layers // 3``, ``--channels``, ``--batch``, ``--input-size`` images, ``--classes``)
is timed four ways:

(a) a straightforward DARTS written plainly below (``Ref*`` classes: its own mixed op, cell
    and network of ``nn.Conv2d`` and ``BatchNorm2d(affine=False)``, its own first-order
    step), the way the DARTS paper's code and pt.darts do it: the yardstick;
(b) hwcost's :class:`nas.search_cnn.SearchCNN` with float convs (:func:`nas.ops.plain_conv`);
(c) the same with one approximate multiplier (``--multiplier``, backend ``cpu``);
(d) the same searching a multiplier per edge among ``--candidates`` (shared weights), every
    candidate run each step and mixed by softmax(beta) (``--multiplier-sampling all``);
(e) as (d) with one candidate per edge drawn each step (``--multiplier-sampling gumbel``);
(f) as (d) with the candidates mixed at every conv instead of per op
    (``--multiplier-sampling per-conv``): the ops run once, each conv's products are
    looked up in every candidate's table and mixed by softmax(beta).

Rows (b)-(d) step with :class:`nas.architect.Architect` and the weight step of
:func:`nas.search.run_search`, so changes there show up here.  The parameter counts of all
rows and the MACs of (a) and (b) (forward hooks on the convs and the classifier) are
checked equal: the rows time the same network.  Each row is warmed up, then timed
``--repeat`` times, the rows interleaved (a b c d a b c d ...); the table gives the best
and the median step, their ratios to (a) and (b), and the targets of issue 20 (float <=
1.0x the plain DARTS, one multiplier <= 1.3x float, three candidates <= 1.6x float, for
(d), (e) and (f) alike).
``--profile ROWS`` prints torch.profiler's busiest ops for one step of each of those rows.

Run: ``python benchmarks/bench_search.py [--layers 5 --channels 8] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from load_check import warn_if_busy
from torch import nn

#: the DARTS primitives in the order of the architecture weights
REF_PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                  "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")

W_LR, W_MOMENTUM, W_DECAY, W_CLIP = 0.025, 0.9, 3e-4, 5.0
A_LR, A_BETAS, A_DECAY = 3e-4, (0.5, 0.999), 1e-3

#: row -> (label, target ratio, the row the target is a ratio to)
ROWS = {
    "a": ("plain PyTorch DARTS", None, None),
    "b": ("hwcost float", 1.0, "a"),
    "c": ("hwcost 1 multiplier", 1.3, "b"),
    "d": ("hwcost 3 candidates", 1.6, "b"),
    "e": ("hwcost 3 candidates, sampled", 1.6, "b"),
    "f": ("hwcost 3 candidates, per conv", 1.6, "b"),
}

#: the ``multiplier_sampling`` of the candidate rows
SAMPLING = {"d": "all", "e": "gumbel", "f": "per-conv"}


# --------------------------------------------------------------------------------------------
# (a) a plain DARTS supernet


class RefZero(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class RefReLUConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, padding,
                                                     bias=False),
                                nn.BatchNorm2d(c_out, affine=False))

    def forward(self, x):
        return self.op(x)


class RefDilConv(nn.Module):
    """ReLU, depthwise ``kernel`` conv (dilated, strided), pointwise conv, BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 dilation: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=False))

    def forward(self, x):
        return self.op(x)


class RefSepConv(nn.Module):
    """Two depthwise-separable units, only the first strided."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.op = nn.Sequential(RefDilConv(c_in, c_in, kernel, stride, padding, 1),
                                RefDilConv(c_in, c_out, kernel, 1, padding, 1))

    def forward(self, x):
        return self.op(x)


class RefFactorizedReduce(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def ref_op(name: str, c: int, stride: int) -> nn.Module:
    if name == "none":
        return RefZero(stride)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else RefFactorizedReduce(c, c)
    if name.startswith("sep_conv_"):
        k = int(name[-1])
        return RefSepConv(c, c, k, stride, k // 2)
    if name.startswith("dil_conv_"):
        k = int(name[-1])
        return RefDilConv(c, c, k, stride, k - 1, 2)
    raise ValueError(name)


class RefMixedOp(nn.Module):
    def __init__(self, c: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleList()
        for name in REF_PRIMITIVES:
            op = ref_op(name, c, stride)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self.ops.append(op)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class RefCell(nn.Module):
    def __init__(self, nodes: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.pre0 = (RefFactorizedReduce(c_pp, c) if reduction_prev
                     else RefReLUConvBN(c_pp, c, 1, 1, 0))
        self.pre1 = RefReLUConvBN(c_p, c, 1, 1, 0)
        self.ops = nn.ModuleList()
        for i in range(nodes):
            for j in range(2 + i):
                self.ops.append(RefMixedOp(c, 2 if reduction and j < 2 else 1))

    def forward(self, s0, s1, weights):
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.nodes):
            s = sum(self.ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.nodes:], dim=1)


class RefNetwork(nn.Module):
    def __init__(self, c: int, classes: int, layers: int, nodes: int = 4,
                 stem_multiplier: int = 3):
        super().__init__()
        c_curr = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(RefCell(nodes, c_pp, c_p, c_curr, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c_curr
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, classes)
        k = sum(2 + i for i in range(nodes))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(k, len(REF_PRIMITIVES)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(k, len(REF_PRIMITIVES)))

    def weights(self):
        return [p for n, p in self.named_parameters() if not n.startswith("alpha_")]

    def alphas(self):
        return [self.alpha_normal, self.alpha_reduce]

    def forward(self, x):
        w_normal = F.softmax(self.alpha_normal, dim=-1)
        w_reduce = F.softmax(self.alpha_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        return self.classifier(self.gap(s1).flatten(1))


def ref_stepper(model: RefNetwork, batches) -> Callable[[], None]:
    """DARTS's first-order step: alphas on the validation batch, then the weights."""
    (xt, yt), (xv, yv) = batches
    weights = model.weights()
    w_opt = torch.optim.SGD(weights, W_LR, momentum=W_MOMENTUM, weight_decay=W_DECAY)
    a_opt = torch.optim.Adam(model.alphas(), A_LR, betas=A_BETAS, weight_decay=A_DECAY)

    def step() -> None:
        a_opt.zero_grad()
        F.cross_entropy(model(xv), yv).backward()
        a_opt.step()
        w_opt.zero_grad()
        F.cross_entropy(model(xt), yt).backward()
        nn.utils.clip_grad_norm_(weights, W_CLIP)
        w_opt.step()

    return step


# --------------------------------------------------------------------------------------------
# (b)-(d) hwcost's supernet and search step


def hwcost_model(row: str, args) -> nn.Module:
    from nas.ops import approx_conv, plain_conv
    from nas.search_cnn import SearchCNN

    kw = dict(input_size=args.input_size)
    if row == "b":
        return SearchCNN(args.channels, args.classes, args.layers, args.nodes, conv=plain_conv,
                         **kw)
    if row == "c":
        return SearchCNN(args.channels, args.classes, args.layers, args.nodes,
                         conv=approx_conv(args.multiplier, backend=args.backend), **kw)
    names = [m.strip() for m in args.candidates.split(",") if m.strip()]
    # as nas.search._model: the unsearched layers use the first candidate
    return SearchCNN(args.channels, args.classes, args.layers, args.nodes,
                     conv=approx_conv(names[0], backend=args.backend), multipliers=names,
                     multiplier_conv=lambda ms: approx_conv(ms, backend=args.backend),
                     multiplier_sampling=SAMPLING[row], **kw)


def hwcost_stepper(model: nn.Module, batches) -> Callable[[], None]:
    """nas.search.run_search's step: ``Architect.step`` then its weight step."""
    from nas.architect import Architect
    from nas.search import weight_step

    (xt, yt), (xv, yv) = batches
    w_opt = torch.optim.SGD(model.weights(), W_LR, momentum=W_MOMENTUM, weight_decay=W_DECAY)
    a_opt = torch.optim.Adam(model.alphas(), A_LR, betas=A_BETAS, weight_decay=A_DECAY)

    def loss_fn(net, x, y):
        return F.cross_entropy(net(x), y)

    architect = Architect(model, loss_fn, a_opt, "first", W_MOMENTUM, W_DECAY)

    def step() -> None:
        architect.step(xt, yt, xv, yv, W_LR, w_opt)
        weight_step(model, w_opt, xt, yt, W_CLIP)

    return step


# --------------------------------------------------------------------------------------------
# checks, timing, the table


def build(row: str, args) -> tuple[nn.Module, Callable[[], None]]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    shape = (args.batch, 3, args.input_size, args.input_size)
    batches = [(torch.randn(shape, generator=g),
                torch.randint(0, args.classes, (args.batch,), generator=g)) for _ in range(2)]
    if row == "a":
        model = RefNetwork(args.channels, args.classes, args.layers, args.nodes)
        return model, ref_stepper(model, batches)
    model = hwcost_model(row, args)
    return model, hwcost_stepper(model, batches)


def n_weights(model: nn.Module) -> int:
    return sum(p.numel() for p in model.weights())


def count_macs(model: nn.Module, args) -> int:
    """Conv and classifier MACs of one forward of a 1-image batch, counted by hooks."""
    macs = 0

    def conv_hook(mod, _inputs, out):
        nonlocal macs
        macs += out.numel() * mod.weight[0].numel()

    def fc_hook(mod, _inputs, out):
        nonlocal macs
        macs += out.numel() * mod.in_features

    handles = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else fc_hook)
               for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, args.input_size, args.input_size))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return macs


def time_steps(step: Callable[[], None], warmup: int, repeat: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def cpu_header() -> list[str]:
    from multiplier_lib.emulate.backends.cpu import cpu_identity

    model, flags = cpu_identity()
    have = ", ".join(f"{f} {'yes' if f in flags else 'no'}"
                     for f in ("avx2", "avx512vbmi", "avx512_vnni"))
    try:
        from multiplier_lib.emulate.backends import cpu
        backend = cpu.describe_machine()
    except Exception as err:  # the header must not stop the benchmark
        backend = f"cpu backend unavailable ({type(err).__name__}: {err})"
    return [f"CPU: {model} ({have}); {os.cpu_count()} logical CPUs",
            f"cpu backend: {backend}",
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)"]


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def profile_row(row: str, args) -> None:
    from torch.profiler import ProfilerActivity, profile

    _, step = build(row, args)
    for _ in range(max(args.warmup, 1)):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(f"\nprofile of one step of ({row}) {ROWS[row][0]}:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_top))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (the cpu backend's kernel follows it)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per row")
    parser.add_argument("--repeat", type=int, default=5, help="timed steps per row")
    parser.add_argument("--multiplier", default="trunc8u_k6c", help="row (c)")
    parser.add_argument("--candidates", default="exact8u,trunc8u_k6c,drum8u_k4",
                        help="multipliers searched per edge in rows (d)-(f)")
    parser.add_argument("--rows", default="abcdef", help="which rows to time, e.g. 'ab'")
    parser.add_argument("--backend", default="cpu", choices=["cpu", "reference"],
                        help="emulation backend of rows (c)-(f)")
    parser.add_argument("--profile", default="", metavar="ROWS",
                        help="after the table, profile one step of these rows, e.g. 'cd'")
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args(argv)
    rows = [r for r in ROWS if r in args.rows]
    if args.threads < 1 or args.repeat < 1 or args.warmup < 0 or not rows:
        parser.error("--threads and --repeat must be >= 1, --warmup >= 0, --rows of abcdef")
    n_cand = len(args.candidates.split(','))
    ROWS["d"] = (f"hwcost {n_cand} candidates", 1.6, "b")
    ROWS["e"] = (f"hwcost {n_cand} candidates, sampled", 1.6, "b")
    ROWS["f"] = (f"hwcost {n_cand} candidates, per conv", 1.6, "b")
    torch.set_num_threads(args.threads)

    load0 = load_average()
    for line in cpu_header():
        print(line)
    warn_if_busy()
    print(f"search step (first order): {args.layers} cells, {args.nodes} nodes, "
          f"{args.channels} channels, batch {args.batch}, {args.input_size}x{args.input_size}, "
          f"{args.classes} classes; (c) {args.multiplier}, (d)-(f) {args.candidates} on the "
          f"{args.backend} backend; "
          f"best and median of {args.repeat} after {args.warmup} warm-up step(s)")

    # the same supernet: parameters of every row, MACs of (a) and (b)
    params, macs = {}, {}
    for row in "abcdef":
        model, _ = build(row, args)
        params[row] = n_weights(model)
        if row in "ab":
            macs[row] = count_macs(model, args)
        del model
    print(f"weights: {params['a']} parameters in (a); MACs per image (conv + classifier): "
          f"(a) {macs['a']}, (b) {macs['b']}")
    if len(set(params.values())) != 1:
        raise SystemExit(f"not the same supernet: parameter counts {params}")
    if macs["a"] != macs["b"]:
        raise SystemExit(f"not the same supernet: MACs {macs}")

    # rows interleaved, one step each per round, so that a drift of the machine's speed
    # (other jobs, clocks) spreads over every row instead of falling on one
    steps = {row: build(row, args)[1] for row in rows}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    results: dict[str, list[float]] = {row: [] for row in rows}
    for _ in range(args.repeat):
        for row, step in steps.items():
            results[row].append(time_steps(step, 0, 1)[0])
    del steps

    best = {r: min(t) for r, t in results.items()}
    med = {r: statistics.median(t) for r, t in results.items()}

    def ratio(row: str, to: str) -> str:
        return f"{best[row] / best[to]:.2f}x" if to in best else "-"

    print(f"\n{'row':34} {'best s':>8} {'median s':>9} {'vs (a)':>7} {'vs (b)':>7}  target")
    for row in rows:
        label, target, of = ROWS[row]
        verdict = ""
        if target is not None and of in best:
            met = best[row] / best[of] <= target
            verdict = f"<= {target:.1f}x ({of}): {'met' if met else 'NOT met'}"
        print(f"({row}) {label:30} {best[row]:8.3f} {med[row]:9.3f} {ratio(row, 'a'):>7} "
              f"{ratio(row, 'b'):>7}  {verdict}")
    load1 = load_average()
    if load0 is not None and load1 is not None:
        # judged on the load before the run: the one after counts this run's own threads
        quiet = load0 <= 1.5
        print(f"load average (1 min) {load0:.2f} before, {load1:.2f} after (this run's "
              f"{args.threads} thread(s) included)"
              + ("" if quiet else ": NOT a quiet machine, figures are inflated"))
    for row in args.profile:
        if row in ROWS:
            profile_row(row, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
