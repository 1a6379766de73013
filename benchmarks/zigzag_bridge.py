"""Run ZigZag (KU Leuven's DSE framework, PyPI ``zigzag-dse``) on an hwcost architecture.

An optional benchmark dependency: hwcost itself never imports this module.  It translates

* an hwcost :class:`~hwmodel.arch.Architecture` plus its :class:`~hwmodel.energy.EnergyTable`
  into ZigZag's hardware description (the dict ZigZag's own accelerator YAML parses to):
  one memory per storage level, innermost first, with its capacity, read and write ports,
  per-access read/write energies taken from the *same* energy table hwcost prices with, the
  operands it holds (hwcost's keep/bypass) and the operational-array dimensions it is shared
  over; and one operational-array dimension per spatial fan-out axis (X and Y of every
  fan-out stage, at most four), with the MAC energy of the table;
* an hwcost conv/FC :class:`~hwmodel.workload.Layer` (N C M P Q R S, strides, dilation,
  groups) into a ZigZag layer, ``O[b][g][k][oy][ox] += W[g][k][c][fy][fx] * I[b][g][c][iy][ix]``
  with ``iy = stride*oy + dilation*fy`` (P -> OY, R -> FY, Q -> OX, S -> FX, M -> K, N -> B);

then runs ZigZag's own mapper in memory (no files written): its spatial-mapping generator
(hwcost's spatial constraints become ZigZag's spatial-mapping hints) and its default LOMA
temporal-mapping search, keeping the minimal-energy result, and returns ZigZag's estimate
of that mapping.

Units, so that both tools price the same accesses with the same numbers
  ZigZag counts bits, hwcost counts words of each level's datawidth.  Every operand is given
  one unit of ``WORD_BITS`` bits here (psums included), so a ZigZag "bit count" is an hwcost
  word count times ``WORD_BITS``: each memory's capacity is ``capacity_words * WORD_BITS`` and
  its minimal port width is one row (``block_size`` words), priced at the table's per-row
  energy (``EnergyTable.per_vector``), which is how hwcost (like Timeloop) charges whole
  vector accesses.  The port's maximal width is the level's bandwidth in words per cycle
  (``UNBOUNDED_ROWS`` rows where hwcost sets none); ZigZag divides accesses by max/min width,
  so the per-access energy is scaled by the same ratio and a row still costs one row's energy.

Run directly for a one-layer smoke test:
``python benchmarks/zigzag_bridge.py --arch eyeriss``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from spatial_axes import axis_dims

from hwmodel.arch import Architecture, StorageLevel
from hwmodel.energy import EnergyTable
from hwmodel.workload import Layer

#: the optional requirement, for the "not installed" message
#: (``six``: zigzag-dse 3.9.1 imports it but does not declare it)
REQUIREMENTS = ("zigzag-dse==3.9.1", "six")
INSTALL_HINT = "pip install " + " ".join(REQUIREMENTS)

#: bits ZigZag is told one word of every operand has (see the module docstring)
WORD_BITS = 8
#: port width, in rows per cycle, given to a level hwcost models without a bandwidth limit
UNBOUNDED_ROWS = 16
#: capacity given to an unbounded level (DRAM), in bits
UNBOUNDED_BITS = 2**50

#: hwcost conv dims -> ZigZag layer dims (and back, for printing ZigZag's mappings)
DIM_TO_ZZ = {"N": "B", "G": "G", "C": "C", "M": "K", "P": "OY", "Q": "OX", "R": "FY", "S": "FX"}
ZZ_TO_DIM = {v: k for k, v in DIM_TO_ZZ.items()}
#: hwcost data spaces -> ZigZag memory operands (I1 activations, I2 weights, O outputs)
DS_TO_MEM_OP = {"Inputs": "I1", "Weights": "I2", "Outputs": "O"}
MEM_OP_LINKS = {"O": "O", "W": "I2", "I": "I1"}
CONV_EQUATION = "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]"


class ZigZagUnsupported(Exception):
    """The architecture or layer has something ZigZag's description cannot express."""


def zigzag_missing() -> str | None:
    """Why ZigZag cannot run here (``None`` when it can): not installed, or an import of
    the parts used here fails (zigzag-dse 3.9.1 imports ``six`` without declaring it)."""
    if importlib.util.find_spec("zigzag") is None:
        return f"ZigZag (PyPI zigzag-dse) is not installed; install it with: {INSTALL_HINT}"
    try:
        import zigzag.parser.upgraded_validator
        import zigzag.stages.main  # noqa: F401
    except ImportError as exc:
        return (f"ZigZag is installed but cannot be imported ({exc}); "
                f"install it with: {INSTALL_HINT}")
    return None


