"""Run AccelForge's mapper (PyPI ``accelforge``) on an hwcost architecture and layer.

An optional benchmark bridge, like ``zigzag_bridge.py``: hwcost never imports it, and it
imports nothing from AccelForge.  AccelForge needs Python >= 3.12, so its mapper runs in
its own interpreter (``$HWCOST_ACCELFORGE_PYTHON``, default ``/work/venv-accelforge/bin/
python``; set it up with ``python3.12 -m venv V && V/bin/pip install accelforge``) through
``accelforge_runner.py``, with JSON in and out and a wall-clock timeout.

What is translated (:func:`translate`)

* every storage level becomes an AccelForge ``!Memory`` (outermost first) whose size is the
  level's capacity in words (every tensor is given 1 bit per value, so a size in "bits" is
  a word count at every level, as hwcost counts words of each level's own datawidth), with
  ``read`` and ``write`` actions priced at the *same* per-word energies hwcost uses
  (``EnergyTable.per_word``; AccelForge has no separate update action, so partial-sum
  updates cost a write) and throughputs equal to the level's read/write bandwidths (words
  per cycle; unbounded where hwcost has none; ``max`` over the two ports, or their sum for a
  shared port);
* keep/bypass: the outermost level keeps everything; a level whose spec fixes ``keep``
  keeps exactly that; otherwise every data space not bypassed *may* be kept (AccelForge
  explores keeping or bypassing each, as hwcost's mapper may);
* every fan-out stage (a container below a level, or the level's plain fan-out) becomes an
  AccelForge ``!Container`` with one spatial dimension per mesh axis larger than 1 (``X``,
  ``Y``), whose ``loop_bounds`` hold the stage's spatial constraint as hwcost's mapper
  reads it: the dims allowed along each axis (``permutation`` split at ``split``; a one-axis
  mesh takes any of them; dims fixed to 1 excluded), fixed factors where the dim is allowed
  along one axis only, maximal factors on every axis it is allowed along;
* a temporal factor constraint becomes a tile-shape constraint of that memory where the tile
  extent is fully determined (the innermost level, e.g. Eyeriss' ``psum_spad`` with
  ``C=1 R=1 S=1``);
* the MAC becomes a ``!Compute`` at ``EnergyTable.mac()`` pJ per compute, 1 compute per cycle;
* the workload (any hwcost :class:`~hwmodel.workload.Workload`: a conv layer or any
  Einsum-like loop nest with affine projections) becomes one Einsum: dims with bound 1 are
  dropped, every data-space axis becomes a rank indexed by its affine expression.

What is not translated (each case is listed in :attr:`Translation.notes`)

* loop-order (``permutation``) constraints of temporal loops: AccelForge has none; it explores
  loop orders itself, keeping one order per distinct reuse pattern;
* a temporal factor constraint whose tile extent depends on other levels' choices;
* leakage (AccelForge is given 0), network energy (0 in both), row-granular pricing (hwcost
  charges whole vector accesses, AccelForge per value), first-read elision details and
  Timeloop's sliding-window rules: those are model differences, which is why the figures that
  compare like with like are AccelForge's mapping *priced by hwcost's model*.

Back to hwcost (:func:`to_timeloop_mapping`)

AccelForge's mappings are loop trees in which each tensor of a memory may sit at its own
depth ("uneven" mappings); a Timeloop mapping keeps all tensors of a level at one boundary.
Every choice of boundary among the positions of a level's storage nodes gives a Timeloop
mapping (loops between two boundaries are the outer level's temporal loops, in AccelForge's
order; spatial loops go to their container's level and axis; loops of one dim that land twice
in one level are merged); each is priced by hwcost's model and the best valid one is kept.
It is ``exact`` when every level's nodes sat at one position and nothing was merged (then it
is the same loop nest); otherwise it is the best Timeloop projection of AccelForge's mapping.
Each projection is also checked against the spec's constraints as hwcost's mapper reads them
(:func:`constraint_violations`: keep/bypass, temporal factors and permutations, spatial dims
per axis and factors), and two repaired variants are priced too: loops of dims that a level
fixes to 1 moved to the innermost loops of the level above (AccelForge cannot impose such a
constraint: Eyeriss' ``psum_spad`` ``C=1 R=1 S=1`` is a tile-shape constraint it drops when no
loop of the dim sits above the memory), and each level's loops reordered to meet its
``permutation``.  The projection kept is the best constraint-respecting one (the best of all,
with ``violations`` listed, when none respects them).  :func:`relaxed_arch` gives the design
without temporal constraints, for running hwcost's mapper on the space AccelForge searched.

API: :func:`run_accelforge` (``None`` with the reason printed when AccelForge is missing,
cannot express the design, fails or times out), :func:`translate`, :func:`to_timeloop_mapping`,
:func:`constraint_violations`, :func:`relaxed_arch`, :func:`accelforge_missing`.

Run directly for a small smoke test:
``python benchmarks/accelforge_bridge.py --arch edge --layer C8,M8,P4,Q4,R3,S3``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatial_axes import axis_dims

from hwmodel.arch import Architecture, Container
from hwmodel.energy import EnergyTable
from hwmodel.mapping import LevelMapping, Mapping, SpatialStage
from hwmodel.model import EvalResult, MappingError, evaluate
from hwmodel.workload import Layer, Workload

#: where the AccelForge interpreter is looked for
PYTHON_ENV_VAR = "HWCOST_ACCELFORGE_PYTHON"
DEFAULT_PYTHON = "/work/venv-accelforge/bin/python"
RUNNER = Path(__file__).resolve().with_name("accelforge_runner.py")
INSTALL_HINT = ("python3.12 -m venv /work/venv-accelforge && "
                "/work/venv-accelforge/bin/pip install accelforge "
                f"(or point ${PYTHON_ENV_VAR} at a Python >= 3.12 that has it)")
#: boundary choices tried when projecting an uneven mapping onto Timeloop levels
MAX_PROJECTIONS = 512
#: hwcost objective -> AccelForge metrics
OBJECTIVE_METRICS = {"energy": "energy", "delay": "latency", "latency": "latency",
                     "edp": "edp"}
_RESERVED = {"All", "Tensors", "Nothing", "Inputs", "Outputs", "Intermediates", "Shared",
             "Persistent", "Above", "Einsum"}


class AccelForgeUnsupported(Exception):
    """The architecture or workload has something AccelForge's spec cannot express."""


