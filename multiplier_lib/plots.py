"""PNG plots for the characterization report, rendered to bytes.

Every function returns encoded PNG bytes instead of writing a file, so the report can both
write them atomically and embed the very same bytes in the self-contained HTML.

Figures are built with :class:`matplotlib.figure.Figure` on an explicit Agg canvas rather than
through ``pyplot``: pyplot keeps every figure in a global registry (a leak unless each one is
closed) and needs a backend chosen process-wide, which would switch the backend of a user who
imports hwcost from an interactive session.  An explicit Agg canvas needs no display, changes no
global state and is freed with the last reference.  (Hence no ``matplotlib.use("Agg")`` either:
the Agg canvas is used directly, whatever backend the rest of the process has chosen.)
"""

from __future__ import annotations

import math
from io import BytesIO

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from .multiplier import operand_values

DPI = 100
HEATMAP_CMAP = "RdBu_r"  # diverging: blue = product too small, red = too large, white = exact


def ascending_code_order(bits: int, signed: bool) -> np.ndarray:
    """Codes ``0 .. 2**bits - 1`` permuted so that their operand values ascend.

    LUT rows/columns are indexed by raw codes; for two's complement that puts -128..-1 after
    127, which would split a heatmap in the middle.  Indexing with this order makes the axes
    read monotonically (-128..127).  For unsigned operands it is the identity.
    """
    return np.argsort(operand_values(bits, signed), kind="stable")


def _new_figure(width_in: float, height_in: float) -> Figure:
    """A figure on its own Agg canvas, with fixed margins.

    Fixed margins instead of ``tight_layout``: the latter costs an extra full draw per figure
    (about a third of the render time) and the layouts here are simple and known in advance.
    """
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.13, right=0.96, bottom=0.13, top=0.91)
    return fig


def _to_png(fig: Figure) -> bytes:
    """Encode ``fig`` as a 256-colour palette PNG.

    Matplotlib writes 32-bit RGBA, and an error heatmap of a noisy multiplier is close to
    incompressible at that depth (~270 KB).  Re-encoding with an adaptive palette (no
    dithering, so flat areas stay flat) keeps the worst case under ~100 KB, which matters
    because every image is also base64-embedded in the HTML.  256 colours are plenty for a
    figure drawn from one colormap plus a few line/text colours.
    """
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()  # drop artists (and the big image array) right away, not at GC time
    buf.seek(0)
    with Image.open(buf) as rgba:
        pal = rgba.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                           dither=Image.Dither.NONE)
    out = BytesIO()
    pal.save(out, format="PNG", optimize=True)
    return out.getvalue()


def heatmap_png(name: str, error: np.ndarray, a_bits: int, b_bits: int, signed: bool) -> bytes:
    """Error (approx - exact) over the operand plane, axes in operand values.

    The colour scale is symmetric around zero so white always means "exact" and the two hues
    compare magnitudes of over- and under-estimation directly; an all-exact table gets a
    nominal +-1 scale instead of a degenerate one.
    """
    order_a = ascending_code_order(a_bits, signed)
    order_b = ascending_code_order(b_bits, signed)
    view = np.asarray(error)[np.ix_(order_a, order_b)]
    va = operand_values(a_bits, signed)[order_a]
    vb = operand_values(b_bits, signed)[order_b]
    peak = float(np.max(np.abs(view))) if view.size else 0.0
    lim = peak if peak > 0 else 1.0

    fig = _new_figure(5.2, 4.2)
    fig.subplots_adjust(left=0.16, right=0.88)
    ax = fig.add_subplot()
    im = ax.imshow(
        view, origin="lower", cmap=HEATMAP_CMAP, vmin=-lim, vmax=lim, aspect="auto",
        interpolation="nearest",
        extent=(vb[0] - 0.5, vb[-1] + 0.5, va[0] - 0.5, va[-1] + 0.5),
    )
    ax.set_xlabel("operand b (value)")
    ax.set_ylabel("operand a (value)")
    title = f"{name}: error (approx - exact)"
    if peak == 0:
        title += " - exact everywhere"
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="error")
    return _to_png(fig)


def _hist_edges(lo: int, hi: int, max_bins: int = 101) -> np.ndarray:
    """Bin edges centred on integers when the error range is small, else evenly spread."""
    if hi - lo + 1 <= max_bins:
        return np.arange(lo, hi + 2, dtype=float) - 0.5
    return np.linspace(lo, hi, max_bins + 1)