def zigzag_available() -> bool:
    return zigzag_missing() is None


def zigzag_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("zigzag-dse")
    except Exception:
        return None


@dataclass(frozen=True)
class ZigZagSettings:
    """ZigZag's search settings (the arguments of its ``get_hardware_performance_zigzag``)."""

    #: LOMA: loop prime factors kept per layer dim before permuting (ZigZag's default 6);
    #: the LOMA search is exhaustive over the orderings of those factors
    lpf_limit: int = 6
    #: spatial mappings generated per layer (the most utilizing ones; ZigZag's default 3)
    spatial_mappings: int = 3
    #: allow several layer dims on one array dimension (``C, R, S`` along X as hwcost does)
    mixed_spatial: bool = True
    #: ZigZag's temporal mapping type: "uneven" (its default) lets each operand change
    #: memory level at different loops
    temporal_mapping_type: str = "uneven"
    #: ZigZag's default: re-reading a word that stays at a memory's output is free
    access_same_data_as_no_access: bool = True

    def describe(self) -> str:
        return (f"ZigZag {zigzag_version() or '?'}: objective energy (MinimalEnergyStage), "
                f"LOMA temporal search with lpf_limit={self.lpf_limit}, "
                f"{self.temporal_mapping_type} temporal mapping, "
                f"{self.spatial_mappings} spatial mappings generated "
                f"({'mixed' if self.mixed_spatial else 'single-dim'} unrolling, hwcost's "
                "spatial constraints as hints), "
                f"access_same_data_considered_as_no_access={self.access_same_data_as_no_access}")


@dataclass
class OADim:
    """One ZigZag operational-array dimension: one axis of one hwcost fan-out stage."""

    name: str            # "D1".."D4"
    size: int
    level: int           # index of the hwcost storage level whose fan-out this is
    stage: str           # container name (or the level's) and axis, for printing
    hint: list[str]      # hwcost dims allowed along it


@dataclass
class ZigZagResult:
    energy_pj: float
    mac_energy_pj: float
    memory_energy_pj: float
    cycles: float
    ideal_cycles: float
    spatial: str
    temporal: str
    wall_s: float
    memory_pj: dict[str, float] = field(default_factory=dict)

    @property
    def utilization(self) -> float:
        return self.ideal_cycles / self.cycles if self.cycles else 0.0


# ---------------------------------------------------------------------------- hardware


def oa_dimensions(arch: Architecture) -> tuple[list[OADim], list[str]]:
    """The operational-array dimensions: every fan-out axis larger than 1, outermost first."""
    axes: list[OADim] = []
    notes: list[str] = []
    for i, lv in enumerate(arch.levels):
        if lv.fanout <= 1:
            continue
        stages = ([(c.name, c.mesh_x, c.mesh_y, c.spatial) for c in lv.containers]
                  if lv.containers else [(lv.name, lv.fanout_x, lv.fanout_y, lv.spatial)])
        if math.prod(mx * my for _, mx, my, _ in stages) != lv.fanout:
            raise ZigZagUnsupported(f"{lv.name}: fan-out stages do not multiply to its fan-out")
        for name, mx, my, cons in stages:
            xs, ys = axis_dims(cons, list(DIM_TO_ZZ), mx > 1 and my > 1)
            fixed = {d: f for d, f in (cons.factors.items() if cons else []) if f != 1}
            if fixed:
                notes.append(f"spatial factors fixed by {name}'s constraint ({fixed}) are not "
                             "passed to ZigZag (it has no per-dimension fixed unrolling hint)")
            for axis, size, dims in (("X", mx, xs), ("Y", my, ys)):
                if size > 1:
                    if not dims:
                        raise ZigZagUnsupported(f"{name} {axis}: no dimension may be unrolled")
                    axes.append(OADim(f"D{len(axes) + 1}", size, i, f"{name}.{axis}", dims))
    if len(axes) > 4:
        raise ZigZagUnsupported(f"{len(axes)} fan-out axes; ZigZag's mapping format allows "
                                "at most 4 operational-array dimensions (D1..D4)")
    if math.prod(a.size for a in axes) != arch.compute.instances:
        raise ZigZagUnsupported("the fan-outs do not multiply to the number of MACs")
    return axes, notes


