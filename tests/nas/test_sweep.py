"""hwcost sweep: grid files checked with file:line, a 2x2 sweep on a local Ray, restart and
failure handling, the Pareto front."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import HwcostError
from hwcost.cli import cli
from nas.sweep import Point, load_sweep, pareto_front, run_point, run_sweep

SMALL = """\
data: {dataset: synthetic, synthetic_size: 64}
grid:
  multipliers: [exact8u, trunc8u_k6c]
  energy_weight: [0.0, 0.5]
  arch: [eyeriss]
search: {epochs: 1, layers: 3, channels: 2, batch_size: 16, max_steps: 1}
train: {epochs: 1, layers: 3, channels: 2, batch_size: 16, max_steps: 1}
baseline: fp32
resources: {cpus: 1}
"""


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("old", "new", "line", "message"), [
    ("baseline: fp32", "baseline: fp32\nworkers: 3", 9, "unknown key 'workers'"),
    ("  arch: [eyeriss]", "  arch: [eyeriss]\n  momentum: [0.9]", 6, "unknown key 'momentum'"),
    ("  energy_weight: [0.0, 0.5]", "  energy_weight: 0.5", 4, "must be a non-empty list"),
    ("[exact8u, trunc8u_k6c]", "[exact8u, nosuch8u]", 3, "nosuch8u"),
    ("[exact8u, trunc8u_k6c]", "[exact8u, fp32]", 3, "float baseline"),
    ("  arch: [eyeriss]", "  arch: [nowhere]", 5, "grid.arch"),
    ("max_steps: 1}\ntrain", "max_step: 1}\ntrain", 6,
     r"unknown key 'max_step' in search \(did you mean 'max_steps' or 'max_skip'\?\)"),
    ("  energy_weight: [0.0, 0.5]", "  energy_weight: [0.0, high]", 4, "must be numbers"),
])
def test_sweep_file_mistakes_give_file_and_line(tmp_path, old, new, line, message):
    path = write(tmp_path, SMALL.replace(old, new))
    with pytest.raises(HwcostError, match=message) as err:
        load_sweep(path)
    assert err.value.file == str(path) and err.value.line == line


def test_dry_run_prints_the_grid_without_running(tmp_path):
    path = write(tmp_path, SMALL)
    res = CliRunner().invoke(cli, ["sweep", str(path), "--dry-run", "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("4 points, each 1 CPU / 0 GPU")
    assert "001-exact8u-w0.5-eyeriss-s0" in res.output
    assert not (tmp_path / "o").exists()
    sweep = load_sweep(path)
    assert [p.values["energy_weight"] for p in sweep.points] == [0.0, 0.5, 0.0, 0.5]


def test_pareto_front_keeps_the_points_nothing_beats():
    pts = [(10.0, 0.5), (8.0, 0.4), (12.0, 0.6), (11.0, 0.45), (8.0, 0.35), (20.0, 0.6)]
    assert pareto_front(pts) == [1, 0, 2]


def test_coincident_points_share_one_label_and_distant_ones_do_not():
    from nas.sweep import _label_groups

    pts = [(38.03, 0.094), (40.9, 0.047), (38.05, 0.094), (38.8, 0.109), (38.03, 0.0941)]
    groups = _label_groups(pts, (40.9 - 38.03, 0.109 - 0.047))
    assert sorted(members for _, members in groups) == [[0, 2, 4], [1], [3]]


def test_pareto_plot_numbers_every_point_and_gives_fp32_its_own_axis(tmp_path):
    import matplotlib.pyplot as plt

    from nas import sweep as sweep_mod

    rows = [{"status": "done", "multipliers": m, "energy_weight": w, "energy_uj": e,
             "test_acc": a, "baseline": "fp32", "baseline_energy_uj": 4 * e,
             "baseline_acc": a + 0.01}
            for m, w, e, a in [("exact8u", 0.0, 40.9, 0.047), ("exact8u", 0.5, 38.0, 0.094),
                               ("trunc8u_k6c", 0.0, 39.6, 0.094)]]
    figures = []
    real_close = plt.close
    plt.close = lambda fig=None: figures.append(fig)    # keep the figure to look at
    try:
        sweep_mod.plot_pareto(rows, tmp_path / "p.png")
    finally:
        plt.close = real_close
    fig = figures[0]
    main, base = fig.axes[:2]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["1: exact8u, energy weight 0.0", "2: exact8u, energy weight 0.5",
                          "3: trunc8u_k6c, energy weight 0.0"]
    assert sorted(t.get_text() for t in main.texts) == ["1", "2", "3"]
    # each panel's energy axis fits its own points, not the union of both
    assert main.get_xlim()[1] < 45 and base.get_xlim()[0] > 100
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    real_close(fig)


def test_a_failing_point_is_reported_and_leaves_no_result(tmp_path):
    text = SMALL.replace("data: {dataset: synthetic, synthetic_size: 64}",
                         f"data: {{dataset: npz, data_dir: {tmp_path / 'missing.npz'}}}")
    sweep = load_sweep(write(tmp_path, text))
    folder = tmp_path / "points" / sweep.points[0].id
    row = run_point(sweep, sweep.points[0], folder)
    assert row["status"] == "failed" and "missing.npz" in row["error"]
    assert (folder / "error.txt").exists() and not (folder / "result.json").exists()


def test_unreachable_ray_address_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["sweep", str(write(tmp_path, SMALL)), "--address",
                                   "127.0.0.1:1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert res.output.strip() == ("Error: cannot reach the Ray cluster at 127.0.0.1:1: "
                                  "Connection refused")


@pytest.mark.parametrize("address", ["a" * 64 + ":6379", "h." * 130 + "x:6379",
                                     "localhost:70000", "b" * 300 + ".example:1"])
def test_an_address_that_is_no_host_and_port_is_one_line(tmp_path, address):
    res = CliRunner().invoke(cli, ["sweep", str(write(tmp_path, SMALL)), "--address", address,
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "not a host name" in res.output, res.output
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


def test_two_by_two_sweep_on_local_ray_writes_table_and_plot_and_restarts(tmp_path,
                                                                         local_ray):
    sweep = load_sweep(write(tmp_path, SMALL))
    out = tmp_path / "run"
    rows = run_sweep(sweep, out)
    assert [r["status"] for r in rows] == ["done"] * 4, [r.get("error") for r in rows]
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["point"] for t in table] == [p.id for p in sweep.points]
    for t, r in zip(table, rows):
        assert float(t["energy_uj"]) == pytest.approx(float(t["arithmetic_uj"])
                                                     + float(t["memory_uj"]), rel=1e-6)
        assert float(t["baseline_energy_uj"]) > float(t["energy_uj"])   # fp32 costs more
        assert 0.0 <= float(t["test_acc"]) <= 1.0 and int(t["macs"]) > 0
        assert r["multipliers"] == t["multipliers"]
    assert json.loads((out / "results.json").read_text()) == rows
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # restart: finished points are skipped, a missing one is run again
    stamps = {p.id: (out / "points" / p.id / "result.json").stat().st_mtime_ns
              for p in sweep.points}
    (out / "points" / sweep.points[2].id / "result.json").unlink()
    again = run_sweep(sweep, out)
    assert [r["status"] for r in again] == ["done"] * 4
    for p in sweep.points:
        now = (out / "points" / p.id / "result.json").stat().st_mtime_ns
        assert (now == stamps[p.id]) == (p.id != sweep.points[2].id)


def test_killed_sweep_resumes_with_only_the_missing_points(tmp_path):
    pytest.importorskip("ray")
    cfg = write(tmp_path, SMALL)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "from hwcost.cli import main; main()", "sweep", str(cfg),
           "--out", str(out), "--num-cpus", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    first = out / "points" / Point(0, {"multipliers": ["exact8u"], "energy_weight": 0.0,
                                       "arch": "eyeriss"}).id / "result.json"
    deadline = time.time() + 240
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists()
    done_before = {p.name: (p / "result.json").stat().st_mtime_ns
                   for p in (out / "points").iterdir() if (p / "result.json").exists()}
    assert 1 <= len(done_before) < 4
    assert not (out / "results.csv").exists()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    for name, stamp in done_before.items():
        assert (out / "points" / name / "result.json").stat().st_mtime_ns == stamp
    assert len(list(csv.DictReader(open(out / "results.csv")))) == 4
