"""hwcost estimate / map / evaluate-mapping end to end, through the real spec and YAML readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from timeloop_texts import gemm_problem

from darts.cellgraph import NetworkConfig, list_layers, mac_count
from darts.genotype_io import load
from hwcost.cli import cli
from hwmodel.estimators import parse_technology, technology_scale
from hwmodel.spec import load_arch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TL = EXAMPLES / "timeloop"


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_evaluate_mapping_reproduces_the_three_level_counts():
    res = run("evaluate-mapping", "--arch", TL / "conv1d_3level.yaml", "--problem",
              TL / "conv1d_oc.yaml", "--mapping", TL / "conv1d_oc_3level.map.yaml",
              "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["computes"] == 1536 and data["cycles"] == 1536
    levels = {lv["name"]: lv for lv in data["levels"]}
    assert [lv["name"] for lv in data["levels"]] == ["RegisterFile", "GlobalBuffer",
                                                      "MainMemory"]
    rf, gb, dram = (levels[n]["dataspaces"] for n in ("RegisterFile", "GlobalBuffer",
                                                       "MainMemory"))

    def counts(ds: dict) -> tuple:
        return ds["reads"], ds["fills"], ds["updates"]

    assert counts(rf["Weights"]) == (1536, 96, 0)
    assert counts(rf["Inputs"]) == (1536, 288, 0)
    # every output is finished in the register file: no partial sum comes back to it
    assert counts(rf["Outputs"]) == (1024, 0, 1536)
    assert counts(gb["Inputs"]) == (288, 18, 0)
    assert counts(gb["Outputs"]) == (0, 0, 512)
    assert dram["Weights"]["reads"] == 96 and dram["Outputs"]["updates"] == 512
    assert data["energy_pj"] > data["mac_energy_pj"] > 0
    assert "MACC" in data["energy_sources"]


def test_map_finds_a_mapping_no_worse_than_the_hand_written_one():
    hand = json.loads(run("evaluate-mapping", "--arch", TL / "conv1d_3level.yaml", "--problem",
                          TL / "conv1d_oc.yaml", "--mapping", TL / "conv1d_oc_3level.map.yaml",
                          "--format", "json").output)
    res = run("map", "--arch", TL / "conv1d_3level.yaml", "--problem", TL / "conv1d_oc.yaml",
              "--format", "json")
    assert res.exit_code == 0, res.output
    found = json.loads(res.output)
    assert found["energy_pj"] <= hand["energy_pj"]
    assert found["computes"] == 1536


def test_map_writes_a_mapping_that_evaluates_to_the_same_result(tmp_path):
    out = tmp_path / "best.map.yaml"
    res = run("map", "--arch", "eyeriss", "--problem", TL / "conv_3x3.yaml", "--out", out,
              "--format", "json")
    assert res.exit_code == 0, res.output
    best = json.loads(res.output)
    again = json.loads(run("evaluate-mapping", "--arch", "eyeriss", "--problem",
                           TL / "conv_3x3.yaml", "--mapping", out, "--format", "json").output)
    assert again["energy_pj"] == pytest.approx(best["energy_pj"])
    assert again["cycles"] == best["cycles"]


def test_estimate_small_genotype_totals_and_multiplier_comparison(tmp_path):
    geno = EXAMPLES / "small_genotype.json"
    res = run("estimate", geno, "--arch", "edge", "--multiplier", "exact8u", "--multiplier",
              "trunc8u_k8", "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    g = load(geno)
    assert len(data["layers"]) == len(list_layers(g, NetworkConfig.from_genotype(g)))
    totals = data["totals"]
    assert totals["exact8u"]["macs"] == mac_count(g, NetworkConfig.from_genotype(g))
    # same mapping, cheaper multiplier: only the multiply energy changes
    assert totals["trunc8u_k8"]["memory_pj"] == pytest.approx(totals["exact8u"]["memory_pj"])
    assert totals["trunc8u_k8"]["multiply_pj"] < totals["exact8u"]["multiply_pj"]
    # --multiplier replaces every multiplier, the per-edge ones included (as train does)
    assert {row["multiplier"] for row in data["layers"]} == {"exact8u"}
    assert data["inputs"]["arch"] and "shared" not in data["inputs"]["multipliers"]
    # without it the genotype's per-edge multipliers are honoured (drum8u_k4 on normal edge 0)
    own = json.loads(run("estimate", geno, "--arch", "edge", "--format", "json").stdout)
    per_layer = {row["name"]: row["multiplier"] for row in own["layers"]}
    assert "drum8u_k4" in per_layer.values() and g.multiplier in per_layer.values()
    edge0 = [m for name, m in per_layer.items() if ".normal.edge0." in name]
    assert edge0 and set(edge0) == {g.edge_multipliers("normal")[0]}


def test_estimate_table_csv_plot_and_export(tmp_path):
    geno = EXAMPLES / "small_genotype.json"
    res = run("estimate", geno, "--arch", "eyeriss", "--by", "group", "--plot",
              tmp_path / "e.png", "--export-timeloop", tmp_path / "tl")
    assert res.exit_code == 0, res.output
    assert "total:" in res.output and "stem" in res.output and "classifier" in res.output
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    problems = sorted((tmp_path / "tl").glob("*.problem.yaml"))
    maps = sorted((tmp_path / "tl").glob("*.map.yaml"))
    assert problems and len(problems) == len(maps)
    # every exported pair evaluates, with the estimate's own figures
    one = run("evaluate-mapping", "--arch", "eyeriss", "--problem", problems[0], "--mapping",
              maps[0], "--format", "json")
    assert one.exit_code == 0, one.output
    csv_out = run("estimate", geno, "--arch", "eyeriss", "--format", "csv").stdout
    header = csv_out.splitlines()[0].split(",")
    assert header[:4] == ["name", "type", "shape", "macs"]
    assert {"mapper_optimal", "mapper_gap"} <= set(header)
    groups = run("estimate", geno, "--arch", "eyeriss", "--format", "csv", "--by", "group")
    lines = groups.stdout.splitlines()
    assert lines[0].startswith("name,layers,macs") and lines[-1].startswith("classifier,")


def test_estimate_plot_draws_every_multiplier_on_one_energy_scale(tmp_path):
    from darts.pricing import price_network
    from hwcost.estimate_cmd import plot_figure
    from hwmodel.costing import CostContext
    from multiplier_lib.library import MultiplierResolver

    geno = load(EXAMPLES / "small_genotype.json")
    config = NetworkConfig.from_genotype(geno, layers=3, channels=4, input_size=16,
                                         classes=10)
    resolver = MultiplierResolver(None)
    context = CostContext(load_arch("eyeriss"), resolve=resolver.arithmetic)
    names = ["fp32", "exact8u", "drum8u_k4"]
    results = [price_network(geno, config, context, resolver.arithmetic(n)) for n in names]
    fig = plot_figure(results, "eyeriss")
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == 3
    for ax, name, est in zip(panels, names, results):
        assert ax.get_title().startswith(f"{name}: ")
        # the stacked bars of a panel add up to that multiplier's total energy
        tops = {}
        for bar in ax.patches:
            x = round(bar.get_x(), 6)
            tops[x] = max(tops.get(x, 0.0), bar.get_y() + bar.get_height())
        assert sum(tops.values()) == pytest.approx(est.total("energy_pj") / 1e6, rel=1e-6)
    assert len({ax.get_ylim() for ax in panels}) == 1      # one shared energy scale
    res = run("estimate", EXAMPLES / "small_genotype.json", "--arch", "eyeriss",
              "--multiplier", "exact8u", "--multiplier", "drum8u_k4", "--plot",
              tmp_path / "two.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "two.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,needle", [
    (["estimate", EXAMPLES / "small_genotype.json", "--arch", "nosuch"], "nosuch"),
    (["estimate", EXAMPLES / "small_genotype.json", "--arch", "edge", "--multiplier",
      "exact8uu"], "did you mean"),
    (["estimate", EXAMPLES / "small_genotype.json", "--arch", "edge", "--input", "32x16"],
     "--input"),
    (["map", "--arch", "eyeriss", "--problem", TL / "missing.yaml"], "missing.yaml"),
])
def test_mistakes_are_one_line_errors(args, needle):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code != 0
    assert needle in res.output
    assert "Traceback" not in res.output


def test_evaluate_mapping_in_timeloops_layout():
    """``--format timeloop`` on Timeloop's own 04 kp exercise prints its stats file's
    figures in its layout (the full comparison is in tests/hwmodel/test_timeloop_stats)."""
    case = Path(__file__).resolve().parents[1] / "hwmodel" / "timeloop_ref" / "04_kp"
    res = run("evaluate-mapping", "--arch", case / "arch.yaml", "--problem",
              case / "problem.yaml", "--mapping", case / "map.yaml", "--ert",
              case / "ert.yaml", "--format", "timeloop")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[:3] == ["Buffer and Arithmetic Levels", "----------------------------",
                         "Level 0"]
    order = [ln for ln in lines if ln.startswith("=== ")][:4]
    assert order == ["=== MACC ===", "=== RegisterFile ===", "=== GlobalBuffer ===",
                     "=== MainMemory ==="]
    # Timeloop's summary line for this exercise: 14664.63 fJ per compute in total
    assert "    Total                  = 14664.63" in lines


def test_map_warns_when_the_fan_out_stays_idle(monkeypatch):
    """A mapping that leaves most of a fillable fan-out idle is said, never silent: a
    warning line on stderr and a JSON field (the mapper is made to report a larger legal
    split than the mapping it returns)."""
    from dataclasses import replace

    from hwmodel.mapper import Mapper

    real = Mapper.map

    def pessimistic(self, workload):
        found = real(self, workload)
        return replace(found, spatial_bound=found.result.macs_utilized * 4)

    monkeypatch.setattr(Mapper, "map", pessimistic)
    args = ("map", "--arch", "simba", "--problem", TL / "conv_3x3.yaml")
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0
    assert "warning: the best mapping found uses" in res.stderr
    res = CliRunner().invoke(cli, [str(a) for a in (*args, "--format", "json")])
    assert "the best mapping found uses" in json.loads(res.stdout)["mapper"]["underused"]


def test_estimate_names_the_layers_that_leave_the_fan_out_idle(monkeypatch):
    from dataclasses import replace

    from hwmodel.mapper import Mapper

    real = Mapper.map

    def pessimistic(self, workload):
        found = real(self, workload)
        return replace(found, spatial_bound=found.result.macs_utilized * 4)

    monkeypatch.setattr(Mapper, "map", pessimistic)
    res = CliRunner().invoke(cli, ["estimate", str(EXAMPLES / "small_genotype.json"),
                                   "--arch", "edge", "--layers", "3", "--channels", "4",
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    layers = json.loads(res.stdout)["layers"]
    flagged = [row["name"] for row in layers if row["underused"]]
    convs = [row["name"] for row in layers if row["type"] in ("conv", "fc")]
    assert flagged == convs
    assert f"warning: {convs[0]}: the best mapping found uses" in res.stderr


def test_estimate_compares_integer_multipliers_with_the_fp32_baseline():
    geno = EXAMPLES / "small_genotype.json"
    res = run("estimate", geno, "--arch", "edge", "--multiplier", "fp32", "--multiplier",
              "exact8u", "--multiplier", "trunc8u_k8", "--format", "json")
    assert res.exit_code == 0, res.output
    totals = json.loads(res.output)["totals"]
    macs = totals["exact8u"]["macs"]
    assert totals["fp32"]["macs"] == macs
    # every MAC's multiply is Horowitz's FP32 3.7 pJ at 45 nm, scaled to the spec's node
    scale = technology_scale(parse_technology(load_arch("edge").technology))
    assert totals["fp32"]["multiply_pj"] == pytest.approx(macs * 3.7 * scale)
    assert totals["fp32"]["memory_pj"] > totals["exact8u"]["memory_pj"]
    table = run("estimate", geno, "--arch", "edge", "--multiplier", "fp32", "--multiplier",
                "exact8u")
    assert table.exit_code == 0, table.output
    row = next(ln for ln in table.output.splitlines() if ln.startswith("exact8u "))
    saving = 1 - totals["exact8u"]["arithmetic_pj"] / totals["fp32"]["arithmetic_pj"]
    assert f"{saving * 100:.1f}%" in row


def test_float_baseline_with_an_ert_and_unknown_names_are_one_line_errors(tmp_path):
    geno = EXAMPLES / "small_genotype.json"
    ert = tmp_path / "ERT.yaml"
    ert.write_text("ERT:\n  version: 0.3\n  tables: []\n")
    res = CliRunner().invoke(cli, ["estimate", str(geno), "--arch", "edge", "--multiplier",
                                   "fp32", "--ert", str(ert)])
    assert res.exit_code != 0 and "cannot be combined" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["estimate", str(geno), "--arch", "edge", "--multiplier",
                                   "fp64"])
    assert res.exit_code != 0 and "fp64" in res.output and "Traceback" not in res.output


# ----------------------------------------------------------------------------- Timeloop inputs

ARCH_J2 = """\
variables:
  WORD: {{ word_bits | default(8) }}
  RF_WORDS: {{ rf_words }}