# ---------------------------------------------------------------------------- locating

def accelforge_python() -> str:
    return os.environ.get(PYTHON_ENV_VAR) or DEFAULT_PYTHON


_MISSING_CACHE: dict[str, str | None] = {}


def accelforge_missing(python: str | None = None) -> str | None:
    """Why AccelForge cannot run here (``None`` when it can); the check runs the interpreter
    once (about 3 s) and is cached."""
    python = python or accelforge_python()
    if python in _MISSING_CACHE:
        return _MISSING_CACHE[python]
    why = None
    if not (shutil.which(python) or Path(python).is_file()):
        why = f"AccelForge interpreter {python} not found; install: {INSTALL_HINT}"
    else:
        try:
            proc = subprocess.run(
                [python, "-c", "import sys, accelforge; print(sys.version_info >= (3, 12))"],
                capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["import failed"])[-1]
                why = f"{python} cannot import accelforge ({last}); install: {INSTALL_HINT}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = f"{python} does not run ({exc})"
    _MISSING_CACHE[python] = why
    return why


# ---------------------------------------------------------------------------- translation

@dataclass
class Translation:
    """An AccelForge spec for one architecture + workload, and the names to map back."""

    spec_yaml: str
    rank_vars: dict[str, str]            # AccelForge rank variable -> hwcost dim
    tensors: dict[str, str]              # AccelForge tensor -> hwcost data space
    memories: dict[str, int]             # AccelForge memory -> hwcost level index
    containers: dict[str, tuple[int, int]]  # AF container -> (level, stage; -1: plain)
    notes: list[str] = field(default_factory=list)


def _ident(text: str, prefix: str) -> str:
    s = re.sub(r"\W", "_", text)
    if not s or not s[0].isalpha():
        s = prefix + s
    return s


def _set_expr(names: list[str]) -> str:
    return " | ".join(names) if names else "Nothing"


def _stages(lv) -> list[Container]:
    if lv.fanout <= 1:
        return []
    if lv.containers:
        return list(lv.containers)
    return [Container(f"{lv.name}_fanout", lv.fanout_x, lv.fanout_y, lv.spatial)]


def _fixed_extent(arch: Architecture, i: int, dim: str) -> int | None:
    """The extent of ``dim`` in level ``i``'s tile when the constraints fix it (every
    temporal factor at ``i`` and below fixed, every fan-out below ``i`` unable to split it
    or fixing its factor), else ``None``."""
    extent = 1
    for j in range(i, len(arch.levels)):
        lv = arch.levels[j]
        cons = lv.temporal
        f = cons.factors.get(dim) if cons is not None else None
        if f is None:
            return None
        extent *= f
        for st in _stages(lv):
            xs, ys = axis_dims(st.spatial, [dim], st.mesh_x > 1 and st.mesh_y > 1)
            if not (xs or ys):
                continue
            f = st.spatial.factors.get(dim) if st.spatial is not None else None
            if f is None:
                return None
            extent *= f
    return extent


