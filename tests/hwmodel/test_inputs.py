"""Timeloop's several input files merged by top-level key, and the mapper section."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import HwcostError
from hwmodel.inputs import SpecInputs, section_kind
from hwmodel.mapper_section import mapper_objective


def _w(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_sections_are_merged_by_top_level_key(tmp_path):
    files = [
        _w(tmp_path, "arch.yaml", "architecture: {version: 0.4, nodes: []}\n"
                                  "variables: {A: 1}\n"),
        _w(tmp_path, "cons.yaml", "architecture_constraints: {targets: []}\n"
                                  "mapspace_constraints: {targets: []}\n"),
        _w(tmp_path, "more.yaml", "extra_mapping_constraints: {targets: []}\n"
                                  "variables: {B: 2, A: 1}\ncomponents: {version: 0.4}\n"
                                  "compound_components: {classes: []}\n"
                                  "globals: {environment_variables: {X: 1}}\n"
                                  "sparse_optimizations: {version: 0.4, targets: []}\n"
                                  "mapspace: {template: ruby}\n"),
        _w(tmp_path, "mapper.yaml", "mapper: {optimization_metrics: [edp]}\n"),
        _w(tmp_path, "prob.yaml", "problem: {shape: {name: x}}\n"),
        _w(tmp_path, "map.yaml", "- {target: a, type: temporal}\n"),
    ]
    inputs = SpecInputs.load(files + [files[0]])          # a file named twice is read once
    assert inputs.files == files
    kinds = [(s.kind, s.key, s.path.name) for s in inputs.sections]
    assert kinds == [
        ("architecture", "architecture", "arch.yaml"), ("variables", "variables", "arch.yaml"),
        ("constraints", "architecture_constraints", "cons.yaml"),
        ("constraints", "mapspace_constraints", "cons.yaml"),
        ("constraints", "extra_mapping_constraints", "more.yaml"),
        ("variables", "variables", "more.yaml"),
        ("mapper", "mapper", "mapper.yaml"), ("problem", "problem", "prob.yaml"),
        ("mapping", None, "map.yaml")]
    variables, origin = inputs.variables()
    assert variables == {"A": 1, "B": 2} and origin["B"].path.name == "more.yaml"
    assert inputs.first("constraints").line == 1


def test_old_layout_problem_file_is_the_problem(tmp_path):
    p = _w(tmp_path, "p.yaml", "shape: cnn-layer\ninstance: {C: 1}\n")
    (section,) = SpecInputs.load([p]).sections
    assert (section.kind, section.key) == ("problem", None)


@pytest.mark.parametrize("texts,needle,line", [
    (["architecture: {}\n", "architecture: {}\n"], "architecture given twice: here and in "
     "{0}:1", 1),
    (["problem: {}\n", "x: 1\nproblem: {}\n"], "unknown top-level section 'x'", 1),
    (["mapper: {}\n", "a_constraints: {}\nmapper: {}\n"], "mapper given twice", 2),
    (["variables: {A: 1}\n", "variables:\n  B: 2\n  A: 2\n"], "variable 'A' given twice "
     "with different values (also in {0}:1)", 3),
    (["ERT: {}\n"], "unknown top-level section 'ERT' (pass ERT files with --ert)", 1),
    (["sparse_optimizations:\n  targets:\n  - {target: a}\n"], "sparse_optimizations are "
     "not supported", 1),
    (["globals:\n  expression_custom_functions: [f.py]\n"], "custom Python functions", 1),
    (["- 1\n", "mapping: []\n"], "mapping given twice", 1),
    (["42\n"], "expected a map of sections", 1),
    (["variables: [1]\n"], "'variables' must be a map", 1),
])
def test_merge_errors_are_located(tmp_path, texts, needle, line):
    files = [_w(tmp_path, f"f{i}.yaml", t) for i, t in enumerate(texts)]
    with pytest.raises(HwcostError) as exc:
        SpecInputs.load(files).variables()
    msg = str(exc.value)
    assert msg.startswith(f"{files[-1]}:{line}: "), msg
    assert needle.format(files[0]) in msg, msg


def test_templates_are_rendered_before_merging(tmp_path):
    p = _w(tmp_path, "vars.yaml.j2", "variables:\n  W: {{ w | default(8) }}\n")
    inputs = SpecInputs.load([p], {"w": 16})
    assert inputs.variables()[0] == {"W": 16} and inputs.rendered == [p]
    q = _w(tmp_path, "plain.yaml", "variables: {V: 1}\n")
    assert SpecInputs.load([q], {"w": 1}).rendered == []


def test_section_kinds():
    assert section_kind("architecture_constraints", {}) == "constraints"
    assert section_kind("mapspace", {"targets": []}) == "constraints"
    assert section_kind("mapspace", {"template": "ruby"}) == "ignored"
    assert section_kind("compound_components", {}) == "ignored"
    assert section_kind("problme", {}) is None


@pytest.mark.parametrize("text,objective,line", [
    ("mapper:\n  version: 0.4\n  optimization_metrics: [delay, energy]\n", "delay,energy", 3),
    ("mapper:\n  optimization-metrics: [edp]\n", "edp", 2),
    ("mapper:\n  optimization_metrics: []\n  optimization_metric: [Energy]\n", "energy", 3),
    ("mapper:\n  optimization-metric: delay\n", "delay", 2),
    ("mapper:\n  optimization_metrics: 'delay, energy'\n", "delay,energy", 2),
    ("mapper:\n  algorithm: random_pruned\n", None, None),
    ("mapper:\n", None, None),
    ("variables: {}\n", None, None),
])
def test_mapper_objective(tmp_path, text, objective, line):
    p = _w(tmp_path, "mapper.yaml", text)
    found = mapper_objective(SpecInputs.load([p]))
    if objective is None:
        assert found is None
    else:
        assert (found.objective, found.file, found.line) == (objective, str(p), line)
        assert found.where == f"{p}:{line}"


@pytest.mark.parametrize("text,needle,line", [
    ("mapper: [edp]\n", "'mapper' must be a map", 1),
    ("mapper:\n  optimization_metrics: [edp, last_level_accesses]\n",
     "metric 'last_level_accesses' is not supported", 2),
    ("mapper:\n  optimization_metrics: {a: 1}\n", "expected a list of metric names", 2),
])
def test_mapper_objective_errors(tmp_path, text, needle, line):
    p = _w(tmp_path, "mapper.yaml", text)
    with pytest.raises(HwcostError) as exc:
        mapper_objective(SpecInputs.load([p]))
    assert str(exc.value).startswith(f"{p}:{line}: ") and needle in str(exc.value)
