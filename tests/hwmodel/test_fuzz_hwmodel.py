"""Fuzzing the hwmodel readers through the CLI (issue 12).

Every reader of a hardware-model file (architecture specs in Timeloop v0.3 and v0.4 YAML,
their constraint targets, Timeloop problems and mappings, Accelergy ERTs) is fed mutants
of a valid example and run the way a user runs it (``hwcost map``, ``evaluate-mapping``,
``estimate``).  The rule checked for every case (:func:`fuzzkit.assert_clean`): the command
either succeeds or prints one ``Error: file:line: message`` line and exits non-zero; no
traceback, no hang, and the folders it may write are untouched after a failure.  A mutant
paired with untouched valid files may also be refused by one of *those* files (a valid
mapping no longer matches a mutated problem); the error must then name that file instead.

The hand-written hostile inputs at the end are the ones a random mutation rarely finds:
huge replication, dimensions and factors, deep nesting, alias bombs, binary junk.
"""

from __future__ import annotations

import copy
import io
import re
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from fuzzkit import FUZZ, Outcome, assert_clean, mutated_bytes, mutated_text, run_cli, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
TL = ROOT / "examples" / "timeloop"
REF = ROOT / "tests" / "hwmodel" / "timeloop_ref"
DESIGNS = ROOT / "tests" / "hwmodel" / "timeloop_designs"
SPECS = ROOT / "arch_specs"

#: messages about a file as a whole, which have no line to point at
WHOLE_FILE = (r"file not found", r"cannot read", r"is a directory", r"not UTF-8",
              r"exceeds the limit", r"no valid mapping")

#: a small CNN layer: the bundled specs constrain the CNN dimensions by name (N, C, M...),
#: which a problem must have, as in Timeloop (written into each case's folder)
SMALL_CNN = "problem:\n  shape: cnn-layer\n  instance: {C: 4, M: 8, R: 3, S: 3, P: 8, Q: 8, N: 1}\n"

#: (spec file, problem that the mapper maps onto it quickly)
V04_SPECS = [
    (TL / "conv1d_3level.yaml", TL / "conv1d_oc.yaml"),
    (SPECS / "eyeriss.yaml", SMALL_CNN),
    (SPECS / "simba.yaml", SMALL_CNN),
    (SPECS / "systolic.yaml", SMALL_CNN),
    (SPECS / "edge.yaml", SMALL_CNN),
    (REF / "06_eyeriss" / "arch.yaml", SMALL_CNN),
]

V03_SPEC = """\
architecture:
  version: 0.3
  subtree:
  - name: tiny
    attributes: {technology: 45nm}
    local:
    - name: DRAM
      class: DRAM
      attributes: {type: LPDDR4, width: 64, word-bits: 8}
    - name: buffer
      class: SRAM
      attributes: {memory_depth: 1024, block-size: 8, word-bits: 8, n_banks: 4,
                   read_bandwidth: 8}
    subtree:
    - name: PE[0..7]
      attributes: {meshX: 4}
      local:
      - name: reg
        class: regfile
        attributes: {memory_depth: 16, memory_width: 8, word-bits: 8}
      - name: mac[0..1]
        class: intmac
        attributes: {datawidth: 8, meshX: 8}
"""

#: a v0.3 Eyeriss in the layout of Timeloop's v0.3 exercises (three spads per PE)
V03_EYERISS = """\
architecture:
  version: 0.3
  subtree:
    - name: system
      attributes:
        technology: 45nm
      local:
        - name: DRAM
          class: DRAM
          attributes:
            type: LPDDR4
            width: 64
            word-bits: 16
      subtree:
        - name: eyeriss
          local:
            - name: shared_glb
              class: smartbuffer_SRAM
              attributes:
                memory_depth: 16384
                memory_width: 64
                n_banks: 32
                block-size: 4
                word-bits: 16
                read_bandwidth: 16
                write_bandwidth: 16
          subtree:
          - name: PE[0..167]
            attributes:
              meshX: 14
            local:
              - name: ifmap_spad
                class: smartbuffer_RF
                attributes:
                  memory_depth: 12
                  memory_width: 16
                  block-size: 1
                  word-bits: 16
              - name: weights_spad
                class: smartbuffer_RF
                attributes:
                  memory_depth: 192
                  memory_width: 16
                  block-size: 1
                  word-bits: 16
              - name: psum_spad
                class: smartbuffer_RF
                attributes:
                  memory_depth: 16
                  memory_width: 16
                  block-size: 1
                  word-bits: 16
              - name: mac
                class: intmac
                attributes:
                  datawidth: 16
"""

CONSTRAINTS = """\
architecture_constraints:
  targets:
  - target: buffer
    type: dataspace
    keep: [Inputs, Outputs]
    bypass: [Weights]
  - target: buffer
    type: temporal
    permutation: RSPQ
    factors: N=1
  - target: PE
    type: spatial
    permutation: CM
    split: 1
    factors: R=1 S=1
  - target: reg
    type: bypass
    keep: [Weights]
  - target: reg
    type: temporal
    factors: C=0 M=2
    max_factors: P=4
"""

#: an Accelergy 0.4 ERT (tables as a map, actions with argument variants) for
#: examples/timeloop/conv1d_3level.yaml
ERT_V04 = """\
ERT:
  version: '0.4'
  tables:
    System.MainMemory:
      read: {arguments: null, energy: 512.0}
      write: {arguments: null, energy: 512.0}
    System.Chip.GlobalBuffer:
      read:
      - arguments: {address_delta: 0, data_delta: 0}
        energy: 4.5
      - arguments: {address_delta: 1, data_delta: 1}
        energy: 14.1
      write: {arguments: null, energy: 16.2}
      leak: {arguments: {global_cycle_seconds: 1e-9}, energy: 0.0012}
    System.Chip.PE.RegisterFile:
      read: {arguments: null, energy: 0.42}
      update: {arguments: null, energy: 0.44}
    System.Chip.PE.MACC:
      mac_random: {arguments: null, energy: 0.84}
"""

