"""The Timeloop-layout report, read back and compared with Timeloop's published reports.

The report is parsed as a user's script would parse a ``timeloop-model.stats.txt`` (by
section and field name), and every field hwcost models must carry the figure of the
published report of the same case (``timeloop_ref/*/expected.json``, two decimals).
"""

from __future__ import annotations

import re

import pytest
from timeloop_cases import CASES, load_case

from hwmodel.model import evaluate
from hwmodel.timeloop_stats import format_stats

_FIELD = re.compile(r"^\s+([A-Za-z][^:]*?)\s*: (.*)$")


def parse(text: str) -> dict:
    """Levels by name (SPECS/STATS fields, data spaces, loop nest) and the summary."""
    body, rest = text.split("Operational Intensity Stats", 1)
    levels: dict[str, dict] = {}
    current: dict | None = None
    ds: dict | None = None
    for line in body.splitlines():
        m = re.match(r"^=== (.+) ===$", line)
        if m:
            current = levels.setdefault(m.group(1), {"fields": {}, "ds": {}, "loops": []})
            ds = None
        elif current is None:
            continue
        elif re.match(r"^    \w+:$", line):
            ds = current["ds"].setdefault(line.strip()[:-1], {})
        elif line.strip().startswith("for "):
            current["loops"].append(line.strip())
        elif (f := _FIELD.match(line)) is not None:
            target = ds if ds is not None and line.startswith("        ") else current["fields"]
            target[f.group(1)] = f.group(2)
    summary: dict[str, str] = {}
    for line in rest.split("Summary Stats", 1)[1].splitlines():
        sep = " = " if " = " in line else ": "
        if sep in line:
            name, value = line.split(sep, 1)
            summary[name.strip()] = value.strip()
    return {"levels": levels, "summary": summary}


def number(text: str) -> float:
    return float(text.split()[0].rstrip("%"))


@pytest.mark.parametrize("case", CASES)
def test_report_carries_timeloops_figures(case):
    arch, workload, mapping, energy, expected = load_case(case)
    result = evaluate(arch, workload, mapping, energy)
    report = parse(format_stats(arch, workload, mapping, result, energy))

    mac = report["levels"][expected["arithmetic"]["name"]]["fields"]
    assert number(mac["Computes (total)"]) == expected["arithmetic"]["computes"]
    assert number(mac["Energy (total)"]) == pytest.approx(
        expected["arithmetic"]["energy_total_pj"], abs=0.011)
    for level in expected["levels"]:
        got = report["levels"][level["name"]]
        f = got["fields"]
        assert number(f["Vector access energy"]) == pytest.approx(
            level["vector_access_energy_pj"], abs=0.011)
        assert number(f["Leakage energy (total)"]) == pytest.approx(
            level["leakage_energy_total_pj"], abs=0.011)
        assert number(f["Block size"]) == level["block_size"]
        assert number(f["Cycles"]) == level["cycles"]
        assert got["loops"] == level["loop_nest"]
        assert set(got["ds"]) == set(level["dataspaces"])
        for name, want in level["dataspaces"].items():
            d = got["ds"][name]
            for label, key in [("Scalar reads (per-instance)", "reads"),
                               ("Scalar fills (per-instance)", "fills"),
                               ("Scalar updates (per-instance)", "updates"),
                               ("Utilized instances (max)", "utilized_instances"),
                               ("Utilized clusters (max)", "utilized_clusters"),
                               ("Utilized capacity", "utilized_capacity"),
                               ("Temporal reductions (per-instance)", "temporal_reductions"),
                               ("Address generations (per-cluster)", "address_generations")]:
                assert number(d[label]) == want[key], f"{level['name']}.{name} {label}"
            for label, key in [("Energy (total)", "energy_total_pj"),
                               ("Energy (per-instance)", "energy_per_instance_pj"),
                               ("Energy (per-scalar-access)", "energy_per_scalar_access_pj"),
                               ("Read Bandwidth (per-instance)", "read_bandwidth_per_instance"),
                               ("Write Bandwidth (per-instance)",
                                "write_bandwidth_per_instance"),
                               ("Shared Bandwidth (total)", "shared_bandwidth_total")]:
                assert number(d[label]) == pytest.approx(want[key], abs=0.011), \
                    f"{level['name']}.{name} {label}"
    summary = report["summary"]
    for name, fj in expected["summary"]["fj_per_compute"].items():
        assert number(summary[name]) == pytest.approx(fj, abs=0.011), name
    assert number(summary["Utilization"]) == expected["summary"]["utilization_pct"]
    assert number(summary["GFLOPs (@1GHz)"]) == pytest.approx(
        expected["summary"]["gflops_at_1ghz"], abs=0.011)
    assert number(summary["Cycles"]) == expected["summary"]["cycles"]
