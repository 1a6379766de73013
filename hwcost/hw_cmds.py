"""``hwcost map`` and ``hwcost evaluate-mapping``: Timeloop-compatible single-layer commands."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import library_option, open_library
from .tables import render

_FILE = click.Path(dir_okay=False, path_type=Path)


def _load(arch: str, problem: Path, ert: Path | None, multiplier: str | None,
          library_dir: Path | None):
    from hwmodel.energy import build_energy_table
    from hwmodel.problem_yaml import load_problem
    from hwmodel.spec import load_arch
    from multiplier_lib.library import resolve

    spec = load_arch(arch)
    workload = load_problem(problem)
    mult = resolve(multiplier, open_library(library_dir)) if multiplier else None
    return spec, workload, build_energy_table(spec, mult, ert)


def print_result(spec, result, mapping_text: str, fmt: str, energy, extra: dict,
                 workload=None, mapping=None) -> None:
    from hwmodel.model import result_json

    if fmt == "timeloop":
        from hwmodel.timeloop_stats import format_stats

        click.echo(format_stats(spec, workload, mapping, result, energy), nl=False)
        return
    if fmt == "json":
        data = result_json(result, mapping_text)
        data["energy_sources"] = {
            comp: {a: {"energy_pj": ae.energy_pj, "source": ae.source}
                   for a, ae in acts.items()} for comp, acts in energy.entries.items()}
        data.update(extra)
        click.echo(json.dumps(data, indent=2))
        return
    rows = []
    for lv in reversed(result.levels):
        for ds, s in lv.dataspaces.items():
            rows.append([lv.name, lv.instances_utilized, ds, s.reads, s.fills, s.updates,
                         s.energy_pj])
    click.echo(f"mapping: {mapping_text}")
    click.echo(render(["level", "instances", "dataspace", "reads", "fills", "updates",
                       "energy_pj"], rows))
    pj_per_mac = result.energy_pj / result.computes if result.computes else 0.0
    click.echo(f"computes {result.computes}  cycles {result.cycles:.0f}  utilization "
               f"{result.utilization:.3f}  energy {result.energy_pj:.6g} pJ "
               f"({pj_per_mac:.4g} pJ/MAC; MAC {result.mac_energy_pj:.6g} pJ)")


@click.command("evaluate-mapping")
@click.option("--arch", required=True, help="Architecture spec: bundled name or YAML path.")
@click.option("--problem", required=True, type=_FILE, help="Timeloop problem YAML.")
@click.option("--mapping", "mapping_path", required=True, type=_FILE,
              help="Timeloop mapping YAML.")
@click.option("--ert", type=_FILE, help="Accelergy ERT.yaml to use instead of estimators.")
@click.option("--multiplier", help="Multiplier of the MAC (name or path; default exact).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "timeloop"]),
              default="table", show_default=True,
              help="timeloop: the layout of Timeloop's timeloop-model.stats.txt.")
@library_option
def evaluate_mapping(arch: str, problem: Path, mapping_path: Path, ert: Path | None,
                     multiplier: str | None, fmt: str, library_dir: Path | None) -> None:
    """Evaluate one Timeloop mapping: accesses per level, energy, cycles, utilization.

    \b
    Example:
      hwcost evaluate-mapping --arch examples/timeloop/conv1d_3level.yaml \\
          --problem examples/timeloop/conv1d_oc.yaml \\
          --mapping examples/timeloop/conv1d_oc_3level.map.yaml
    """
    from hwmodel.mapping_yaml import load_mapping
    from hwmodel.model import MappingError, evaluate

    spec, workload, energy = _load(arch, problem, ert, multiplier, library_dir)
    mapping = load_mapping(mapping_path, spec, workload)
    try:
        result = evaluate(spec, workload, mapping, energy)
    except MappingError as exc:        # load_mapping validates; this is the safety net
        raise exc if exc.file else exc.located(mapping_path) from None
    print_result(spec, result, mapping.short(spec.names), fmt, energy,
                 {"arch": spec.name, "problem": str(problem), "multiplier": energy.multiplier},
                 workload, mapping)


@click.command("map")
@click.option("--arch", required=True, help="Architecture spec: bundled name or YAML path.")
@click.option("--problem", required=True, type=_FILE, help="Timeloop problem YAML.")
@click.option("--objective", type=click.Choice(["energy", "delay", "edp"]), default="energy",
              show_default=True)
@click.option("--ert", type=_FILE, help="Accelergy ERT.yaml to use instead of estimators.")
@click.option("--multiplier", help="Multiplier of the MAC (name or path; default exact).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "timeloop"]),
              default="table", show_default=True,
              help="timeloop: the layout of Timeloop's timeloop-model.stats.txt.")
@click.option("--out", "out_path", type=_FILE, help="Also write the best mapping as YAML.")
@library_option
def map_cmd(arch: str, problem: Path, objective: str, ert: Path | None, multiplier: str | None,
            fmt: str, out_path: Path | None, library_dir: Path | None) -> None:
    """Find the best mapping of one layer (Timeloop problem) on an architecture.

    \b
    Example:
      hwcost map --arch eyeriss --problem examples/timeloop/conv_3x3.yaml --objective edp
    """
    import time

    from hwmodel.mapper import Mapper
    from hwmodel.model import MappingError

    spec, workload, energy = _load(arch, problem, ert, multiplier, library_dir)
    start = time.perf_counter()
    try:
        found = Mapper(spec, energy, objective).map(workload)
    except MappingError as exc:        # nothing fits: say which problem
        raise exc if exc.file else exc.located(problem) from None
    seconds = time.perf_counter() - start
    if out_path is not None:
        from hwmodel.mapping_yaml import write_mapping

        write_mapping(found.mapping, spec, out_path)
    print_result(spec, found.result, found.mapping.short(spec.names), fmt, energy,
                 {"arch": spec.name, "problem": str(problem), "objective": objective,
                  "multiplier": energy.multiplier, "mapper": {
                      "evaluated": found.evaluated, "exhaustive": found.exhaustive,
                      "seconds": seconds, "spatial_bound": found.spatial_bound,
                      "underused": found.underused}}, workload, found.mapping)
    if found.underused:
        click.echo(f"warning: {found.underused}", err=True)
    if fmt == "table":
        regime = "exhaustive" if found.exhaustive else "pruned search"
        click.echo(f"mapper: {found.evaluated} mappings evaluated ({regime}) in "
                   f"{seconds * 1000:.0f} ms")
