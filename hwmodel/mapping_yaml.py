"""Read and write Timeloop mapping YAML as :class:`hwmodel.mapping.Mapping`.

A Timeloop mapping is a list of directives ``{target, type, factors, permutation, split,
keep, bypass}`` (at the top level, under ``mapping:``, or under ``mapping: {nodes: [...]}``).
Semantics implemented:

* **Targets** are the architecture's storage level names.  The compute unit may be named
  but has no loops (factors other than 1 are an error).  The replicating containers
  recorded by :mod:`hwmodel.spec` (``PE``) and Timeloop's dummy levels
  (``inter_PE_spatial``, or a ``dummy_storage`` component of that name) address the fan-out
  of the storage level above them: their spatial loops form a fan-out *stage* of that level
  of their own (:class:`hwmodel.mapping.SpatialStage`, in the architecture's container
  order), because Timeloop finds multicast and reduction one container at a time;
  temporal directives there must be all ones, and their datatype directives are ignored.
  Stages are written back under Timeloop's pseudo-target ``inter_<container>_spatial``.
* **Permutations** list dims from the **innermost** loop outwards (Timeloop's order);
  :class:`LevelMapping` lists loops **outermost first**, so the order is reversed.  In a
  temporal directive, dims with a factor above 1 that the permutation omits are placed
  innermost (in the workload's dimension order); in a spatial directive they follow the
  listed dims, so they land on X without a ``split`` and on Y with one.  Dims absent
  from ``factors`` have factor 1.
* **Loops of factor 1 are dropped** when reading: they do not change any count.  A
  mapping therefore reads back equal to what was written when it has no factor-1 loops
  (see :func:`drop_trivial_loops`).
* **Spatial split** (Timeloop semantics): dims at permutation index ``< split`` go to X,
  the rest to Y; without ``split`` every dim goes to X (Timeloop's default, split = number
  of dims).  Several spatial directives for one target (an X and a Y
  directive) add up.
* **Keep/bypass**: a level keeps every workload data space the architecture allows
  (:meth:`StorageLevel.may_keep`) unless a ``datatype``/``bypass``/``dataspace`` directive
  bypasses it; keeping a data space the architecture bypasses is an error.
* **Validation**: the product of a dim's factors over all levels must equal its bound
  (the error names the dim and both numbers), and spatial factors must fit the level's
  fan-out along X and along Y.
* **Names** of dimensions and data spaces are the workload's (a problem declaring
  ``dimensions: [K, P, R]`` is mapped with ``factors: K=4 P=2``).  The mapping may be a
  template, or the ``mapping`` section of merged input files (:class:`SpecInputs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping as CMapping
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from core.errors import HwcostError

from .arch import Architecture
from .inputs import SpecInputs
from .mapping import LevelMapping, Loop, Mapping, SpatialStage
from .model import overflow
from .workload import Workload
from .yamlio import (
    Located,
    as_map,
    dump_yaml,
    format_factors,
    format_permutation,
    line_of,
    name_list,
    parse_factors,
    parse_permutation,
    to_int,
    value_line,
)

_DATATYPE = ("datatype", "bypass", "dataspace", "bypassing")


def _directives(doc: Any, err: Located, line: int = 1) -> tuple[list[Any], int | None]:
    """The directive list of ``doc``; ``line``: where to point when it has none and ``doc``
    carries no line of its own (a section value re-wrapped under its key)."""
    node = doc
    for _ in range(3):
        if isinstance(node, list):
            return node, line_of(node, None, 1)
        if as_map(node):
            for key in ("mapping", "nodes", "targets"):
                if key in node:
                    node = node[key]
                    break
            else:
                break
    raise err("expected a list of mapping directives (optionally under 'mapping:')",
              line_of(doc, None, line))


def _containers(arch: Architecture, idx: int) -> list[str]:
    """Names of the containers below level ``idx``, outermost first."""
    return [str(c) for c in arch.levels[idx].attributes.get("spatial_containers", []) or []]


def _targets(arch: Architecture) -> dict[str, tuple[int, str, str]]:
    """Target name -> (level index, 'level' | 'alias' | 'compute', container name)."""
    out: dict[str, tuple[int, str, str]] = {}
    for i in range(len(arch.levels)):
        for c in _containers(arch, i):
            out.setdefault(c, (i, "alias", c))
            out.setdefault(f"inter_{c}_spatial", (i, "alias", c))
    out[arch.compute.name] = (-1, "compute", "")
    for i, lv in enumerate(arch.levels):
        out[lv.name] = (i, "level", "")
    return out


def _stage(levels: list[LevelMapping], arch: Architecture, idx: int,
           container: str) -> SpatialStage:
    """The stage of ``container`` below level ``idx``, created in the architecture's order."""
    lm = levels[idx]
    for st in lm.stages:
        if st.name == container:
            return st
    order = _containers(arch, idx)
    st = SpatialStage(container)
    lm.stages.append(st)
    lm.stages.sort(key=lambda s: order.index(s.name) if s.name in order else len(order))
    return st


