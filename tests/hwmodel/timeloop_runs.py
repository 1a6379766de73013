"""Every Timeloop *mapper* reference run hwcost reads, loaded the same way for the test
(``test_mapper_vs_timeloop.py``) and the README table (``benchmarks/timeloop_mapper_runs.py``).

A run is a design, a problem and the ERT of a ``timeloop-mapper`` run of the public exercises
repository, with the mapper's ``optimization_metrics`` and the result Timeloop's mapper
published (``timeloop-mapper.stats.txt``).  Sources: the translated fixtures of
``timeloop_ref/`` (the ISPASS 2020 tutorial's mapper exercises 05 and 06) and
``timeloop_designs/`` (the four example designs, run with ``[edp]``), and the verbatim inputs of
``exercises/`` read through hwcost's front end (templates, expressions, processed inputs).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from timeloop_cases import load_case
from timeloop_stats_reader import read_mapping, read_stats

from hwmodel.arch import Architecture
from hwmodel.energy import build_energy_table
from hwmodel.inputs import SpecInputs
from hwmodel.mapping import Mapping
from hwmodel.mapping_yaml import load_mapping
from hwmodel.problem_yaml import load_problem
from hwmodel.spec import load_arch, load_inputs
from hwmodel.workload import Workload

HERE = Path(__file__).resolve().parent
EXERCISES = HERE / "exercises"
ISPASS = EXERCISES / "ispass2020_timeloop_accelergy"


@dataclass
class Run:
    """One Timeloop mapper run: what it searched and what it found."""

    name: str
    arch: Architecture
    workload: Workload
    energy: object
    metrics: str                  # the run's optimization_metrics, as an hwcost objective
    energy_pj: float              # Timeloop's mapper result (fJ/Compute total x computes)
    cycles: float
    mapping: Mapping | None       # Timeloop's mapping, where the run's report gives it whole
    note: str = ""
    #: the report's figures (``read_stats``'s layout: levels, data spaces, counts)
    stats: dict | None = None


def _fixture(case: str, metrics: str, note: str = "") -> Run:
    arch, workload, mapping, energy, expected = load_case(case)
    summary = expected["summary"]
    total = summary["fj_per_compute"]["Total"] * summary["computes"] / 1000
    return Run(case.split("/")[-1], arch, workload, energy, metrics, total,
               summary["cycles"], mapping, note, expected)


def _mapping_from(report: Path, arch: Architecture, workload: Workload) -> Mapping:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.yaml"
        with path.open("w") as fh:
            YAML().dump({"mapping": read_mapping(report)}, fh)
        return load_mapping(path, arch, workload)


def _processed(case: str, processed: str, ert: str, stats: str, metrics: str,
               mapping_report: str | None, note: str = "", name: str | None = None) -> Run:
    folder = EXERCISES / case
    inputs = SpecInputs.load([folder / processed])
    workload = load_problem(inputs)
    arch = load_arch(inputs)
    energy = build_energy_table(arch, None, folder / ert)
    report = read_stats(folder / stats)
    summary = report["summary"]
    total = summary["fj_per_compute"]["Total"] * summary["computes"] / 1000
    mapping = (_mapping_from(folder / mapping_report, arch, workload)
               if mapping_report else None)
    return Run(name or case, arch, workload, energy, metrics, total, summary["cycles"],
               mapping, note, report)


def _ispass_template(mac: str, width: int, psum: int, run: str, metrics: str) -> Run:
    """The ISPASS 2020 Eyeriss-like design from its Jinja template, as the run rendered it."""
    files = [ISPASS / "arch/arch.yaml", ISPASS / "arch/components/intmac.yaml",
             ISPASS / "mapper/mapper.yaml"]
    workload = load_problem(SpecInputs.load([ISPASS / "ref-output/intmac/inputs/input.yaml"]))
    tvars = {"mac_class": mac, "input_weight_datawidth": width, "psum_datawidth": psum}
    arch = load_arch(load_inputs(files, template_vars=tvars), problem=workload)
    folder = ISPASS / "ref-output" / run
    energy = build_energy_table(arch, None, folder / "timeloop-mapper.ERT.yaml")
    report = read_stats(folder / "timeloop-mapper.stats.txt")
    summary = report["summary"]
    total = summary["fj_per_compute"]["Total"] * summary["computes"] / 1000
    mapping_report = folder / "timeloop-mapper.map.txt"
    mapping = (_mapping_from(mapping_report, arch, workload) if mapping_report.is_file()
               else None)
    return Run(f"ispass2020 {run} (Jinja template)", arch, workload, energy, metrics, total,
               summary["cycles"], mapping, "", report)


def _raw05() -> Run:
    """Exercise 05's "baked" run from its own files: the constraint file (naming the
    problem's K, R, P) allows one mapping, which Timeloop's exhaustive mapper found."""
    folder = EXERCISES / "ispass2020_05_mapper_raw_inputs"
    fixture = HERE / "timeloop_ref" / "05_baked"
    files = [folder / "arch/3level.arch.yaml",
             folder / "constraints/conv1d+oc-3level-1mapping.constraints.yaml",
             folder / "mapper/exhaustive.mapper.yaml", fixture / "problem.yaml"]
    inputs = load_inputs(files)
    workload = load_problem(inputs)
    arch = load_arch(inputs, problem=workload)
    energy = build_energy_table(arch, None, fixture / "ert.yaml")
    summary = read_stats(fixture / "timeloop-mapper.stats.txt")["summary"]
    total = summary["fj_per_compute"]["Total"] * summary["computes"] / 1000
    return Run("05_baked (own files, constraints)", arch, workload, energy, "delay,energy",
               total, summary["cycles"], None)


#: name -> loader; loaders run lazily (each reads its files)
RUNS = {
    "05_baked": lambda: _fixture("timeloop_ref/05_baked", "delay,energy",
                                 "fixture arch without the run's one-mapping constraints"),
    "05_baked (own files, constraints)": _raw05,
    "05_freebypass": lambda: _fixture("timeloop_ref/05_freebypass", "delay,energy"),
    "05_null": lambda: _fixture("timeloop_ref/05_null", "delay,energy"),
    "06_eyeriss": lambda: _fixture("timeloop_ref/06_eyeriss", "delay,energy"),
    "eyeriss_like": lambda: _fixture("timeloop_designs/eyeriss_like", "edp"),
    "simba_like": lambda: _fixture("timeloop_designs/simba_like", "edp"),
    "simple_output_stationary": lambda: _fixture(
        "timeloop_designs/simple_output_stationary", "edp"),
    "simple_weight_stationary": lambda: _fixture(
        "timeloop_designs/simple_weight_stationary", "edp"),
    "ispass2020 intmac": lambda: _ispass_template("intmac", 8, 16, "intmac", "delay,energy"),
    "ispass2020 fpmac": lambda: _ispass_template("fpmac", 32, 32, "fpmac", "delay,energy"),
    "ispass2020 intmac (processed input)": lambda: _processed(
        "ispass2020_timeloop_accelergy", "ref-output/intmac/inputs/input.yaml",
        "ref-output/intmac/timeloop-mapper.ERT.yaml",
        "ref-output/intmac/timeloop-mapper.stats.txt", "delay,energy", None,
        name="ispass2020 intmac (processed input)"),
    "interface2024 buffer+DRAM": lambda: _processed(
        "interface2024_buffer_dram", "outputs/inputs/input.yaml",
        "outputs/timeloop-mapper.ERT.yaml", "outputs/timeloop-mapper.stats.txt", "edp",
        "outputs/timeloop-mapper.map.txt", name="interface2024 buffer+DRAM"),
}