def _ports(level: StorageLevel, operands: list[str]) -> tuple[list[dict], float, float]:
    """Read and write port of one memory, and the factors that turn a row's energy into
    ZigZag's per-access cost (ZigZag charges ``ceil(bits/min) * min/max`` accesses)."""
    block = level.block_size
    out = []
    scale = {}
    for kind, bw, allocation in (
            ("read", level.read_bandwidth,
             [f"{op}, tl" for op in operands] + (["O, th"] if "O" in operands else [])),
            ("write", level.write_bandwidth,
             [f"{op}, fh" for op in operands] + (["O, fl"] if "O" in operands else []))):
        max_words = block * UNBOUNDED_ROWS if bw is None else max(1, int(bw))
        min_words = min(block, max_words)
        out.append({"name": f"{kind[0]}_port_1", "type": kind,
                    "bandwidth_min": min_words * WORD_BITS,
                    "bandwidth_max": max_words * WORD_BITS, "allocation": allocation})
        # one access of min_words costs min_words/block rows; ZigZag counts min/max of one
        scale[kind] = max_words / block
    return out, scale["read"], scale["write"]


def accelerator_data(arch: Architecture, energy: EnergyTable) -> tuple[dict[str, Any], list[str]]:
    """ZigZag's accelerator description (as its YAML parses) and notes on what differs."""
    axes, notes = oa_dimensions(arch)
    memories: dict[str, dict[str, Any]] = {}
    for i in reversed(range(len(arch.levels))):          # ZigZag lists memories innermost first
        lv = arch.levels[i]
        keep = [ds for ds in ("Inputs", "Weights", "Outputs") if i == 0 or lv.may_keep(ds)]
        if not keep:
            continue
        if lv.keep is None and i > 0:
            notes.append(f"{lv.name}: hwcost's mapper may bypass it; ZigZag is given it for "
                         f"{', '.join(keep)} (ZigZag does not search bypass)")
        operands = [DS_TO_MEM_OP[ds] for ds in keep]
        ports, r_scale, w_scale = _ports(lv, operands)
        served = [a.name for a in axes if a.level >= i]
        expected = math.prod(a.size for a in axes if a.level < i)
        if lv.instances != expected:
            raise ZigZagUnsupported(f"{lv.name}: {lv.instances} instances, but the fan-outs "
                                    f"above it give {expected}")
        if energy.per_vector(lv.name, "update") != energy.per_vector(lv.name, "write"):
            notes.append(f"{lv.name}: ZigZag has one write cost; partial-sum updates are "
                         "priced as fills")
        cap = lv.capacity_words
        memories[lv.name] = {
            "size": UNBOUNDED_BITS if cap is None else cap * WORD_BITS,
            "r_cost": energy.per_vector(lv.name, "read") * r_scale,
            "w_cost": energy.per_vector(lv.name, "write") * w_scale,
            "area": 0.0,
            "latency": 1,
            "mem_type": "dram" if cap is None else "sram",
            "operands": operands,
            "ports": ports,
            "served_dimensions": served,
        }
        if energy.leak_per_cycle(lv.name):
            notes.append(f"{lv.name}: leakage is not modelled by ZigZag")
    data = {
        "name": arch.name,
        "memories": memories,
        "operational_array": {
            "unit_energy": energy.mac(),
            "unit_area": 0.0,
            "dimensions": [a.name for a in axes],
            "sizes": [a.size for a in axes],
        },
    }
    return data, notes


def mapping_data(arch: Architecture) -> list[dict[str, Any]]:
    """ZigZag's mapping input: no fixed spatial mapping, hwcost's spatial constraints as
    spatial-mapping hints, no temporal ordering (LOMA searches it)."""
    axes, _ = oa_dimensions(arch)
    return [{
        "name": "default",
        "spatial_mapping_hint": {a.name: [DIM_TO_ZZ[d] for d in a.hint] for a in axes},
        "memory_operand_links": dict(MEM_OP_LINKS),
    }]


# ---------------------------------------------------------------------------- workload