def load_mapping(source: str | Path | SpecInputs, arch: Architecture, workload: Workload, *,
                 template_vars: CMapping[str, Any] | None = None) -> Mapping:
    """Read a Timeloop mapping for ``workload`` on ``arch`` and validate it: a file (a
    template is rendered with ``template_vars``) or the ``mapping`` section of merged
    inputs."""
    inputs = source if isinstance(source, SpecInputs) else \
        SpecInputs.load([source], template_vars)
    section = inputs.first("mapping")
    if section is None:
        where = inputs.files[0] if inputs.files else Path("mapping")
        raise HwcostError("expected a list of mapping directives (optionally under "
                          "'mapping:')", file=where, line=1)
    err = section.err
    doc = section.value if section.key is None else {"mapping": section.value}
    directives, root_line = _directives(doc, err, section.line or 1)
    targets = _targets(arch)
    dims = list(workload.dim_names)
    ds_names = [ds.name for ds in workload.data_spaces]
    levels = [LevelMapping(keep=frozenset(n for n in ds_names if lv.may_keep(n)))
              for lv in arch.levels]
    has_temporal: dict[int, int | None] = {}
    spatial_lines: dict[int, int | None] = {}
    dim_lines: dict[str, int | None] = {}
    keep_lines: dict[int, int | None] = {}

    for i, d in enumerate(directives):
        dl = line_of(d, None, line_of(directives, i))
        if not as_map(d):
            raise err("a mapping directive must be a mapping {target, type, ...}", dl)
        name = d.get("target")
        if name is None:
            raise err("mapping directive without 'target'", dl)
        if str(name) not in targets:
            pseudo = sorted(t for t, (_i, role, _c) in targets.items() if role == "alias")
            raise err(f"unknown mapping target {name!r} (levels: {', '.join(arch.names)}; "
                      + (f"containers: {', '.join(pseudo)}; " if pseudo else "")
                      + f"compute: {arch.compute.name})", dl)
        idx, role, container = targets[str(name)]
        kind = str(d.get("type", "")).strip().lower()
        if kind in _DATATYPE:
            if role == "level":
                levels[idx].keep = _keep(d, levels[idx].keep, arch, idx, ds_names, err, dl)
                keep_lines[idx] = dl
            continue
        if kind not in ("temporal", "spatial"):
            raise err(f"unknown directive type {d.get('type')!r} (temporal, spatial, "
                      "datatype, bypass)", dl)

        def at(key: str, d: Any = d, dl: int | None = dl):
            return lambda m: err(m, value_line(d, key, dl))

        factors = parse_factors(d.get("factors"), at("factors"))
        perm = parse_permutation(d.get("permutation"), at("permutation"), dims)
        for key, seq in (("factors", factors), ("permutation", perm)):
            for dim in seq:
                if dim not in dims:
                    raise err(f"unknown dimension {dim!r} in {key} (workload dimensions: "
                              f"{' '.join(dims)})", value_line(d, key, dl))
        if len(set(perm)) != len(perm):
            raise err(f"dimension repeated in permutation {''.join(perm)}",
                      value_line(d, "permutation", dl))
        for dim, f in factors.items():
            if f < 1:
                raise err(f"factor of {dim} must be at least 1 in a mapping, got {f}",
                          value_line(d, "factors", dl))
            dim_lines.setdefault(dim, value_line(d, "factors", dl))
        big = {k: v for k, v in factors.items() if v > 1}
        if role == "compute" or (role == "alias" and kind == "temporal"):
            if big:
                raise err(f"{name!r} has no {kind} loops of its own; factors "
                          f"{format_factors(big.items())} must be placed on a storage level",
                          value_line(d, "factors", dl))
            continue
        unlisted = [x for x in dims if x not in perm]
        if kind == "temporal":
            order = unlisted + perm                          # innermost first
            if idx in has_temporal:
                raise err(f"temporal loops of {name!r} given twice (first at line "
                          f"{has_temporal[idx]})", dl)
            has_temporal[idx] = dl
            levels[idx].temporal = [(x, big[x]) for x in reversed(order) if x in big]
        else:
            order = perm + unlisted                          # unlisted after: X or Y
            split = len(dims)
            if d.get("split") is not None:
                split = to_int(d["split"], "split", at("split"), minimum=0)
            xs = [(x, big[x]) for x in reversed(order[:split]) if x in big]
            ys = [(x, big[x]) for x in reversed(order[split:]) if x in big]
            if role == "alias":
                stage = _stage(levels, arch, idx, container)
                stage.x += xs
                stage.y += ys
            else:
                levels[idx].spatial_x += xs
                levels[idx].spatial_y += ys
            spatial_lines.setdefault(idx, dl)

    lost = [n for n in ds_names if n not in levels[0].keep]
    if lost:
        raise err(f"the outermost level {arch.levels[0].name!r} must keep every data space; "
                  f"this mapping bypasses {', '.join(lost)} there",
                  keep_lines.get(0, root_line))
    mapping = Mapping(levels)
    for dim, bound in workload.dims:
        got = mapping.dim_product(dim)
        if got != bound:
            raise err(f"factors of {dim} multiply to {got} over all levels but the workload "
                      f"bound of {dim} is {bound}", dim_lines.get(dim, root_line))
    for i, (lv, lm) in enumerate(zip(arch.levels, levels)):
        fx = math.prod(f for _, f in lm.all_x)
        fy = math.prod(f for _, f in lm.all_y)
        if fx > lv.fanout_x or fy > lv.fanout_y:
            raise err(f"spatial factors at {lv.name!r} need {fx} x {fy} (X x Y) instances "
                      f"but its fan-out is {lv.fanout_x} x {lv.fanout_y}",
                      spatial_lines.get(i, root_line))
    over = overflow(arch, workload, mapping)
    if over is not None:
        i, words, cap = over
        kept = ", ".join(ds for ds in ds_names if ds in levels[i].keep)
        raise err(f"level {arch.levels[i].name!r} cannot hold its tiles: {kept} need {words} "
                  f"words, its capacity is {cap}", has_temporal.get(i) or root_line)
    return mapping


