"""Characterization report: a Markdown + self-contained HTML summary with plots.

One call, :func:`write_report`, turns a list of ``(Multiplier, record)`` pairs into a folder
someone can read without hwcost: a metrics table, an error heatmap and histogram per
multiplier, and an energy-vs-accuracy Pareto plot.  The records are taken as given (the
metrics and energy modules compute them); this module only formats and plots, so a report can
never disagree with the numbers the rest of the toolkit produced.

Published figures (EvoApprox-style headers) sit in their own columns beside the gate-level
estimates and are never merged into them: the two come from different tool flows and a reader
must be able to tell which is which.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write_bytes, atomic_write_text
from core.errors import HwcostError
from core.units import power_mw_to_energy_pj

from .multiplier import Multiplier
from .plots import ascending_code_order, heatmap_png, histogram_png, pareto_png

__all__ = [
    "ascending_code_order", "format_value", "kind_label", "pareto_front", "safe_stem",
    "unique_stems", "write_report",
]

#: Longest file stem derived from a name; keeps ``{stem}_heatmap.png`` far below the usual
#: 255-byte filename limit whatever the multiplier is called.
MAX_STEM = 100

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

_INTRO = (
    "Each row of the table characterizes one multiplier. Error metrics are computed over all "
    "2^(a+b) operand pairs with equal weight unless an operand distribution was given for that "
    "multiplier (its histogram is then marked *weighted*). Error is *approx - exact*; MAE, WCE "
    "and MRE are in percent, EP is the percentage of operand pairs with a wrong product. Gate "
    "counts, area and energy are gate-level estimates made by hwcost (energy per operation, "
    "'rel. exact' relative to the exact multiplier of the same size); figures published with "
    "a circuit are shown in separate *pub.* columns beside them and are never overwritten. "
    "'-' marks a value that is unknown."
)

_LEFT_OUT = "Not in the Pareto plot (no energy estimate and no published power): "

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: right; }
th { background: #eee; }
td:first-child, td:nth-child(2) { text-align: left; }
img { max-width: 100%; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
.note { color: #555; }
"""