def translate(arch: Architecture, workload: Workload | Layer, energy: EnergyTable
              ) -> Translation:
    """AccelForge spec (YAML text) of ``arch`` running ``workload`` at ``energy``'s prices."""
    if isinstance(workload, Layer):
        workload = workload.workload()
    notes: list[str] = []
    bounds = workload.bounds
    used: set[str] = set(_RESERVED)

    def fresh(name: str) -> str:
        if name.lower().startswith("global_"):   # AccelForge treats global_* as globals
            name = "L_" + name
        base, k = name, 1
        while name in used or name.lower() in {u.lower() for u in used}:
            k += 1
            name = f"{base}{k}"
        used.add(name)
        return name

    # -- workload: rank variables (dims > 1; a tensor with none keeps one of size 1)
    rv_of: dict[str, str] = {}
    needed = {d for d, b in workload.dims if b > 1}
    for ds in workload.data_spaces:
        if not any(bounds.get(d, 1) > 1 for axis in ds.projection for _, d in axis):
            first = next((d for axis in ds.projection for _, d in axis), None)
            if first is None:
                raise AccelForgeUnsupported(f"data space {ds.name} has no axes")
            needed.add(first)
    for d, _b in workload.dims:
        if d in needed:
            rv_of[d] = fresh(_ident(d.lower(), "v"))
    tensors: dict[str, str] = {}
    accesses = []
    for ds in workload.data_spaces:
        t = fresh("T_" + _ident(ds.name, "t"))
        tensors[t] = ds.name
        proj: dict[str, str] = {}
        for k, axis in enumerate(ds.projection):
            terms = [(c, d) for c, d in axis if c and d in rv_of]
            if not terms:
                continue
            if any(c < 0 for c, _ in terms):
                raise AccelForgeUnsupported(f"{ds.name}: negative projection coefficient")
            if len(terms) == 1 and terms[0][0] == 1:
                rank = "R_" + _ident(terms[0][1], "d")
                if rank in proj:
                    rank = f"R_{t}_{k}"
            else:
                rank = f"R_{t}_{k}"
            expr = " + ".join(rv_of[d] if c == 1 else f"{c} * {rv_of[d]}" for c, d in terms)
            proj[rank] = expr
        access: dict[str, Any] = {"name": t, "projection": proj}
        if ds.read_write:
            access["output"] = True
        accesses.append(access)
    if not any(ds.read_write for ds in workload.data_spaces):
        raise AccelForgeUnsupported("the workload has no output (read_write) data space")
    einsum = {"name": _ident(workload.name or "layer", "E"), "tensor_accesses": accesses,
              "iteration_space_shape": [f"0 <= {rv} < {bounds[d]}" for d, rv in rv_of.items()]}
    wl = {"bits_per_value": {"All": 1}, "einsums": [einsum]}
    t_of = {v: k for k, v in tensors.items()}
    ds_names = [ds.name for ds in workload.data_spaces]

    # -- architecture
    nodes: list[tuple[str, dict]] = []
    memories: dict[str, int] = {}
    containers: dict[str, tuple[int, int]] = {}
    last = len(arch.levels) - 1
    for i, lv in enumerate(arch.levels):
        name = fresh(_ident(lv.name, "M"))
        memories[name] = i
        if i == 0:
            tens = {"keep": "All"}
        elif lv.keep is not None:
            tens = {"keep": _set_expr([t_of[d] for d in ds_names if d in lv.keep])}
        else:
            tens = {"may_keep": _set_expr([t_of[d] for d in ds_names if lv.may_keep(d)])}
        cap = lv.capacity_words
        rd = lv.shared_bandwidth or lv.read_bandwidth
        wr = lv.shared_bandwidth or lv.write_bandwidth
        if energy.per_word(lv.name, "update") != energy.per_word(lv.name, "write"):
            notes.append(f"{lv.name}: AccelForge has no update action; partial-sum updates "
                         "are priced as writes (fills)")
        if energy.leak_per_cycle(lv.name):
            notes.append(f"{lv.name}: leakage not passed to AccelForge")
        mem = {
            "name": name, "size": "inf" if cap is None else int(cap),
            "leak_power": 0, "area": 0, "tensors": tens,
            "actions": [
                {"name": "read", "energy": float(energy.per_word(lv.name, "read")),
                 "throughput": "inf" if not rd else float(rd), "bits_per_action": 1},
                {"name": "write", "energy": float(energy.per_word(lv.name, "write")),
                 "throughput": "inf" if not wr else float(wr), "bits_per_action": 1}],
            "total_latency": ("sum(a.n_calls / a.throughput for a in actions)"
                              if lv.shared_bandwidth else
                              "max(a.n_calls / a.throughput for a in actions)"),
        }
        # temporal constraints: only tile extents fully fixed by the spec are expressible
        tile_shape = []
        cons = lv.temporal
        if cons is not None:
            for d, f in sorted(cons.factors.items()):
                if d not in bounds:
                    continue
                ext = _fixed_extent(arch, i, d)
                if d not in rv_of:
                    continue
                if ext is not None:
                    tile_shape.append({"expression": rv_of[d], "operator": "==",
                                       "value": int(ext)})
                else:
                    notes.append(f"{lv.name}: temporal factor {d}={f} not passed (AccelForge "
                                 "constrains tile extents, and this one depends on other "
                                 "levels' choices)")
            for d, f in sorted(cons.max_factors.items()):
                if d in rv_of and i == last and not _stages(lv):
                    tile_shape.append({"expression": rv_of[d], "operator": "<=",
                                       "value": int(f)})
                elif d in rv_of:
                    notes.append(f"{lv.name}: temporal max factor {d}<={f} not passed")
            if cons.permutation:
                notes.append(f"{lv.name}: temporal permutation {''.join(cons.permutation)} "
                             "not passed (AccelForge has no loop-order constraints)")
        if tile_shape:
            mem["tensors"] = dict(mem["tensors"], tile_shape=tile_shape)
        nodes.append(("Memory", mem))
        # fan-out stages below this level
        for k, st in enumerate(_stages(lv)):
            cname = fresh(_ident(st.name, "C"))
            containers[cname] = (i, k if lv.containers else -1)
            both = st.mesh_x > 1 and st.mesh_y > 1
            xs, ys = axis_dims(st.spatial, list(rv_of), both)
            dims_spatial = []
            for axis, size, allowed in (("X", st.mesh_x, xs), ("Y", st.mesh_y, ys)):
                if size <= 1:
                    continue
                lb = []
                banned = [rv_of[d] for d in rv_of if d not in allowed]
                if banned:
                    lb.append({"expression": _set_expr(banned), "operator": "==", "value": 1})
                c = st.spatial
                if c is not None:
                    for d, f in sorted(c.factors.items()):
                        if d not in allowed or f == 1 or d not in rv_of:
                            continue
                        other = ys if axis == "X" else xs
                        other_size = st.mesh_y if axis == "X" else st.mesh_x
                        if d in other and other_size > 1:
                            notes.append(f"{st.name}: spatial factor {d}={f} may span both "
                                         "axes; AccelForge is given it as a maximum per axis")
                            lb.append({"expression": rv_of[d], "operator": "<=", "value": f})
                        else:
                            lb.append({"expression": rv_of[d], "operator": "==", "value": f})
                    for d, f in sorted(c.max_factors.items()):
                        if d in allowed and d in rv_of:
                            lb.append({"expression": rv_of[d], "operator": "<=", "value": f})
                entry: dict[str, Any] = {"name": axis, "fanout": int(size)}
                if lb:
                    entry["loop_bounds"] = lb
                dims_spatial.append(entry)
            if dims_spatial:
                nodes.append(("Container", {"name": cname, "spatial": dims_spatial}))
    comp = arch.compute
    nodes.append(("Compute", {"name": fresh(_ident(comp.name, "C")), "leak_power": 0,
                              "area": 0, "actions": [{"name": "compute",
                                                      "energy": float(energy.mac()),
                                                      "throughput": 1}]}))
    fan = math.prod(lv.fanout for lv in arch.levels)
    if fan != comp.instances:
        notes.append(f"fan-outs give {fan} MACs, the compute unit has {comp.instances}")
    lines = ["# generated by hwcost benchmarks/accelforge_bridge.py", "arch:", "  nodes:"]
    lines += [f"  - !{kind} {json.dumps(body)}" for kind, body in nodes]
    lines.append("workload: " + json.dumps(wl))
    return Translation("\n".join(lines) + "\n", {v: k for k, v in rv_of.items()}, tensors,
                       memories, containers, list(dict.fromkeys(notes)))


