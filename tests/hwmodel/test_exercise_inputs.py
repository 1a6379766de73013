"""The real Timeloop inputs of ``exercises/*/`` (verbatim files of the public exercises
repository, see ``exercises/README.md``) read through hwcost's front end: templates rendered
with each run's Jinja variables, files merged by top-level key, expressions evaluated,
names taken from the problem, the mapper section's metrics as the objective.

The generic test walks every ``case.yaml``, so a case added later is read too: a dense case
must be read, a sparse one read or refused in one line.  The specific tests check what was
read against Timeloop's own processed input and published results.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from core.errors import HwcostError
from hwcost.cli import cli
from hwmodel.inputs import SpecInputs
from hwmodel.mapper_section import mapper_objective
from hwmodel.problem_yaml import load_problem
from hwmodel.spec import load_arch, load_inputs

HERE = Path(__file__).resolve().parent
EXERCISES = HERE / "exercises"
REF = HERE / "timeloop_ref"
CASES = sorted(p.parent.name for p in EXERCISES.glob("*/case.yaml"))


def _manifest(case: str) -> dict[str, Any]:
    return YAML(typ="safe", pure=True).load((EXERCISES / case / "case.yaml").read_text())


def _template_vars(manifest: dict, run: dict) -> dict[str, Any]:
    """The run's Jinja variables; a run without its own (an older run of the same exercise)
    takes the first run's."""
    out: dict[str, Any] = {}
    for item in manifest.get("inputs") or []:
        out.update(item.get("jinja_variables") or {})
    own = run.get("jinja_variables") or next(
        (r["jinja_variables"] for r in manifest.get("runs") or [] if r.get("jinja_variables")),
        {})
    out.update(own)
    return out


def _top_level_copy(folder: Path, tvars: dict, tmp: Path) -> tuple[Path, dict]:
    """A top-level template assembles a design from the repository's folder layout
    (``cwd()/<architecture>/arch.yaml``, ``_components/*.yaml``); the case holds the design's
    files flat. Run it in a copy where ``architecture`` is that folder, with an empty
    components folder when the case has none (components are not used by hwcost)."""
    copy = tmp / folder.name
    shutil.copytree(folder, copy)
    (copy / "_components").mkdir(exist_ok=True)
    if not any((copy / "_components").glob("*.yaml")):
        (copy / "_components" / "none.yaml").write_text(
            "compound_components:\n  version: 0.4\n  classes: []\n")
    tvars = dict(tvars)
    if "architecture" in tvars and not (copy / str(tvars["architecture"])).exists():
        tvars["architecture"] = "."
    return copy, tvars


def _processed_problem(case: str, manifest: dict):
    for run in manifest.get("runs") or []:
        processed = (run.get("processed_input") or {}).get("file")
        if processed and (EXERCISES / case / processed).is_file():
            return load_problem(SpecInputs.load([EXERCISES / case / processed]))
    return None


