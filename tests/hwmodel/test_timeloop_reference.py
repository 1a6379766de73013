"""hwcost against Timeloop's own published reference outputs, count for count.

Every folder under ``timeloop_ref/`` is one case of Timeloop's tutorial exercises
(timeloop-accelergy-exercises, ``tutorial_exercises/01_accelergy_timeloop_2020_ispass/
timeloop/`` 00 to 06): the architecture, problem and mapping of the run and its ERT, written
for hwcost, and ``expected.json``, the figures of the run's ``timeloop-model.stats.txt``
(``timeloop-mapper.stats.txt`` for the mapper exercises) with the commit they were read at.
Every folder under ``timeloop_designs/`` is one of the example designs of the same repository
(``example_designs/*/ref_outputs/default_problem``: Eyeriss-like, Simba-like with nested
containers, ``!Parallel`` buffers and vector MACs, simple output- and weight-stationary)
with the mapping Timeloop's mapper found and its ``timeloop-mapper.stats.txt``.
For each case the model must give Timeloop's per-level, per-data-space scalar reads, fills,
updates and utilized instances exactly, its cycles and utilization, every level's energy
to the printed precision and the total energy within 0.5 %.
"""

from __future__ import annotations

import pytest
from timeloop_cases import CASES, DESIGNS, EXERCISES, run_case


def test_every_tutorial_exercise_and_design_is_present():
    # 00 to 06, every variant: a lost fixture must not silently shrink the comparison
    assert DESIGNS == ["eyeriss_like", "simba_like", "simple_output_stationary",
                       "simple_weight_stationary"]
    assert EXERCISES == ["00_1level", "01_os", "01_ws", "02_no_tiling", "02_tiling", "03_bypass",
                     "03_no_bypass", "04_cp", "04_kp", "05_baked", "05_freebypass", "05_null",
                     "06_eyeriss"]


@pytest.mark.parametrize("case", CASES)
def test_counts_equal_timeloops(case):
    result, expected = run_case(case)
    ours = {lv.name: lv for lv in result.levels}
    for level in expected["levels"]:
        lv = ours[level["name"]]
        # the data spaces Timeloop prints for a level are exactly the ones it keeps
        assert set(lv.dataspaces) == set(level["dataspaces"]), level["name"]
        assert lv.cycles == level["cycles"], level["name"]
        for ds, want in level["dataspaces"].items():
            s = lv.dataspaces[ds]
            got = (s.reads_per_instance, s.fills_per_instance, s.updates_per_instance,
                   s.utilized_instances)
            assert got == (want["reads"], want["fills"], want["updates"],
                           want["utilized_instances"]), f"{level['name']}.{ds}"
            if ds == "Outputs":
                # the distinct outputs an instance holds drive the first-read elision
                # (Timeloop's partition size; for inputs it prints a proportional share
                # of its parent's halo, which no count depends on)
                assert s.partition_words == want["partition_size"], f"{level['name']}.{ds}"
    assert result.computes == expected["summary"]["computes"]
    assert result.cycles == expected["summary"]["cycles"]
    assert result.utilization * 100 == pytest.approx(expected["summary"]["utilization_pct"],
                                                     abs=0.005)
    assert result.macs_utilized == expected["arithmetic"]["utilized_instances"]


@pytest.mark.parametrize("case", CASES)
def test_energy_equals_timeloops(case):
    result, expected = run_case(case)
    ours = {lv.name: lv for lv in result.levels}
    for level in expected["levels"]:
        lv = ours[level["name"]]
        for ds, want in level["dataspaces"].items():
            # printed with two decimals
            assert lv.dataspaces[ds].energy_pj == pytest.approx(want["energy_total_pj"],
                                                                abs=0.006), \
                f"{level['name']}.{ds}"
        assert lv.leakage_pj == pytest.approx(level["leakage_energy_total_pj"], abs=0.006)
    assert result.mac_energy_pj == pytest.approx(expected["arithmetic"]["energy_total_pj"],
                                                 abs=0.006)
    summary = expected["summary"]
    timeloop_total = summary["fj_per_compute"]["Total"] * summary["computes"] / 1000
    assert result.energy_pj == pytest.approx(timeloop_total, rel=0.005)
    # the fJ/Compute column of the summary, level by level (printed with two decimals)
    for name, fj in summary["fj_per_compute"].items():
        if name in ours:
            assert ours[name].energy_pj * 1000 / result.computes == pytest.approx(fj, abs=0.006)
