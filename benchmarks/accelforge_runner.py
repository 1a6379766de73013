"""Run AccelForge's mapper on one spec and write what it found as JSON (Python >= 3.12).

This script is the half of ``accelforge_bridge.py`` that runs inside AccelForge's own
interpreter (PyPI ``accelforge`` needs Python >= 3.12; hwcost supports older ones), so it
imports nothing from hwcost and hwcost imports nothing from AccelForge: the bridge writes a
request file, runs ``python accelforge_runner.py REQUEST.json RESULT.json`` in a scratch
directory and reads the result back.

Request (JSON)::

    {"spec_yaml": "arch: ...\\nworkload: ...",   # an AccelForge spec (YAML with !tags)
     "metrics": ["energy"],         # any of energy, latency, edp; several: a Pareto set
     "options": {"timeloop_style_even": false, "explore_loop_orders": true,
                 "max_pmapping_templates_per_einsum": null, "n_jobs": 1},
     "detail": true}                # re-evaluate each mapping for energy/latency/actions

Result (JSON)::

    {"ok": true, "accelforge_version": "...", "map_s": 12.3, "detail_s": 0.4,
     "rows": [{"objective": {"energy": ...}, "energy": ..., "latency": ...,
               "actions": [[component, tensor, action, count], ...],
               "energies": [[component, tensor, action, pJ], ...],
               "mapping": [{"node": "storage", "component": "GLB", "tensors": ["A"]},
                           {"node": "temporal", "rank_variable": "m", "loop_bound": 4,
                            "tile_shape": 2},
                           {"node": "spatial", "rank_variable": "k", "component": "PE",
                            "axis": "X", "loop_bound": 2, "tile_shape": 1},
                           {"node": "compute", "component": "MAC"}, ...]}, ...],
     "templates": 17}
    {"ok": false, "error": "one line", "traceback": "..."}

Mapping nodes are listed from the outermost down, as AccelForge's loop tree prints them;
reservations are left out.  Loop bounds are AccelForge's ``calculated_n_iterations``.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

METRIC_NAMES = {"energy": "ENERGY", "latency": "LATENCY", "edp": "ENERGY_DELAY_PRODUCT"}
SEP = "<SEP>"


def _num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _mapping_nodes(mapping) -> list[dict]:
    from accelforge.frontend.mapping import Compute, Spatial, Storage, Temporal, Toll

    out = []
    for n in mapping.nodes:
        if isinstance(n, (Storage, Toll)):
            out.append({"node": "storage" if isinstance(n, Storage) else "toll",
                        "component": n.component, "tensors": [str(t) for t in n.tensors]})
        elif isinstance(n, (Temporal, Spatial)):
            pattern = getattr(n, "tile_pattern", None)
            bound = getattr(pattern, "calculated_n_iterations", None)
            if bound is None:
                bound = getattr(n, "_calculated_n_iterations", None)
            node = {"node": "temporal" if isinstance(n, Temporal) else "spatial",
                    "rank_variable": str(n.rank_variable), "loop_bound": _num(bound),
                    "tile_shape": _num(getattr(n, "tile_shape", None)),
                    "initial_tile_shape": _num(getattr(pattern, "initial_tile_shape", None))}
            if isinstance(n, Spatial):
                node["component"] = n.component
                node["axis"] = str(n.name)
            out.append(node)
        elif isinstance(n, Compute):
            out.append({"node": "compute", "component": n.component})
    return out


def _row_figures(row: dict) -> dict:
    fig = {"actions": [], "energies": []}
    for key, value in row.items():
        parts = str(key).split(SEP)
        if parts[0] == "Total" and len(parts) == 2 and parts[1] != "mapping":
            v = _num(value)
            if v is not None:
                fig[parts[1]] = v
        elif len(parts) == 5 and parts[1] in ("action", "energy"):
            v = _num(value)
            if v is not None:
                fig["actions" if parts[1] == "action" else "energies"].append(
                    [parts[2], parts[3], parts[4], v])
        elif len(parts) == 3 and parts[1] == "latency":
            v = _num(value)
            if v is not None:
                fig.setdefault("latency_by_component", {})[parts[2]] = v
    return fig


def run(request: dict) -> dict:
    import importlib.metadata
    from copy import deepcopy

    import accelforge as af
    from accelforge.frontend.mapper.metrics import Metrics
    from accelforge.mapper.FFM.main import map_workload_to_arch
    from accelforge.util.parallel import set_n_parallel_jobs

    opts = request.get("options") or {}
    set_n_parallel_jobs(int(opts.get("n_jobs", 1)))
    spec_file = Path("spec.yaml")
    spec_file.write_text(request["spec_yaml"])
    spec = af.Spec.from_yaml(str(spec_file))

    metrics = None
    for name in request.get("metrics") or ["energy"]:
        m = getattr(Metrics, METRIC_NAMES[name])
        metrics = m if metrics is None else metrics | m
    spec.mapper.metrics = metrics
    if opts.get("timeloop_style_even"):
        spec.mapper._timeloop_style_even = True
    if "explore_loop_orders" in opts:
        spec.mapper.explore_loop_orders = bool(opts["explore_loop_orders"])
    if opts.get("max_pmapping_templates_per_einsum"):
        spec.mapper.max_pmapping_templates_per_einsum = int(
            opts["max_pmapping_templates_per_einsum"])

    t0 = time.perf_counter()
    mappings = map_workload_to_arch(spec, print_progress=False, eval_in_detail=False)
    map_s = time.perf_counter() - t0

    rows = []
    detail_s = 0.0
    for i in range(len(mappings.data)):
        base = mappings.data.iloc[i]
        row = {"objective": {k.split(SEP)[1]: _num(v) for k, v in base.items()
                             if str(k).startswith("Total" + SEP) and "mapping" not in str(k)}}
        mapping_fn = base["Total" + SEP + "mapping"]
        row["mapping"] = _mapping_nodes(mapping_fn())
        if request.get("detail", True):
            t1 = time.perf_counter()
            try:
                from accelforge.model.main import evaluate_mapping

                local = deepcopy(spec)
                local.model.metrics = local.mapper.info_metrics
                local.mapping = mapping_fn(_for_model=True)
                detailed = evaluate_mapping(local, flattened_arches=mappings.flattened_arches,
                                            evaluated_specs=mappings.evaluated_specs)
                row.update(_row_figures(detailed.data.iloc[0].to_dict()))
            except Exception as exc:          # keep the mapper's answer without the detail
                row["detail_error"] = f"{type(exc).__name__}: {exc}"
            detail_s += time.perf_counter() - t1
        rows.append(row)

    try:
        version = importlib.metadata.version("accelforge")
    except Exception:
        version = None
    return {"ok": True, "accelforge_version": version, "map_s": map_s, "detail_s": detail_s,
            "rows": rows}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: accelforge_runner.py REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[1]).read_text())
    try:
        result = run(request)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result = {"ok": False, "error": f"{type(exc).__name__}: {first}"[:500],
                  "traceback": traceback.format_exc()[-4000:]}
    Path(argv[2]).write_text(json.dumps(result))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
