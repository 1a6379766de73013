"""``hwcost sweep``: a grid of search -> train -> evaluate -> estimate pipelines, as Ray tasks.

The field's result is a table and a plot: accuracy against energy for several multipliers and
energy weights, beside the FP32 baseline.  A sweep file names the grid; every grid point is a
whole pipeline run in its own folder (``points/<id>/``), so that

* a finished point (its ``result.json``, written atomically last) is skipped on restart,
  and an interrupted one resumes from its search/train checkpoints;
* a failing point records its error (``error.txt``) and does not stop the others;
* the results are one table (``results.csv`` / ``results.json``) and a Pareto plot
  (``pareto.png``: accuracy against energy per image, the front marked, the FP32 baseline of
  every trained network shown).

Points run as Ray tasks (``ray.init()`` starts a local cluster; ``address`` joins one), each
with the CPUs and GPUs the file asks for.  Everything a user can get wrong in the file (an
unknown key, a value of the wrong type, a multiplier that does not exist) is reported with its
file and line before anything runs.

Sweep file::

    data: {dataset: synthetic, synthetic_size: 256}     # data settings shared by all points
    grid:                          # lists; the sweep is their product
      multipliers: [exact8u, [exact8u, trunc8u_k6c]]   # a list: searched per edge
      energy_weight: [0.0, 0.1]
      penalty: [additive]
      arch: [eyeriss]
      seed: [0]
      layers: [3]                  # evaluation network cells
      channels: [4]                # evaluation network channels
    search: {epochs: 1, layers: 3, channels: 4, batch_size: 8, max_steps: 2}
    train: {epochs: 1, batch_size: 8, max_steps: 2}
    baseline: fp32                 # float format evaluated on each trained network (or null)
    resources: {cpus: 1, gpus: 0}  # per point
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_bytes, atomic_write_text
from core.errors import HwcostError
from core.limits import Limit
from darts.genotype import suggest
from nas.settings import DataSettings, c_model_in_data

TOP_KEYS = ("data", "grid", "search", "train", "baseline", "resources")
DATA_KEYS = (*(f.name for f in fields(DataSettings)), "library")
GRID_KEYS = ("multipliers", "energy_weight", "energy_target", "penalty", "arch", "seed",
             "layers", "channels")
RESOURCE_KEYS = ("cpus", "gpus")
# each point is a whole search + training run: a grid of 10**6 is a typo, not a plan
MAX_SWEEP_POINTS = Limit("HWCOST_MAX_SWEEP_POINTS", 10_000, "points in a sweep grid")
RESULT_FIELDS = ("point", "status", "multipliers", "energy_weight", "energy_target", "penalty",
                 "arch", "seed", "layers", "channels", "test_acc", "energy_uj",
                 "arithmetic_uj", "memory_uj", "params", "macs", "search_s", "train_s",
                 "baseline", "baseline_acc", "baseline_energy_uj", "genotype", "error")


@dataclass
class Point:
    """One grid point: the values of the grid keys, and its folder name."""

    index: int
    values: dict[str, Any]

    @property
    def id(self) -> str:
        v = self.values
        mult = "+".join(v["multipliers"])
        parts = [f"{self.index:03d}", mult, f"w{v.get('energy_weight', 0)}",
                 v.get("penalty") or "", v.get("arch") or "", f"s{v.get('seed', 0)}"]
        if v.get("energy_target") is not None:
            parts.insert(3, f"t{v['energy_target']}")
        return re.sub(r"[^A-Za-z0-9_.+-]+", "_", "-".join(p for p in parts if p))


@dataclass
class Sweep:
    source: str
    data: dict[str, Any]
    grid: dict[str, list]
    search: dict[str, Any]
    train: dict[str, Any]
    baseline: str | None
    cpus: float = 1.0
    gpus: float = 0.0
    points: list[Point] = field(default_factory=list)


def _err(path, node, key, message: str) -> HwcostError:
    from hwmodel.yamlio import line_of

    return HwcostError(message, file=path, line=line_of(node, key))


def _check_keys(path, node, allowed, what: str, parent=None) -> None:
    """Every key of ``node`` is allowed; ``parent`` (the mapping holding section ``what``)
    gives the line when the section is not a mapping at all."""
    if node is None and (parent is None or what != "grid"):
        return
    if not isinstance(node, dict):
        where = (parent, what) if parent is not None else (node, None)
        raise _err(path, *where, f"{what} must be a mapping")
    for key in node:
        if key not in allowed:
            raise _err(path, node, key, f"unknown key {key!r} in {what}"
                                        f"{suggest(str(key), allowed)}; expected one of "
                                        f"{', '.join(allowed)}")


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (file:line on every mistake), expand its grid."""
    from core.arithmetic import FloatFormat, float_format
    from hwmodel.yamlio import line_of, load_yaml, plain
    from multiplier_lib.library import MultiplierResolver
    from nas.search import SearchConfig
    from nas.settings import SettingError, check_types
    from nas.train import TrainConfig

    path = Path(path)
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise HwcostError("a sweep file is a mapping with a 'grid'", file=path)
    _check_keys(path, doc, TOP_KEYS, "the sweep file")
    if "grid" not in doc:
        raise HwcostError("missing 'grid' (the lists whose product is the sweep)", file=path)
    _check_keys(path, doc.get("data"), DATA_KEYS, "data", doc)
    _check_keys(path, doc["grid"], GRID_KEYS, "grid", doc)
    # the grid's search keys are set per point; layers/channels in the grid size the
    # evaluation network (the search section keeps its own supernet size)
    search_fields = ({f.name for f in fields(SearchConfig)} - set(DATA_KEYS)
                     - {"multiplier", "multipliers", "energy_weight", "energy_target",
                        "penalty", "arch", "seed"})
    train_fields = {f.name for f in fields(TrainConfig)} - set(DATA_KEYS) - {"multiplier"}
    _check_keys(path, doc.get("search"), sorted(search_fields), "search", doc)
    _check_keys(path, doc.get("train"), sorted(train_fields), "train", doc)
    _check_keys(path, doc.get("resources"), RESOURCE_KEYS, "resources", doc)
    for section, cls in (("data", SearchConfig), ("search", SearchConfig),
                         ("train", TrainConfig)):
        node = doc.get(section)
        if isinstance(node, dict):
            try:
                check_types(cls, plain(node))
            except SettingError as err:
                raise _err(path, node, err.key, f"{section}.{err.message}") from None

    data_node = doc.get("data") or {}
    resolve = MultiplierResolver(data_node.get("library") if isinstance(data_node, dict)
                                 else None)
    grid_node = doc["grid"]
    grid: dict[str, list] = {}
    for key in GRID_KEYS:
        if key not in grid_node:
            continue
        values = grid_node[key]
        if not isinstance(values, list) or not values:
            raise _err(path, grid_node, key, f"grid.{key} must be a non-empty list")
        grid[key] = plain(values)
    if "multipliers" not in grid:
        raise _err(path, grid_node, None, "grid.multipliers is required (names, or lists of "
                                          "names searched per edge)")
    mult_node = grid_node["multipliers"]
    for i, entry in enumerate(grid["multipliers"]):
        names = entry if isinstance(entry, list) else [entry]
        if not names or not all(isinstance(n, str) for n in names):
            raise _err(path, mult_node, i, "a grid.multipliers entry is a name or a list of "
                                           "names")
        for name in names:
            if name.lower().endswith(".c"):
                raise _err(path, mult_node, i, c_model_in_data(name))
            try:
                arith = resolve.arithmetic(name)
            except HwcostError as err:
                raise _err(path, mult_node, i, err.message) from None
            if isinstance(arith, FloatFormat):
                raise _err(path, mult_node, i, f"{name} is a float baseline, not a multiplier "
                                               "to search with; set 'baseline: fp32' instead")
        grid["multipliers"][i] = list(names)
    for key, kind, what in (("energy_weight", (int, float), "numbers"),
                            ("energy_target", (int, float), "numbers"),
                            ("seed", int, "integers"), ("layers", int, "integers"),
                            ("channels", int, "integers"), ("penalty", str, "names"),
                            ("arch", str, "names")):
        for i, value in enumerate(grid.get(key, [])):
            if isinstance(value, bool) or not isinstance(value, kind):
                raise _err(path, grid_node[key], i, f"grid.{key} values must be {what}")
    from hwmodel.spec import load_arch

    for i, name in enumerate(grid.get("arch", [])):
        try:
            load_arch(name)
        except HwcostError as err:
            raise _err(path, grid_node["arch"], i, f"grid.arch: {err}") from None
    baseline = doc.get("baseline", "fp32")
    if baseline is not None and float_format(str(baseline)) is None:
        raise _err(path, doc, "baseline", "baseline must be fp32, fp16, bf16 or null")
    res = plain(doc.get("resources") or {})
    for key in RESOURCE_KEYS:
        value = res.get(key, 1 if key == "cpus" else 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise _err(path, doc["resources"], key, f"resources.{key} must be a number >= 0")
    sweep = Sweep(str(path), plain(doc.get("data") or {}), grid, plain(doc.get("search") or {}),
                  plain(doc.get("train") or {}), None if baseline is None else str(baseline),
                  float(res.get("cpus", 1)), float(res.get("gpus", 0)))
    keys = list(grid)
    MAX_SWEEP_POINTS.check(math.prod(len(grid[k]) for k in keys), file=path,
                           line=line_of(doc, "grid"), context="grid")
    sweep.points = [Point(i, dict(zip(keys, combo)))
                    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys)))]
    # every point's settings must build, before anything runs
    for point in sweep.points:
        section = "search"
        try:
            search_config(sweep, point).validate()
            section = "train"
            train_config(sweep, point).validate()
        except SettingError as err:
            name, node = _setting_node(doc, err.key, section)
            raise _err(path, node, err.key if name else None,
                       f"grid point {point.id}: {name or section}.{err.message}") from None
        except HwcostError as err:
            raise HwcostError(f"grid point {point.id}: {err.message}", file=path) from None
    return sweep