# ---------------------------------------------------------------------------- constraints

def constraint_violations(arch: Architecture, workload: Workload, mapping: Mapping
                          ) -> list[str]:
    """The spec constraints a mapping breaks, read as hwcost's mapper reads them: keep and
    bypass, temporal factors / max factors / permutations (innermost first, a prefix), and
    per fan-out stage the dims allowed along each axis, factors and max factors.
    (``hwmodel.model.evaluate`` checks capacities and fan-outs, not these.)"""
    names = {ds.name for ds in workload.data_spaces}
    dims = [d for d, _ in workload.dims]
    bounds = workload.bounds
    out: list[str] = []
    for i, (lv, lm) in enumerate(zip(arch.levels, mapping.levels)):
        if i > 0:
            if lv.keep is not None and set(lm.keep) != (set(lv.keep) & names):
                out.append(f"{lv.name}: keeps {sorted(lm.keep)}, the spec says "
                           f"{sorted(set(lv.keep) & names)}")
            if set(lm.keep) & set(lv.bypass):
                out.append(f"{lv.name}: keeps bypassed {sorted(set(lm.keep) & set(lv.bypass))}")
        c = lv.temporal
        if c is not None:
            for d, f in c.factors.items():
                if d in bounds and f <= bounds[d] and lm.factor(d) != f:
                    out.append(f"{lv.name}: temporal {d}={lm.factor(d)}, the spec fixes {f}")
            for d, f in c.max_factors.items():
                if d in dims and lm.factor(d) > f:
                    out.append(f"{lv.name}: temporal {d}={lm.factor(d)} > max {f}")
            if c.permutation:
                inner = [d for d, f in reversed(lm.temporal) if f > 1]
                listed = [d for d in c.permutation if d in inner]
                if inner[:len(listed)] != listed:
                    out.append(f"{lv.name}: loop order (innermost first) {''.join(inner)} "
                               f"breaks permutation {''.join(c.permutation)}")
        stages = _stages(lv)
        loops = ([(lm.spatial_x, lm.spatial_y)] if not lv.containers else
                 [(st.x, st.y) for st in lm.stages])
        for k, st in enumerate(stages):
            x, y = loops[k] if k < len(loops) else ([], [])
            xs, ys = axis_dims(st.spatial, dims, st.mesh_x > 1 and st.mesh_y > 1)
            for axis, lp, allowed in (("X", x, xs), ("Y", y, ys)):
                bad = sorted({d for d, f in lp if f > 1 and d not in allowed})
                if bad:
                    out.append(f"{st.name}.{axis}: {','.join(bad)} not allowed spatially")
            cons = st.spatial
            if cons is not None:
                prod = {}
                for d, f in x + y:
                    prod[d] = prod.get(d, 1) * f
                for d, f in cons.factors.items():
                    if d in bounds and f <= bounds[d] and prod.get(d, 1) != f:
                        out.append(f"{st.name}: spatial {d}={prod.get(d, 1)}, the spec fixes {f}")
                for d, f in cons.max_factors.items():
                    if d in dims and prod.get(d, 1) > f:
                        out.append(f"{st.name}: spatial {d}={prod.get(d, 1)} > max {f}")
    return out