def histogram_png(name: str, error: np.ndarray, weights: np.ndarray | None = None) -> bytes:
    """Distribution of the error over all operand pairs (optionally weighted).

    Errors of approximate multipliers usually pile up at zero with long tails, so the count
    axis is always logarithmic, and says so: one scale for every histogram of a report, so
    that two multipliers' tails compare by eye (a linear axis for some and a log one for
    others, chosen per plot, read as different shapes).
    """
    err = np.asarray(error, dtype=np.int64).ravel()
    w = None if weights is None else np.asarray(weights, dtype=float).ravel()
    edges = _hist_edges(int(err.min()), int(err.max()))
    counts, _ = np.histogram(err, bins=edges, weights=w)

    fig = _new_figure(5.2, 3.4)
    fig.subplots_adjust(left=0.15)   # room for the y label beside 10^-n tick labels
    ax = fig.add_subplot()
    ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.8)
    ax.set_yscale("log")
    mean = float(np.average(err, weights=w))
    ax.axvline(0, color="black", linewidth=0.8)
    ax.axvline(mean, color="tab:red", linewidth=1.0, linestyle="--", label=f"mean {mean:.4g}")
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("error (approx - exact)")
    ax.set_ylabel(("probability" if w is not None else "operand pairs") + " (log scale)")
    ax.set_title(f"{name}: error histogram" + (" (weighted)" if w is not None else ""),
                 fontsize=10)
    return _to_png(fig)


def _symlog(v: float, linthresh: float) -> float:
    """Where ``v`` sits on a symlog axis, up to scale (for placing labels)."""
    return math.copysign(math.log10(1 + abs(v) / linthresh), v)


def pareto_png(
    estimated: list[tuple[str, float, float]],
    published: list[tuple[str, float, float]],
    front: list[int],
) -> bytes:
    """Energy per operation vs MAE%: gate-level estimates, published figures, estimate front.

    ``estimated`` and ``published`` hold ``(name, mae_pct, energy_pj)``; ``front`` indexes
    ``estimated``.  MAE% typically spans decades (1e-4 .. 10 %) with exact designs at 0, so
    the x axis is symlog when the positive values span two decades or more (linear below the
    smallest positive MAE%, keeping 0 on the plot) and linear otherwise.
    """
    fig = _new_figure(6.4, 4.6)
    ax = fig.add_subplot()
    xs = [p[1] for p in estimated] + [p[1] for p in published]
    pos = [x for x in xs if x > 0]
    symlog = bool(pos) and max(pos) / min(pos) >= 100
    if symlog:
        ax.set_xscale("symlog", linthresh=min(pos))
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)

    def right_half(x: float) -> bool:
        """Labels of points in the right half go to their left, so none runs off the edge."""
        if symlog:
            return _symlog(x, min(pos)) > (_symlog(lo, min(pos)) + _symlog(hi, min(pos))) / 2
        return x > (lo + hi) / 2

    if estimated:
        ax.scatter([p[1] for p in estimated], [p[2] for p in estimated], marker="o",
                   color="tab:blue", label="estimated (gate level)", zorder=3)
    if published:
        ax.scatter([p[1] for p in published], [p[2] for p in published], marker="^",
                   facecolors="none", edgecolors="tab:orange", label="published", zorder=3)
    if front:
        fx = [estimated[i][1] for i in front]
        fy = [estimated[i][2] for i in front]
        ax.step(fx, fy, where="post", color="tab:blue", linewidth=1.0, alpha=0.7,
                label="Pareto front (estimated)")
    for label, x, y in estimated:
        left = right_half(x)
        ax.annotate(label, (x, y), xytext=(-4 if left else 4, 3), textcoords="offset points",
                    fontsize=7, ha="right" if left else "left")
    for label, x, y in published:  # below the marker, so a pair of labels does not overlap
        left = right_half(x)
        ax.annotate(label, (x, y), xytext=(-4 if left else 4, -9), textcoords="offset points",
                    fontsize=7, color="tab:orange", ha="right" if left else "left")
    if not estimated and not published:
        ax.text(0.5, 0.5, "no multiplier has energy figures", ha="center", va="center",
                transform=ax.transAxes)
    else:
        ax.legend(fontsize=8)
    ax.set_xlabel("MAE % (symmetric log scale)" if symlog else "MAE %")
    ax.set_ylabel("energy (pJ / operation)")
    ax.margins(x=0.15, y=0.08)  # room for the name labels next to the outermost points
    ax.set_title("Energy vs accuracy", fontsize=10)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    return _to_png(fig)
