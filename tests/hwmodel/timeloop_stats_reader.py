"""Read Timeloop's own text outputs: ``timeloop-{model,mapper}.stats.txt`` and ``.map.txt``.

Test helper, not part of hwcost: it turns the reference outputs of real Timeloop runs
(``exercises/*/``, ``timeloop_ref/*/``, ``timeloop_designs/*/``) into data the tests compare
hwcost with.

* :func:`read_stats` parses a stats report into the structure the ``expected.json`` files
  use: ``summary``, ``arithmetic``, ``levels`` (innermost first, each with its SPECS, loop
  nest, cycles and ``dataspaces`` of per-instance scalar reads/fills/updates, utilized
  instances, partition size, energies, bandwidths), ``networks`` and
  ``operational_intensity``.  Every layout the exercises repository holds is read: the
  current one (``Compute energy``, ``Bandwidth Consumption Scale``, leakage and power-gating
  lines, ``fJ/Compute``), the 2020-21 one (``Energy-per-op``, updates printed before fills,
  populated ``Networks`` section, ``pJ/Compute``) and anything in between; a field the
  table below does not know is kept under its name in snake case.  Printed ``-`` becomes
  ``None``; units are dropped (energies in pJ, bandwidths in words/cycle).
* :func:`read_mapping` turns the loop nest Timeloop printed into Timeloop mapping
  directives (``target``, ``type`` temporal/spatial/bypass, ``factors`` such as ``"Q=7
  P=1"``, ``permutation`` innermost first, ``split``, ``keep``/``bypass``) that
  :func:`hwmodel.mapping_yaml.load_mapping` reads once dumped to YAML.  It reads both the
  per-level ``Loop nest:`` blocks of a stats report and the ``| for ...`` nest of a
  ``map.txt`` (level headers with the data spaces kept, container pseudo levels
  ``inter_<name>_spatial`` with their ``(Spatial-X/Y)`` loops).  A stats report does not
  print the container pseudo levels of a v0.4 architecture, so the spatial loops of such a
  design are only in its ``map.txt``; :func:`read_mapping` on that stats report returns the
  temporal loops and data spaces only (``spatial_complete`` in :func:`read_mapping_info`
  says which).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = [
    "directives_from_text",
    "parse_mapping",
    "parse_stats",
    "read_mapping",
    "read_mapping_info",
    "read_stats",
]

# printed field name -> key in expected.json
_ARITH_KEYS = {
    "Word bits": "word_bits",
    "Instances": "instances",
    "Compute energy": "compute_energy_pj",
    "Energy-per-op": "compute_energy_pj",
    "Utilized instances": "utilized_instances",
    "Computes (total)": "computes",
    "Cycles": "cycles",
    "Energy (total)": "energy_total_pj",
    "Area (total)": "area_total_um2",
}
_LEVEL_KEYS = {
    "Technology": "technology",
    "Size": "size",
    "Word bits": "word_bits",
    "Block size": "block_size",
    "Cluster size": "cluster_size",
    "Instances": "instances",
    "Shared bandwidth": "shared_bandwidth",
    "Read bandwidth": "read_bandwidth",
    "Write bandwidth": "write_bandwidth",
    "Multiple buffering": "multiple_buffering",
    "Effective size": "effective_size",
    "Min utilization": "min_utilization",
    "Vector access energy": "vector_access_energy_pj",
    "Vector access energy source": "vector_access_energy_source",
    "Per-instance-cycle leakage": "per_instance_cycle_leakage_pj",
    "Instances sharing power gating": "instances_sharing_power_gating",
    "Non-power-gated utilization": "non_power_gated_utilization_pct",
    "Leakage energy (total)": "leakage_energy_total_pj",
    "Area": "area_um2",
    "Cycles": "cycles",
    "Bandwidth throttling": "bandwidth_throttling",
}
_DS_KEYS = {
    "Partition size": "partition_size",
    "Utilized capacity": "utilized_capacity",
    "Utilized instances (max)": "utilized_instances",
    "Utilized clusters (max)": "utilized_clusters",
    "Scalar reads (per-instance)": "reads",
    "Scalar fills (per-instance)": "fills",
    "Scalar updates (per-instance)": "updates",
    "Temporal reductions (per-instance)": "temporal_reductions",
    "Address generations (per-cluster)": "address_generations",
    "Energy (per-scalar-access)": "energy_per_scalar_access_pj",
    "Energy (per-instance)": "energy_per_instance_pj",
    "Energy (total)": "energy_total_pj",
    "Temporal Reduction Energy (per-instance)": "temporal_reduction_energy_per_instance_pj",
    "Temporal Reduction Energy (total)": "temporal_reduction_energy_total_pj",
    "Address Generation Energy (per-cluster)": "address_generation_energy_per_cluster_pj",
    "Address Generation Energy (total)": "address_generation_energy_total_pj",
    "Bandwidth Consumption Scale": "bandwidth_consumption_scale",
    "Shared Bandwidth (per-instance)": "shared_bandwidth_per_instance",
    "Shared Bandwidth (total)": "shared_bandwidth_total",
    "Read Bandwidth (per-instance)": "read_bandwidth_per_instance",
    "Read Bandwidth (total)": "read_bandwidth_total",
    "Write Bandwidth (per-instance)": "write_bandwidth_per_instance",
    "Write Bandwidth (total)": "write_bandwidth_total",
}
_OI_KEYS = {
    "Total elementwise ops": "total_elementwise_ops",
    "Total reduction ops": "total_reduction_ops",
    "Total ops": "total_ops",
    "Total memory accesses required": "total_memory_accesses_required",
    "Optimal Op per Byte": "optimal_op_per_byte",
    "Total scalar accesses": "total_scalar_accesses",
    "Op per Byte": "op_per_byte",
}
_SUMMARY_KEYS = {
    "GFLOPs (@1GHz)": "gflops_at_1ghz",
    "Utilization": "utilization_pct",
    "Cycles": "cycles",
    "Energy": "energy_uJ_printed",
    "EDP(J*cycle)": "edp_j_cycle",
    "Area": "area_mm2",
    "Computes": "computes",
}
_UNITS = ("words/cycle", "pJ/b/mm", "um^2", "mm^2", "pJ", "fJ", "uJ", "%")

_FIELD = re.compile(r"^(\s+)(\S.*?)\s*: ?(.*)$")
_LOOP = re.compile(r"for (\w+) in \[(-?\d+):(-?\d+)\)(?: \(Spatial-([XY])\))?")
_MESH = re.compile(r"^(\d+)\s*\((\d+)\*(\d+)\)$")


def _snake(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower()
    return s or "field"


def _value(text: str) -> Any:
    """A printed value: int, float, None for ``-``, else the text (units dropped)."""
    t = text.strip()
    for unit in _UNITS:
        if t.endswith(unit):
            t = t[: -len(unit)].strip()
            break
    if t in ("-", ""):
        return None
    if re.fullmatch(r"-?\d+", t):
        return int(t)
    try:
        return float(t)
    except ValueError:
        return text.strip()


def _instances(rec: dict, text: str) -> None:
    m = _MESH.match(text.strip())
    if m:
        rec["instances"] = int(m.group(1))
        rec["mesh"] = [int(m.group(2)), int(m.group(3))]
    else:
        rec["instances"] = _value(text)


def _key(table: dict[str, str], name: str) -> str:
    return table.get(name) or _snake(name)


def _split_sections(lines: list[str]) -> dict[str, list[str]]:
    """Top-level sections by their underlined titles."""
    titles = ("Buffer and Arithmetic Levels", "Networks", "Operational Intensity Stats",
              "Summary Stats")
    out: dict[str, list[str]] = {}
    current: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() in titles and nxt.startswith("---") and not line.startswith(" "):
            current = line.strip()
            out[current] = []
            i += 2
            continue
        if current is not None:
            out[current].append(line)
        i += 1
    return out


def _parse_levels(lines: list[str]) -> tuple[dict | None, list[dict]]:
    arithmetic: dict | None = None
    levels: list[dict] = []
    blocks: list[tuple[int, list[str]]] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^Level (\d+)$", lines[i])
        if m and i + 1 < len(lines) and lines[i + 1].startswith("---"):
            blocks.append((int(m.group(1)), []))
            i += 2
            continue
        if blocks:
            blocks[-1][1].append(lines[i])
        i += 1
    for number, body in blocks:
        rec = _parse_level(number, body)
        if rec.pop("_arithmetic"):
            arithmetic = rec
        else:
            levels.append(rec)
    return arithmetic, levels


def _parse_level(number: int, body: list[str]) -> dict:
    rec: dict[str, Any] = {"level": number}
    name = next((m.group(1) for line in body if (m := re.match(r"^=== (.+) ===$", line))), None)
    rec["name"] = name
    part = None          # SPECS / MAPPING / STATS
    ds: dict | None = None
    in_nest = False
    arithmetic = not any(line.strip().startswith("Technology") for line in body)
    table = _ARITH_KEYS if arithmetic else _LEVEL_KEYS
    if not arithmetic:
        rec["loop_nest"] = []
        rec["dataspaces"] = {}
    for idx, line in enumerate(body):
        stripped = line.strip()
        nxt = body[idx + 1].strip() if idx + 1 < len(body) else ""
        if stripped in ("SPECS", "MAPPING", "STATS") and nxt.startswith("---"):
            part, ds, in_nest = stripped, None, False
            continue
        if not stripped or stripped.startswith("---") or stripped.startswith("==="):
            continue
        if part == "MAPPING":
            if stripped == "Loop nest:":
                in_nest = True
            elif in_nest and stripped.startswith("for "):
                rec["loop_nest"].append(stripped)
            continue
        if part == "STATS" and not arithmetic and re.match(r"^    \S[^:]*:$", line):
            ds = rec["dataspaces"].setdefault(stripped[:-1], {})
            continue
        m = _FIELD.match(line)
        if not m:
            continue
        label, text = m.group(2), m.group(3)
        if ds is not None and len(m.group(1)) >= 8:
            if label.startswith("@"):          # network-style sub-entries, kept as text
                ds.setdefault("extra", {})[label] = _value(text)
            else:
                ds[_key(_DS_KEYS, label)] = _value(text)
            continue
        if label == "Instances":
            _instances(rec, text)
        else:
            rec[_key(table, label)] = _value(text)
    rec["_arithmetic"] = arithmetic
    return rec


def _parse_networks(lines: list[str]) -> list[dict]:
    nets: list[dict] = []
    net: dict | None = None
    part = None
    ds: dict | None = None
    for idx, line in enumerate(lines):
        stripped = line.strip()
        nxt = lines[idx + 1].strip() if idx + 1 < len(lines) else ""
        m = re.match(r"^Network (\d+)$", line)
        if m and nxt.startswith("---"):
            net = {"network": int(m.group(1)), "name": None, "specs": {}, "dataspaces": {}}
            nets.append(net)
            part, ds = None, None
            continue
        if net is None or not stripped or stripped.startswith("---"):
            continue
        if net["name"] is None and not line.startswith(" "):
            net["name"] = stripped
            continue
        if stripped in ("SPECS", "STATS") and nxt.startswith("---"):
            part, ds = stripped, None
            continue
        if part == "STATS" and re.match(r"^    \S[^:]*:$", line):
            ds = net["dataspaces"].setdefault(stripped[:-1], {})
            continue
        f = _FIELD.match(line)
        if not f:
            continue
        target = ds if (part == "STATS" and ds is not None) else net["specs"]
        target[_snake(f.group(2))] = _value(f.group(3))
    return nets


def _parse_oi(lines: list[str]) -> dict:
    out: dict[str, Any] = {"per_level": []}
    current: dict | None = None
    for line in lines:
        m = re.match(r"^=== (.+) ===$", line)
        if m:
            current = {"name": m.group(1)}
            out["per_level"].append(current)
            continue
        f = _FIELD.match(line)
        if f:
            (current if current is not None else out)[_key(_OI_KEYS, f.group(2))] = \
                _value(f.group(3))
    return out


def _parse_summary(lines: list[str]) -> dict:
    out: dict[str, Any] = {}
    per_compute: dict[str, Any] | None = None
    for line in lines:
        if not line.strip():
            continue
        m = re.match(r"^(\w+)/(\w+)$", line.strip())
        if m and not line.startswith(" "):
            per_compute = {}
            out[f"{m.group(1).lower()}_per_{m.group(2).lower()}"] = per_compute
            continue
        if line.startswith(" ") and per_compute is not None and "=" in line:
            name, value = line.split("=", 1)
            per_compute[name.strip()] = _value(value)
            continue
        sep = " = " if " = " in line else ": "
        if sep in line:
            name, value = line.split(sep, 1)
            out[_key(_SUMMARY_KEYS, name.strip())] = _value(value)
    computes = out.get("computes")
    if isinstance(computes, int):
        if "Total" in out.get("fj_per_compute", {}):
            out["total_energy_pj_from_fj"] = out["fj_per_compute"]["Total"] * computes / 1000
        if "Total" in out.get("pj_per_compute", {}):
            out["total_energy_pj_from_pj"] = out["pj_per_compute"]["Total"] * computes
    return out


def parse_stats(text: str) -> dict:
    """:func:`read_stats` on the text of a stats report."""
    lines = text.splitlines()
    sections = _split_sections(lines)
    if "Buffer and Arithmetic Levels" not in sections:
        raise ValueError("not a Timeloop stats report (no 'Buffer and Arithmetic Levels')")
    arithmetic, levels = _parse_levels(sections["Buffer and Arithmetic Levels"])
    summary = _parse_summary(sections.get("Summary Stats", []))
    if arithmetic is not None and "computes" not in arithmetic and "computes" in summary:
        arithmetic["computes"] = summary["computes"]
    return {
        "summary": summary,
        "arithmetic": arithmetic,
        "levels": levels,
        "networks": _parse_networks(sections.get("Networks", [])),
        "operational_intensity": _parse_oi(sections.get("Operational Intensity Stats", [])),
    }


def read_stats(path: str | Path) -> dict:
    """The figures of a ``timeloop-{model,mapper}.stats.txt``, as in ``expected.json``."""
    return parse_stats(Path(path).read_text())


# ---------------------------------------------------------------------------------------
# mappings


def _nest_from_stats(text: str) -> tuple[list[dict], bool]:
    stats = parse_stats(text)
    levels = []
    for lv in reversed(stats["levels"]):            # outermost first
        loops = [m.groups() for line in lv.get("loop_nest", [])
                 if (m := _LOOP.match(line))]
        levels.append({"name": lv["name"], "keep": list(lv.get("dataspaces", {})),
                       "loops": [(d, int(hi) - int(lo), sp) for d, lo, hi, sp in loops]})
    numbers = [lv["level"] for lv in stats["levels"]]
    # container pseudo levels are not printed: their numbers are missing
    complete = numbers == list(range(1, len(numbers) + 1))
    return levels, complete


def _nest_from_map(lines: list[str]) -> tuple[list[dict], bool]:
    levels: list[dict] = []
    for line in lines:
        head = re.match(r"^(\S+) \[(.*)\]\s*$", line)
        if head:
            keep = re.findall(r"(\w+):\S+(?: \(\S+\))?", head.group(2))
            levels.append({"name": head.group(1), "keep": keep, "loops": []})
            continue
        m = _LOOP.search(line)
        if m and levels and line.lstrip().startswith(("|", "for")):
            d, lo, hi, sp = m.groups()
            levels[-1]["loops"].append((d, int(hi) - int(lo), sp))
    return levels, True


def parse_mapping(text: str) -> tuple[list[dict], bool]:
    """Per level (outermost first): name, data spaces kept, loops (dim, bound, X/Y/None);
    and whether container pseudo levels (spatial loops) are included."""
    lines = text.splitlines()
    if "Buffer and Arithmetic Levels" in text:
        return _nest_from_stats(text)
    return _nest_from_map(lines)


def _perm(dims: list[str]) -> str:
    return "".join(dims) if all(len(d) == 1 for d in dims) else " ".join(dims)


def _directives(levels: list[dict]) -> list[dict]:
    all_ds: list[str] = []
    for lv in levels:
        for ds in lv["keep"]:
            if ds not in all_ds:
                all_ds.append(ds)
    out: list[dict] = []
    for lv in levels:
        temporal = [(d, n) for d, n, sp in lv["loops"] if sp is None]
        xs = [(d, n) for d, n, sp in lv["loops"] if sp == "X"]
        ys = [(d, n) for d, n, sp in lv["loops"] if sp == "Y"]
        pseudo = lv["name"].startswith("inter_") and lv["name"].endswith("_spatial")
        if temporal or not pseudo:
            factors: dict[str, int] = {}
            for d, n in temporal:
                factors[d] = factors.get(d, 1) * n
            order = [d for d, _n in reversed(temporal)]     # innermost first
            perm = list(dict.fromkeys(order))
            directive: dict[str, Any] = {"target": lv["name"], "type": "temporal"}
            if factors:
                directive["factors"] = " ".join(f"{d}={n}" for d, n in factors.items())
                directive["permutation"] = _perm(perm)
            out.append(directive)
        if xs or ys:
            factors = {}
            for d, n in xs + ys:
                factors[d] = factors.get(d, 1) * n
            x_perm = list(dict.fromkeys(d for d, _n in reversed(xs)))
            y_perm = [d for d in dict.fromkeys(d for d, _n in reversed(ys)) if d not in x_perm]
            perm = x_perm + y_perm
            out.append({"target": lv["name"], "type": "spatial",
                        "factors": " ".join(f"{d}={n}" for d, n in factors.items()),
                        "permutation": _perm(perm), "split": len(x_perm)})
        if not pseudo:
            out.append({"target": lv["name"], "type": "bypass", "keep": list(lv["keep"]),
                        "bypass": [ds for ds in all_ds if ds not in lv["keep"]]})
    return out


def directives_from_text(text: str) -> tuple[list[dict], bool]:
    """Mapping directives of the loop nest in a stats report's or map.txt's text, and
    whether its spatial loops are complete (see :func:`read_mapping_info`)."""
    levels, complete = parse_mapping(text)
    return _directives(levels), complete


def read_mapping_info(path: str | Path) -> dict:
    """:func:`read_mapping` plus what it was read from: ``{"directives", "levels",
    "spatial_complete"}`` (``spatial_complete`` is False for a stats report, which does not
    print container pseudo levels)."""
    levels, complete = parse_mapping(Path(path).read_text())
    return {"directives": _directives(levels), "levels": levels,
            "spatial_complete": complete}


def read_mapping(path: str | Path) -> list[dict]:
    """Timeloop mapping directives (outermost level first) of the loop nest printed in a
    ``stats.txt`` or ``map.txt``; dump them under ``mapping:`` for ``load_mapping``."""
    return read_mapping_info(path)["directives"]