def _setting_node(doc, key: str, section: str):
    """``(name, mapping)`` of the YAML section that set ``key`` for ``section``'s config:
    the grid, the section or the shared data settings; ``(None, doc)`` for a default."""
    for name in ("grid", section, "data"):
        node = doc.get(name)
        if isinstance(node, dict) and key in node:
            return name, node
    return None, doc


def search_config(sweep: Sweep, point: Point):
    from nas.search import SearchConfig

    v = point.values
    settings = {**sweep.data, **sweep.search}
    mults = v["multipliers"]
    if len(mults) == 1:
        settings.update(multiplier=mults[0], multipliers=[])
    else:
        settings.update(multiplier=None, multipliers=list(mults))
    for key in ("energy_weight", "energy_target", "penalty", "arch", "seed"):
        if key in v:
            settings[key] = v[key]
    return SearchConfig(**settings)


def train_config(sweep: Sweep, point: Point):
    from nas.train import TrainConfig

    v = point.values
    settings = {**sweep.data, **sweep.train}
    for key in ("seed", "layers", "channels"):
        if key in v:
            settings[key] = v[key]
    return TrainConfig(**settings)


# --------------------------------------------------------------------------------------------
# one point


def run_point(sweep: Sweep, point: Point, folder: str | Path, threads: int | None = None
              ) -> dict:
    """The whole pipeline of one point; returns its result row (never raises: a failure is
    a row with ``status: failed`` and the error, also written to ``error.txt``)."""
    folder = Path(folder)
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"point": point.id, **_grid_columns(point)}
    try:
        row.update(_pipeline(sweep, point, folder, threads))
        row["status"] = "done"
        atomic_write_text(done, json.dumps(row, indent=2))
        (folder / "error.txt").unlink(missing_ok=True)
    except Exception as err:  # a failed point is reported, the others go on
        message = str(err) if isinstance(err, HwcostError) else f"{type(err).__name__}: {err}"
        row.update(status="failed", error=message)
        atomic_write_text(folder / "error.txt", message + "\n\n" + traceback.format_exc())
    return row