def relaxed_arch(arch: Architecture) -> Architecture:
    """A copy of ``arch`` without temporal loop constraints (factors, max factors,
    permutations), which AccelForge cannot impose: hwcost's mapper on it searches the space
    AccelForge searches (keep/bypass, capacities, fan-outs and spatial constraints kept)."""
    import copy

    out = copy.deepcopy(arch)
    for lv in out.levels:
        lv.temporal = None
    return out


def _repaired(arch: Architecture, mapping: Mapping) -> Mapping | None:
    """``mapping`` with the loops of every dim that a level's temporal constraint fixes to
    1 moved to the innermost loops of the nearest level above that allows them (AccelForge
    cannot impose such constraints; under Timeloop's reuse rules the move often costs
    nothing, and hwcost's model prices it either way); ``None`` when nothing changes."""
    import copy

    out = copy.deepcopy(mapping)
    changed = False
    for i in range(len(arch.levels) - 1, 0, -1):
        c = arch.levels[i].temporal
        if c is None:
            continue
        banned = {d for d, f in c.factors.items() if f == 1}
        lm = out.levels[i]
        moving = [(d, f) for d, f in lm.temporal if d in banned and f > 1]
        if not moving:
            continue
        lm.temporal = [(d, f) for d, f in lm.temporal if not (d in banned and f > 1)]
        j = i - 1
        while j > 0 and arch.levels[j].temporal is not None and all(
                arch.levels[j].temporal.factors.get(d) == 1 for d, _ in moving):
            j -= 1
        out.levels[j].temporal = out.levels[j].temporal + moving
        changed = True
    return out if changed else None


def _permuted(arch: Architecture, mapping: Mapping) -> Mapping | None:
    """``mapping`` with each level's loops reordered to meet its permutation constraint
    (listed dims innermost in the listed order, the rest above in their order); ``None``
    when nothing changes."""
    import copy

    out = copy.deepcopy(mapping)
    changed = False
    for lv, lm in zip(arch.levels, out.levels):
        c = lv.temporal
        if c is None or not c.permutation:
            continue
        present = {d for d, f in lm.temporal if f > 1}
        listed = [d for d in c.permutation if d in present]
        rest = [(d, f) for d, f in lm.temporal if d not in listed]
        inner = [(d, f) for d in reversed(listed) for dd, f in lm.temporal if dd == d]
        new = rest + inner
        if new != lm.temporal:
            lm.temporal = new
            changed = True
    return out if changed else None


# ---------------------------------------------------------------------------- mapping back

@dataclass
class Projection:
    mapping: Mapping
    result: EvalResult
    exact: bool
    note: str
    #: spec constraints the mapping breaks (see :func:`constraint_violations`)
    violations: list[str] = field(default_factory=list)


def _score(res: EvalResult, objective: str) -> tuple:
    keys = []
    for part in objective.split(","):
        part = part.strip()
        if part == "energy":
            keys.append(res.energy_pj)
        elif part in ("delay", "latency", "cycles"):
            keys.append(res.cycles)
        elif part == "edp":
            keys.append(res.energy_pj * res.cycles)
        else:
            raise ValueError(f"unknown objective {part!r}")
    return tuple(keys)