def layer_data(layer: Layer, layer_id: int = 0) -> dict[str, Any]:
    """ZigZag layer (as its workload YAML parses) of an hwcost conv/FC layer."""
    if layer.kind not in ("conv", "fc"):
        raise ZigZagUnsupported(f"{layer.name}: only conv/FC layers are compared")
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    sizes = {"N": layer.N, "G": layer.groups, "C": layer.C, "M": layer.M, "P": layer.P,
             "Q": layer.Q, "R": layer.R, "S": layer.S}
    ih, iw = layer.in_hw
    return {
        "id": layer_id,
        "name": f"layer{layer_id}",
        "operator_type": "Conv",
        "equation": CONV_EQUATION,
        "dimension_relations": [f"ix={sw}*ox+{dw}*fx", f"iy={sh}*oy+{dh}*fy"],
        "loop_dims": [DIM_TO_ZZ[d] for d in sizes],
        "loop_sizes": list(sizes.values()),
        # one word per operand (see the module docstring); psums too
        "operand_precision": {"I": WORD_BITS, "W": WORD_BITS, "O": WORD_BITS,
                              "O_final": WORD_BITS},
        "operand_source": {"I": layer_id, "W": layer_id},   # both constant: a lone layer
        # the input actually read (no padding), as hwcost counts it
        "pr_loop_dims": ["IX", "IY"],
        "pr_loop_sizes": [iw, ih],
        "padding": [[0, 0], [0, 0]],
    }


# ---------------------------------------------------------------------------- running

@contextlib.contextmanager
def _quiet():
    """ZigZag logs every spatial mapping at INFO and capacity limits at WARNING."""
    logger = logging.getLogger("zigzag")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def build_accelerator(arch: Architecture, energy: EnergyTable):
    """ZigZag ``Accelerator`` object, validated by ZigZag's own validator."""
    from zigzag.parser.accelerator_factory import AcceleratorFactory
    from zigzag.parser.accelerator_validator import AcceleratorValidator

    data, _ = accelerator_data(arch, energy)
    validator = AcceleratorValidator(data)
    with _quiet():
        ok = validator.validate()
    if not ok:
        raise ZigZagUnsupported(f"ZigZag rejects the translated {arch.name}: "
                                f"{validator.validator.errors}")
    return AcceleratorFactory(validator.normalized_data).create()


def build_workload(layer: Layer, arch: Architecture):
    """ZigZag ``DNNWorkload`` of one layer, validated by ZigZag's own validators."""
    from zigzag.parser.mapping_validator import MappingValidator
    from zigzag.parser.workload_factory import WorkloadFactory
    from zigzag.parser.workload_validator import WorkloadValidator

    wv = WorkloadValidator([layer_data(layer)])
    mv = MappingValidator(mapping_data(arch))
    with _quiet():
        ok_w, ok_m = wv.validate(), mv.validate()
        if not (ok_w and ok_m):
            raise ZigZagUnsupported(f"ZigZag rejects the translated layer "
                                    f"{layer.shape_text()}: "
                                    f"{wv.validator.errors or mv.validator.errors}")
        return WorkloadFactory(wv.normalized_data, mv.normalized_data).create()


def _loops_text(loops) -> str:
    return " ".join(f"{ZZ_TO_DIM.get(str(d), str(d))}{f:g}" for d, f in loops
                    if float(f) != 1)


def _describe(cme) -> tuple[str, str, dict[str, float]]:
    """Spatial and temporal mapping (hwcost dim names) and energy per memory of a result."""
    smap = cme.layer.spatial_mapping
    spatial = " ".join(f"{oa}:{_loops_text(single.items()) or '-'}"
                       for oa, single in sorted(smap.items(), key=lambda kv: str(kv[0])))
    hierarchy = cme.accelerator.memory_hierarchy
    links = cme.layer.memory_operand_links
    parts = []
    per_mem: dict[str, float] = {}
    tm = cme.temporal_mapping.mapping_dic_stationary
    for layer_op in sorted(tm, key=str):
        levels = hierarchy.get_memory_levels(links.layer_to_mem_op(layer_op))
        body = " ".join(f"{ml.name}[{_loops_text(loops)}]"
                        for ml, loops in zip(levels, tm[layer_op]))
        parts.append(f"{layer_op}: {body}")
        for ml, e in zip(levels, cme.mem_energy_breakdown.get(layer_op, [])):
            per_mem[ml.name] = per_mem.get(ml.name, 0.0) + e
    return spatial, "; ".join(parts), per_mem