def _grid_columns(point: Point) -> dict:
    v = point.values
    return {"multipliers": "+".join(v["multipliers"]),
            **{k: v.get(k) for k in ("energy_weight", "energy_target", "penalty", "arch",
                                     "seed", "layers", "channels")}}


def _pipeline(sweep: Sweep, point: Point, folder: Path, threads: int | None) -> dict:
    import torch

    from darts.genotype_io import dumps_json
    from darts.pricing import price_network
    from hwmodel.costing import CostContext
    from multiplier_lib.library import MultiplierResolver
    from nas import checkpoint
    from nas.search import run_search
    from nas.train import evaluate_checkpoint, run_train, trained_figures, trained_network

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    scfg = search_config(sweep, point)
    tcfg = train_config(sweep, point)
    t0 = time.perf_counter()
    search_dir = folder / "search"
    genotype = run_search(scfg, search_dir,
                          resume=(search_dir / "checkpoint.pt").exists())
    t1 = time.perf_counter()
    train_dir = folder / "train"
    last = run_train(genotype, tcfg, train_dir, resume=(train_dir / "checkpoint.pt").exists())
    t2 = time.perf_counter()
    state = checkpoint.load(train_dir / "checkpoint.pt")
    context = CostContext.for_spec(scfg.arch,
                                   resolve=MultiplierResolver(tcfg.library).arithmetic)
    network = trained_network(genotype, tcfg, state["n_classes"])
    row = {"test_acc": float(last["test_acc"]),
           **trained_figures(genotype, tcfg, state["n_classes"], context),
           "search_s": round(t1 - t0, 2),
           "train_s": round(t2 - t1, 2), "genotype": json.loads(dumps_json(genotype)),
           "baseline": sweep.baseline}
    if sweep.baseline:
        base = evaluate_checkpoint(train_dir / "checkpoint.pt", [sweep.baseline])[0]
        fl = price_network(genotype, network, context, sweep.baseline)
        row.update(baseline_acc=float(base["test_acc"]),
                   baseline_energy_uj=fl.total("energy_pj") / 1e6)
    return row


