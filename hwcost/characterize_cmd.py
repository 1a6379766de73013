"""``hwcost characterize``: error metrics, energy/area estimates and a report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import library_option, open_library, trust_c_option
from .outputs import OUT_DIR
from .tables import render

#: Not checked by click: the histogram reader refuses directories and special files itself
#: with one error line naming the file (click's usage error spans several lines).
_HIST = click.Path(path_type=Path)


@click.command()
@click.argument("specs", nargs=-1, required=True, metavar="NAME|PATH...")
@click.option("--out", type=OUT_DIR,
              help="Write a report folder (report.md, report.html, PNG plots).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--acts-hist", type=_HIST,
              help=".npy histogram of the A (activation) operand codes, length 2**a_bits.")
@click.option("--weights-hist", type=_HIST,
              help=".npy histogram of the B (weight) operand codes, length 2**b_bits.")
@click.option("--joint-hist", type=_HIST,
              help=".npy 2-D histogram over (A code, B code) instead of the two above.")
@trust_c_option
@library_option
def characterize(specs: tuple[str, ...], out: Path | None, fmt: str, acts_hist: Path | None,
                 weights_hist: Path | None, joint_hist: Path | None,
                 library_dir: Path | None) -> None:
    """Characterize multipliers: EvoApprox error metrics, gates, area and energy.

    Each NAME|PATH is a library name, a built-in parametric name (exact8u, trunc8u_k4,
    drum8u_k4, ...) or a file to import on the fly. Metrics are over all operand pairs,
    uniform unless histograms are given; energy is per operation from gate-level switching
    activity (see the README for the model).

    \b
    Examples:
      hwcost characterize exact8u trunc8u_k6 bam8u_h2v6
      hwcost characterize examples/multipliers/mul8u_bam26.bin --format json
      hwcost characterize trunc8u_k6 drum8u_k4 --out report/ \\
          --acts-hist examples/multipliers/acts_hist.npy \\
          --weights-hist examples/multipliers/weights_hist.npy
    """
    from core.errors import HwcostError
    from multiplier_lib.characterize import OperandStats
    from multiplier_lib.characterize import characterize as run
    from multiplier_lib.library import resolve

    if joint_hist is not None and (acts_hist is not None or weights_hist is not None):
        raise HwcostError("give --joint-hist or --acts-hist/--weights-hist, not both")
    library = open_library(library_dir)
    mults = [resolve(s, library) for s in specs]
    items = []
    for m in mults:
        stats = OperandStats.from_files(m.a_bits, m.b_bits, acts_hist, weights_hist, joint_hist)
        items.append((m, run(m, stats)))
    records = [r for _, r in items]
    if fmt == "json":
        click.echo(json.dumps(records, indent=2))
    else:
        click.echo(render(
            ["name", "kind", "MAE%", "WCE%", "MRE%", "EP%", "bias", "gates", "area_um2",
             "energy_pj", "rel_exact", "pub_mW", "pub_um2"],
            [[r["name"], f"{r['a_bits']}x{r['b_bits']}{'s' if r['signed'] else 'u'}",
              r["mae_pct"], r["wce_pct"], r["mre_pct"], r["ep_pct"], r["bias"],
              None if r["gates"] is None else sum(r["gates"].values()), r["area_um2"],
              r["energy_pj"], r["energy_rel_exact"], r["published"].get("power_mw"),
              r["published"].get("area_um2")] for r in records]))
    if out is not None:
        from multiplier_lib.report import write_report

        paths = write_report(out, items)
        click.echo(f"report written to {paths['markdown']} and {paths['html']}",
                   err=fmt == "json")