def _keep(d: Any, current: frozenset[str], arch: Architecture, idx: int,
          ds_names: list[str], err: Located, dl: int | None) -> frozenset[str]:
    lv = arch.levels[idx]
    keep = set(current)
    for key in ("keep", "bypass"):
        value = d.get(key)
        if value is None:
            continue
        names = name_list(value, key, lambda m, k=key: err(m, value_line(d, k, dl)))
        for n in names:
            if n not in ds_names:
                raise err(f"unknown data space {n!r} in {key} (workload data spaces: "
                          f"{', '.join(ds_names)})", value_line(d, key, dl))
            if key == "keep":
                if not lv.may_keep(n):
                    raise err(f"level {lv.name!r} cannot keep {n}: the architecture "
                              "bypasses it there", value_line(d, key, dl))
                keep.add(n)
            else:
                keep.discard(n)
    return frozenset(keep)


def drop_trivial_loops(mapping: Mapping) -> Mapping:
    """A copy of ``mapping`` without factor-1 loops: the form :func:`load_mapping` returns."""
    def big(loops: list[Loop]) -> list[Loop]:
        return [lp for lp in loops if lp[1] > 1]

    return Mapping([LevelMapping(temporal=big(lm.temporal), spatial_x=big(lm.spatial_x),
                                 spatial_y=big(lm.spatial_y), keep=lm.keep,
                                 stages=[SpatialStage(st.name, big(st.x), big(st.y))
                                         for st in lm.stages if big(st.loops)])
                    for lm in mapping.levels])