_HEADERS = (
    "Name", "Kind", "MAE %", "WCE %", "MRE %", "EP %", "Bias", "Error std", "Gates",
    "Area um2 (est.)", "Energy pJ (est.)", "Energy rel. exact", "Pub. power mW",
    "Pub. area um2", "Pub. MAE %",
)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points when minimising both coordinates.

    A point is dominated if another is no worse in both coordinates and strictly better in
    one; exact duplicates therefore do not dominate each other and are all kept.  Points with
    a NaN coordinate cannot be compared and are never on the front.  The result is ordered by
    increasing x (then index), i.e. along the front, which is the order a step line needs.
    """
    valid = [i for i, (x, y) in enumerate(points) if not (math.isnan(x) or math.isnan(y))]
    order = sorted(valid, key=lambda i: (points[i][0], points[i][1], i))
    front: list[int] = []
    best_x = best_y = math.inf
    for i in order:
        x, y = points[i]
        if y < best_y:
            front.append(i)
            best_x, best_y = x, y
        elif y == best_y and x == best_x:
            front.append(i)  # duplicate of the point that set best_y: equally optimal
    return front


def safe_stem(name: str) -> str:
    """A filename-safe stem for ``name``: anything outside ``[A-Za-z0-9_.-]`` becomes ``_``."""
    stem = _UNSAFE.sub("_", name)[:MAX_STEM]
    if stem in ("", ".", ".."):  # would make a hidden/odd "._heatmap.png"-style name
        stem = "_" * max(1, len(stem))
    return stem


def unique_stems(names: Sequence[str]) -> list[str]:
    """:func:`safe_stem` of each name, suffixed ``_2``, ``_3``... where two would collide.

    Collisions are detected case-insensitively because macOS and Windows filesystems would
    otherwise silently let ``Mul8`` and ``mul8`` overwrite each other's plots.
    """
    taken: set[str] = set()
    stems: list[str] = []
    for name in names:
        base = safe_stem(name)
        stem, n = base, 1
        while stem.casefold() in taken:
            n += 1
            stem = f"{base}_{n}"
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def kind_label(a_bits: int, b_bits: int, signed: bool) -> str:
    """Compact operand description for the table, e.g. ``8x8 u`` or ``8x4 s``."""
    return f"{a_bits}x{b_bits} {'s' if signed else 'u'}"


def format_value(value: Any) -> str:
    """Table text for a metric: ``-`` for unknown, integers as-is, floats to 4 significant digits.

    Four significant digits (not a fixed number of decimals) because MAE% of useful
    approximate multipliers ranges from ~1e-4 to ~10; large floats (areas in um2) are shown
    rounded to integers rather than in exponent notation.
    """
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if abs(v) >= 1e4:
        return f"{v:.0f}"
    return f"{v:.4g}"


def _is_number(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float, np.integer, np.floating)) \
        and math.isfinite(float(value))


@dataclass
class _Entry:
    """Everything the renderers need about one multiplier, computed once."""

    name: str
    stem: str
    cells: list[str]
    images: list[tuple[str, str, bytes]] = field(default_factory=list)  # (alt, file, png)
    weighted: bool = False


def _weights_for(mult: Multiplier, record: dict) -> np.ndarray | None:
    """Validate the optional ``_weights`` operand distribution (same shape as the LUT)."""
    w = record.get("_weights")
    if w is None:
        return None
    w = np.asarray(w, dtype=float)
    if w.shape != mult.lut.shape:
        raise HwcostError(f"report: weights for {mult.name} have shape {w.shape}, expected "
                          f"{mult.lut.shape} (indexed by operand codes like the LUT)")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise HwcostError(f"report: weights for {mult.name} must be finite, non-negative and "
                          "not all zero")
    return w / w.sum()


def _row(mult: Multiplier, record: dict) -> list[str]:
    published = record.get("published") or {}
    gates = record.get("gates")
    total_gates = None if gates is None else sum(int(n) for n in gates.values())
    values = [
        record.get("mae_pct"), record.get("wce_pct"), record.get("mre_pct"),
        record.get("ep_pct"), record.get("bias"), record.get("error_std"), total_gates,
        record.get("area_um2"), record.get("energy_pj"), record.get("energy_rel_exact"),
        published.get("power_mw"), published.get("area_um2"), published.get("mae_pct"),
    ]
    return [record.get("name") or mult.name, kind_label(mult.a_bits, mult.b_bits, mult.signed),
            *(format_value(v) for v in values)]


def _pareto_points(
    names: list[str], records: list[dict],
) -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]], list[str]]:
    """Split records into estimated points, published points and names left out (with why)."""
    estimated: list[tuple[str, float, float]] = []
    published_pts: list[tuple[str, float, float]] = []
    left_out: list[str] = []
    for name, rec in zip(names, records):
        mae, energy = rec.get("mae_pct"), rec.get("energy_pj")
        has_est = _is_number(mae) and _is_number(energy)
        if has_est:
            estimated.append((name, float(mae), float(energy)))
        pub = rec.get("published") or {}
        power = pub.get("power_mw")
        pub_x = pub.get("mae_pct")
        if pub_x is None:
            pub_x = mae
        has_pub = _is_number(power) and _is_number(pub_x)
        if has_pub:
            published_pts.append((name, float(pub_x), power_mw_to_energy_pj(float(power))))
        if not has_est and not has_pub:
            left_out.append(name)
    return estimated, published_pts, left_out


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_text(text: str) -> str:
    """Escape characters that would turn a multiplier name into Markdown markup."""
    return re.sub(r"([\\`*\[\]<>|])", r"\\\1", text)


def _render_markdown(title: str, entries: list[_Entry], pareto_file: str, note: str) -> str:
    lines = [f"# {_md_text(title)}", "", _INTRO, "", "## Metrics", ""]
    lines.append("| " + " | ".join(_HEADERS) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(_HEADERS) - 2)) + "|")
    for e in entries:
        lines.append("| " + " | ".join(_md_cell(c) for c in e.cells) + " |")
    lines += ["", "## Multipliers", ""]
    for e in entries:
        lines += [f"### {_md_text(e.name)}", ""]
        if e.weighted:
            lines += ["Histogram weighted by the given operand distribution.", ""]
        lines += [f"![{_md_text(alt)}]({file})" for alt, file, _ in e.images]
        lines.append("")
    lines += ["## Energy vs accuracy", "",
              "Circles: gate-level estimates (line: their Pareto front); triangles: published "
              "power converted to energy per operation.", ""]
    if note:
        lines += [note, ""]
    lines += [f"![Pareto plot]({pareto_file})", ""]
    return "\n".join(lines)


def _img_tag(alt: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _render_html(title: str, entries: list[_Entry], pareto: bytes, note: str) -> str:
    """HTML twin of the Markdown; ``note`` is already escaped."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{esc(title)}</h1>", f"<p>{esc(_INTRO).replace('*', '')}</p>",
        "<h2>Metrics</h2>", "<table>", "<thead><tr>",
        "".join(f"<th>{esc(h)}</th>" for h in _HEADERS), "</tr></thead>", "<tbody>",
    ]
    for e in entries:
        out.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in e.cells) + "</tr>")
    out += ["</tbody>", "</table>", "<h2>Multipliers</h2>"]
    for e in entries:
        out.append(f"<h3>{esc(e.name)}</h3>")
        if e.weighted:
            out.append('<p class="note">Histogram weighted by the given operand distribution.</p>')
        out.append("<div>" + "".join(_img_tag(alt, png) for alt, _, png in e.images) + "</div>")
    out += ["<h2>Energy vs accuracy</h2>",
            '<p class="note">Circles: gate-level estimates (line: their Pareto front); '
            "triangles: published power converted to energy per operation.</p>"]
    if note:
        out.append(f'<p class="note">{note}</p>')
    out += [f"<div>{_img_tag('Pareto plot', pareto)}</div>", "</body>", "</html>", ""]
    return "\n".join(out)