def run_zigzag(arch: Architecture, energy: EnergyTable, layer: Layer,
               settings: ZigZagSettings | None = None, accelerator=None) -> ZigZagResult:
    """ZigZag's best (minimal-energy) mapping of ``layer`` and its own estimate of it."""
    from zigzag.mapping.temporal_mapping import TemporalMappingType
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.main import MainStage
    from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
    from zigzag.stages.mapping.temporal_mapping_generator_stage import (
        TemporalMappingGeneratorStage,
    )
    from zigzag.stages.results.reduce_stages import MinimalEnergyStage
    from zigzag.stages.workload_iterator import WorkloadStage

    settings = settings or ZigZagSettings()
    t0 = time.perf_counter()
    if accelerator is None:
        accelerator = build_accelerator(arch, energy)
    workload = build_workload(layer, arch)
    # ZigZag's own pipeline of get_hardware_performance_zigzag(opt="energy") minus the stages
    # that only save files and plots
    stages = [WorkloadStage, MinimalEnergyStage, SpatialMappingGeneratorStage,
              MinimalEnergyStage, TemporalMappingGeneratorStage, CostModelStage]
    main = MainStage(
        stages, accelerator=accelerator, workload=workload,
        loma_lpf_limit=settings.lpf_limit, loma_show_progress_bar=False,
        nb_mappings_generated=settings.spatial_mappings,
        enable_mix_spatial_mapping_generation=settings.mixed_spatial,
        access_same_data_considered_as_no_access=settings.access_same_data_as_no_access,
        temporal_mapping_type=TemporalMappingType(settings.temporal_mapping_type))
    with _quiet():
        answers = main.run()
    wall = time.perf_counter() - t0
    cme = answers[0][0]
    spatial, temporal, per_mem = _describe(cme)
    return ZigZagResult(energy_pj=float(cme.energy_total), mac_energy_pj=float(cme.mac_energy),
                        memory_energy_pj=float(cme.mem_energy),
                        cycles=float(cme.latency_total2), ideal_cycles=float(cme.ideal_cycle),
                        spatial=spatial, temporal=temporal, wall_s=wall, memory_pj=per_mem)


def describe_hardware(arch: Architecture, energy: EnergyTable) -> list[str]:
    """Lines describing the translated hardware (for the benchmark's header)."""
    data, notes = accelerator_data(arch, energy)
    axes, _ = oa_dimensions(arch)
    oa = ", ".join(f"{a.name}={a.size} ({a.stage}: {'/'.join(a.hint)})" for a in axes)
    lines = [f"ZigZag array of {arch.name}: {oa}; MAC {energy.mac():.4f} pJ"]
    for name, m in data["memories"].items():
        r, w = m["ports"]
        rows = r["bandwidth_max"] / r["bandwidth_min"]
        lines.append(f"  {name:16} {'/'.join(m['operands']):9} "
                     f"{'unbounded' if m['size'] == UNBOUNDED_BITS else m['size']:>9} b, "
                     f"row {r['bandwidth_min']} b, r/w {m['r_cost'] / rows:.4g}/"
                     f"{m['w_cost'] * w['bandwidth_min'] / w['bandwidth_max']:.4g} pJ per row, "
                     f"ports {r['bandwidth_max']}/{w['bandwidth_max']} b/cycle, "
                     f"shared over {','.join(m['served_dimensions']) or 'none (per MAC)'}")
    lines += [f"  note: {n}" for n in dict.fromkeys(notes)]
    return lines


def _main() -> None:
    import argparse

    from hwmodel.energy import build_energy_table
    from hwmodel.mapper import Mapper
    from hwmodel.spec import load_arch

    parser = argparse.ArgumentParser(description="ZigZag vs hwcost on one conv layer")
    parser.add_argument("--arch", default="eyeriss")
    parser.add_argument("--lpf", type=int, default=ZigZagSettings.lpf_limit)
    args = parser.parse_args()
    missing = zigzag_missing()
    if missing:
        raise SystemExit(missing)
    arch = load_arch(args.arch)
    energy = build_energy_table(arch)
    print("\n".join(describe_hardware(arch, energy)))
    layer = Layer("conv", "conv", C=36, M=36, P=32, Q=32, R=3, S=3)
    settings = ZigZagSettings(lpf_limit=args.lpf)
    print(settings.describe())
    res = run_zigzag(arch, energy, layer, settings)
    ours = Mapper(arch, energy).map(layer.workload()).result
    print(f"{layer.shape_text()}: ZigZag {res.energy_pj:.1f} pJ (MAC {res.mac_energy_pj:.1f}, "
          f"memory {res.memory_energy_pj:.1f}), {res.cycles:.0f} cycles, {res.wall_s:.2f} s; "
          f"hwcost {ours.energy_pj:.1f} pJ, {ours.cycles:.0f} cycles")
    print(f"  spatial {res.spatial}\n  temporal {res.temporal}\n  per memory "
          + ", ".join(f"{k} {v:.1f}" for k, v in res.memory_pj.items()))


if __name__ == "__main__":
    _main()
