"""Running an experiment's units: one at a time in this process, or several at once in worker
processes, resuming whatever an earlier run left.

Every unit writes into its own folder, and its ``result.json`` (written atomically, last) marks
it finished: a rerun skips finished units and resumes unfinished ones from their per-epoch
checkpoints, so killing the run at any moment loses at most one epoch of each unit that was
running.  A unit that fails writes ``error.txt`` and does not stop the others; the trainings of
a failed search are reported as skipped.
"""

from __future__ import annotations

import json
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.errors import HwcostError

from .config import ExperimentConfig, differences
from .plan import Unit, plan

SETTINGS_FILE = "experiment.json"
Progress = Callable[[dict], None]


def prepare_folder(cfg: ExperimentConfig, out: Path) -> None:
    """Create ``out`` for ``cfg``, or check that the experiment already in it is the same."""
    saved_path = out / SETTINGS_FILE
    if saved_path.exists():
        try:
            saved = json.loads(saved_path.read_text())
        except (OSError, ValueError) as err:
            raise HwcostError(f"cannot read the experiment's settings ({err}); use another "
                              "--out", file=saved_path) from None
        changed = differences(saved if isinstance(saved, dict) else {}, cfg)
        if changed:
            raise HwcostError(f"this folder holds an experiment with other settings (differs in "
                              f"{', '.join(changed)}); rerun with the same options to continue "
                              "it, or use another --out", file=saved_path)
        return
    try:
        if out.exists() and any(out.iterdir()):
            raise HwcostError(f"{out} is not empty and holds no experiment; use another --out")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved_path, json.dumps(asdict(cfg), indent=2))
    except OSError as err:
        raise HwcostError(f"cannot write the experiment folder {out}: "
                          f"{err.strerror or err}") from None


def check_data(cfg: ExperimentConfig) -> None:
    """Read the data once, here, so a missing or malformed data set is one error before any
    unit starts (each unit would otherwise fail on it, one line per unit)."""
    from nas.data import make_loaders

    make_loaders(cfg.dataset, cfg.data_dir, cfg.train_batch_size, search=False,
                 download=cfg.download, synthetic_size=cfg.synthetic_size,
                 input_size=cfg.input_size)