def to_timeloop_mapping(nodes: list[dict], tr: Translation, arch: Architecture,
                        workload: Workload, energy: EnergyTable | None = None,
                        objective: str = "energy") -> tuple[Projection | None, str]:
    """Best Timeloop projection of an AccelForge loop tree (see the module docstring), priced
    by hwcost's model; ``(None, why)`` when no projection is a valid hwcost mapping."""
    n = len(arch.levels)
    positions: dict[int, list[int]] = {}
    temporal: list[tuple[int, str, int]] = []
    spatial: list[tuple[str, str, str, int]] = []
    why_not: list[str] = []
    for p, nd in enumerate(nodes):
        kind = nd["node"]
        if kind == "storage":
            lvl = tr.memories.get(nd["component"])
            if lvl is None:
                return None, f"storage node in unknown memory {nd['component']}"
            positions.setdefault(lvl, [])
            if p not in positions[lvl]:
                positions[lvl].append(p)
        elif kind in ("temporal", "spatial"):
            bound = nd.get("loop_bound")
            if nd.get("initial_tile_shape") is not None or bound is None \
                    or abs(bound - round(bound)) > 1e-9:
                return None, f"imperfect loop {nd['rank_variable']} (bound {bound})"
            bound = round(bound)
            dim = tr.rank_vars.get(nd["rank_variable"])
            if dim is None:
                return None, f"unknown rank variable {nd['rank_variable']}"
            if bound > 1:
                if kind == "temporal":
                    temporal.append((p, dim, bound))
                else:
                    spatial.append((nd["component"], nd.get("axis", "X"), dim, bound))
        elif kind == "toll":
            return None, "toll nodes have no Timeloop equivalent"
    keep = [frozenset() for _ in range(n)]
    for lvl in positions:
        keep[lvl] = frozenset(tr.tensors[t] for nd in nodes if nd["node"] == "storage"
                              and tr.memories.get(nd["component"]) == lvl
                              for t in nd["tensors"])
    keep[0] = frozenset(ds.name for ds in workload.data_spaces)
    levels_with = sorted(positions)
    if 0 not in positions:
        positions[0] = [0]
        levels_with = sorted(positions)
    choices = [positions[lv] for lv in levels_with]
    combos = itertools.islice(itertools.product(*choices), MAX_PROJECTIONS)
    uneven = any(len(c) > 1 for c in choices)
    best: Projection | None = None
    tried = 0
    for combo in combos:
        if any(a > b for a, b in itertools.pairwise(combo)):
            continue
        bnd = dict(zip(levels_with, combo))
        # a level without storage nodes gets no temporal loops: its boundary is the next
        # level's (or the bottom)
        full = [0] * n
        nxt = len(nodes)
        for lvl in range(n - 1, -1, -1):
            nxt = bnd.get(lvl, nxt)
            full[lvl] = nxt
        lms = [LevelMapping(keep=keep[i]) for i in range(n)]
        merged = False
        for p, dim, bound in temporal:
            lvl = max((i for i in range(n) if full[i] < p), default=0)
            loops = lms[lvl].temporal
            for k, (d, f) in enumerate(loops):
                if d == dim:       # a second loop of the dim in one level: merge, innermost
                    loops.pop(k)
                    bound *= f
                    merged = True
                    break
            loops.append((dim, bound))
        for comp, axis, dim, bound in spatial:
            lvl, stage = tr.containers[comp]
            lm = lms[lvl]
            if stage >= 0:
                while len(lm.stages) <= stage:
                    lv = arch.levels[lvl]
                    lm.stages.append(SpatialStage(lv.containers[len(lm.stages)].name))
                target = lm.stages[stage].x if axis == "X" else lm.stages[stage].y
            else:
                target = lm.spatial_x if axis == "X" else lm.spatial_y
            for k, (d, f) in enumerate(target):
                if d == dim:
                    target[k] = (d, f * bound)
                    break
            else:
                target.append((dim, bound))
        # stages must be listed for every container of a level that has them
        for i, lv in enumerate(arch.levels):
            if lv.containers and lv.fanout > 1:
                while len(lms[i].stages) < len(lv.containers):
                    lms[i].stages.append(SpatialStage(lv.containers[len(lms[i].stages)].name))
        base = Mapping(lms)
        repaired = _repaired(arch, base)
        variants = [(base, False, False), (_permuted(arch, base), True, False)]
        if repaired is not None:
            variants += [(repaired, False, True), (_permuted(arch, repaired), True, True)]
        for mapping, reordered, moved in variants:
            if mapping is None:
                continue
            tried += 1
            try:
                res = evaluate(arch, workload, mapping, energy)
            except MappingError as exc:
                why_not.append(str(exc))
                continue
            violations = constraint_violations(arch, workload, mapping)
            exact = not uneven and not merged and not reordered and not moved
            parts = [p for p, on in (
                ("levels' tensors at different depths (uneven)", uneven),
                ("two loops of one dim in one level merged", merged),
                ("loops of dims a level fixes to 1 moved to the level above", moved),
                ("loops reordered to meet the spec's permutations", reordered)) if on]
            note = "exact: the same loop nest" if exact else "projected: " + ", ".join(parts)
            cand = Projection(mapping, res, exact, note, violations)
            if best is None or (bool(violations), _score(res, objective)) < (
                    bool(best.violations), _score(best.result, objective)):
                best = cand
    if best is None:
        return None, (f"no Timeloop projection of AccelForge's mapping is valid in hwcost "
                      f"({tried} tried): {why_not[0] if why_not else 'none ordered'}")
    return best, best.note


# ---------------------------------------------------------------------------- running

@dataclass
class AccelForgeSettings:
    """How AccelForge's mapper is run (see its ``FFM`` options)."""

    #: restrict to Timeloop-style mappings (AccelForge's private ``_timeloop_style_even``:
    #: at most two storage-node positions per memory)
    timeloop_style_even: bool = False
    explore_loop_orders: bool = True
    #: stop after this many pmapping templates (then the search is not complete)
    max_templates: int | None = None
    n_jobs: int = 1
    #: re-evaluate the chosen mappings for per-action energies and latency
    detail: bool = True

    def describe(self) -> str:
        return ("AccelForge FFM, " + ("Timeloop-style even mappings" if
                                       self.timeloop_style_even else "uneven mappings")
                + f", loop orders {'explored' if self.explore_loop_orders else 'fixed'}"
                + (f", at most {self.max_templates} templates" if self.max_templates
                   else ", all templates (optimal over its space)")
                + f", {self.n_jobs} process(es)")