@pytest.mark.parametrize("case", CASES)
def test_every_case_input_is_read(case, tmp_path):
    """Each run's input files, merged as Timeloop's front end merged them, and each
    processed input (timeloopfe's own merged file) on its own."""
    manifest = _manifest(case)
    folder = EXERCISES / case
    dense = manifest.get("dense", True)
    problem = _processed_problem(case, manifest)
    for run in manifest.get("runs") or [{}]:
        tvars = _template_vars(manifest, run)
        files = [i for i in manifest.get("inputs") or [] if i.get("file")]
        base = folder
        if any(str(i.get("role", "")).startswith("top-level template") for i in files):
            base, tvars = _top_level_copy(folder, tvars, tmp_path / run.get("name", "run"))
            files = [i for i in files if str(i.get("role", "")).startswith("top-level")]
        paths = [base / i["file"] for i in files if (base / i["file"]).is_file()]
        try:
            inputs = SpecInputs.load(paths, tvars)
            if inputs.first("architecture") is not None:
                if inputs.first("problem") is not None:
                    load_problem(inputs)
                arch = load_arch(inputs, problem=None if inputs.first("problem") else problem)
                assert arch.levels and arch.compute.instances >= 1
            found = mapper_objective(inputs)
            if found is not None and manifest.get("optimization_metrics"):
                assert found.objective == ",".join(manifest["optimization_metrics"])
        except HwcostError as exc:
            assert not dense, f"{case} {run.get('name')}: {exc}"
            assert "\n" not in str(exc)
        processed = (run.get("processed_input") or {}).get("file")
        if processed and (folder / processed).is_file():
            inputs = SpecInputs.load([folder / processed])
            workload = load_problem(inputs)
            arch = load_arch(inputs)
            assert arch.levels and workload.computes > 0
            if manifest.get("optimization_metrics"):
                assert mapper_objective(inputs).objective == \
                    ",".join(manifest["optimization_metrics"])
    for extra in (manifest.get("extra_files") or {}).get("files") or []:
        arch = load_arch(folder / extra["file"], problem=problem)
        assert arch.levels


# ----------------------------------------------------------------------------- ISPASS 2020

ISPASS = EXERCISES / "ispass2020_timeloop_accelergy"
ISPASS_INPUTS = ["arch/arch.yaml", "arch/components/intmac.yaml", "mapper/mapper.yaml"]


def _geometry(arch) -> list[tuple]:
    """What defines each storage level, container constraints included."""
    def loop(c):
        return None if c is None else (c.factors, c.max_factors, c.permutation, c.split)

    return [(lv.name, lv.depth, lv.width, lv.datawidth, lv.block_size, lv.instances,
             lv.fanout_x, lv.fanout_y, sorted(lv.keep or []), loop(lv.spatial),
             [loop(c.spatial) for c in lv.containers])
            for lv in arch.levels]


@pytest.mark.skipif(not (ISPASS / "case.yaml").is_file(), reason="case not present")
def test_ispass_template_reads_as_timeloops_processed_input():
    """The Jinja template with ``max(INPUT_WEIGHT_DATAWIDTH, 16)`` and variables, read by
    hwcost, is the machine timeloopfe handed to Timeloop (its processed ``input.yaml``)."""
    processed = SpecInputs.load([ISPASS / "ref-output/intmac/inputs/input.yaml"])
    workload = load_problem(processed)
    timeloops = load_arch(processed)
    tvars = {"mac_class": "intmac", "input_weight_datawidth": 8, "psum_datawidth": 16}
    inputs = load_inputs([ISPASS / f for f in ISPASS_INPUTS], template_vars=tvars)
    ours = load_arch(inputs, problem=workload)
    mine, theirs = _geometry(ours), _geometry(timeloops)
    for a, b in zip(mine, theirs):
        assert a[:9] == b[:9]                        # containers are dummy levels there
        assert a[9] == b[9]
    assert len(mine) == len(theirs) == 5
    assert [lv.temporal.factors for lv in ours.levels[2:]] == \
        [lv.temporal.factors for lv in timeloops.levels[2:]]
    assert (ours.compute.datawidth, ours.compute.instances) == (16, 168)
    assert ours.compute.attributes["multiplier_width"] == 8
    assert ours.level("ifmap_spad").width == 16                  # max(8, 16)
    assert ours.technology == timeloops.technology == "45nm"     # from the variables
    assert mapper_objective(inputs).objective == "delay,energy"