#: (arch, problem, mapping, ERT or None) of one ``evaluate-mapping`` run
Case = tuple[Path, Path, Path, Path | None]

#: Timeloop reference designs with their published mapping and Accelergy's ERT
EVAL_CASES: list[Case] = [
    (TL / "conv1d_3level.yaml", TL / "conv1d_oc.yaml", TL / "conv1d_oc_3level.map.yaml",
     None),
    *[(REF / d / "arch.yaml", REF / d / "problem.yaml", REF / d / "map.yaml",
       REF / d / "ert.yaml") for d in ("01_ws", "03_bypass", "04_kp", "06_eyeriss")],
    *[(DESIGNS / d / "arch.yaml", DESIGNS / d / "problem.yaml", DESIGNS / d / "map.yaml",
       DESIGNS / d / "ert.yaml") for d in ("simba_like", "simple_output_stationary")],
]

#: fuzz cases per parametrized seed; see the module's case count in the final report
SPEC_CASES = 10
TEXT_CASES = 8
RETYPE_CASES = 6


# ------------------------------------------------------------------------------ helpers

def _case_dir(factory: pytest.TempPathFactory) -> Path:
    """A fresh folder per hypothesis example (a function-scoped ``tmp_path`` is shared by all
    examples of a test, so one case would see the previous one's files)."""
    return factory.mktemp("case")


def _write(folder: Path, name: str, data: str | bytes) -> Path:
    path = folder / name
    if isinstance(data, str):
        path.write_bytes(data.encode("utf-8", "surrogatepass"))
    else:
        path.write_bytes(data)
    return path


def _named_file(outcome: Outcome, mutated: Path, others: Sequence[Path | None]) -> Path:
    """The input an error line blames: ``mutated`` unless the message names another input
    (a valid mapping that no longer fits a mutated problem is the mapping's error)."""
    message = outcome.stderr
    if mutated.name in message:
        return mutated
    return next((p for p in others if p is not None and str(p) in message), mutated)


def _check(outcome: Outcome, mutated: Path, others: Sequence[Path | None] = ()) -> bool:
    """:func:`assert_clean` on the file the error names; True if the command succeeded."""
    return assert_clean(outcome, _named_file(outcome, mutated, others), want_line=True,
                        whole_file=WHOLE_FILE)


def _prefilled_out(folder: Path) -> Path:
    """An output folder already holding a file, so a failure that writes or deletes shows."""
    out = folder / "out"
    out.mkdir()
    (out / "best.map.yaml").write_text("# written before the run\n")
    return out


def _map_case(arch: Path, problem: Path | str, mutated: Path) -> None:
    """``hwcost map`` with ``--out``: clean outcome, and ``--out`` untouched on failure
    (``problem``: a file, or the text of one to write next to the mutant)."""
    if isinstance(problem, str):
        problem = _write(mutated.parent, "small_cnn.yaml", problem)
    out = _prefilled_out(mutated.parent)
    before = snapshot(out)
    outcome = run_cli(["map", "--arch", str(arch), "--problem", str(problem),
                       "--objective", "delay", "--out", str(out / "best.map.yaml")])
    if not _check(outcome, mutated, [arch, problem]):
        assert snapshot(out) == before, "map changed --out although it failed"


def _evaluate_case(arch: Path, problem: Path, mapping: Path, ert: Path | None,
                   mutated: Path) -> None:
    args = ["evaluate-mapping", "--arch", str(arch), "--problem", str(problem),
            "--mapping", str(mapping)]
    if ert is not None:
        args += ["--ert", str(ert)]
    _check(run_cli(args), mutated, [arch, problem, mapping, ert])


def _api_outcome(fn: Callable[[], object], label: Sequence[str]) -> Outcome:
    """Run a reader's API like the CLI would (HwcostError -> one ``Error:`` line, exit 1),
    for inputs the CLI has no option for (separate constraint files)."""
    from core.errors import HwcostError

    try:
        fn()
    except HwcostError as err:
        return Outcome(list(label), 1, "", f"Error: {err}\n", None)
    except Exception as exc:                       # escaped: assert_clean reports it
        return Outcome(list(label), 1, "", "", exc, traceback.format_exc())
    return Outcome(list(label), 0, "", "", None)


# ------------------------------------------------------------------------------ specs

@pytest.mark.parametrize("spec,problem", V04_SPECS,
                         ids=[f"{a.parent.name}_{a.stem}" for a, _p in V04_SPECS])