def _flow(items: list[str]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def mapping_document(mapping: Mapping, arch: Architecture,
                     workload: Workload | None = None) -> CommentedMap:
    """Timeloop-style directives for ``mapping`` (see :func:`write_mapping`)."""
    if len(mapping.levels) != len(arch.levels):
        raise HwcostError(f"mapping has {len(mapping.levels)} levels but architecture "
                          f"{arch.name!r} has {len(arch.levels)}")
    if workload is not None:
        dims = list(workload.dim_names)
        spaces = [ds.name for ds in workload.data_spaces]
    else:
        dims = []
        for lm in mapping.levels:
            for d, _ in lm.temporal + lm.spatial:
                if d not in dims:
                    dims.append(d)
        # the outermost level keeps every data space (load_mapping checks it)
        spaces = list(dict.fromkeys(n for lm in mapping.levels for n in sorted(lm.keep)))
    out: list[CommentedMap] = []
    for lv, lm in zip(arch.levels, mapping.levels):
        out.append(CommentedMap(target=lv.name, type="datatype",
                                keep=_flow([s for s in spaces if s in lm.keep]),
                                bypass=_flow([s for s in spaces if s not in lm.keep])))
        out.append(_loop_directive(lv.name, "temporal", lm.temporal, [], dims))
        stages = [(lv.name, lm.spatial_x, lm.spatial_y)] + [
            (_pseudo_target(st.name), st.x, st.y) for st in lm.stages]
        for target, xs, ys in stages:
            if not xs and not ys:
                continue
            if set(d for d, _ in xs) & set(d for d, _ in ys):
                # one dim on both axes: one directive per axis
                out.append(_loop_directive(target, "spatial", xs, [], dims, trivial=False))
                out.append(_loop_directive(target, "spatial", [], ys, dims, trivial=False))
            else:
                out.append(_loop_directive(target, "spatial", xs, ys, dims))
    return CommentedMap(mapping=out)


def _pseudo_target(container: str) -> str:
    """The name Timeloop gives the dummy level of a container in the mappings it writes."""
    if container.startswith("inter_") and container.endswith("_spatial"):
        return container                  # a flattened spec names the dummy level itself
    return f"inter_{container}_spatial"


def _loop_directive(target: str, kind: str, first: list[Loop], second: list[Loop],
                    dims: list[str], trivial: bool = True) -> CommentedMap:
    """One directive: ``first`` is the temporal nest or the X loops, ``second`` the Y loops.

    Loops are outermost first, Timeloop permutations innermost first.  With ``trivial``
    the factor-1 dims are listed too (Timeloop wants complete factors); they go after the
    real loops (outermost, or on Y), where a factor of 1 changes nothing.
    """
    for part in (first, second):
        seen = [d for d, _ in part]
        if len(set(seen)) != len(seen):
            raise HwcostError(f"{kind} loops of {target!r} repeat a dimension "
                              f"({' '.join(seen)}); Timeloop allows one loop per dim")
    inner_first = [d for d, _ in reversed(first)] + [d for d, _ in reversed(second)]
    factors = dict(first + second)
    if trivial:
        rest = [d for d in dims if d not in factors]
        inner_first += rest
        factors.update({d: 1 for d in rest})
    order = [d for d in dims if d in factors] + [d for d in factors if d not in dims]
    node = CommentedMap(target=target, type=kind,
                        factors=format_factors((d, factors[d]) for d in order),
                        permutation=format_permutation(inner_first))
    if kind == "spatial":
        node["split"] = len(first)
    return node


def write_mapping(mapping: Mapping, arch: Architecture, path: str | Path,
                  workload: Workload | None = None) -> None:
    """Write ``mapping`` as Timeloop mapping YAML (atomically).

    ``workload`` (optional) gives the complete dimension and data-space lists, so factors
    name every dim and ``bypass`` lists every other data space; without it the dims seen in
    the loops and the data spaces some level keeps are used.  :func:`load_mapping` reads
    the file back equal to ``drop_trivial_loops(mapping)``.
    """
    dump_yaml(mapping_document(mapping, arch, workload), path,
              header=f"Timeloop mapping on architecture '{arch.name}' written by hwcost")