def write_report(
    out_dir: str | Path,
    items: list[tuple[Multiplier, dict]],
    title: str = "hwcost multiplier characterization",
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and the PNG plots into ``out_dir``.

    ``items`` pairs each multiplier (for its error table) with its metrics record (for the
    numbers); a record may carry ``_weights``, an operand distribution shaped like the LUT, to
    weight the histogram.  Every file is written atomically, so an interrupted run never
    leaves a half-written report next to a stale one.

    Returns paths keyed ``markdown``, ``html``, ``pareto`` and, per multiplier,
    ``{stem}_heatmap`` / ``{stem}_hist`` where ``stem`` is the unique filename-safe name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [rec.get("name") or mult.name for mult, rec in items]
    stems = unique_stems(names)
    paths: dict[str, Path] = {}
    entries: list[_Entry] = []

    for (mult, rec), name, stem in zip(items, names, stems):
        weights = _weights_for(mult, rec)
        error = mult.error_table()
        entry = _Entry(name=name, stem=stem, cells=_row(mult, rec), weighted=weights is not None)
        plots = (
            ("heatmap", "error heatmap",
             heatmap_png(name, error, mult.a_bits, mult.b_bits, mult.signed)),
            ("hist", "error histogram", histogram_png(name, error, weights)),
        )
        for suffix, what, png in plots:
            file = f"{stem}_{suffix}.png"
            atomic_write_bytes(out / file, png)
            paths[f"{stem}_{suffix}"] = out / file
            entry.images.append((f"{name} {what}", file, png))
        entries.append(entry)

    estimated, published, left_out = _pareto_points(names, [rec for _, rec in items])
    front = pareto_front([(x, y) for _, x, y in estimated])
    pareto = pareto_png(estimated, published, front)
    atomic_write_bytes(out / "pareto.png", pareto)
    paths["pareto"] = out / "pareto.png"

    md_note = html_note = ""
    if left_out:
        md_note = _LEFT_OUT + ", ".join(_md_text(n) for n in left_out) + "."
        html_note = html.escape(_LEFT_OUT + ", ".join(left_out) + ".")

    atomic_write_text(out / "report.md", _render_markdown(title, entries, "pareto.png", md_note))
    paths["markdown"] = out / "report.md"
    atomic_write_text(out / "report.html", _render_html(title, entries, pareto, html_note))
    paths["html"] = out / "report.html"
    return paths
