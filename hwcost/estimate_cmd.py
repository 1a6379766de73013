"""``hwcost estimate``: what a DARTS network costs on an accelerator with a multiplier."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import click

from .options import (
    ARCH_HELP,
    FILE,
    budget_option,
    effort_option,
    estimator_options,
    library_option,
    template_options,
    template_vars,
    warn_unused_vars,
)
from .outputs import OUT_DIR, OUT_FILE
from .tables import render


@click.command()
@click.argument("genotype", type=FILE)
@click.option("--arch", "archs", multiple=True, required=True, help=ARCH_HELP)
@click.option("--multiplier", "multipliers", multiple=True,
              help="Multiplier for the MACs, or a float baseline fp32/fp16/bf16 (repeat to "
              "compare; savings are against the first).")
@click.option("--objective", default=None,
              help="energy, delay, edp, or a priority list like delay,energy. Default: the "
                   "inputs' mapper optimization_metrics, else energy.")
@click.option("--ert", type=FILE, help="Accelergy ERT.yaml to use instead of estimators.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--by", type=click.Choice(["layer", "group"]), default="layer",
              show_default=True, help="Rows per layer, or per stem/cell/classifier group.")
@click.option("--plot", type=OUT_FILE, help="Write a stacked energy breakdown per group (PNG).")
@click.option("--export-timeloop", type=OUT_DIR,
              help="Write every distinct layer as Timeloop problem + mapping YAML.")
@click.option("--layers", type=int, help="Cells of the evaluation network (DARTS: 20).")
@click.option("--channels", type=int, help="Initial channels (DARTS: 36).")
@click.option("--input", "input_size", help="Input size, e.g. 32x32 (DARTS: 32x32).")
@click.option("--classes", type=int, help="Classifier outputs (CIFAR-10: 10).")
@effort_option("balanced")
@budget_option
@estimator_options
@template_options
@library_option
def estimate(genotype: Path, archs: tuple[str, ...], multipliers: tuple[str, ...],
             objective: str | None, ert: Path | None, fmt: str, by: str, plot: Path | None,
             export_timeloop: Path | None, layers: int | None, channels: int | None,
             input_size: str | None, classes: int | None, effort: str, budget: int | None,
             estimators: str,
             write_ert: Path | None, var_items: tuple[str, ...],
             vars_file: Path | None, library_dir: Path | None) -> None:
    """Energy, cycles and utilization of a DARTS network on an accelerator.

    Every layer of the evaluation network is mapped onto the architecture (best mapping by
    --objective, cached per layer shape) and priced with the multiplier's energy.

    \b
    Examples:
      hwcost estimate examples/darts_v2.json --arch eyeriss --by group
      hwcost estimate examples/darts_v2.json --arch eyeriss --multiplier exact8u \\
          --multiplier trunc8u_k6c --multiplier drum8u_k4 --format json
      hwcost estimate examples/darts_v2.json --arch eyeriss --by group \\
          --multiplier fp32 --multiplier exact8u --multiplier trunc8u_k6c

    A float baseline (fp32, fp16, bf16) runs the network on the same design built for float
    words (every memory keeps its rows and holds words of the format's width) with an FP MAC.
    """
    from core.errors import HwcostError
    from darts.cellgraph import NetworkConfig, list_layers
    from darts.genotype_io import load
    from darts.pricing import price_network
    from hwmodel.costing import CostContext, write_context_ert
    from hwmodel.mapper_section import mapper_objective
    from hwmodel.spec import check_problem, load_arch, load_inputs
    from multiplier_lib.library import MultiplierResolver

    start = time.perf_counter()
    size = None
    if input_size is not None:
        parts = input_size.lower().split("x")
        if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts) or \
                len(set(parts)) != 1:
            raise HwcostError(f"--input: expected a square size like 32x32, got {input_size!r}")
        size = int(parts[0])
    geno = load(genotype)
    config = NetworkConfig.from_genotype(geno, layers=layers, channels=channels,
                                         input_size=size, classes=classes)
    resolver = MultiplierResolver(library_dir)
    # --multiplier replaces every multiplier of the network, per-edge ones included (what
    # hwcost train --multiplier trains); without it the genotype is priced as it is
    arithmetics = [resolver.arithmetic(n) for n in multipliers] or [None]
    tvars = template_vars(var_items, vars_file)
    spec_inputs = load_inputs(archs, template_vars=tvars)
    warn_unused_vars(tvars, spec_inputs.rendered)
    section = spec_inputs.first("problem") or spec_inputs.first("mapping")
    if section is not None:
        raise HwcostError(f"hwcost estimate takes its layers from the genotype; a "
                          f"'{section.kind}' section is for map/evaluate-mapping",
                          file=section.path, line=section.line)
    spec = load_arch(spec_inputs, no_problem="spec.problem is not available in hwcost "
                     "estimate: every layer of the network is a different problem")
    seen_shapes: set = set()
    for layer in list_layers(geno, config):
        wl = layer.workload()
        if wl.key() not in seen_shapes:
            seen_shapes.add(wl.key())
            check_problem(spec, wl)
    if objective is None:
        from_mapper = mapper_objective(spec_inputs)
        objective = from_mapper.objective if from_mapper else "energy"
    context = CostContext(spec, objective=objective, ert=ert, estimators=estimators,
                          effort=effort, work_budget=budget, resolve=resolver.arithmetic)
    for a in arithmetics:      # a float baseline with --ert fails here, before any mapping
        context.design_of(a)
    results = [price_network(geno, config, context, a) for a in arithmetics]
    names = [r.multiplier for r in results]
    seconds = time.perf_counter() - start
    base = results[0]

    if export_timeloop is not None:
        _export_timeloop(export_timeloop, spec, base)
    if plot is not None:
        _plot(plot, results, spec.name)
    if write_ert is not None:      # the design's exact energies, once the run has succeeded
        write_context_ert(write_ert, context)

    _warn_underused(base.layers)
    if fmt == "json":
        click.echo(json.dumps({
            "inputs": {"genotype": str(genotype), "arch": spec.name, "arch_source": spec.source,
                       "objective": objective, "effort": effort, "estimators": estimators,
                       "ert": None if ert is None else str(ert),
                       "multipliers": names, "network": vars(config)},
            "energy_sources": base.energy_sources,
            "layers": [le.row(base.level_names) for le in base.layers],
            "totals": {r.multiplier: r.totals() for r in results},
            "seconds": seconds}, indent=2))
        return
    rows = ([le.row(base.level_names) for le in base.layers] if by == "layer"
            else base.by_group())
    if fmt == "csv":
        rows = [_flat(r) for r in rows]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue().rstrip())
        return
    level_cols = [f"{lv}_pj" for lv in base.level_names]
    if by == "layer":
        headers = ["name", "type", "shape", "macs", "mapping", "mult_pj", "add_pj",
                   *level_cols, "cycles", "util"]
        table = [[r["name"], r["type"], r["shape"], r["macs"], r["mapping"], r["multiply_pj"],
                  r["add_pj"], *(r[c] for c in level_cols), r["cycles"], r["utilization"]]
                 for r in rows]
    else:
        headers = ["group", "layers", "macs", "mult_pj", "add_pj", *level_cols, "energy_pj",
                   "cycles", "util"]
        table = [[r["name"], r["layers"], r["macs"], r["multiply_pj"], r["add_pj"],
                  *(r[c] for c in level_cols), r["energy_pj"], r["cycles"], r["utilization"]]
                 for r in rows]
    click.echo(f"{genotype} on {spec.name} ({len(base.layers)} layers, "
               f"{config.layers} cells, {config.channels} channels, "
               f"{config.input_size}x{config.input_size} input), objective {objective}, "
               f"multiplier {base.multiplier}")
    click.echo(render(headers, table))
    click.echo("")
    tot = base.totals()
    click.echo(f"total: {tot['energy_pj'] / 1e6:.4g} uJ = arithmetic "
               f"{tot['arithmetic_pj'] / 1e6:.4g} uJ (multiply {tot['multiply_pj'] / 1e6:.4g}, "
               f"add {tot['add_pj'] / 1e6:.4g}) + memory {tot['memory_pj'] / 1e6:.4g} uJ ("
               + ", ".join(f"{lv} {v / 1e6:.4g}" for lv, v in tot["levels_pj"].items())
               + f"); {tot['macs']:,} MACs, {tot['cycles']:.4g} cycles, MAC-weighted "
               f"utilization {tot['utilization']:.2f}; {seconds:.2f} s")
    click.echo(_mapper_summary(base, effort))
    if len(results) > 1:
        click.echo("")
        b_ar = base.total("arithmetic_pj")
        b_tot = base.total("energy_pj")
        comp = []
        for r in results:
            ar, tot_e = r.total("arithmetic_pj"), r.total("energy_pj")
            comp.append([r.multiplier, r.total("multiply_pj") / 1e6, ar / 1e6, tot_e / 1e6,
                         f"{(1 - ar / b_ar) * 100:.1f}%" if b_ar else "-",
                         f"{(1 - tot_e / b_tot) * 100:.1f}%" if b_tot else "-"])
        click.echo(render(["multiplier", "multiply_uJ", "arithmetic_uJ", "total_uJ",
                           "arith_saving", "total_saving"], comp))


def _flat(row: dict) -> dict:
    """A table row for CSV: the mapper's evidence as two columns."""
    out = {k: v for k, v in row.items() if k != "mapper"}
    if "mapper" in row:
        ev = row["mapper"] or {}
        gaps = ev.get("gap") or {}
        out["mapper_optimal"] = ev.get("optimal")
        out["mapper_gap"] = next(iter(gaps.values()), None) if gaps else None
    return out


def _mapper_summary(est, effort: str) -> str:
    """One line on how good the mappings are known to be, over the distinct shapes."""
    seen: dict = {}
    for le in est.layers:
        if le.evidence is not None:
            seen.setdefault(le.layer.workload().key(), le.evidence)
    if not seen:
        return f"mapper ({effort}): no layer to map"
    optimal = sum(1 for ev in seen.values() if ev["optimal"])
    gaps = [next(iter(ev["gap"].values())) for ev in seen.values()
            if not ev["optimal"] and ev.get("gap")]
    text = (f"mapper ({effort}): {len(seen)} distinct layer shapes, {optimal} proven "
            "optimal")
    if gaps:
        text += (f", the others within {max(gaps) * 100:.1f} % of optimal at most "
                 f"(mean {100 * sum(gaps) / len(gaps):.1f} %) by their lower bounds")
    return text


def _export_timeloop(folder: Path, spec, est) -> None:
    from hwmodel.mapping_yaml import write_mapping
    from hwmodel.problem_yaml import write_problem

    seen = set()
    for le in est.layers:
        if le.result is None:
            continue
        wl = le.layer.workload()
        if wl.key() in seen:
            continue
        seen.add(wl.key())
        found = le.mapping_obj
        stem = le.layer.name.replace(".", "_")
        write_problem(wl, folder / f"{stem}.problem.yaml")
        if found is not None:
            write_mapping(found, spec, folder / f"{stem}.map.yaml")
    click.echo(f"wrote {len(seen)} Timeloop problem/mapping pairs to {folder}", err=True)


def plot_figure(results: list, arch: str):
    """Energy per layer group as stacked bars (arithmetic, then each memory level), one panel
    per ``--multiplier``, stacked one above the other on shared axes (same groups, same energy
    scale) so that the multipliers compare bar by bar; the legend is shared."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    first = results[0]
    n_groups = len(first.by_group())
    fig = Figure(figsize=(max(6.0, 0.32 * n_groups + 2.4), 1.9 * len(results) + 1.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(results), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for ax, est in zip(axes, results):
        groups = est.by_group()
        labels = [g["name"] for g in groups]
        series = [("multiply", [g["multiply_pj"] / 1e6 for g in groups]),
                  ("add", [g["add_pj"] / 1e6 for g in groups])]
        series += [(lv, [g[f"{lv}_pj"] / 1e6 for g in groups]) for lv in est.level_names]
        bottom = [0.0] * len(labels)
        for name, values in series:
            ax.bar(labels, values, bottom=bottom, label=name)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_title(f"{est.multiplier}: {sum(bottom):.4g} uJ per image", fontsize=9)
        ax.set_ylabel("uJ")
        ax.grid(axis="y", alpha=0.3)
    axes[-1].tick_params(axis="x", labelrotation=90, labelsize=7)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center right", fontsize=7)
    fig.suptitle(f"energy per layer group on {arch}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 1.1 / fig.get_figwidth(), 1))
    return fig


def _plot(path: Path, results: list, arch: str) -> None:
    from core.atomic import atomic_write_bytes

    buf = io.BytesIO()
    plot_figure(results, arch).savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def _warn_underused(layers) -> None:
    """One warning per layer shape (a network repeats shapes dozens of times), naming the
    first layer and how many share it."""
    groups: dict[tuple, list] = {}
    for le in layers:
        if le.underused:
            groups.setdefault((le.layer.shape_text(), le.underused), []).append(le.layer.name)
    for (_shape, text), names in groups.items():
        more = f" (and {len(names) - 1} more of its shape)" if len(names) > 1 else ""
        click.echo(f"warning: {names[0]}{more}: {text}", err=True)