@settings(parent=FUZZ, max_examples=SPEC_CASES)
@given(data=st.data())
def test_fuzz_v04_spec(spec: Path, problem: Path | str, data: st.DataObject,
                       tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutated v0.4 specs: the spec reader, energy estimators and mapper see nonsense."""
    text = data.draw(mutated_text(spec.read_text()))
    mutated = _write(_case_dir(tmp_path_factory), "arch.yaml", text)
    _map_case(mutated, problem, mutated)


@pytest.mark.parametrize("seed", [V03_SPEC, V03_EYERISS], ids=["tiny", "eyeriss"])
@settings(parent=FUZZ, max_examples=SPEC_CASES)
@given(data=st.data())
def test_fuzz_v03_spec(seed: str, data: st.DataObject,
                       tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutated v0.3 specs: replication ranges, meshX/meshY totals, attribute spellings."""
    text = data.draw(mutated_text(seed))
    mutated = _write(_case_dir(tmp_path_factory), "arch03.yaml", text)
    _map_case(mutated, TL / "conv1d_oc.yaml", mutated)


@settings(parent=FUZZ, max_examples=SPEC_CASES)
@given(data=st.data())
def test_fuzz_spec_bytes(data: st.DataObject,
                         tmp_path_factory: pytest.TempPathFactory) -> None:
    """Byte-level damage (binary junk, cut UTF-8, NULs) to a spec."""
    raw = data.draw(mutated_bytes((TL / "conv1d_3level.yaml").read_bytes()))
    mutated = _write(_case_dir(tmp_path_factory), "arch.yaml", raw)
    _map_case(mutated, TL / "conv1d_oc.yaml", mutated)


@settings(parent=FUZZ, max_examples=SPEC_CASES)
@given(data=st.data())
def test_fuzz_inline_constraints(data: st.DataObject,
                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """Constraint targets in the spec file itself (``architecture_constraints``)."""
    text = V03_SPEC + data.draw(mutated_text(CONSTRAINTS))
    mutated = _write(_case_dir(tmp_path_factory), "arch_cons.yaml", text)
    _map_case(mutated, SMALL_CNN, mutated)


@settings(parent=FUZZ, max_examples=SPEC_CASES)
@given(data=st.data())
def test_fuzz_constraint_file(data: st.DataObject,
                              tmp_path_factory: pytest.TempPathFactory) -> None:
    """A separate constraint file, merged with the spec as Timeloop merges its inputs
    (``hwcost map spec.yaml cons.yaml``), and through the API (``load_arch(extra=...)``)."""
    from hwmodel.spec import load_arch

    folder = _case_dir(tmp_path_factory)
    spec = _write(folder, "arch.yaml", V03_SPEC)
    problem = _write(folder, "small_cnn.yaml", SMALL_CNN)
    mutated = _write(folder, "cons.yaml", data.draw(mutated_text(CONSTRAINTS)))
    outcome = _api_outcome(lambda: load_arch(spec, extra=[mutated]),
                           ["load_arch", str(spec), str(mutated)])
    _check(outcome, mutated)
    _check(run_cli(["map", str(spec), str(mutated), "--problem", str(problem),
                    "--objective", "delay"]), mutated, [spec, problem])


# ------------------------------------------------------------------------------ problems

@pytest.mark.parametrize("problem", [TL / "conv1d_oc.yaml", TL / "conv_3x3.yaml",
                                     REF / "06_eyeriss" / "problem.yaml"],
                         ids=["conv1d", "cnn_layer", "eyeriss"])
@settings(parent=FUZZ, max_examples=TEXT_CASES)
@given(data=st.data())
def test_fuzz_problem_mapped(problem: Path, data: st.DataObject,
                             tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutated problems through the mapper, whose search grows with the bounds."""
    mutant = data.draw(mutated_text(problem.read_text()))
    mutated = _write(_case_dir(tmp_path_factory), "problem.yaml", mutant)
    _map_case(TL / "conv1d_3level.yaml", mutated, mutated)


@pytest.mark.parametrize("case", EVAL_CASES[1:4], ids=lambda c: c[0].parent.name)
@settings(parent=FUZZ, max_examples=TEXT_CASES)
@given(data=st.data())
def test_fuzz_problem_evaluated(case: Case, data: st.DataObject,
                                tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutated problems with a fixed mapping: the problem or the mapping must be blamed."""
    arch, problem, mapping, ert = case
    mutant = data.draw(mutated_text(problem.read_text()))
    mutated = _write(_case_dir(tmp_path_factory), "problem.yaml", mutant)
    _evaluate_case(arch, mutated, mapping, ert, mutated)


# ------------------------------------------------------------------------------ mappings

@pytest.mark.parametrize("case", EVAL_CASES, ids=lambda c: c[0].parent.name + "_" +
                         c[0].stem)
@settings(parent=FUZZ, max_examples=TEXT_CASES)
@given(data=st.data())
def test_fuzz_mapping(case: Case, data: st.DataObject,
                      tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutated Timeloop mappings of reference designs (factors, permutations, splits,
    keep/bypass, container targets)."""
    arch, problem, mapping, ert = case
    mutant = data.draw(mutated_text(mapping.read_text()))
    mutated = _write(_case_dir(tmp_path_factory), "map.yaml", mutant)
    _evaluate_case(arch, problem, mutated, ert, mutated)


@settings(parent=FUZZ, max_examples=TEXT_CASES)
@given(data=st.data())
def test_fuzz_mapping_bytes(data: st.DataObject,
                            tmp_path_factory: pytest.TempPathFactory) -> None:
    """Byte-level damage to a mapping."""
    arch, problem, mapping, ert = EVAL_CASES[4]
    mutant = data.draw(mutated_bytes(mapping.read_bytes()))
    mutated = _write(_case_dir(tmp_path_factory), "map.yaml", mutant)
    _evaluate_case(arch, problem, mutated, ert, mutated)


# ------------------------------------------------------------------------------ ERTs

@pytest.mark.parametrize("case", [c for c in EVAL_CASES if c[3] is not None][:4],
                         ids=lambda c: c[0].parent.name)
@settings(parent=FUZZ, max_examples=TEXT_CASES)
@given(data=st.data())
def test_fuzz_ert(case: Case, data: st.DataObject,
                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutated Accelergy ERTs of reference designs (tables as a list)."""
    arch, problem, mapping, ert = case
    mutant = data.draw(mutated_text(ert.read_text()))
    mutated = _write(_case_dir(tmp_path_factory), "ert.yaml", mutant)
    _evaluate_case(arch, problem, mapping, mutated, mutated)


@settings(parent=FUZZ, max_examples=TEXT_CASES)
@given(data=st.data())
def test_fuzz_ert_v04_layout(data: st.DataObject,
                             tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutated ERT in Accelergy 0.4's layout (a map of tables, argument variants)."""
    arch, problem, mapping, _ert = EVAL_CASES[0]
    mutant = data.draw(mutated_text(ERT_V04))
    mutated = _write(_case_dir(tmp_path_factory), "ert.yaml", mutant)
    _evaluate_case(arch, problem, mapping, mutated, mutated)


@settings(parent=FUZZ, max_examples=TEXT_CASES)
@given(data=st.data())
def test_fuzz_ert_bytes(data: st.DataObject,
                        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Byte-level damage to an ERT."""
    arch, problem, mapping, ert = EVAL_CASES[1]
    mutant = data.draw(mutated_bytes(ert.read_bytes()))
    mutated = _write(_case_dir(tmp_path_factory), "ert.yaml", mutant)
    _evaluate_case(arch, problem, mapping, mutated, mutated)


@settings(parent=FUZZ, max_examples=4)
@given(data=st.data())
def test_fuzz_estimate_with_ert(data: st.DataObject,
                                tmp_path_factory: pytest.TempPathFactory) -> None:
    """``hwcost estimate --ert`` with ``--export-timeloop``: the export folder must stay as
    it was when the ERT is refused."""
    ert = REF / "06_eyeriss" / "ert.yaml"
    folder = _case_dir(tmp_path_factory)
    mutated = _write(folder, "ert.yaml", data.draw(mutated_text(ert.read_text())))
    export = _prefilled_out(folder)
    before = snapshot(export)
    outcome = run_cli(["estimate", str(ROOT / "examples" / "small_genotype.json"), "--arch",
                       str(REF / "06_eyeriss" / "arch.yaml"), "--ert", str(mutated),
                       "--objective", "delay", "--export-timeloop", str(export)])
    if not _check(outcome, mutated):
        assert snapshot(export) == before, "estimate changed --export-timeloop on failure"


# ------------------------------------------------------------------------------ wrong types

#: values of every YAML type, to put where the readers expect another one
RETYPES = (5, -1, 0, 10 ** 12, 2.5, float("nan"), "x", "", None, True, [], [1, "x"],
           ["Weights"], {}, {"a": 1}, {"factors": "C=2"})


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every ``(container, key)`` of a loaded YAML tree, in document order."""
    out: list[tuple[Any, Any]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in items:
        out.append((node, key))
        out += _slots(value)
    return out


@st.composite
def retyped_yaml(draw: st.DrawFn, text: str) -> str:
    """``text`` with one value of its tree (a scalar, a list, a whole subtree) replaced by a
    value of any type: the shape errors (``keep: 5``, ``dataspace: x``, ``nodes: {}``)
    that text mutations rarely produce, while the rest of the file stays valid."""
    yaml = YAML(typ="rt")
    doc = yaml.load(text)
    container, key = draw(st.sampled_from(_slots(doc)))
    container[key] = copy.deepcopy(draw(st.sampled_from(RETYPES)))
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


#: (id, kind of file, seed text, the run that reads it)
RETYPE_SEEDS = [
    *[(f"spec_{a.parent.name}_{a.stem}", "arch", a.read_text()) for a, _p in V04_SPECS],
    ("spec_v03_eyeriss", "arch", V03_EYERISS),
    ("spec_v03_constraints", "arch", V03_SPEC + CONSTRAINTS),
    ("problem_conv1d", "problem", (TL / "conv1d_oc.yaml").read_text()),
    ("problem_cnn_layer", "problem", (TL / "conv_3x3.yaml").read_text()),
    ("problem_eyeriss", "problem", (REF / "06_eyeriss" / "problem.yaml").read_text()),
    ("mapping_conv1d", "mapping", (TL / "conv1d_oc_3level.map.yaml").read_text()),
    ("mapping_eyeriss", "mapping", (REF / "06_eyeriss" / "map.yaml").read_text()),
    ("ert_list_layout", "ert", (REF / "06_eyeriss" / "ert.yaml").read_text()),
    ("ert_map_layout", "ert", ERT_V04),
]


def _retype_args(kind: str, label: str, path: Path) -> list[str]:
    """A small run reading ``path`` as its ``kind`` file, the other inputs valid."""
    if kind == "arch":
        # the conv1d design has no constraints; the others constrain the CNN dimensions
        problem = TL / "conv1d_oc.yaml" if "conv1d_3level" in label else \
            _write(path.parent, "small_cnn.yaml", SMALL_CNN)
        return ["map", "--arch", str(path), "--problem", str(problem), "--objective", "delay"]
    if kind == "problem":
        return ["map", "--arch", str(TL / "conv1d_3level.yaml"), "--problem", str(path),
                "--objective", "delay"]
    d = REF / "06_eyeriss" if "eyeriss" in label or "list" in label else None
    arch, problem, mapping, ert = ((d / "arch.yaml", d / "problem.yaml", d / "map.yaml",
                                    d / "ert.yaml") if d else EVAL_CASES[0])
    mapping = path if kind == "mapping" else mapping
    ert = path if kind == "ert" else ert
    args = ["evaluate-mapping", "--arch", str(arch), "--problem", str(problem), "--mapping",
            str(mapping)]
    return args + (["--ert", str(ert)] if ert is not None else [])


@pytest.mark.parametrize("kind,seed", [r[1:] for r in RETYPE_SEEDS],
                         ids=[r[0] for r in RETYPE_SEEDS])
@settings(parent=FUZZ, max_examples=RETYPE_CASES)
@given(data=st.data())
def test_fuzz_wrong_types(kind: str, seed: str, data: st.DataObject,
                          tmp_path_factory: pytest.TempPathFactory,
                          request: pytest.FixtureRequest) -> None:
    """One value of a valid file replaced by a value of another type."""
    mutant = data.draw(retyped_yaml(seed))
    mutated = _write(_case_dir(tmp_path_factory), f"{kind}.yaml", mutant)
    args = _retype_args(kind, request.node.callspec.id, mutated)
    _check(run_cli(args), mutated, [Path(a) for a in args if a.endswith(".yaml")])


# ------------------------------------------------------------- templates, expressions, files

#: a Jinja2 template of the conv1d design: variables, defaults, if/else, a loop, ~
TEMPLATE = """\
variables:
  WORD: {{ word_bits | default(8) }}
  RF_WORDS: {{ rf_words }}
{%- for name in ["GB_ROWS"] %}
  {{ name ~ "" }}: 8192
{%- endfor %}
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
    attributes: {depth: GB_ROWS, width: 256, datawidth: WORD}
  - !Component
    name: RegisterFile
    class: regfile
    attributes:
      depth: RF_WORDS
      width: max(WORD, 8)
      datawidth: WORD
  - !Component
    name: MACC
{%- if fp %}
    class: fpmac
{%- else %}
    class: intmac
{%- endif %}
    attributes: {datawidth: WORD}
"""

#: the other sections Timeloop users put in separate files
EXTRA_SECTIONS = """\
variables:
  version: 0.4
  HALF: RF_WORDS // 2
mapspace_constraints:
  targets:
  - {target: RegisterFile, type: temporal, factors: K<=HALF, permutation: [R, K, P]}
  - {target: GlobalBuffer, type: bypass, keep: [Inputs, Outputs, Weights]}
mapper:
  version: 0.4
  optimization_metrics: [delay, energy]
  algorithm: random_pruned
"""

#: pieces random expressions are made of: names the spec defines, functions, spec views
EXPR_TOKENS = ("RF_WORDS", "WORD", "HALF", "spec.problem.instance.K", "spec.variables.WORD",
               "len(spec.problem.instance)", "spec.problem.shape.dimensions", "max(", "min(",
               "ceil(", "log2(", "sqrt(", "int(", "round(", "factorial(", "pow(", "(", ")",
               ",", "+", "-", "*", "/", "//", "%", "**", "<<", " if ", " else ", " and ",
               " not ", "<", "==", "[0]", "['K']", ".x", "0", "1", "2", "16", "9", "1e300",
               "'a'", "nope", "__class__", ".__dict__", "lambda", "[", "]")


@settings(parent=FUZZ, max_examples=SPEC_CASES)
@given(data=st.data())
def test_fuzz_template(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutated Jinja2 templates, rendered in the sandbox before the spec reader sees them."""
    mutated = _write(_case_dir(tmp_path_factory), "arch.yaml.jinja2",
                     data.draw(mutated_text(TEMPLATE)))
    outcome = run_cli(["map", "--arch", str(mutated), "--problem", str(TL / "conv1d_oc.yaml"),
                       "--var", "rf_words=64", "--var", "fp=false", "--objective", "delay"])
    _check(outcome, mutated)


@settings(parent=FUZZ, max_examples=SPEC_CASES)
@given(data=st.data())
def test_fuzz_vars_file(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutated ``--vars`` files: any value a template then prints into the spec."""
    folder = _case_dir(tmp_path_factory)
    template = _write(folder, "arch.yaml.j2", TEMPLATE)
    mutated = _write(folder, "vars.yaml", data.draw(mutated_text(
        "rf_words: 64\nword_bits: 8\nfp: false\n")))
    outcome = run_cli(["map", "--arch", str(template), "--problem",
                       str(TL / "conv1d_oc.yaml"), "--vars", str(mutated),
                       "--objective", "delay"])
    _check(outcome, mutated, [template])


@settings(parent=FUZZ, max_examples=SPEC_CASES)
@given(data=st.data())
def test_fuzz_extra_sections(data: st.DataObject,
                             tmp_path_factory: pytest.TempPathFactory) -> None:
    """A mutated file of variables, constraints and mapper settings merged with the spec,
    as ``timeloop-mapper arch.yaml constraints.yaml mapper.yaml prob.yaml`` reads them."""
    folder = _case_dir(tmp_path_factory)
    template = _write(folder, "arch.yaml.j2", TEMPLATE)
    mutated = _write(folder, "extra.yaml", data.draw(mutated_text(EXTRA_SECTIONS)))
    outcome = run_cli(["map", str(template), str(mutated), str(TL / "conv1d_oc.yaml"),
                       "--var", "rf_words=64"])
    _check(outcome, mutated, [template])


@settings(parent=FUZZ, max_examples=TEXT_CASES * 2)
@given(tokens=st.lists(st.sampled_from(EXPR_TOKENS), min_size=1, max_size=12))
def test_fuzz_expressions(tokens: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Random expressions where Timeloop evaluates them: a variable, an attribute and a
    split, all over ``spec`` and the variables."""
    expr = "".join(tokens).replace("'", "''")
    folder = _case_dir(tmp_path_factory)
    template = _write(folder, "arch.yaml.j2", TEMPLATE)
    mutated = _write(folder, "extra.yaml", EXTRA_SECTIONS.replace(
        "HALF: RF_WORDS // 2", f"HALF: '{expr}'\n  DEPTH: {expr or 1}").replace(
        "factors: K<=HALF,", f"split: '{expr}',"))
    outcome = run_cli(["map", str(template), str(mutated), str(TL / "conv1d_oc.yaml"),
                       "--var", "rf_words=64", "--objective", "delay"])
    _check(outcome, mutated, [template])


# ------------------------------------------------------------------------------ hostile

#: seconds a hostile input may take to be refused (or run), a fresh CLI process included: a
#: hang guard, not a benchmark (the 1M-PE mesh map takes 4.7 s on an idle 2-core machine, the
#: others well under a second; what it guards against runs for minutes or forever)
HOSTILE_SECONDS = 15.0
H = 8_648_640            # below HWCOST_MAX_DIM_BOUND, with 448 divisors: the mapper's worst

ARCH = (TL / "conv1d_3level.yaml").read_text()
PROBLEM = (TL / "conv1d_oc.yaml").read_text()
MAPPING = (TL / "conv1d_oc_3level.map.yaml").read_text()
ERT = (REF / "06_eyeriss" / "ert.yaml").read_text()


def _bomb(levels: int = 7) -> str:
    """A billion-laughs document head: ``levels`` anchors, each ten of the one before."""
    lines = ["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def _nested_nodes(depth: int) -> str:
    """A v0.4 spec whose ``!Hierarchical`` nodes nest ``depth`` deep (block style)."""
    out = ["architecture:", "  version: 0.4", "  nodes:"]
    for k in range(depth):
        pad = "  " * (k + 1)
        out += [f"{pad}- !Hierarchical", f"{pad}  nodes:"]
    out.append("  " * (depth + 2) + "- {name: mac, class: intmac}")
    return "\n".join(out) + "\n"


def _cnn(**bounds: int) -> str:
    return "problem:\n  shape: cnn-layer\n  instance: {" + ", ".join(
        f"{k}: {v}" for k, v in bounds.items()) + "}\n"


def _generic(dims: int, spaces: int, bound: int, axes: int = 2) -> str:
    """A Timeloop problem of ``dims`` dimensions and ``spaces`` data spaces of ``axes`` axes
    each (the first three named like a CNN's, so the bundled designs' keep rules apply)."""
    names = [f"D{i}" for i in range(dims)]
    labels = ["Weights", "Inputs", "Outputs"] + [f"T{k}" for k in range(3, spaces)]
    out = ["problem:", "  shape:", "    name: many", f"    dimensions: [{', '.join(names)}]",
           "    data_spaces:"]
    for k in range(spaces):
        proj = ", ".join(f"[[{names[(k + j) % dims]}]]" for j in range(axes))
        out += [f"    - name: {labels[k]}", f"      projection: [{proj}]"]
    out.append("  instance: {" + ", ".join(f"{n}: {bound}" for n in names) + "}")
    return "\n".join(out) + "\n"


def _levels(count: int) -> str:
    """A v0.4 spec with ``count`` buffers between DRAM and the MAC."""
    out = ["architecture:", "  version: 0.4", "  nodes:",
           "  - !Component {name: DRAM, class: DRAM, attributes: {width: 64, datawidth: 8}}"]
    out += [f"  - !Component {{name: buf{i}, class: SRAM, attributes: {{depth: {1 << (20 - i)}, "
            "width: 8, datawidth: 8}}" for i in range(count)]
    out.append("  - !Component {name: mac, class: intmac}")
    return "\n".join(out) + "\n"


def _mesh(spec: str, mesh: str) -> str:
    return spec.replace("    name: PE\n", f"    name: PE\n    spatial: {mesh}\n")


#: (id, file the case writes, its text, the option it replaces, a needle of the error;
#: ``None``: the command must succeed)
HOSTILE = [
    ("v03_replication", "arch", V03_SPEC.replace("PE[0..7]", "PE[0..1000000000]"),
     "HWCOST_MAX_INSTANCES"),
    ("v04_mesh", "arch", _mesh(ARCH, "{meshX: 1000000000, meshY: 2}"), "HWCOST_MAX_INSTANCES"),
    ("v04_nested_10000_flow", "arch", "architecture: {version: 0.4, nodes: "
     + "[{nodes: " * 10000 + "[]" + "}]" * 10000 + "}\n", "nested too deeply"),
    ("v04_nested_150_block", "arch", _nested_nodes(150), "nested too deeply"),
    ("spec_alias_bomb", "arch", _bomb() + ARCH, "HWCOST_MAX_HW_YAML_NODES"),
    ("spec_bomb_in_attributes", "arch", _bomb() + ARCH.replace(
        "{depth: 64, width: 8, datawidth: 8}", "{depth: 64, width: 8, datawidth: 8, x: *lol6}"),
     "HWCOST_MAX_HW_YAML_NODES"),
    ("spec_power_tower", "arch", ARCH.replace("depth: 64,", "depth: '9**9**9',"),
     "number too large"),
    ("spec_variable_doubling", "arch", "variables:\n" + "".join(
        f"  v{i}: v{i + 1} + v{i + 1}\n" for i in range(60)) + "  v60: 1\n"
     + ARCH.replace("depth: 64,", "depth: v0,"), "too long"),
    ("spec_5000_digits", "arch", ARCH.replace("depth: 64,", "depth: " + "7" * 5000 + ","),
     "too many digits"),
    ("spec_nan_bandwidth", "arch", ARCH.replace("depth: 64,", "depth: 64, read_bandwidth: .nan,"),
     "finite"),
    ("spec_unknown_technology", "arch", ARCH.replace('technology: "45nm"', 'technology: "4nmx"'),
     "unknown technology"),
    ("spec_binary", "arch", bytes(range(256)) * 8, "not UTF-8"),
    ("spec_nul", "arch", ARCH.replace("name: Chip", "name: Ch\x00ip"), "not allowed"),
    ("spec_empty", "arch", "", "no 'architecture' section"),
    ("spec_20_levels", "arch", _levels(20), "HWCOST_MAX_LEVELS"),
    ("spec_12_levels", "arch", _levels(12), None),
    ("problem_dim_1e12", "problem", PROBLEM.replace("P: 16", "P: 1000000000000"),
     "HWCOST_MAX_DIM_BOUND"),
    ("problem_window", "problem", PROBLEM.replace("R: 3", f"R: {H}").replace("P: 16", f"P: {H}"),
     "HWCOST_MAX_WINDOW"),
    ("problem_huge_coefficient", "problem", _cnn(C=4, M=4, R=3, S=3, P=8, Q=8, N=1,
                                                 Wstride=10 ** 15), "HWCOST_MAX_DIM_BOUND"),
    ("problem_alias_bomb", "problem", _bomb() + PROBLEM, "HWCOST_MAX_HW_YAML_NODES"),
    ("problem_binary", "problem", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not UTF-8"),
    ("problem_empty", "problem", "", "'problem' section"),
    ("problem_40_dims", "problem", _generic(40, 3, 2), "HWCOST_MAX_DIMS"),
    ("problem_24_data_spaces", "problem", _generic(4, 24, 2), "HWCOST_MAX_DATA_SPACES"),
    ("problem_300_terms", "problem", _generic(16, 3, 2, axes=100), "HWCOST_MAX_PROJECTION_TERMS"),
    ("problem_at_size_limits", "problem", _generic(16, 16, 720720, axes=16), None),
    ("problem_highly_composite", "problem", _cnn(C=H, M=H, R=3, S=3, P=H, Q=H, N=H), None),
    ("problem_prime_bound", "problem", PROBLEM.replace("P: 16", "P: 9999991"), None),
    ("problem_own_data_space_names", "problem", PROBLEM.replace("Weights", "W").replace(
        "Inputs", "I").replace("Outputs", "O"), None),
    ("mapping_factor_1e9", "mapping", MAPPING.replace("K=16", "K=1000000000"), "multiply to"),
    ("mapping_factor_5000_digits", "mapping", MAPPING.replace("K=16", "K=" + "3" * 5000),
     "too large"),
    ("mapping_alias_bomb", "mapping", _bomb() + MAPPING, "HWCOST_MAX_HW_YAML_NODES"),
    ("mapping_outermost_bypass", "mapping", MAPPING + "- target: MainMemory\n  type: bypass\n"
     "  bypass: [Weights]\n", "must keep"),
    ("mapping_binary", "mapping", b"mapping:\n- \xc3\x28\n", "not UTF-8"),
    ("mapping_empty", "mapping", "", "list of mapping directives"),
    ("ert_alias_bomb", "ert", _bomb() + ERT, "HWCOST_MAX_HW_YAML_NODES"),
    ("ert_nan_energy", "ert", ERT.replace("energy: 512.0", "energy: .nan", 1), "finite"),
    ("ert_binary", "ert", b"ERT:\n  tables: \xff\xfe\n", "not UTF-8"),
    ("ert_empty", "ert", "", "not an ERT"),
    # templates (a spec with Jinja markup is rendered first) and expressions
    ("template_class_walk", "arch", "{{ ''.__class__.__mro__[1].__subclasses__() }}\n"
     + ARCH, "unsafe"),
    ("template_nested_loops", "arch", "{% for i in range(100000) %}{% for j in range(100000)"
     " %}{% endfor %}{% endfor %}\n" + ARCH, "HWCOST_MAX_TEMPLATE_STEPS"),
    ("template_string_doubling", "arch", "{% set ns = namespace(s='x') %}{% for i in "
     "range(80) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}\n" + ARCH, "would build"),
    ("template_format_width", "arch", "{{ '{:>9999999999}'.format(1) }}\n" + ARCH,
     "unsafe"),
    ("template_output_size", "arch", "# {{ 'x' * 900000 }}{{ 'y' * 900000 }}\n" + ARCH,
     "rendered template: file size"),
    ("template_include_outside", "arch", "{% include '../../../../etc/passwd' %}\n" + ARCH,
     "only files of their own folder"),
    ("template_self_include", "arch", "{% include 'arch.yaml' %}\n" + ARCH,
     "recursion too deep"),
    ("template_undefined", "arch", "# {{ nope }}\n" + ARCH, "'nope' is undefined"),
    ("expr_pow_function", "arch", ARCH.replace("depth: 64,", "depth: 'pow(9, 9**9)',"),
     "number too large"),
    ("expr_factorial", "arch", ARCH.replace("depth: 64,", "depth: 'factorial(10**6)',"),
     "too large to compute"),
    ("expr_dunder", "arch", ARCH.replace("depth: 64,", "depth: '().__class__',"),
     "not available"),
    ("expr_string_repeat", "arch", ARCH.replace("depth: 64,", "depth: '\"x\" * 10**9',"),
     "longer than"),
    ("expr_deep_parens", "arch", ARCH.replace("depth: 64,", "depth: '" + "(" * 5000 + "1"
                                              + ")" * 5000 + "',"), "expected an integer"),
    ("expr_spec_circle", "arch", "variables:\n  a: spec.variables.b\n  b: spec.variables.a\n"
     + ARCH, "in a circle"),
    ("expr_spec_doubling", "arch", "variables:\n" + "".join(
        f"  v{i}: spec.variables.v{i + 1} + spec.variables.v{i + 1}\n" for i in range(60))
     + "  v60: 1\n" + ARCH.replace("depth: 64,", "depth: v0,"), "too long"),
    ("spec_sparse", "arch", ARCH + "sparse_optimizations:\n  targets:\n  - target: x\n",
     "sparse_optimizations are not supported"),
]


def _hostile_args(kind: str, path: Path) -> list[str]:
    """The command that reads ``path`` as a ``kind`` file, the rest valid and small."""
    files = {"arch": TL / "conv1d_3level.yaml", "problem": TL / "conv1d_oc.yaml",
             "mapping": TL / "conv1d_oc_3level.map.yaml", "ert": REF / "06_eyeriss" / "ert.yaml"}
    files[kind] = path
    if kind in ("arch", "problem"):
        # a CNN layer is mapped onto a bundled design (whose constraints name the CNN
        # dimensions), any other problem onto a design without constraints
        cnn = kind == "problem" and path.is_file() and "cnn-layer" in path.read_text(
            errors="replace")
        arch = "eyeriss" if cnn else files["arch"]
        return ["map", "--arch", str(arch), "--problem", str(files["problem"])]
    return ["evaluate-mapping", "--arch", str(files["arch"]), "--problem",
            str(files["problem"]), "--mapping", str(files["mapping"]), "--ert",
            str(files["ert"])]


def _timed(args: Sequence[str], env: dict[str, str] | None = None) -> Outcome:
    start = time.perf_counter()
    outcome = run_cli(args, env=env)
    seconds = time.perf_counter() - start
    assert seconds < HOSTILE_SECONDS, f"hwcost {' '.join(args)} took {seconds:.1f} s"
    return outcome


@pytest.mark.parametrize("kind,text,needle", [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_hostile_input(tmp_path: Path, kind: str, text: str | bytes, needle: str | None) -> None:
    """Each refused quickly with one located line naming the cause, or run quickly."""
    path = _write(tmp_path, f"{kind}.yaml", text)
    outcome = _timed(_hostile_args(kind, path))
    accepted = _check(outcome, path)
    if needle is None:
        assert accepted, outcome.stderr
    else:
        assert not accepted, f"{kind} file accepted: {outcome.stdout[:300]}"
        assert needle in outcome.stderr, outcome.stderr


@pytest.mark.parametrize("kind", ["arch", "problem", "mapping", "ert"])
def test_directory_instead_of_a_file(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / f"{kind}_folder"
    folder.mkdir()
    outcome = _timed(_hostile_args(kind, folder))
    assert not _check(outcome, folder)
    assert re.search(r"is a directory", outcome.stderr), outcome.stderr


def test_file_size_limit_is_a_setting(tmp_path: Path) -> None:
    """Past ``HWCOST_MAX_HW_FILE_BYTES`` a file is refused before it is parsed."""
    path = _write(tmp_path, "arch.yaml", ARCH)
    env = {"HWCOST_MAX_HW_FILE_BYTES": str(len(ARCH) - 1)}
    outcome = _timed(_hostile_args("arch", path), env=env)
    assert not _check(outcome, path)
    assert "HWCOST_MAX_HW_FILE_BYTES" in outcome.stderr
    assert assert_clean(_timed(_hostile_args("arch", path)), path)


def test_instance_limit_is_a_setting(tmp_path: Path) -> None:
    """A design past the default fan-out limit runs once the user raises the setting."""
    path = _write(tmp_path, "arch.yaml", _mesh(ARCH, "{meshX: 1024, meshY: 2048}"))
    refused = _timed(_hostile_args("arch", path))
    assert not _check(refused, path) and "HWCOST_MAX_INSTANCES" in refused.stderr
    allowed = _timed(_hostile_args("arch", path), env={"HWCOST_MAX_INSTANCES": str(1 << 21)})
    assert _check(allowed, path), allowed.stderr


def test_many_data_spaces_do_not_enumerate_keep_subsets(tmp_path: Path) -> None:
    """Raising the data-space limit must not let the mapper list 2**k keep choices."""
    problem = _write(tmp_path, "problem.yaml", _generic(2, 28, 2))
    outcome = _timed(["map", "--arch", str(TL / "conv1d_3level.yaml"), "--problem",
                      str(problem)], env={"HWCOST_MAX_DATA_SPACES": "32"})
    assert _check(outcome, problem), outcome.stderr


def test_huge_mesh_over_highly_composite_bounds_maps_quickly(tmp_path: Path) -> None:
    """The mapper's spatial candidates and multicast counts stay bounded on a 1M-PE mesh."""
    arch = _write(tmp_path, "arch.yaml", _mesh(ARCH.replace("depth: 8192", "depth: 100000000"),
                                               "{meshX: 1024, meshY: 1024}"))
    problem = _write(tmp_path, "problem.yaml", _cnn(C=720720, M=720720, R=3, S=3, P=5040,
                                                    Q=5040, N=1))
    outcome = _timed(["map", "--arch", str(arch), "--problem", str(problem)])
    assert _check(outcome, problem), outcome.stderr


# ------------------------------------------------------------------ numbers beyond floats

@settings(parent=FUZZ, max_examples=12)
@given(digits=st.integers(309, 6_000), sign=st.sampled_from(["", "-"]),
       where=st.sampled_from(["first", "last"]))
def test_ert_integers_beyond_any_float_are_one_line(digits, sign, where,
                                                     tmp_path_factory) -> None:
    """An ERT energy written as an integer no float can hold (YAML integers have no size
    limit) is refused with its file and line, not an OverflowError."""
    import re

    ref = REF / "01_os"
    text = (ref / "ert.yaml").read_text()
    found = list(re.finditer(r"energy: *[0-9.]+", text))
    spot = found[0] if where == "first" else found[-1]
    huge = f"energy: {sign}{'9' * digits}"
    mutated = _write(_case_dir(tmp_path_factory), "ert.yaml",
                     text[:spot.start()] + huge + text[spot.end():])
    outcome = run_cli(["evaluate-mapping", "--arch", str(ref / "arch.yaml"), "--problem",
                       str(ref / "problem.yaml"), "--mapping", str(ref / "map.yaml"), "--ert",
                       str(mutated)])
    assert_clean(outcome, mutated, want_line=True)
    assert outcome.exit_code == 1


@settings(parent=FUZZ, max_examples=12)
@given(digits=st.integers(40, 9_000), base=st.sampled_from(["", "0x", "0o", "0b", "-", "+"]))
def test_yaml_integers_of_any_length_are_one_line(digits, base, tmp_path_factory) -> None:
    """An integer written in any base, of any length, in a YAML input: refused with its line
    (decimal beyond Python's 4,300-digit limit, other bases beyond 128 bits), never a
    ValueError from printing it later."""
    text = (ROOT / "examples" / "timeloop" / "conv_3x3.yaml").read_text()
    digit = {"0x": "f", "0o": "7", "0b": "1"}.get(base, "9")
    mutated = _write(_case_dir(tmp_path_factory), "problem.yaml",
                     text.replace("C: 36", f"C: {base}{digit * digits}", 1))
    outcome = run_cli(["map", "--arch", "eyeriss", "--problem", str(mutated)])
    assert_clean(outcome, mutated, want_line=True)
    assert outcome.exit_code == 1
