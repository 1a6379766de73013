"""hwcost experiment: the plan, the settings' checks, the statistics of the table, and the
--quick setting end to end (killed and resumed, against an uninterrupted run)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import HwcostError
from darts.genotype import Genotype
from hwcost.cli import cli
from nas.experiment.config import ExperimentConfig, make_config
from nas.experiment.plan import plan
from nas.experiment.report import summarize
from nas.experiment.runner import multiplier_counts, run_experiment


@pytest.mark.parametrize(("weights", "seeds", "grad"), [
    ([0.0], 1, None), ([0.0, 0.5, 2.0, 8.0], 3, "bam8u_h2v6"), ([1.0, 3.0], 2, "trunc8u_k6c")])
def test_plan_has_every_search_and_training_run(weights, seeds, grad):
    cfg = make_config("small", energy_weights=weights, seeds=seeds, grad_multiplier=grad)
    if grad is None:
        cfg = replace(cfg, grad_multiplier=None)
    units = plan(cfg)
    searches = [u for u in units if u.kind == "search"]
    trains = [u for u in units if u.kind == "train"]
    assert len(searches) == 2 + len(weights)
    assert len(trains) == (2 + len(weights)) * seeds + (2 * seeds if grad else 0)
    assert len({u.name for u in units}) == len(units)
    position = {u.name: i for i, u in enumerate(units)}
    for u in trains:                       # each training run follows its search
        assert position[u.after] < position[u.name]
    by_row = {u.row: u for u in searches}
    assert by_row["fp32"].settings["multiplier"] == "fp32"
    assert by_row["exact8u"].settings["multiplier"] == "exact8u"
    for w in weights:
        s = by_row[f"w={w:g}"].settings
        assert s["multipliers"] == cfg.candidates and s["energy_weight"] == w
        assert s["multiplier"] is None
    for u in trains:
        assert sorted(u2.settings["seed"] for u2 in trains if u2.row == u.row) == \
            list(range(seeds))
        if u.group == "gradient":
            assert u.settings["multiplier"] == grad and u.after == "search/exact8u"
            assert u.settings["grad"] == u.row.removeprefix("grad-")
        elif u.row == "fp32":
            assert u.settings["multiplier"] == "fp32"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"energy_weights": [0.0, -1.0]}, "energy_weights must be numbers >= 0"),
    ({"energy_weights": [1.0, 1.0]}, "energy_weights must be distinct"),
    ({"energy_weights": [float("nan")]}, "energy_weights must be numbers >= 0"),
    ({"candidates": ["exact8u"]}, "candidates must name at least two"),
    ({"candidates": ["exact8u", "trunc8u_k6x"]}, "trunc8u_k6x"),
    ({"candidates": ["exact8u", "exact8u"]}, "candidates must be distinct"),
    ({"grad_multiplier": "fp16"}, "grad_multiplier: fp16 is a float format"),
    ({"float_baseline": "exact8u"}, "float_baseline"),
    ({"seeds": 0}, "seeds must be 1..100"),
    ({"search_layers": 2}, "search_layers must be at least 3"),
    ({"energy_weights": "0,1"}, "energy_weights must be a list of numbers"),
    ({"colour": "red"}, "unknown experiment setting 'colour'"),
    ({"multiplier_sampling": "some"}, "multiplier_sampling must be one of all, gumbel, per-conv"),
])
def test_bad_settings_are_refused_naming_the_setting(overrides, message):
    with pytest.raises(HwcostError, match=message):
        make_config("small", **overrides)


@pytest.mark.parametrize("sampling", ["all", "per-conv", "gumbel"])
def test_the_energy_aware_searches_take_the_sampling_from_settings_and_cli(sampling,
                                                                           monkeypatch):
    from nas.search import SearchConfig

    units = plan(make_config("small", multiplier_sampling=sampling))
    aware = [u for u in units if u.kind == "search" and u.group == "energy-aware"]
    assert aware and all(u.settings["multiplier_sampling"] == sampling for u in aware)
    for u in aware:
        assert SearchConfig(**u.settings).multiplier_sampling == sampling
    plan_module = sys.modules["nas.experiment.plan"]   # the package exports the function
    planned = []
    monkeypatch.setattr(plan_module, "plan", lambda cfg: planned.append(cfg) or plan(cfg))
    result = CliRunner().invoke(cli, ["experiment", "--out", "unused", "--dry-run",
                                      "--multiplier-sampling", sampling])
    assert result.exit_code == 0, result.output
    assert [cfg.multiplier_sampling for cfg in planned] == [sampling]


def test_a_folder_saved_before_the_sampling_setting_still_resumes():
    from dataclasses import asdict

    from nas.experiment.config import differences

    cfg = make_config("small")
    saved = asdict(cfg)
    del saved["multiplier_sampling"]           # what a folder saved before it holds
    assert differences(saved, cfg) == []
    assert differences(saved, make_config("small", multiplier_sampling="per-conv")) == \
        ["multiplier_sampling"]


def test_unknown_preset():
    with pytest.raises(HwcostError, match="unknown preset 'huge'"):
        make_config("huge")


def _rows(cfg: ExperimentConfig, accs: dict[str, list[float | None]]) -> list[dict]:
    """Unit rows as the runner writes them; ``None`` accuracy: a failed run."""
    rows = []
    for unit in plan(cfg):
        if unit.kind == "search":
            rows.append({"name": unit.name, "kind": "search", "row": unit.row,
                         "group": unit.group, "status": "done", "search_s": 10.0,
                         "genotype": {}})
            continue
        seed = unit.settings["seed"]
        acc = accs[unit.row][seed]
        energy = {"fp32": 8.0, "exact8u": 2.0}.get(unit.row, 1.0)
        row = {"name": unit.name, "kind": "train", "row": unit.row, "group": unit.group,
               "status": "done" if acc is not None else "failed"}
        if acc is not None:
            row.update(test_acc=acc, energy_uj=energy, arithmetic_uj=energy / 4,
                       memory_uj=3 * energy / 4, params=100, macs=1000, train_s=2.0 + seed,
                       edge_multipliers={"exact8u": 3, "bam8u_h2v6": 5})
        rows.append(row)
    return rows


def test_summary_is_mean_and_sample_std_over_the_finished_seeds():
    cfg = make_config("small", energy_weights=[0.0, 1.0], seeds=3)
    accs = {"fp32": [0.90, 0.92, 0.94], "exact8u": [0.5, 0.5, 0.5],
            "w=0": [0.8, None, 0.6], "w=1": [None, None, None],
            "grad-ste": [0.1, 0.2, 0.6], "grad-lut": [0.3, 0.3, 0.3]}
    summary = {s["row"]: s for s in summarize(cfg, _rows(cfg, accs))}
    assert list(summary) == ["fp32", "exact8u", "w=0", "w=1", "grad-ste", "grad-lut"]
    assert summary["fp32"]["acc_mean"] == pytest.approx(0.92)
    assert summary["fp32"]["acc_std"] == pytest.approx(0.02)        # n-1 in the denominator
    assert summary["exact8u"]["acc_std"] == 0.0
    assert summary["w=0"]["seeds"] == 2                             # the failed seed left out
    assert summary["w=0"]["acc_mean"] == pytest.approx(0.7)
    assert summary["w=0"]["acc_std"] == pytest.approx(statistics.stdev([0.8, 0.6]))
    assert summary["w=1"]["acc_mean"] is None and summary["w=1"]["seeds"] == 0
    assert summary["exact8u"]["energy_vs_float"] == pytest.approx(2.0 / 8.0)
    assert summary["w=0"]["train_s"] == pytest.approx(statistics.fmean([2.0, 4.0]))
    assert summary["w=0"]["energy_weight"] == 0.0 and summary["w=1"]["energy_weight"] == 1.0
    assert summary["grad-ste"]["acc_std"] == pytest.approx(statistics.stdev([0.1, 0.2, 0.6]))
    assert summary["grad-ste"]["search_s"] is None
    assert summary["exact8u"]["multipliers"] == "bam8u_h2v6 x5, exact8u x3"


def test_multiplier_counts_only_edges_that_multiply():
    normal = [("sep_conv_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 0),
              ("dil_conv_3x3", 2), ("avg_pool_3x3", 0), ("sep_conv_5x5", 3),
              ("none", 1), ("skip_connect", 4)]
    reduce = [("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 2),
              ("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("dil_conv_5x5", 3),
              ("avg_pool_3x3", 1), ("max_pool_3x3", 4)]
    g = Genotype(normal=normal, normal_concat=[2, 3, 4, 5], reduce=reduce,
                 reduce_concat=[2, 3, 4, 5], multiplier="exact8u",
                 normal_multipliers=["a8u", "b8u", None, "b8u", "a8u", "a8u", "b8u", "a8u"],
                 reduce_multipliers=["a8u", "b8u", "a8u", "a8u", "b8u", "a8u", "a8u", "b8u"])
    # normal: convs at 0 (a), 3 (b), 5 (a); reduce: skips from inputs 0, 1 are strided
    # (factorized reduce: a, b); node-2 skip is an identity; convs at 4 (b), 5 (a)
    assert multiplier_counts(g) == {"a8u": 4, "b8u": 3}


def test_a_failed_search_skips_its_trainings_and_the_rest_goes_on(tmp_path, monkeypatch):
    import nas.search

    real = nas.search.run_search

    def failing(cfg, out, **kw):
        if cfg.multiplier == "fp32":
            raise HwcostError("boom in the float search")
        return real(cfg, out, **kw)

    monkeypatch.setattr(nas.search, "run_search", failing)
    cfg = make_config("quick", energy_weights=[0.0], seeds=1, grad_multiplier="bam8u_h2v6",
                      candidates=["exact8u", "trunc8u_k6c"])
    rows = {r["name"]: r for r in run_experiment(cfg, tmp_path / "x", jobs=1, threads=1)}
    assert rows["search/fp32"]["status"] == "failed"
    assert "boom in the float search" in rows["search/fp32"]["error"]
    assert "boom" in (tmp_path / "x/search/fp32/error.txt").read_text()
    assert rows["train/fp32/s0"]["status"] == "skipped"
    done = [n for n, r in rows.items() if r["status"] == "done"]
    assert sorted(done) == sorted(n for n in rows if "fp32" not in n)
    # a rerun retries only what did not finish (the search succeeds now)
    monkeypatch.setattr(nas.search, "run_search", real)
    stamps = {n: (tmp_path / "x" / n / "result.json").stat().st_mtime_ns for n in done}
    again = {r["name"]: r for r in run_experiment(cfg, tmp_path / "x", jobs=1, threads=1)}
    assert all(r["status"] == "done" for r in again.values())
    assert stamps == {n: (tmp_path / "x" / n / "result.json").stat().st_mtime_ns
                      for n in done}


def test_a_users_npz_runs_through_the_whole_pipeline(tmp_path):
    """--dataset npz: a user's arrays (here 3 classes of 12-pixel grey images, each class a
    bright bar in another place) are searched, trained and priced at their own size."""
    import numpy as np

    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 3, n)
        x = rng.integers(0, 40, (n, 12, 12)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 4 * c:4 * c + 4, :] = 220
        return x, y.astype(np.int64)

    (xtr, ytr), (xte, yte) = make(96), make(24)
    np.savez(tmp_path / "bars.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    cfg = make_config("quick", dataset="npz", data_dir=str(tmp_path / "bars.npz"),
                      energy_weights=[1.0], seeds=1,
                      candidates=["exact8u", "bam8u_h2v6"])
    cfg = replace(cfg, grad_multiplier=None)
    rows = run_experiment(cfg, tmp_path / "x", jobs=1, threads=1)
    assert [r["status"] for r in rows] == ["done"] * 6
    from nas import checkpoint

    state = checkpoint.load(tmp_path / "x/train/aware-w1/s0/checkpoint.pt")
    assert state["n_classes"] == 3
    assert state["config"]["dataset"] == "npz" and state["config"]["input_size"] is None


def test_a_folder_of_another_experiment_is_refused(tmp_path):
    cfg = make_config("quick", seeds=1)
    (tmp_path / "x").mkdir()
    (tmp_path / "x/experiment.json").write_text(json.dumps(
        {**json.loads(json.dumps(cfg.__dict__)), "seeds": 2}))
    with pytest.raises(HwcostError, match="differs in seeds"):
        run_experiment(cfg, tmp_path / "x")
    (tmp_path / "y").mkdir()
    (tmp_path / "y/notes.txt").write_text("mine")
    with pytest.raises(HwcostError, match="not empty and holds no experiment"):
        run_experiment(cfg, tmp_path / "y")


@pytest.mark.parametrize(("args", "message"), [
    (["--energy-weights", "0,abc"], "--energy-weights"),
    (["--multipliers", "exact8u,trunc8u_k6x"], "trunc8u_k6x"),
    (["--out", "/proc/hwcost_experiment"], "cannot write into /proc"),
    (["--dataset", "npz", "--data-dir", "/nonexistent.npz"], "no such .npz file"),
])
def test_cli_mistakes_are_one_line(tmp_path, args, message):
    argv = ["experiment", "--quick", "--out", str(tmp_path / "o"), *args]
    res = CliRunner().invoke(cli, argv)
    assert res.exit_code != 0
    text = res.output.strip()
    assert message in text and len(text.splitlines()) == 1 and "Traceback" not in text
    assert not (tmp_path / "o").exists()


def _quick(out: Path) -> list[str]:
    return [sys.executable, "-m", "hwcost", "experiment", "--quick", "--out", str(out),
            "--jobs", "2", "--threads", "1"]


def _summary(out: Path) -> dict:
    return {s["row"]: s for s in json.loads((out / "results.json").read_text())["summary"]}


def test_quick_experiment_end_to_end_killed_and_resumed(tmp_path):
    """The --quick setting runs every unit; a run killed midway and rerun ends with the same
    table as an uninterrupted one, without redoing the units that had finished."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    whole = tmp_path / "whole"
    res = subprocess.run(_quick(whole), capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    for name in ("results.md", "results.csv", "results.json", "pareto.png"):
        assert (whole / name).stat().st_size > 0
    assert (whole / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = _summary(whole)
    assert list(summary) == ["fp32", "exact8u", "w=0", "w=0.25", "w=1", "w=4", "grad-ste",
                             "grad-lut"]
    assert all(s["seeds"] == 3 for s in summary.values())
    # the float network moves four-byte words and multiplies in float: it costs more
    assert summary["fp32"]["energy_uj"] > summary["exact8u"]["energy_uj"]
    assert summary["fp32"]["energy_vs_float"] == 1.0
    units = json.loads((whole / "results.json").read_text())["units"]
    assert all((whole / u["name"] / "checkpoint.pt").is_file() for u in units)
    # the energy in the table is the trained network's price, recomputed here independently
    _check_prices(whole, units)

    resumed = tmp_path / "resumed"
    proc = subprocess.Popen(_quick(resumed), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 600
    while len(list(resumed.glob("**/result.json"))) < 8 and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in resumed.glob("**/result.json")}
    assert 8 <= len(finished) < len(units)
    res = subprocess.run(_quick(resumed), capture_output=True, text=True, env=env,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    again = _summary(resumed)
    for row, s in summary.items():
        for key in ("acc_mean", "acc_std", "energy_uj", "arithmetic_uj", "memory_uj", "params",
                    "macs", "multipliers"):
            assert again[row][key] == s[key], (row, key)


def _check_prices(out: Path, units: list[dict]) -> None:
    from darts.genotype_io import loads
    from darts.pricing import price_network
    from hwmodel.costing import CostContext
    from nas import checkpoint
    from nas.train import trained_network

    context = CostContext.for_spec("eyeriss")
    for u in units:
        if u["kind"] != "train" or not u["name"].endswith("/s0"):
            continue
        state = checkpoint.load(out / u["name"] / "checkpoint.pt")
        genotype = loads(state["genotype"])
        network = trained_network(genotype, state["config"], state["n_classes"])
        est = price_network(genotype, network, context, state["config"]["multiplier"])
        assert u["energy_uj"] == pytest.approx(est.total("energy_pj") / 1e6, rel=1e-12)
        assert u["memory_uj"] == pytest.approx(est.total("memory_pj") / 1e6, rel=1e-12)
        if u["name"].startswith("train/grad-"):
            assert state["config"]["grad"] == u["name"].split("/")[1].removeprefix("grad-")


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids.update(int(k) for k in text)
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_driver_alone_stops_its_workers(tmp_path, sig):
    """``kill PID`` (or kill -9) of the driver, not of its process group: no worker process
    goes on computing a unit nobody collects."""
    out = tmp_path / "x"
    proc = subprocess.Popen(_quick(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        workers: set[int] = set()
        while len(list(out.glob("search/*/elapsed.txt"))) < 1:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        workers = {k for k in _children(proc.pid)
                   if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text()}
        assert len(workers) == 2
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(_alive(w) for w in workers):
            assert time.monotonic() < deadline, "a worker outlived its driver"
            time.sleep(0.1)
    finally:        # the whole group, so a failure here leaves no process behind either
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
