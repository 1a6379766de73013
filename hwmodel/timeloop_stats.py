"""The evaluation of one mapping in the layout of Timeloop's ``timeloop-model.stats.txt``.

Users who know Timeloop compare its reports line by line; printing ours in the same layout
(levels from the MAC outwards, the same section titles, field names and two-decimal
numbers) lets them ``diff`` the two files.  Every field is hwcost's own figure; the ones
hwcost does not model are left out rather than faked: area (no area model for memories
and the ``Area`` lines), networks (no NoC energy, as Timeloop's default; the section is
printed empty), per-cluster figures beyond cluster size 1.  Differences that remain by
design: ``Partition size`` of data spaces with halos (Timeloop prints a proportional
share of its parent's partition, hwcost the distinct words an instance holds; no count
depends on it for read-only data), and ``Technology`` prints the memory class.
"""

from __future__ import annotations

from .arch import Architecture
from .mapping import Mapping
from .model import EvalResult, LevelStats
from .workload import Workload, footprint

_W_SPEC = 32    # width of the label column in a storage level's SPECS
_W_DS = 41      # ... in a data space's STATS
_W_OI = 40      # ... in the operational intensity block


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _count(value: float) -> str:
    return str(round(value))


def _row(indent: int, label: str, width: int, value: str) -> str:
    return f"{' ' * indent}{label.ljust(width)}: {value}"


def _loop_lines(level_mapping, indent: int) -> list[str]:
    lines = []
    pad = " " * indent
    for d, f in level_mapping.temporal:
        lines.append(f"{pad}for {d} in [0:{f})")
        pad += "  "
    for axis, loops in (("X", level_mapping.spatial_x), ("Y", level_mapping.spatial_y)):
        for d, f in loops:
            lines.append(f"{pad}for {d} in [0:{f}) (Spatial-{axis})")
            pad += "  "
    return lines


def _level_number(arch: Architecture, mapping_levels: int) -> list[int]:
    """Timeloop numbers every level of its flattened hierarchy, containers included (they
    are dummy levels there, never printed): the MAC is 0, the innermost storage level 1."""
    numbers = [0] * mapping_levels
    n = 0
    for i in reversed(range(mapping_levels)):
        n += 1
        numbers[i] = n
        n += len(arch.levels[i].attributes.get("spatial_containers", []) or [])
    return numbers


def _words_per_cycle(count: float, cycles: float) -> float:
    return count / cycles if cycles else 0.0


