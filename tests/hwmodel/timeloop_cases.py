"""The Timeloop reference cases (``timeloop_ref/``, ``timeloop_designs/``) and how to load
one, shared by the reference, report and stats-reader tests and by :mod:`timeloop_runs`.

Every folder under ``timeloop_ref/`` is one case of Timeloop's tutorial exercises and every
folder under ``timeloop_designs/`` one of its example designs (see
``test_timeloop_reference.py``); each holds ``arch.yaml``, ``problem.yaml``, ``map.yaml``,
``ert.yaml`` and ``expected.json``, the figures of Timeloop's published stats report.
"""

from __future__ import annotations

import json
from pathlib import Path

from hwmodel.energy import build_energy_table
from hwmodel.mapping_yaml import load_mapping
from hwmodel.model import evaluate
from hwmodel.problem_yaml import load_problem
from hwmodel.spec import load_arch

HERE = Path(__file__).parent
EXERCISES = sorted(p.name for p in (HERE / "timeloop_ref").iterdir()
                   if (p / "expected.json").is_file())
DESIGNS = sorted(p.name for p in (HERE / "timeloop_designs").iterdir()
                 if (p / "expected.json").is_file())
CASES = [f"timeloop_ref/{c}" for c in EXERCISES] + [f"timeloop_designs/{d}" for d in DESIGNS]


def load_case(case: str):
    """(arch, workload, mapping, energy table, expected figures) of one reference case."""
    folder = HERE / case
    arch = load_arch(folder / "arch.yaml")
    workload = load_problem(folder / "problem.yaml")
    mapping = load_mapping(folder / "map.yaml", arch, workload)
    energy = build_energy_table(arch, None, folder / "ert.yaml")
    expected = json.loads((folder / "expected.json").read_text())
    return arch, workload, mapping, energy, expected


def run_case(case: str):
    """The model's result on one reference case, and the case's expected figures."""
    arch, workload, mapping, energy, expected = load_case(case)
    return evaluate(arch, workload, mapping, energy), expected