@dataclass
class AccelForgeResult:
    energy_pj: float | None          # AccelForge's own estimate of its best mapping
    latency_cycles: float | None
    objective: dict[str, float]      # AccelForge's objective columns
    wall_s: float                    # the whole subprocess (start-up and import included)
    map_s: float                     # AccelForge's mapper alone
    nodes: list[dict]                # its mapping, outermost first (see the runner)
    translation: Translation
    projection: Projection | None    # that mapping as hwcost's Timeloop mapping, if any
    projection_note: str
    pareto: int = 1                  # mappings AccelForge returned (several objectives)
    actions: list = field(default_factory=list)
    energies: list = field(default_factory=list)
    version: str | None = None

    @property
    def mapping(self) -> Mapping | None:
        return self.projection.mapping if self.projection else None

    @property
    def hwcost(self) -> EvalResult | None:
        """AccelForge's mapping priced by hwcost's model (the like-for-like figure)."""
        return self.projection.result if self.projection else None

    def tree(self) -> str:
        """AccelForge's loop tree on one line."""
        out = []
        for nd in self.nodes:
            if nd["node"] == "storage":
                out.append(f"[{','.join(self.translation.tensors.get(t, t) for t in nd['tensors'])}"
                           f"@{nd['component']}]")
            elif nd["node"] in ("temporal", "spatial") and (nd.get("loop_bound") or 1) > 1:
                d = self.translation.rank_vars.get(nd["rank_variable"], nd["rank_variable"])
                s = "" if nd["node"] == "temporal" else f"{nd['component']}.{nd['axis']}:"
                out.append(f"{s}{d}{nd['loop_bound']:g}")
        return " ".join(out)


def _objective_metrics(objective: str) -> list[str]:
    out = []
    for part in objective.split(","):
        part = part.strip()
        if part not in OBJECTIVE_METRICS:
            raise ValueError(f"unknown objective {part!r} (energy, delay, edp or a list)")
        m = OBJECTIVE_METRICS[part]
        if m not in out:
            out.append(m)
    return out


def _lexi_key(row: dict, objective: str) -> tuple:
    obj = row.get("objective", {})
    key = []
    for part in objective.split(","):
        m = OBJECTIVE_METRICS[part.strip()]
        col = {"energy": "energy", "latency": "latency", "edp": "energy_delay_product"}[m]
        v = row.get(col, obj.get(col))
        if v is None and m == "edp":
            e, lat = row.get("energy"), row.get("latency")
            v = e * lat if e is not None and lat is not None else None
        key.append(math.inf if v is None else v)
    return tuple(key)