def _dataspace_block(name: str, s, lv: LevelStats, level, cycles: float) -> list[str]:
    accesses = s.reads_per_instance + s.fills_per_instance + s.updates_per_instance
    per_instance = s.energy_pj / s.utilized_instances if s.utilized_instances else 0.0
    rw = s.updates_per_instance > 0
    temporal_reductions = s.reads_per_instance if rw else 0
    address_generations = (s.updates_per_instance if rw else s.reads_per_instance) \
        + s.fills_per_instance
    reads_bw = _words_per_cycle(s.reads_per_instance, cycles)
    writes_bw = _words_per_cycle(s.fills_per_instance + s.updates_per_instance, cycles)
    u = s.utilized_instances
    clusters = u if level.cluster_size == 1 else min(u, level.instances // level.cluster_size)
    rows = [
        ("Partition size", str(s.partition_words)),
        ("Utilized capacity", str(s.tile_words)),
        ("Utilized instances (max)", str(u)),
        ("Utilized clusters (max)", str(clusters)),
        ("Scalar reads (per-instance)", _count(s.reads_per_instance)),
        ("Scalar fills (per-instance)", _count(s.fills_per_instance)),
        ("Scalar updates (per-instance)", _count(s.updates_per_instance)),
        ("Temporal reductions (per-instance)", _count(temporal_reductions)),
        ("Address generations (per-cluster)", _count(address_generations)),
        ("Energy (per-scalar-access)", f"{_num(per_instance / accesses if accesses else 0)} pJ"),
        ("Energy (per-instance)", f"{_num(per_instance)} pJ"),
        ("Energy (total)", f"{_num(s.energy_pj)} pJ"),
        ("Temporal Reduction Energy (per-instance)", "0.00 pJ"),
        ("Temporal Reduction Energy (total)", "0.00 pJ"),
        ("Address Generation Energy (per-cluster)", "0.00 pJ"),
        ("Address Generation Energy (total)", "0.00 pJ"),
        ("Bandwidth Consumption Scale", "1.00"),
        ("Shared Bandwidth (per-instance)", f"{_num(reads_bw + writes_bw)} words/cycle"),
        ("Shared Bandwidth (total)", f"{_num((reads_bw + writes_bw) * u)} words/cycle"),
        ("Read Bandwidth (per-instance)", f"{_num(reads_bw)} words/cycle"),
        ("Read Bandwidth (total)", f"{_num(reads_bw * u)} words/cycle"),
        ("Write Bandwidth (per-instance)", f"{_num(writes_bw)} words/cycle"),
        ("Write Bandwidth (total)", f"{_num(writes_bw * u)} words/cycle"),
    ]
    return [f"    {name}:"] + [_row(8, label, _W_DS, value) for label, value in rows]


def _vector_energy(energy, level) -> tuple[float, str]:
    """The costliest action's row energy per instance of a cluster, as Timeloop prints it."""
    if energy is None:
        return 0.0, "-"
    best = max(("read", "write", "update"), key=lambda a: energy.per_vector(level.name, a))
    source = energy.source(level.name, best)
    return (energy.per_vector(level.name, best) / level.cluster_size,
            "ERT" if source.startswith("ERT") else source)


def format_stats(arch: Architecture, workload: Workload, mapping: Mapping,
                 result: EvalResult, energy=None) -> str:
    """``timeloop-model.stats.txt``-shaped text for ``result`` (see the module docstring)."""
    out = ["Buffer and Arithmetic Levels", "----------------------------"]
    cu = arch.compute
    mac_pj = energy.mac() if energy is not None else 0.0
    out += ["Level 0", "-------", f"=== {cu.name} ===", "", "    SPECS", "    -----",
            _row(4, "Word bits", 22, str(cu.datawidth)),
            _row(4, "Instances", 22, f"{cu.instances} ({cu.mesh_x}*{cu.mesh_y})"),
            _row(4, "Compute energy", 22, f"{_num(mac_pj)} pJ"), "", "    STATS", "    -----",
            _row(4, "Utilized instances", 24, str(result.macs_utilized)),
            _row(4, "Computes (total)", 24, str(result.computes)),
            _row(4, "Cycles", 24, _count(result.cycles)),
            _row(4, "Energy (total)", 24, f"{_num(result.mac_energy_pj)} pJ"), ""]
    numbers = _level_number(arch, len(arch.levels))
    for i in reversed(range(len(arch.levels))):
        lv, st, lm = arch.levels[i], result.levels[i], mapping.levels[i]
        vector_pj, vector_src = _vector_energy(energy, lv)
        leak = energy.leak_per_cycle(lv.name) if energy is not None else 0.0
        size = lv.capacity_words
        specs = [
            ("Technology", "DRAM" if "dram" in lv.component_class.lower() else "SRAM"),
            ("Size", "-" if size is None else str(size)),
            ("Word bits", str(lv.datawidth)),
            ("Block size", str(lv.block_size)),
            ("Cluster size", str(lv.cluster_size)),
            ("Instances", f"{lv.instances} ({lv.mesh_x}*{lv.mesh_y})"),
            ("Shared bandwidth", _num(lv.shared_bandwidth)),
            ("Read bandwidth", _num(lv.read_bandwidth)),
            ("Write bandwidth", _num(lv.write_bandwidth)),
            ("Multiple buffering", "1.00"),
            ("Effective size", "-" if size is None else str(size)),
            ("Min utilization", "0.00"),
            ("Vector access energy", f"{_num(vector_pj)} pJ"),
            ("Vector access energy source", vector_src),
            ("Per-instance-cycle leakage", f"{_num(leak)} pJ"),
            ("Instances sharing power gating", "1.00"),
            ("Non-power-gated utilization", "100.00%"),
            ("Leakage energy (total)", f"{_num(st.leakage_pj)} pJ"),
        ]
        out += [f"Level {numbers[i]}", "-" * len(f"Level {numbers[i]}"), f"=== {lv.name} ===",
                "", "    SPECS", "    -----"]
        out += [_row(8, label, _W_SPEC, value) for label, value in specs]
        out += ["", "    MAPPING", "    -------", "    Loop nest:"] + _loop_lines(lm, 6)
        out += ["", "    STATS", "    -----", _row(4, "Cycles", 21, _count(st.cycles)),
                _row(4, "Bandwidth throttling", 21, _num(st.bandwidth_throttling))]
        for name, s in st.dataspaces.items():
            out += _dataspace_block(name, s, st, lv, result.cycles)
        out.append("")
    # a MAC is one elementwise op; accumulating into an output that already holds a partial
    # sum is one reduction op (the first write of each output is not)
    outputs = sum(footprint(ds, workload.bounds) for ds in workload.data_spaces
                  if ds.read_write)
    ops = result.computes + max(0, result.computes - outputs)
    out += ["Networks", "--------", ""]
    out += _intensity(arch, workload, result, ops)
    out += _summary(arch, result, ops)
    return "\n".join(out) + "\n"


def _intensity(arch: Architecture, workload: Workload, result: EvalResult,
               ops: int) -> list[str]:
    required = 0
    for ds in workload.data_spaces:
        keeper = next(st for st in result.levels if ds.name in st.dataspaces)
        required += keeper.dataspaces[ds.name].tile_words
    outer_bits = arch.levels[0].datawidth
    out = ["Operational Intensity Stats", "---------------------------",
           _row(4, "Total elementwise ops", _W_OI, str(result.computes)),
           _row(4, "Total reduction ops", _W_OI, str(ops - result.computes)),
           _row(4, "Total ops", _W_OI, str(ops)),
           _row(4, "Total memory accesses required", _W_OI, str(required)),
           _row(4, "Optimal Op per Byte", _W_OI,
                _num(ops / (outer_bits * required / 8) if required else 0.0)), ""]
    for lv, st in zip(reversed(arch.levels), reversed(result.levels)):
        total = sum((s.reads_per_instance + s.fills_per_instance + s.updates_per_instance)
                    * s.utilized_instances for s in st.dataspaces.values())
        out.append(f"=== {lv.name} ===")
        if total > 0:
            out += [_row(4, "Total scalar accesses", _W_OI, _count(total)),
                    _row(4, "Op per Byte", _W_OI, _num(ops / (lv.datawidth * total / 8)))]
    return out + ["", ""]


def _summary(arch: Architecture, result: EvalResult, ops: int) -> list[str]:
    computes = result.computes or 1
    names = [arch.compute.name] + [lv.name for lv in reversed(result.levels)]
    energies = [result.mac_energy_pj] + [lv.energy_pj for lv in reversed(result.levels)]
    width = max(22, max(len(n) for n in names) + 1)
    out = ["Summary Stats", "-------------",
           f"GFLOPs (@1GHz): {_num(ops / result.cycles if result.cycles else 0.0)}",
           f"Utilization: {result.utilization * 100:.2f}%",
           f"Cycles: {_count(result.cycles)}",
           f"Energy: {result.energy_pj / 1e6:.2f} uJ",
           f"EDP(J*cycle): {result.energy_pj * 1e-12 * result.cycles:.2e}", "",
           f"Computes = {result.computes}", "fJ/Compute"]
    for name, pj in zip(names, energies):
        out.append(f"    {name.ljust(width)} = {pj * 1000 / computes:.2f}")
    out.append(f"    {'Total'.ljust(width)} = {result.energy_pj * 1000 / computes:.2f}")
    return out + [""]