# --------------------------------------------------------------------------------------------
# the whole sweep


def _ray(address: str | None, num_cpus: int | None):
    try:
        import ray
    except ImportError:
        raise HwcostError("hwcost sweep runs its points on Ray: pip install 'ray>=2.9' "
                          "(or pip install -e '.[sweep]')") from None
    if address and address != "auto":
        _check_reachable(address)
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if address:
            kwargs["address"] = address
        elif num_cpus:
            kwargs["num_cpus"] = num_cpus
        # a new local cluster turns on token authentication, Ray's default, and says so in
        # a line that asks nothing of the user; its other messages (a disabled or failing
        # authentication) still show
        logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
            lambda record: "Token authentication is enabled for this" not in record.getMessage())
        try:
            ray.init(**kwargs)
        except Exception as err:  # ConnectionError, RuntimeError, timeouts: all one message
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise HwcostError(f"cannot reach {where}: {type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens on (``ray.init`` would retry for minutes)."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise HwcostError(f"--address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    labels = host.strip("[]").split(".")
    if len(host) > 253 or any(len(label) > 63 for label in labels) or int(port) > 65535:
        raise HwcostError(f"--address {address[:120]!r}: not a host name (a label of at most "
                          "63 characters, 253 in all) and port (at most 65535)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, UnicodeError) as err:
        raise HwcostError(f"cannot reach the Ray cluster at {address}: {err.strerror or err}")\
            from None


def _remote_point(sweep_dict: dict, point_dict: dict, folder: str, threads: int) -> dict:
    sweep = Sweep(**{k: v for k, v in sweep_dict.items() if k != "points"})
    return run_point(sweep, Point(**point_dict), folder, threads)


def run_sweep(sweep: Sweep, out: str | Path, address: str | None = None,
              num_cpus: int | None = None, progress=None,
              threads: int | None = None) -> list[dict]:
    """Run every point not finished yet on Ray; write the table and the plot; return rows.
    ``threads``: torch threads of each point (default: the point's ``resources.cpus``)."""
    out = Path(out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    todo = []
    for p in sweep.points:
        done = out / "points" / p.id / "result.json"
        if done.exists():
            rows[p.id] = json.loads(done.read_text())
            if progress:
                progress(rows[p.id])
        else:
            todo.append(p)
    if todo:
        ray = _ray(address, num_cpus)
        task = ray.remote(num_cpus=sweep.cpus, num_gpus=sweep.gpus)(_remote_point)
        sweep_dict = {k: v for k, v in asdict(sweep).items() if k != "points"}
        pending = {task.remote(sweep_dict, asdict(p), str(out / "points" / p.id),
                               threads or max(1, int(sweep.cpus))): p for p in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                p = pending.pop(ref)
                try:
                    rows[p.id] = ray.get(ref)
                except Exception as err:  # the worker itself died
                    rows[p.id] = {"point": p.id, **_grid_columns(p), "status": "failed",
                                  "error": f"{type(err).__name__}: {err}"}
                if progress:
                    progress(rows[p.id])
    ordered = [rows[p.id] for p in sweep.points]
    write_results(ordered, out)
    return ordered


def write_results(rows: list[dict], out: Path) -> None:
    """``results.json``, ``results.csv`` and ``pareto.png``, each written atomically."""
    import csv
    import io

    atomic_write_text(out / "results.json", json.dumps(rows, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RESULT_FIELDS), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (json.dumps(r[k]) if isinstance(r.get(k), dict) else r.get(k))
                         for k in RESULT_FIELDS})
    atomic_write_text(out / "results.csv", buf.getvalue())
    plot_pareto(rows, out / "pareto.png")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (energy, accuracy) points no other point beats on both (lower energy,
    higher accuracy), sorted by energy."""
    front = []
    for i, (e, a) in enumerate(points):
        dominated = any((e2 <= e and a2 >= a) and (e2 < e or a2 > a)
                        for j, (e2, a2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _label_groups(points: list[tuple[float, float]], span: tuple[float, float]
                  ) -> list[tuple[tuple[float, float], list[int]]]:
    """Points that would print on top of each other (within 1 % of each axis's span), with
    their 0-based indices: one label per group ("1, 3") instead of overlapping numbers."""
    groups: list[tuple[tuple[float, float], list[int]]] = []
    for i, (x, y) in enumerate(points):
        for (gx, gy), members in groups:
            if abs(gx - x) <= 0.01 * span[0] and abs(gy - y) <= 0.01 * span[1]:
                members.append(i)
                break
        else:
            groups.append(((x, y), [i]))
    return groups


def plot_pareto(rows: list[dict], path: Path) -> None:
    """Accuracy against energy: every grid point numbered and listed in the legend with its
    multiplier setting and energy weight, the Pareto front, and, in a panel of its own with
    its own energy axis, each point's network run in the float baseline (same number and
    colour), so that neither cluster is squeezed into a corner of one wide axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.get("status") == "done"]
    base = [r for r in done if r.get("baseline_energy_uj") is not None]
    panels = 2 if base else 1
    fig, axes = plt.subplots(1, panels, figsize=(8.0 if base else 6.4, 4.6), sharey=True,
                             squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1.4][:panels]})
    ax = axes[0][0]
    colour = plt.get_cmap("tab10")
    pts = [(r["energy_uj"], r["test_acc"]) for r in done]
    accs = [a for _, a in pts] + [r["baseline_acc"] for r in base]
    y_span = (max(accs) - min(accs)) if accs else 1.0
    for k, (r, (e, a)) in enumerate(zip(done, pts)):
        ax.scatter(e, a, color=colour(k % 10), s=40, zorder=3,
                   label=f"{k + 1}: {r['multipliers']}, energy weight {r.get('energy_weight')}")
    if pts:
        front = pareto_front(pts)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "-", c="tab:red",
                lw=1, zorder=2, label="Pareto front")
        xs = [e for e, _ in pts]
        for (x, y), members in _label_groups(pts, (max(xs) - min(xs) or 1.0, y_span or 1.0)):
            ax.annotate(", ".join(str(i + 1) for i in members), (x, y), xytext=(5, 4),
                        textcoords="offset points", fontsize=8)
    ax.set_xlabel("energy per image (uJ)")
    ax.set_ylabel("test accuracy")
    ax.set_title("approximate networks")
    ax.grid(alpha=0.3)
    if base:
        bx = axes[0][1]
        bpts = [(r["baseline_energy_uj"], r["baseline_acc"]) for r in base]
        for r, (e, a) in zip(base, bpts):
            bx.scatter(e, a, color=colour(done.index(r) % 10), marker="s", s=36, zorder=3)
        xs = [e for e, _ in bpts]
        for (x, y), members in _label_groups(bpts, (max(xs) - min(xs) or 1.0, y_span or 1.0)):
            bx.annotate(", ".join(str(done.index(base[i]) + 1) for i in members), (x, y),
                        xytext=(5, 4), textcoords="offset points", fontsize=8)
        bx.set_xlabel("energy per image (uJ)")
        bx.set_title(f"the same networks in {base[0]['baseline']}")
        bx.grid(alpha=0.3)
        bx.margins(x=0.25)
    if pts:
        fig.legend(*ax.get_legend_handles_labels(), loc="upper center", fontsize=8,
                   ncol=2, bbox_to_anchor=(0.5, 0.0), frameon=False)
    fig.suptitle("test accuracy against energy per image")
    fig.tight_layout()
    buf = __import__("io").BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