def run_accelforge(arch: Architecture, workload: Workload | Layer, energy: EnergyTable,
                   objective: str = "energy", timeout_s: float = 600,
                   settings: AccelForgeSettings | None = None,
                   python: str | None = None) -> AccelForgeResult | None:
    """AccelForge's best mapping of ``workload`` on ``arch`` with ``energy``'s prices.

    ``objective``: ``energy``, ``delay``, ``edp`` or a lexicographic list such as
    ``delay,energy`` (AccelForge returns the Pareto set of the metrics; the list picks one).
    Returns ``None``, with the reason printed, when AccelForge is not installed, cannot
    express the design, fails, or runs past ``timeout_s`` seconds (it has no anytime
    answer: a timed-out run gives nothing).
    """
    settings = settings or AccelForgeSettings()
    if isinstance(workload, Layer):
        workload = workload.workload()
    python = python or accelforge_python()
    if not (shutil.which(python) or Path(python).is_file()):
        print(f"AccelForge: interpreter {python} not found; install: {INSTALL_HINT}")
        return None
    try:
        tr = translate(arch, workload, energy)
        metrics = _objective_metrics(objective)
    except (AccelForgeUnsupported, ValueError) as exc:
        print(f"AccelForge: cannot express {arch.name}/{workload.name}: {exc}")
        return None
    request = {"spec_yaml": tr.spec_yaml, "metrics": metrics, "detail": settings.detail,
               "options": {"timeloop_style_even": settings.timeloop_style_even,
                           "explore_loop_orders": settings.explore_loop_orders,
                           "max_pmapping_templates_per_einsum": settings.max_templates,
                           "n_jobs": settings.n_jobs}}
    with tempfile.TemporaryDirectory(prefix="hwcost-accelforge-") as tmp:
        req, res_file = Path(tmp, "request.json"), Path(tmp, "result.json")
        req.write_text(json.dumps(request))
        log = Path(tmp, "runner.log")
        t0 = time.perf_counter()
        with open(log, "w") as out:
            proc = subprocess.Popen([python, str(RUNNER), str(req), str(res_file)], cwd=tmp,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                print(f"AccelForge: timed out after {timeout_s:g} s on {workload.name} "
                      f"({_shape(workload)}) on {arch.name}; no answer")
                return None
        wall = time.perf_counter() - t0
        if not res_file.exists():
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            print(f"AccelForge: runner failed (exit {proc.returncode}): {tail[0][:200]}")
            return None
        out = json.loads(res_file.read_text())
    if not out.get("ok"):
        print(f"AccelForge: {out.get('error', 'failed')}")
        return None
    rows = out.get("rows") or []
    if not rows:
        print(f"AccelForge: no mapping of {workload.name} on {arch.name}")
        return None
    row = min(rows, key=lambda r: _lexi_key(r, objective))
    proj, why = to_timeloop_mapping(row["mapping"], tr, arch, workload, energy, objective)
    obj = row.get("objective", {})
    energy_pj = row.get("energy", obj.get("energy"))
    latency = row.get("latency", obj.get("latency"))
    return AccelForgeResult(energy_pj=energy_pj, latency_cycles=latency, objective=obj,
                            wall_s=wall, map_s=out.get("map_s", wall), nodes=row["mapping"],
                            translation=tr, projection=proj, projection_note=why,
                            pareto=len(rows), actions=row.get("actions", []),
                            energies=row.get("energies", []),
                            version=out.get("accelforge_version"))


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the runner and whatever it started (its own session, so only those)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _shape(workload: Workload) -> str:
    return " ".join(f"{d}{b}" for d, b in workload.dims if b > 1)


def describe_translation(tr: Translation) -> list[str]:
    """Lines describing what the translation left out (for a benchmark's header)."""
    return [f"  note: {n}" for n in tr.notes]


# ---------------------------------------------------------------------------- smoke test

def _parse_layer(text: str) -> Layer:
    kw: dict[str, Any] = {}
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        m = re.fullmatch(r"([A-Za-z]+)(\d+)", part)
        if not m:
            raise SystemExit(f"bad layer field {part!r} (use e.g. C8,M8,P4,Q4,R3,S3,s2,g2)")
        key, val = m.group(1), int(m.group(2))
        if key == "s":
            kw["stride"] = (val, val)
        elif key == "d":
            kw["dilation"] = (val, val)
        elif key == "g":
            kw["groups"] = val
        else:
            kw[key] = val
    return Layer("layer", "conv", **kw)


def _main() -> None:
    import argparse

    from hwmodel.energy import build_energy_table
    from hwmodel.mapper import Mapper
    from hwmodel.spec import load_arch

    parser = argparse.ArgumentParser(description="AccelForge vs hwcost on one layer")
    parser.add_argument("--arch", default="edge")
    parser.add_argument("--layer", default="C8,M8,P4,Q4,R3,S3")
    parser.add_argument("--objective", default="energy")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--even", action="store_true",
                        help="Timeloop-style even mappings only")
    parser.add_argument("--show-spec", action="store_true")
    args = parser.parse_args()
    arch = load_arch(args.arch)
    energy = build_energy_table(arch)
    layer = _parse_layer(args.layer)
    wl = layer.workload()
    tr = translate(arch, wl, energy)
    if args.show_spec:
        print(tr.spec_yaml)
    print("\n".join(describe_translation(tr)) or "  (everything translated)")
    t0 = time.perf_counter()
    ours = Mapper(arch, energy, objective=args.objective).map(wl)
    t_hw = time.perf_counter() - t0
    settings = AccelForgeSettings(timeloop_style_even=args.even)
    print(settings.describe())
    res = run_accelforge(arch, wl, energy, args.objective, args.timeout, settings)
    print(f"{args.arch} {layer.shape_text()} ({wl.computes} MACs)")
    print(f"  hwcost mapper: {ours.result.energy_pj:.1f} pJ, {ours.result.cycles:.0f} cycles, "
          f"{t_hw:.2f} s; {ours.mapping.short(arch.names)}")
    bad = constraint_violations(arch, wl, ours.mapping)
    if bad:
        print("  (hwcost's own mapping breaks: " + "; ".join(bad) + ")")
    if res is None:
        return
    print(f"  AccelForge own model: {res.energy_pj:.1f} pJ, {res.latency_cycles} cycles; "
          f"mapper {res.map_s:.1f} s, wall {res.wall_s:.1f} s")
    print(f"  AccelForge loop tree: {res.tree()}")
    if res.hwcost is not None:
        print(f"  AccelForge mapping priced by hwcost: {res.hwcost.energy_pj:.1f} pJ, "
              f"{res.hwcost.cycles:.0f} cycles ({res.projection_note}); "
              f"{res.mapping.short(arch.names)}")
        if res.projection.violations:
            print("  it breaks the spec's constraints: " + "; ".join(res.projection.violations))
            relaxed = relaxed_arch(arch)
            t0 = time.perf_counter()
            free = Mapper(relaxed, energy, objective=args.objective).map(wl)
            print(f"  hwcost mapper without temporal constraints: {free.result.energy_pj:.1f} "
                  f"pJ, {free.result.cycles:.0f} cycles, {time.perf_counter() - t0:.2f} s; "
                  f"{free.mapping.short(arch.names)}")
        print(f"  hwcost / AccelForge (same model): "
              f"{ours.result.energy_pj / res.hwcost.energy_pj:.4f}")
    else:
        print(f"  not priced by hwcost: {res.projection_note}")


if __name__ == "__main__":
    _main()