@pytest.mark.skipif(not (ISPASS / "case.yaml").is_file(), reason="case not present")
def test_ispass_fpmac_run_renders_32_bit_widths():
    workload = load_problem(SpecInputs.load([ISPASS / "ref-output/intmac/inputs/input.yaml"]))
    tvars = {"mac_class": "fpmac", "input_weight_datawidth": 32, "psum_datawidth": 32}
    arch = load_arch(load_inputs([ISPASS / f for f in ISPASS_INPUTS], template_vars=tvars),
                     problem=workload)
    assert arch.compute.component_class == "fpmac" and arch.compute.datawidth == 32
    assert [(lv.width, lv.datawidth) for lv in arch.levels] == \
        [(64, 32), (64, 32), (32, 32), (32, 32), (32, 32)]
    with pytest.raises(HwcostError, match=r"arch\.yaml:3: template variable "
                                          r"'psum_datawidth' is undefined"):
        load_inputs([ISPASS / f for f in ISPASS_INPUTS], template_vars={"mac_class": "fpmac"})


@pytest.mark.skipif(not (ISPASS / "case.yaml").is_file(), reason="case not present")
def test_ispass_template_evaluates_timeloops_mapping_to_its_energy(tmp_path):
    """Timeloop's mapping of the older intmac run, evaluated through the template front end
    with the run's ERT: the total energy of Timeloop's report."""
    reader = pytest.importorskip("timeloop_stats_reader")
    run = ISPASS / "ref-output/intmac/bc2f6b8"
    mapping = tmp_path / "map.yaml"
    YAML().dump({"mapping": reader.read_mapping(run / "timeloop-mapper.map.txt")},
                mapping)
    problem = tmp_path / "prob.yaml"
    processed = YAML(typ="safe", pure=True).load(
        (ISPASS / "ref-output/intmac/inputs/input.yaml").read_text())
    YAML().dump({"problem": processed["problem"]}, problem)
    res = CliRunner().invoke(cli, ["evaluate-mapping", *(str(ISPASS / f) for f in ISPASS_INPUTS),
                                   str(problem),
                                   "--mapping", str(mapping), "--ert",
                                   str(ISPASS / "ref-output/intmac/timeloop-mapper.ERT.yaml"),
                                   "--var", "mac_class=intmac", "--var",
                                   "input_weight_datawidth=8", "--var", "psum_datawidth=16",
                                   "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ours = json.loads(res.output)
    stats = reader.read_stats(run / "timeloop-mapper.stats.txt")
    expected = stats["summary"]["fj_per_compute"]["Total"] * stats["summary"]["computes"] / 1e3
    assert ours["computes"] == stats["summary"]["computes"]
    assert ours["energy_pj"] == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- ISPASS 05

RAW05 = EXERCISES / "ispass2020_05_mapper_raw_inputs"


@pytest.mark.skipif(not (RAW05 / "case.yaml").is_file(), reason="case not present")
def test_constraint_file_naming_problem_dimensions_reproduces_timeloop():
    """The issue's refusal (``unknown dimension 'K' in temporal factors``) is gone: the
    exercise's own arch, constraint file (K, R, P) and mapper file (``optimization_metric``,
    singular) map the problem to the one mapping they allow, at Timeloop's energy."""
    files = [RAW05 / "arch/3level.arch.yaml",
             RAW05 / "constraints/conv1d+oc-3level-1mapping.constraints.yaml",
             RAW05 / "mapper/exhaustive.mapper.yaml"]
    res = CliRunner().invoke(cli, ["map", *map(str, files), "--problem",
                                   str(REF / "05_baked/problem.yaml"), "--ert",
                                   str(REF / "05_baked/ert.yaml"), "--format", "json"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["objective"] == "delay,energy"
    expected = json.loads((REF / "05_baked/expected.json").read_text())["summary"]
    assert data["energy_pj"] == pytest.approx(expected["total_energy_pj_from_fj"], rel=1e-5)
    assert data["cycles"] == expected["cycles"]


# ----------------------------------------------------------------------------- 2024 tutorial

IFACE = EXERCISES / "interface2024_buffer_dram"


@pytest.mark.skipif(not (IFACE / "case.yaml").is_file(), reason="case not present")
def test_interface2024_processed_input():
    inputs = SpecInputs.load([IFACE / "outputs/inputs/input.yaml"])
    workload = load_problem(inputs)
    arch = load_arch(inputs)
    assert workload.bounds == {"C": 128, "M": 128, "R": 1, "S": 1, "N": 32, "P": 128,
                               "Q": 128, "G": 1}
    buf = arch.level("buffer")
    assert (buf.depth, buf.width, buf.fanout_x, buf.keep) == \
        (512, 128, 8, {"Inputs", "Outputs", "Weights"})
    assert buf.spatial.factors["M"] == 8 and buf.spatial.split == 17
    assert mapper_objective(inputs).objective == "edp"


# ----------------------------------------------------------------------------- Sparseloop DUDU

DUDU = EXERCISES / "sparseloop_dudu_dot_product"


@pytest.mark.skipif(not (DUDU / "case.yaml").is_file(), reason="case not present")
def test_dudu_top_level_template_with_accelergy_includes(tmp_path):
    """``top.yaml.jinja2`` assembles the spec with ``include``, ``include_all``, ``cwd``,
    ``path_exists`` and ``default``; the mapping constraints it includes name the problem's
    own dimensions (K, M) and data spaces (A, B, Z)."""
    copy, tvars = _top_level_copy(DUDU, {"architecture": "x"}, tmp_path)
    res = CliRunner().invoke(cli, ["map", str(copy / "top.yaml.jinja2"), "--var",
                                   f"architecture={tvars['architecture']}", "--ert",
                                   str(DUDU / "ref_outputs/default_problem/"
                                            "timeloop-mapper.ERT.yaml")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("mapping: Buffer[K16]\n")
    assert "objective: edp (mapper optimization_metrics" in res.output
    assert "computes 16  cycles 16" in res.output


@pytest.mark.skipif(not (DUDU / "case.yaml").is_file(), reason="case not present")
def test_dudu_files_given_separately_evaluate_the_mapping():
    """The same design without the top template: arch, problem and mapping files (whose
    ``mapping`` section is the mapping evaluate-mapping reads), merged by top-level key."""
    res = CliRunner().invoke(cli, ["evaluate-mapping", *(str(DUDU / f) for f in (
        "arch.yaml", "problem.yaml", "mapping.yaml")), "--format", "json"],
        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    buffer = data["levels"][0]["dataspaces"]
    assert data["computes"] == 16 and sorted(buffer) == ["A", "B", "Z"]
    assert buffer["A"]["reads"] == buffer["B"]["reads"] == 16


# ----------------------------------------------------------------------------- v0.3 Eyeriss specs

ISPASS = EXERCISES / "ispass2020_timeloop_accelergy"


@pytest.mark.skipif(not (ISPASS / "case.yaml").is_file(), reason="case not present")
@pytest.mark.parametrize("spec", ["eyeriss_like-int16.yaml", "eyeriss_like-float32.yaml"])
def test_v03_eyeriss_specs_map_the_vgg_layer(spec):
    """The issue's 'no valid mapping ... fits system' on the exercise's two v0.3 Eyeriss
    specs (DummyBuffer per column, 168 PEs): the mapper answers with a valid, parallel
    mapping that the model prices as the mapper said."""
    from hwmodel.energy import build_energy_table
    from hwmodel.mapper import Mapper
    from hwmodel.model import evaluate

    arch = load_arch(ISPASS / "arch" / spec)
    workload = load_problem(SpecInputs.load([ISPASS / "ref-output/intmac/inputs/input.yaml"]))
    assert workload.bounds["C"] == 128 and workload.bounds["P"] == 56
    energy = build_energy_table(arch)
    found = Mapper(arch, energy, effort="balanced").map(workload)
    again = evaluate(arch, workload, found.mapping, energy)
    assert again.energy_pj == pytest.approx(found.result.energy_pj)
    assert again.computes == math.prod(workload.bounds.values())
    # the PE array in use (the search found only the all-at-DRAM mapping: 1 MAC)
    assert found.result.macs_utilized >= 168 // 2 and found.underused is None
