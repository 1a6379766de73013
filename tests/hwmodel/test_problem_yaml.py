"""Timeloop problem YAML: generic shapes, CNN layers, round trips and located errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.errors import HwcostError
from hwmodel.problem_yaml import load_problem, write_problem
from hwmodel.workload import Layer, Workload

CONV1D = """\
problem:
  version: 0.4
  shape:
    name: conv1d
    dimensions: [R, P]
    data_spaces:
    - name: Weights
      projection:
      - [[R]]
    - name: Inputs
      projection:
      - [[R], [P]]
    - name: Outputs
      projection:
      - [[P]]
      read_write: True
  instance:
    R: 3
    P: 16
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_conv1d_sizes(tmp_path):
    w = load_problem(_write(tmp_path, "conv1d.yaml", CONV1D))
    assert w.name == "conv1d" and w.dims == (("R", 3), ("P", 16))
    sizes = {ds.name: w.size(ds) for ds in w.data_spaces}
    assert sizes == {"Weights": 3, "Inputs": 18, "Outputs": 16}
    assert w.data_space("Outputs").read_write and not w.data_space("Inputs").read_write
    assert w.computes == 48


def test_round_trip_generic_with_coefficients(tmp_path):
    text = CONV1D.replace("dimensions: [R, P]",
                          "dimensions: [R, P]\n    coefficients:\n"
                          "    - {name: Wstride, default: 1}\n"
                          "    - {name: Wdilation, default: 1}")
    text = text.replace("- [[R], [P]]", "- [[R, Wdilation], [P, Wstride]]")
    text = text.replace("P: 16", "P: 16\n    Wstride: 2\n    Wdilation: 3")
    w = load_problem(_write(tmp_path, "strided.yaml", text))
    assert w.data_space("Inputs").projection == (((3, "R"), (2, "P")),)
    out = tmp_path / "out" / "strided.yaml"
    write_problem(w, out)
    assert load_problem(out) == w


def test_cnn_layer_forms_match_layer_workload(tmp_path):
    want = Layer("l", "conv", N=1, C=4, M=16, P=8, Q=6, R=3, S=5, stride=(2, 1),
                 dilation=(1, 2)).workload()
    old = _write(tmp_path, "v02.yaml", """\
problem:
  shape: cnn-layer
  R: 3
  S: 5
  P: 8
  Q: 6
  C: 4
  K: 16
  Wstride: 2
  Hdilation: 2
""")
    new = _write(tmp_path, "v04.yaml", """\
problem:
  version: 0.4
  shape: {name: CNN-Layer}
  instance: {R: 3, S: 5, P: 8, Q: 6, C: 4, M: 16, N: 1, Wstride: 2, Hstride: 1,
             Wdilation: 1, Hdilation: 2}
""")
    for p in (old, new):
        w = load_problem(p)
        assert (w.dims, w.data_spaces) == (want.dims, want.data_spaces)
    out = tmp_path / "cnn_out.yaml"
    write_problem(load_problem(new), out)
    assert load_problem(out) == load_problem(new)


def test_round_trip_of_layer_workloads(tmp_path):
    for layer in (Layer("dw", "conv", C=1, M=1, P=16, Q=16, R=3, S=3, groups=32,
                        dilation=(2, 2)),
                  Layer("pw", "conv", C=32, M=64, P=8, Q=8),
                  Layer("fc", "fc", C=256, M=10)):
        w = layer.workload()
        p = tmp_path / f"{layer.name}.yaml"
        write_problem(w, p)
        assert load_problem(p) == w


def test_expression_axes_and_top_level_layout(tmp_path):
    p = _write(tmp_path, "flat.yaml", """\
shape:
  name: conv1d
  dimensions: [R, P]
  coefficients: [{name: Wstride, default: 2}]
  data_spaces:
  - {name: Weights, projection: [R]}
  - {name: Inputs, projection: ["Wstride*P + R"]}
  - {name: Outputs, projection: [P], read-write: true}
instance: {R: 3, P: 4}
""")
    w = load_problem(p)
    assert w.data_space("Inputs").projection == (((2, "P"), (1, "R")),)
    assert w.size(w.data_space("Inputs")) == 9
    assert isinstance(w, Workload) and w.data_space("Outputs").read_write


@pytest.mark.parametrize("label,old,new,needle,line", [
    ("unknown dim", "- [[R], [P]]", "- [[R], [X]]", "unknown dimension 'X'", 12),
    ("missing bound", "    P: 16\n", "", "missing instance bound for dimension P", 18),
    ("zero bound", "P: 16", "P: 0", "at least 1", 19),
    ("bad bound", "P: 16", "P: lots", "expected an integer", 19),
    ("unknown coefficient", "- [[R], [P]]", "- [[R], [P, Hstride]]",
     "unknown coefficient 'Hstride'", 12),
    ("yaml syntax", "    R: 3\n", "    R: 3: 4\n", "YAML syntax", 18),
])
def test_problem_errors_are_located(tmp_path, label, old, new, needle, line):
    p = _write(tmp_path, "bad.yaml", CONV1D.replace(old, new))
    with pytest.raises(HwcostError) as exc:
        load_problem(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert needle in msg


def test_problem_bounds_are_expressions_over_the_variables(tmp_path):
    """Timeloop evaluates the problem with the spec's variables, from any input file."""
    from hwmodel.inputs import SpecInputs

    prob = _write(tmp_path, "prob.yaml", CONV1D.replace("P: 16", "P: 4 * BLOCKS"))
    variables = _write(tmp_path, "vars.yaml", "variables:\n  BLOCKS: HALF * 2\n  HALF: 2\n")
    w = load_problem(SpecInputs.load([prob, variables]))
    assert w.bounds["P"] == 16
    with pytest.raises(HwcostError) as exc:
        load_problem(prob)
    assert str(exc.value).startswith(f"{prob}:") and "unknown name 'BLOCKS'" in str(exc.value)


def test_problem_template(tmp_path):
    prob = _write(tmp_path, "prob.yaml.jinja", CONV1D.replace("P: 16", "P: {{ p | default(16) }}"))
    assert load_problem(prob).bounds["P"] == 16
    assert load_problem(prob, template_vars={"p": 8}).bounds["P"] == 8


def test_problem_among_other_sections(tmp_path):
    both = _write(tmp_path, "all.yaml", CONV1D + "mapper: {optimization_metrics: [edp]}\n")
    assert load_problem(both).name == "conv1d"
    none = _write(tmp_path, "none.yaml", "mapper: {optimization_metrics: [edp]}\n")
    with pytest.raises(HwcostError, match=rf"^{none}:1: expected a mapping with a 'problem'"):
        load_problem(none)