architecture:
  version: 0.4
  nodes:
  - !Container
    name: System
    attributes: {technology: "45nm"}
  - !Component
    name: MainMemory
    class: DRAM
    attributes: {type: "LPDDR4", width: 256, datawidth: WORD}
  - !Component
    name: GlobalBuffer
    class: SRAM
    attributes: {depth: 8192, width: 256, datawidth: WORD}
  - !Component
    name: RegisterFile
    class: regfile
    attributes:
      depth: RF_WORDS
      width: max(WORD, 8)
      datawidth: WORD
  - !Component
    name: MACC
    class: {{ mac_class | default("intmac") }}
    attributes: {datawidth: WORD}
"""

CONSTRAINTS = """\
mapspace_constraints:
  targets:
  - {target: RegisterFile, type: bypass, keep: [A, Z], bypass: [B]}
  - {target: GlobalBuffer, type: temporal, factors: K<=4, permutation: [R, P, K]}
"""

GEMM = gemm_problem(8, 4, 3)

GEMM_MAP = """\
mapping:
- {target: MainMemory, type: temporal, factors: K=2 P=1 R=1, permutation: KPR}
- {target: GlobalBuffer, type: temporal, factors: K=4 P=4 R=1, permutation: PKR}
- {target: RegisterFile, type: temporal, factors: K=1 P=1 R=3, permutation: RKP}
"""


@pytest.fixture()
def gemm(tmp_path: Path) -> dict[str, Path]:
    files = {"arch": "arch.yaml.j2", "cons": "constraints.yaml", "prob": "prob.yaml",
             "map": "map.yaml", "mapper": "mapper.yaml", "vars": "vars.yaml"}
    texts = {"arch": ARCH_J2, "cons": CONSTRAINTS, "prob": GEMM, "map": GEMM_MAP,
             "mapper": "mapper:\n  version: 0.4\n  optimization_metrics: [edp]\n"
                       "  algorithm: random_pruned\n",
             "vars": "rf_words: 64\nword_bits: 8\n"}
    out = {}
    for key, name in files.items():
        out[key] = tmp_path / name
        out[key].write_text(texts[key])
    return out


def test_evaluate_mapping_from_timeloop_style_inputs(gemm):
    """Several files merged by top-level key, a template rendered with --vars and --var;
    a problem with its own dimension and data-space names."""
    res = run("evaluate-mapping", gemm["arch"], gemm["cons"], gemm["prob"], gemm["map"],
              "--vars", gemm["vars"], "--var", "rf_words=32", "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["computes"] == 96 and data["problem"] == "gemm"
    assert data["inputs"] == [str(gemm[k]) for k in ("arch", "cons", "prob", "map")]
    assert data["rendered_templates"] == [str(gemm["arch"])]
    rf = next(lv for lv in data["levels"] if lv["name"] == "RegisterFile")
    assert sorted(rf["dataspaces"]) == ["A", "Z"]         # B bypasses it (constraints file)
    assert rf["dataspaces"]["A"]["reads"] == 96
    table = run("evaluate-mapping", "--arch", gemm["arch"], "--arch", gemm["cons"],
                "--problem", gemm["prob"], "--mapping", gemm["map"], "--vars", gemm["vars"])
    assert table.exit_code == 0, table.output
    assert table.output.startswith("mapping: MainMemory[K2] GlobalBuffer[K4 P4] "
                                   "RegisterFile[R3]\n"), table.output
    assert "computes 96" in table.output


def test_map_takes_the_objective_from_the_mapper_section(gemm, monkeypatch):
    res = run("map", gemm["arch"], gemm["cons"], gemm["prob"], gemm["mapper"], "--vars",
              gemm["vars"], "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["objective"] == "edp"
    assert data["objective_source"] == f"mapper optimization_metrics, {gemm['mapper']}:3"
    table = run("map", gemm["arch"], gemm["cons"], gemm["prob"], gemm["mapper"], "--vars",
                gemm["vars"], "--objective", "delay")
    assert table.exit_code == 0, table.output
    assert "objective: delay (--objective)\n" in table.output
    import hwmodel.mapper as mapper_module

    seen = []

    class Spy(mapper_module.Mapper):
        def __init__(self, arch, energy=None, objective="energy", *args, **kwargs):
            seen.append(objective)
            super().__init__(arch, energy, "energy", *args, **kwargs)

    monkeypatch.setattr(mapper_module, "Mapper", Spy)
    gemm["mapper"].write_text("mapper:\n  optimization_metrics: [delay, energy]\n")
    res = run("map", gemm["arch"], gemm["cons"], gemm["prob"], gemm["mapper"], "--vars",
              gemm["vars"])
    assert res.exit_code == 0, res.output
    run("map", gemm["arch"], gemm["cons"], gemm["prob"], "--vars", gemm["vars"],
        "--objective", "edp,energy")
    assert seen == ["delay,energy", "edp,energy"]      # passed through as written
    assert "objective: delay,energy (mapper optimization_metrics" in res.output


def test_estimate_takes_several_arch_files_and_template_vars(gemm, tmp_path):
    cons = tmp_path / "cnn_cons.yaml"
    cons.write_text("mapspace_constraints:\n  targets:\n"
                    "  - {target: RegisterFile, type: bypass, bypass: [Inputs]}\n")
    geno = EXAMPLES / "small_genotype.json"
    res = run("estimate", geno, "--arch", gemm["arch"], "--arch", cons, "--arch",
              gemm["mapper"], "--var", "rf_words=64", "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["inputs"]["objective"] == "edp"
    assert data["layers"]


@pytest.mark.parametrize("case,needle", [
    ("undefined", "{arch}:3: template variable 'rf_words' is undefined"),
    ("bad var", "--var 'rf_words': expected NAME=VALUE"),
    ("no problem", "no problem given: add --problem FILE"),
    ("no mapping", "no mapping given: add --mapping FILE"),
    ("unknown dim", "{cons}:4: unknown dimension 'X' in the temporal factors of "
     "'GlobalBuffer' (problem 'gemm' has dimensions: K P R)"),
    ("unknown space", "{cons}:3: unknown data space 'Weights' in keep of 'RegisterFile' "
     "(problem 'gemm' has data spaces: A, B, Z)"),
    ("problem twice", "{prob2}:1: problem given twice: here and in {prob}:1"),
    ("mapping to map", "{map}:1: hwcost map does not read a 'mapping' section"),
    ("problem to estimate", "{prob}:1: hwcost estimate takes its layers from the genotype"),
    ("bad metric", "{mapper}:2: mapper optimization_metrics: metric 'last_level_accesses'"),
    ("unknown section", "{junk}:1: unknown top-level section 'architectur'"),
])
def test_input_mistakes_are_one_located_line(gemm, tmp_path, case, needle):
    g = {k: str(v) for k, v in gemm.items()}
    (tmp_path / "prob2.yaml").write_text(GEMM)
    (tmp_path / "junk.yaml").write_text("architectur: {}\n")
    g.update(prob2=str(tmp_path / "prob2.yaml"), junk=str(tmp_path / "junk.yaml"))
    base = [g["arch"], g["cons"], "--vars", g["vars"]]
    args = {
        "undefined": ["map", g["arch"], g["prob"]],
        "bad var": ["map", *base, g["prob"], "--var", "rf_words"],
        "no problem": ["map", *base],
        "no mapping": ["evaluate-mapping", *base, g["prob"]],
        "unknown dim": ["map", *base, g["prob"]],
        "unknown space": ["map", *base, g["prob"]],
        "problem twice": ["map", *base, g["prob"], g["prob2"]],
        "mapping to map": ["map", *base, g["prob"], g["map"]],
        "problem to estimate": ["estimate", EXAMPLES / "small_genotype.json", "--arch",
                                g["arch"], "--arch", g["prob"], "--vars", g["vars"]],
        "bad metric": ["map", *base, g["prob"], g["mapper"]],
        "unknown section": ["map", *base, g["prob"], g["junk"]],
    }[case]
    if case == "unknown dim":
        gemm["cons"].write_text(CONSTRAINTS.replace("K<=4", "X<=4"))
    if case == "unknown space":
        gemm["cons"].write_text(CONSTRAINTS.replace("keep: [A, Z]", "keep: [Weights]"))
    if case == "bad metric":
        gemm["mapper"].write_text("mapper:\n  optimization_metrics: [last_level_accesses]\n")
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code != 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error")]
    assert lines == [f"Error: {needle.format(**g)}"] or needle.format(**g) in lines[0], \
        res.output
    assert "Traceback" not in res.output


def test_unused_template_vars_are_a_warning():
    res = CliRunner().invoke(cli, ["evaluate-mapping", "--arch", str(TL / "conv1d_3level.yaml"),
                                   "--problem", str(TL / "conv1d_oc.yaml"), "--mapping",
                                   str(TL / "conv1d_oc_3level.map.yaml"), "--var", "x=1"])
    assert res.exit_code == 0
    assert "warning: --var/--vars given but no input is a template" in res.output


# ----------------------------------------------------------------------------- --write-ert

def test_written_ert_reads_back_to_the_same_energies(tmp_path):
    ert = tmp_path / "built.ert.yaml"
    args = ["evaluate-mapping", "--arch", TL / "conv1d_3level.yaml", "--problem",
            TL / "conv1d_oc.yaml", "--mapping", TL / "conv1d_oc_3level.map.yaml",
            "--format", "json"]
    first = run(*args, "--write-ert", ert)
    assert first.exit_code == 0, first.output
    assert ert.is_file()
    again = run(*args, "--ert", ert)
    assert again.exit_code == 0, again.output
    a, b = json.loads(first.output), json.loads(again.output)
    assert b["energy_pj"] == pytest.approx(a["energy_pj"], rel=1e-9)
    assert all(src["source"].startswith("ERT") for acts in b["energy_sources"].values()
               for src in acts.values() if src["energy_pj"])


@pytest.mark.parametrize("args", [
    ["evaluate-mapping", "--arch", TL / "conv1d_3level.yaml", "--problem", TL / "conv1d_oc.yaml",
     "--mapping", TL / "bad_capacity.map.yaml"],
    ["map", "--arch", TL / "conv1d_3level.yaml", "--problem", TL / "conv1d_oc.yaml",
     TL / "conv1d_oc_3level.map.yaml"],
])
def test_a_failed_command_writes_no_ert(tmp_path, args):
    ert = tmp_path / "never.ert.yaml"
    res = run(*args, "--write-ert", ert)
    assert res.exit_code == 1 and res.output.startswith("Error: ")
    assert not ert.exists()


def test_estimate_writes_the_ert_of_its_design(tmp_path):
    ert = tmp_path / "edge.ert.yaml"
    res = run("estimate", EXAMPLES / "small_genotype.json", "--arch", "edge",
              "--effort", "fast", "--write-ert", ert, "--format", "json")
    assert res.exit_code == 0, res.output
    text = ert.read_text()
    assert "global_buffer" in text and "ERT:" in text


def test_estimate_with_only_float_formats_still_writes_its_ert(tmp_path):
    ert = tmp_path / "fp.ert.yaml"
    res = run("estimate", EXAMPLES / "small_genotype.json", "--arch", "edge", "--effort", "fast",
              "--multiplier", "fp16", "--write-ert", ert)
    assert res.exit_code == 0, res.output
    assert "global_buffer" in ert.read_text()


def test_mapping_section_without_directives_names_its_line(tmp_path):
    bad = tmp_path / "map.yaml"
    bad.write_text("# a comment\n\nmapping: {foo: 1}\n")
    res = run("evaluate-mapping", "--arch", TL / "conv1d_3level.yaml", "--problem",
              TL / "conv1d_oc.yaml", "--mapping", bad)
    assert res.exit_code == 1
    assert res.output == f"Error: {bad}:3: expected a list of mapping directives (optionally " \
                         "under 'mapping:')\n"


def test_out_and_objective_mistakes_are_one_line(tmp_path):
    (tmp_path / "afile").write_text("")
    base = ["map", "--arch", TL / "conv1d_3level.yaml", "--problem", TL / "conv1d_oc.yaml",
            "--effort", "fast"]
    ert = tmp_path / "e.yaml"
    res = run(*base, "--out", tmp_path / "afile" / "m.yaml", "--write-ert", ert)
    assert res.exit_code == 2 and res.output.count("\n") == 1   # refused before mapping
    assert "Invalid value for '--out'" in res.output and "afile is a file, not a folder" \
        in res.output
    assert not ert.exists()               # nothing written by a failed run
    res = run(*base, "--objective", "")
    assert res.exit_code == 1 and res.output.startswith("Error: --objective is empty")
