"""``hwcost map`` and ``hwcost evaluate-mapping``: Timeloop-compatible single-layer commands."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import (
    ARCH_HELP,
    FILE,
    budget_option,
    effort_option,
    estimator_options,
    library_option,
    open_library,
    template_options,
    template_vars,
    warn_unused_vars,
)
from .outputs import OUT_FILE
from .tables import render

_INPUTS = click.argument("inputs", nargs=-1, type=FILE)


def _load(archs: tuple[str, ...], inputs: tuple[Path, ...], problem: Path | None,
          mapping: Path | None, ert: Path | None, multiplier: str | None,
          library_dir: Path | None, tvars: dict, estimators: str = "builtin"):
    """Spec inputs merged from every file given, the problem, the architecture paired
    with it (names checked), and the energy table."""
    from core.errors import HwcostError
    from hwmodel.energy import build_energy_table
    from hwmodel.problem_yaml import load_problem
    from hwmodel.spec import load_arch, load_inputs
    from multiplier_lib.library import resolve

    spec_inputs = load_inputs(archs, inputs, problem, mapping, tvars)
    warn_unused_vars(tvars, spec_inputs.rendered)
    if spec_inputs.first("architecture") is None:
        if archs:                      # the file meant to be the architecture says so
            raise HwcostError("no 'architecture' section (expected architecture: {version, "
                              "nodes} or {version, subtree})", file=spec_inputs.files[0],
                              line=1)
        raise HwcostError("no architecture given: add --arch (a bundled name or a file) or "
                          "an input file with an 'architecture' section")
    if spec_inputs.first("problem") is None:
        if problem is not None:        # --problem names a file without one
            raise HwcostError("expected a mapping with a 'problem' section", file=problem,
                              line=1)
        raise HwcostError("no problem given: add --problem FILE or an input file with a "
                          "'problem' section")
    workload = load_problem(spec_inputs)
    spec = load_arch(spec_inputs, problem=workload)
    mult = resolve(multiplier, open_library(library_dir)) if multiplier else None
    energy = build_energy_table(spec, mult, ert, backend=estimators)
    return spec_inputs, spec, workload, energy


def _write_ert(write_ert: Path | None, spec, energy) -> None:
    """``--write-ert``, once the command has succeeded: a failed run writes nothing."""
    if write_ert is not None:
        from hwmodel.energy import write_energy_ert

        write_energy_ert(write_ert, spec, energy)


def _sources(spec_inputs) -> dict:
    """The input files and how they were read, for the JSON output."""
    return {"inputs": [str(p) for p in spec_inputs.files],
            "rendered_templates": [str(p) for p in spec_inputs.rendered]}


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
        data["estimators"] = energy.backend
        if energy.notes:
            data["energy_notes"] = list(energy.notes)
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
@_INPUTS
@click.option("--arch", "archs", multiple=True, help=ARCH_HELP)
@click.option("--problem", type=FILE,
              help="Timeloop problem YAML (or give a file with a 'problem' section).")
@click.option("--mapping", "mapping_path", type=FILE,
              help="Timeloop mapping YAML (or give a file with a 'mapping' section).")
@click.option("--ert", type=FILE, help="Accelergy ERT.yaml to use instead of estimators.")
@click.option("--multiplier", help="Multiplier of the MAC (name or path; default exact).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "timeloop"]),
              default="table", show_default=True,
              help="timeloop: the layout of Timeloop's timeloop-model.stats.txt.")
@estimator_options
@template_options
@library_option
def evaluate_mapping(inputs: tuple[Path, ...], archs: tuple[str, ...], problem: Path | None,
                     mapping_path: Path | None, ert: Path | None, multiplier: str | None,
                     fmt: str, estimators: str, write_ert: Path | None,
                     var_items: tuple[str, ...], vars_file: Path | None,
                     library_dir: Path | None) -> None:
    """Evaluate one Timeloop mapping: accesses per level, energy, cycles, utilization.

    INPUTS are more input files in Timeloop's layout (architecture, constraints,
    variables, problem, mapping...), merged by top-level key.

    \b
    Example:
      hwcost evaluate-mapping --arch examples/timeloop/conv1d_3level.yaml \\
          --problem examples/timeloop/conv1d_oc.yaml \\
          --mapping examples/timeloop/conv1d_oc_3level.map.yaml
    """
    from core.errors import HwcostError
    from hwmodel.mapping_yaml import load_mapping
    from hwmodel.model import MappingError, evaluate

    tvars = template_vars(var_items, vars_file)
    spec_inputs, spec, workload, energy = _load(archs, inputs, problem, mapping_path, ert,
                                                multiplier, library_dir, tvars, estimators)
    section = spec_inputs.first("mapping")
    if section is None:
        if mapping_path is not None:   # --mapping names a file without one
            raise HwcostError("expected a list of mapping directives (optionally under "
                              "'mapping:')", file=mapping_path, line=1)
        raise HwcostError("no mapping given: add --mapping FILE or an input file with a "
                          "'mapping' section")
    mapping = load_mapping(spec_inputs, spec, workload)
    try:
        result = evaluate(spec, workload, mapping, energy)
    except MappingError as exc:        # load_mapping validates; this is the safety net
        raise exc if exc.file else exc.located(section.path) from None
    _write_ert(write_ert, spec, energy)
    print_result(spec, result, mapping.short(spec.names), fmt, energy,
                 {"arch": spec.name, "problem": workload.name, **_sources(spec_inputs),
                  "multiplier": energy.multiplier}, workload, mapping)


@click.command("map")
@_INPUTS
@click.option("--arch", "archs", multiple=True, help=ARCH_HELP)
@click.option("--problem", type=FILE,
              help="Timeloop problem YAML (or give a file with a 'problem' section).")
@click.option("--objective", default=None,
              help="energy, delay, edp, or a priority list like delay,energy (Timeloop's "
                   "optimization_metrics). Default: the inputs' mapper section, else energy.")
@click.option("--ert", type=FILE, help="Accelergy ERT.yaml to use instead of estimators.")
@click.option("--multiplier", help="Multiplier of the MAC (name or path; default exact).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "timeloop"]),
              default="table", show_default=True,
              help="timeloop: the layout of Timeloop's timeloop-model.stats.txt.")
@click.option("--out", "out_path", type=OUT_FILE, help="Also write the best mapping as YAML.")
@effort_option("thorough")
@budget_option
@estimator_options
@template_options
@library_option
def map_cmd(inputs: tuple[Path, ...], archs: tuple[str, ...], problem: Path | None,
            objective: str | None, ert: Path | None, multiplier: str | None, fmt: str,
            out_path: Path | None, effort: str, budget: int | None, estimators: str,
            write_ert: Path | None,
            var_items: tuple[str, ...], vars_file: Path | None,
            library_dir: Path | None) -> None:
    """Find the best mapping of one layer (Timeloop problem) on an architecture.

    INPUTS are more input files in Timeloop's layout (architecture, constraints,
    variables, mapper, problem...), merged by top-level key, as timeloop-mapper takes them.

    \b
    Examples:
      hwcost map --arch eyeriss --problem examples/timeloop/conv_3x3.yaml --objective edp
      hwcost map examples/timeloop/glb_pes.yaml.jinja --var pes=16 \\
          --problem examples/timeloop/conv_3x3.yaml
    """
    import time

    from core.errors import HwcostError
    from hwmodel.mapper import Mapper
    from hwmodel.mapper_section import mapper_objective
    from hwmodel.model import MappingError

    tvars = template_vars(var_items, vars_file)
    spec_inputs, spec, workload, energy = _load(archs, inputs, problem, None, ert,
                                                multiplier, library_dir, tvars, estimators)
    section = spec_inputs.first("mapping")
    if section is not None:
        raise HwcostError("hwcost map does not read a 'mapping' section (Timeloop's mapper "
                          "takes it as constraints): give constraints under a key such as "
                          "mapspace_constraints, or evaluate the mapping with "
                          "evaluate-mapping", file=section.path, line=section.line)
    if objective is not None and not objective.strip():
        raise HwcostError("--objective is empty: give energy, delay, edp or a list such as "
                          "delay,energy")
    given = objective is not None
    from_mapper = None if given else mapper_objective(spec_inputs)
    objective = objective or (from_mapper.objective if from_mapper else "energy")
    source = "--objective" if given else (
        f"mapper optimization_metrics, {from_mapper.where}" if from_mapper else "default")
    start = time.perf_counter()
    try:
        mapper = Mapper(spec, energy, objective, effort=effort, work_budget=budget)
    except HwcostError as exc:         # a metric the mapper does not know
        if from_mapper is not None and not exc.file:
            raise HwcostError(exc.message, file=from_mapper.file,
                              line=from_mapper.line) from None
        raise
    try:
        found = mapper.map(workload)
    except MappingError as exc:        # nothing fits: say which problem
        problem_file = spec_inputs.first("problem").path
        raise exc if exc.file else exc.located(problem_file) from None
    seconds = time.perf_counter() - start
    if out_path is not None:
        from hwmodel.mapping_yaml import write_mapping

        write_mapping(found.mapping, spec, out_path, workload)
    _write_ert(write_ert, spec, energy)
    print_result(spec, found.result, found.mapping.short(spec.names), fmt, energy,
                 {"arch": spec.name, "problem": workload.name, **_sources(spec_inputs),
                  "objective": objective, "objective_source": source,
                  "multiplier": energy.multiplier, "mapper": {
                      "effort": effort, **found.evidence(), "seconds": seconds,
                      "spatial_bound": found.spatial_bound,
                      "underused": found.underused}}, workload, found.mapping)
    if found.underused:
        click.echo(f"warning: {found.underused}", err=True)
    if fmt == "table":
        click.echo(f"objective: {objective} ({source})")
        click.echo(f"mapper ({effort}): {found.evidence_text()}; {found.bounds} bounds, "
                   f"{found.leaves} mappings priced in {seconds * 1000:.0f} ms")