class Stopwatch:
    """Seconds a unit has run, summed over its runs (a resumed unit keeps its earlier time):
    saved at every step, so a killed run's time is not lost."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.before = float(path.read_text())
        except (OSError, ValueError):
            self.before = 0.0
        self.start = time.perf_counter()
        self.last_save = 0.0

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.start

    def tick(self, *_: Any) -> None:
        now = time.perf_counter()
        if now - self.last_save >= 1.0:
            self.last_save = now
            atomic_write_text(self.path, f"{self.seconds():.3f}\n")


_CONTEXTS: dict[tuple[str, str | None], Any] = {}


def _context(arch: str, library: str | None):
    """One cost context per accelerator and library in each process: the mappings of the
    layer shapes are shared by every unit a worker runs."""
    from hwmodel.costing import CostContext
    from multiplier_lib.library import MultiplierResolver

    key = (arch, library)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = CostContext.for_spec(
            arch, resolve=MultiplierResolver(library).arithmetic)
    return _CONTEXTS[key]


def _search_unit(unit: dict, folder: Path, watch: Stopwatch) -> dict:
    from darts.genotype_io import dumps_json
    from nas.search import SearchConfig, run_search

    cfg = SearchConfig(**unit["settings"])
    genotype = run_search(cfg, folder, resume=(folder / "checkpoint.pt").exists(),
                          progress=watch.tick)
    return {"genotype": json.loads(dumps_json(genotype)), "search_s": round(watch.seconds(), 2)}


def multiplier_counts(genotype) -> dict[str, int]:
    """How many cell edges that multiply (convolutions, and a strided skip's factorized
    reduce; not pools or identities) use each multiplier, both cells together."""
    from darts.op_specs import OP_SPECS

    counts: Counter[str] = Counter()
    for cell, edges in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        for (op, j), name in zip(edges, genotype.edge_multipliers(cell)):
            stride = 2 if cell == "reduce" and j < 2 else 1
            if OP_SPECS[op].multiplies(stride):
                counts[name or "exact8u"] += 1
    return dict(sorted(counts.items()))


def _train_unit(unit: dict, folder: Path, watch: Stopwatch, genotype_doc: dict,
                arch: str) -> dict:
    from darts.genotype_io import loads
    from nas import checkpoint
    from nas.train import TrainConfig, run_train, trained_figures

    cfg = TrainConfig(**unit["settings"])
    genotype = loads(json.dumps(genotype_doc), source=unit["after"])
    last = run_train(genotype, cfg, folder, resume=(folder / "checkpoint.pt").exists(),
                     progress=watch.tick)
    n_classes = checkpoint.load(folder / "checkpoint.pt")["n_classes"]
    priced = genotype.with_multiplier(cfg.multiplier) if cfg.multiplier else genotype
    return {"test_acc": float(last["test_acc"]),
            **trained_figures(genotype, cfg, n_classes, _context(arch, cfg.library)),
            "train_s": round(watch.seconds(), 2),
            "edge_multipliers": multiplier_counts(priced)}


def run_unit(unit: dict, out: str, arch: str, threads: int | None = None) -> dict:
    """Run one unit (a :meth:`Unit.to_dict`) here; returns its result row and never raises:
    a failure is a row with ``status: failed`` and the error, also in ``error.txt``."""
    folder = Path(out) / unit["name"]
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    if threads:
        import torch

        torch.set_num_threads(threads)
    row: dict[str, Any] = {k: unit[k] for k in ("name", "kind", "row", "group")}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        watch = Stopwatch(folder / "elapsed.txt")
        if unit["kind"] == "search":
            row.update(_search_unit(unit, folder, watch))
        else:
            search = json.loads((Path(out) / unit["after"] / "result.json").read_text())
            row.update(_train_unit(unit, folder, watch, search["genotype"], arch))
        row["status"] = "done"
        atomic_write_text(done, json.dumps(row, indent=2))
        (folder / "error.txt").unlink(missing_ok=True)
    except Exception as err:  # a failed unit is reported; the others go on
        message = str(err) if isinstance(err, HwcostError) else f"{type(err).__name__}: {err}"
        row.update(status="failed", error=message)
        try:
            atomic_write_text(folder / "error.txt", message + "\n\n" + traceback.format_exc())
        except OSError:
            pass
    return row


def finished(out: Path, units: list[Unit]) -> dict[str, dict]:
    """The result rows of the units an earlier run finished."""
    rows = {}
    for unit in units:
        path = out / unit.name / "result.json"
        if path.exists():
            rows[unit.name] = json.loads(path.read_text())
    return rows


def _skipped(unit: Unit, why: str) -> dict:
    return {"name": unit.name, "kind": unit.kind, "row": unit.row, "group": unit.group,
            "status": "skipped", "error": why}


def run_experiment(cfg: ExperimentConfig, out: str | Path, jobs: int = 1,
                   threads: int | None = None, progress: Progress | None = None
                   ) -> list[dict]:
    """Run every unit not finished yet (``jobs`` at a time, each with ``threads`` torch
    threads); returns the rows of all units in plan order.  The report is written by
    :func:`nas.experiment.report.write_report`."""
    out = Path(out)
    check_data(cfg)
    prepare_folder(cfg, out)
    units = plan(cfg)
    rows = finished(out, units)
    for unit in units:
        if unit.name in rows and progress:
            progress(rows[unit.name])
    todo = [u for u in units if u.name not in rows]
    if jobs <= 1:
        for unit in todo:
            if unit.after and rows.get(unit.after, {}).get("status") != "done":
                rows[unit.name] = _skipped(unit, f"its search {unit.after} failed")
            else:
                rows[unit.name] = run_unit(unit.to_dict(), str(out), cfg.arch, threads)
            if progress:
                progress(rows[unit.name])
    else:
        _run_parallel(todo, rows, out, cfg.arch, jobs, threads, progress)
    return [rows[u.name] for u in units]


def _run_parallel(todo: list[Unit], rows: dict[str, dict], out: Path, arch: str, jobs: int,
                  threads: int | None, progress: Progress | None) -> None:
    """Searches first; a training run is submitted once its search has finished."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    waiting = list(todo)
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_die_with_parent,
                               mp_context=multiprocessing.get_context("spawn"))
    running: dict[Any, Unit] = {}
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        while waiting or running:
            for unit in list(waiting):
                state = rows.get(unit.after, {}).get("status") if unit.after else "done"
                if state == "done":
                    running[pool.submit(run_unit, unit.to_dict(), str(out), arch,
                                        threads)] = unit
                    waiting.remove(unit)
                elif state is not None:
                    rows[unit.name] = _skipped(unit, f"its search {unit.after} failed")
                    waiting.remove(unit)
                    if progress:
                        progress(rows[unit.name])
            if not running:   # (cannot happen: a waiting unit's search is running)
                for unit in waiting:
                    rows[unit.name] = _skipped(unit, f"its search {unit.after} never ran")
                break
            ready, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in ready:
                unit = running.pop(future)
                try:
                    rows[unit.name] = future.result()
                except Exception as err:  # the worker process itself died
                    rows[unit.name] = {**_skipped(unit, f"{type(err).__name__}: {err}"),
                                       "status": "failed"}
                if progress:
                    progress(rows[unit.name])
    except BaseException:
        # Ctrl-C or a kill of this process: stop the workers too (each has its checkpoints;
        # a rerun resumes them), rather than leave them running without a driver
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    pool.shutdown(wait=True)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (``kill PID``) as an exception, so the workers are stopped with the driver."""
    raise SystemExit(128 + signum)


def _die_with_parent() -> None:
    """In a worker: be killed when the driver dies, even by SIGKILL (Linux ``prctl``), so
    no orphan keeps computing a unit nobody will collect."""
    import ctypes
    import os

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:                 # the driver died before the line above ran
        os._exit(1)
