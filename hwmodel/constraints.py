"""Dataflow constraints of a spec: reading, merging, applying and checking them.

:mod:`hwmodel.spec` reads the architecture's components; this module reads what restricts
how loops may be mapped onto them (:class:`~hwmodel.arch.LoopConstraint` and the keep/bypass
sets of a storage level), wherever a spec writes it:

* **Inline**: a node's ``constraints: {temporal, spatial, dataspace}`` (:func:`check_group`,
  :func:`loop_constraint`, :func:`dataspace_constraint`).
* **Constraint targets**: any top-level block whose key contains ``constraints``
  (``architecture_constraints``, ``mapspace_constraints``...) with ``targets: [...]`` (or a
  bare list), in any input file (:mod:`hwmodel.inputs` merges them), each ``{target, type:
  temporal|spatial|dataspace|bypass|datatype, ...}`` (:func:`apply_targets`).  Keys of
  timeloopfe that change the map space in ways hwcost does not model (``no_reuse``,
  ``maximize_dims``, ``keep_only``...) are refused by name rather than ignored.  A target
  may be a storage level, a container (``PE``) or Timeloop's dummy name
  (``inter_PE_spatial``): the latter two address the fan-out of the level above.
  ``utilization``/``parallelism`` targets are accepted and ignored.  Conflicting factors,
  permutations or splits for one level are errors, as in Timeloop (:func:`merge_loop`).
* **Factors** ``"R=3 S=1"`` (also ``R3``, commas, lists, maps; ``R<=4`` is a maximum
  factor); a factor of **0 means "all that remains"** of the dimension and is stored as 0
  for the mapper to interpret.  **Permutations** keep Timeloop's order (innermost first).
  ``"*"`` in keep/bypass is every data space.
* **Several containers under one level** (Timeloop's Eyeriss: a meshX column container then
  a meshY row container) share its fan-out; :func:`merge_containers` rebuilds one X/Y
  constraint from theirs (see :mod:`hwmodel.spec`'s docstring for the reading).
* **Names come from the problem**: a spec read without its problem accepts any dimension
  and data-space name and records where each was written; :func:`check_problem` checks them
  when spec and problem meet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from core.errors import HwcostError

from .arch import ALL_DATA_SPACES, Architecture, LoopConstraint, Origin
from .expressions import Scope
from .inputs import Section
from .workload import Workload
from .yamlio import (
    Located,
    as_map,
    line_of,
    name_list,
    parse_factors,
    parse_permutation,
    to_int,
    value_line,
)

#: Keys of a loop or dataspace constraint that hwcost reads.
LOOP_KEYS = {"factors", "max_factors", "permutation", "split"}
SPACE_KEYS = {"keep", "bypass"}
#: timeloopfe keys that change the map space in ways hwcost does not model: refused by
#: name (when they say something) rather than silently ignored.
UNSUPPORTED_KEYS = frozenset({
    "no_reuse", "no_link_transfer", "rmw_first_update", "no_coalesce", "maximize_dims",
    "maximize_dims_capacity", "default_max_factor", "default_min_factor", "remainders",
    "factors_only", "no_iteration_over_dataspaces", "must_iterate_over_dataspaces",
    "keep_only", "bypass_only",
})
#: Target types that restrict keep/bypass (Timeloop's spellings over the versions).
DATASPACE_TYPES = ("dataspace", "bypass", "datatype", "bypassing")


# ----------------------------------------------------------------------------- one constraint

def check_keys(node: Any, allowed: set[str], err: Located, what: str,
               line: int | None) -> None:
    """Refuse keys hwcost would otherwise ignore: a timeloopfe feature it does not
    model (by name), or a typo."""
    for key in node:
        k = str(key)
        if k in allowed or k in ("target", "type", "version"):
            continue
        kl = value_line(node, key, line)
        if k in UNSUPPORTED_KEYS:
            if node[key] in (None, [], {}, ""):
                continue
            raise err(f"{what} constraint: {k!r} is not supported by hwcost (it "
                      "models factors, max_factors, permutation, split, keep and "
                      "bypass)", kl)
        raise err(f"{what} constraint: unknown key {k!r} (known: "
                  f"{', '.join(sorted(allowed))})", kl)


def loop_constraint(node: Any, err: Located, what: str, line: int | None, scope: Scope,
                    dims: list[str] | None) -> LoopConstraint:
    """``node`` as a loop constraint; ``line``: where it sits when it is a bare scalar;
    ``scope``: what its ``split`` expression may use; ``dims``: the problem's dimensions,
    when it is known (a permutation string is split on them)."""
    line = line_of(node, None, line)
    if not as_map(node):
        raise err(f"{what} constraint must be a mapping", line)
    check_keys(node, LOOP_KEYS, err, what, line)

    def at(key: str):
        return lambda msg: err(msg, value_line(node, key, line))

    max_factors: dict[str, int] = {}
    factors = parse_factors(node.get("factors"), at("factors"), max_factors)
    for d, f in parse_factors(node.get("max_factors"), at("max_factors")).items():
        if d in max_factors and max_factors[d] != f:
            raise err(f"maximum factor of {d} given twice differently",
                      value_line(node, "max_factors", line))
        max_factors[d] = f
    perm = parse_permutation(node.get("permutation"), at("permutation"), dims)
    if len(set(perm)) != len(perm):
        raise err(f"dimension repeated in {what} permutation {perm}",
                  value_line(node, "permutation", line))
    split = None
    if node.get("split") is not None:
        split = to_int(node["split"], "split", at("split"), scope, minimum=0)
    origins = {key: (str(err.path), value_line(node, key, line))
               for key in ("factors", "max_factors", "permutation") if key in node}
    if "factors" in node and "max_factors" not in node and max_factors:
        origins["max_factors"] = origins["factors"]
    return LoopConstraint(factors=factors, max_factors=max_factors,
                          permutation=perm or None, split=split, line=line,
                          origins=origins)


def dataspace_constraint(node: Any, err: Located, line: int | None = None
                         ) -> tuple[frozenset[str] | None, frozenset[str], dict[str, Origin]]:
    """``keep``/``bypass`` of a dataspace constraint and where each was written; the
    names are the problem's and are checked when spec and problem are paired."""
    line = line_of(node, None, line)
    if not as_map(node):
        raise err("dataspace constraint must be a mapping like {keep: [...], bypass: "
                  "[...]}", line)
    check_keys(node, SPACE_KEYS, err, "dataspace", line)
    keep = bypass = None
    origins: dict[str, Origin] = {}
    for key in ("keep", "bypass"):
        value = node.get(key)
        if value is None:
            continue
        names = name_list(value, key, lambda m, k=key: err(m, value_line(node, k, line)))
        origins[key] = (str(err.path), value_line(node, key, line))
        if key == "keep":
            keep = frozenset(str(n) for n in names)
        else:
            bypass = frozenset(str(n) for n in names)
    if keep is not None and bypass is not None and (
            keep & bypass or (ALL_DATA_SPACES in keep | bypass and keep and bypass)):
        both = sorted(keep & bypass) or [ALL_DATA_SPACES]
        raise err(f"data space both kept and bypassed: {both}", line)
    return keep, bypass or frozenset(), origins


def check_group(cons: Any, err: Located, name: str, line: int | None) -> None:
    """A node's ``constraints`` map has only the groups hwcost reads."""
    for key in cons:
        k = str(key)
        if k in ("spatial", "temporal", "dataspace", "version"):
            continue
        kl = value_line(cons, key, line)
        if k == "max_overbooked_proportion":
            if overbooking(cons[key]):
                raise err(f"constraints of {name!r}: max_overbooked_proportion is not "
                          "supported (hwcost never overbooks a buffer)", kl)
            continue
        raise err(f"constraints of {name!r}: unknown group {k!r} (known: spatial, "
                  "temporal, dataspace)", kl)


def overbooking(value: Any) -> bool:
    """Whether a ``max_overbooked_proportion`` asks for overbooking (anything but 0)."""
    if as_map(value):
        value = value.get("proportion")
    return value not in (None, 0, 0.0, "0", "")


# ----------------------------------------------------------------------------- merging

def merge_loop(old: LoopConstraint | None, new: LoopConstraint | None,
               err: Located, where: str) -> LoopConstraint | None:
    """Combine constraints given twice for one level (e.g. inline and in a file)."""
    if old is None or new is None:
        return old or new
    for src, dst in ((new.factors, old.factors), (new.max_factors, old.max_factors)):
        for d, f in src.items():
            if d in dst and dst[d] != f:
                raise err(f"conflicting factors for {d} at {where}: {dst[d]} and {f}",
                          new.line)
            dst[d] = f
    if new.permutation and old.permutation and new.permutation != old.permutation:
        raise err(f"permutation of {where} given twice differently", new.line)
    if new.split is not None and old.split is not None and new.split != old.split:
        raise err(f"split of {where} given twice differently", new.line)
    old.permutation = old.permutation or new.permutation
    old.split = old.split if old.split is not None else new.split
    for key, origin in new.origins.items():
        old.origins.setdefault(key, origin)
    return old


def merge_containers(items: Sequence[Any]) -> LoopConstraint | None:
    """Several containers share one fan-out: rebuild one X/Y constraint (see
    :mod:`hwmodel.spec`'s docstring).  ``items`` have ``mesh_x``, ``mesh_y`` and
    ``spatial`` (a :class:`LoopConstraint` or None), outermost first."""
    with_c = [p for p in items if p.spatial is not None]
    if not with_c:
        return None
    if len(with_c) == 1:
        return with_c[0].spatial
    x_part: list[str] = []
    y_part: list[str] = []
    for p in with_c:
        c = p.spatial
        assert c is not None
        perm = [d for d in (c.permutation or []) if c.factors.get(d) != 1]
        full = c.permutation or []
        split = c.split if c.split is not None else len(full)
        xs = [d for d in full[:split] if d in perm]
        ys = [d for d in full[split:] if d in perm]
        if p.mesh_x > 1 and p.mesh_y == 1 and c.split is None:
            xs, ys = perm, []
        elif p.mesh_y > 1 and p.mesh_x == 1 and c.split is None:
            xs, ys = [], perm
        unknown = p.mesh_x == p.mesh_y == 1        # v0.3 subtree: mesh not known here
        if p.mesh_x > 1 or unknown:
            x_part += [d for d in xs if d not in x_part]
        if p.mesh_y > 1 or unknown:
            y_part += [d for d in ys if d not in y_part]
    factors: dict[str, int] = {}
    max_factors: dict[str, int] = {}
    for attr, out in (("factors", factors), ("max_factors", max_factors)):
        dims = list(dict.fromkeys(d for p in with_c for d in getattr(p.spatial, attr)))
        for d in dims:
            vals = [getattr(p.spatial, attr).get(d) for p in with_c]
            if all(v is not None for v in vals):
                out[d] = math.prod(vals)
    origins: dict[str, Origin] = {}
    for p in with_c:
        for key, origin in p.spatial.origins.items():
            origins.setdefault(key, origin)
    return LoopConstraint(factors=factors, max_factors=max_factors,
                          permutation=(x_part + y_part) or None, split=len(x_part),
                          line=with_c[0].spatial.line, origins=origins)


# ----------------------------------------------------------------------------- targets

def apply_targets(sections: Iterable[Section], records: Sequence[Any],
                  containers: dict[str, Any], scope: Scope,
                  dims: list[str] | None) -> None:
    """Apply the targets of every constraint block, in file order, to the spec's
    components: ``records`` (each with ``name``, ``is_compute`` and the ``temporal``,
    ``spatial``, ``keep``, ``bypass`` and ``dataspace_origins`` it collects) and the
    replicating ``containers`` by every name a target may give them (``PE``,
    ``inter_PE_spatial``; each with ``name`` and ``spatial``)."""
    for sec in sections:
        block, err, key = sec.value, sec.err, sec.key
        if block is None:
            continue
        targets = block.get("targets") if as_map(block) else block
        if targets is None:
            continue
        if not isinstance(targets, list):
            where = value_line(block, "targets", sec.line) if as_map(block) else sec.line
            raise err(f"{key}: 'targets' must be a list", line_of(targets, None, where))
        for i, t in enumerate(targets):
            _apply_target(t, err, line_of(targets, i), records, containers, scope, dims)


def _apply_target(t: Any, err: Located, line: int | None, records: Sequence[Any],
                  containers: dict[str, Any], scope: Scope, dims: list[str] | None) -> None:
    if not as_map(t):
        raise err("constraint target must be a mapping", line)
    line = line_of(t, None, line)
    name = t.get("target")
    kind = str(t.get("type", "")).lower()
    if name is None:
        raise err("constraint without 'target'", line)
    if kind in ("utilization", "parallelism"):
        return
    if kind == "max_overbooked_proportion":
        if overbooking(t.get("proportion")):
            raise err("max_overbooked_proportion is not supported (hwcost never "
                      "overbooks a buffer)", line)
        return
    names = {r.name: i for i, r in enumerate(records)}
    if name in names:
        rec = records[names[name]]
        if rec.is_compute:
            raise err(f"target {name!r} is the compute unit; constraints apply to "
                      "storage levels", line)
        if kind == "temporal":
            rec.temporal = merge_loop(rec.temporal,
                                      loop_constraint(t, err, "temporal", None, scope, dims),
                                      err, name)
        elif kind == "spatial":
            rec.spatial = merge_loop(rec.spatial,
                                     loop_constraint(t, err, "spatial", None, scope, dims),
                                     err, name)
        elif kind in DATASPACE_TYPES:
            keep, bypass, origins = dataspace_constraint(t, err)
            if keep is not None:
                if rec.keep is not None and rec.keep != keep:
                    raise err(f"keep of {name!r} given twice differently", line)
                rec.keep = keep
            rec.bypass = rec.bypass | bypass
            for key, origin in origins.items():
                rec.dataspace_origins.setdefault(key, origin)
        else:
            raise err(f"unknown constraint type {t.get('type')!r} (temporal, spatial, "
                      "dataspace, bypass)", line)
        return
    if name in containers:
        if kind == "spatial":
            container = containers[name]
            container.spatial = merge_loop(container.spatial,
                                           loop_constraint(t, err, "spatial", None, scope,
                                                           dims),
                                           err, container.name)
        elif kind not in ("temporal", *DATASPACE_TYPES):
            raise err(f"unknown constraint type {t.get('type')!r}", line)
        return                                       # dummy-level temporal/bypass: no-op
    known = [r.name for r in records if not r.is_compute] + sorted(containers)
    raise err(f"constraint target {name!r} is not a level of this architecture "
              f"(levels: {', '.join(known)})", line)


# ----------------------------------------------------------------------------- the problem

def check_problem(arch: Architecture, workload: Workload) -> None:
    """Check that every dimension and data-space name ``arch``'s constraints use is one of
    ``workload``'s, and that every level keeps some data space of it.

    Specs name the problem's own dimensions and data spaces (``K`` for a problem with
    ``dimensions: [K, P, R]``), so a spec read without its problem accepts any name; this
    is the check for when the two meet (the CLI, the mapper's and the model's callers).
    Raises a :class:`HwcostError` at the file and line where the unknown name was written,
    naming the valid ones.
    """
    dims = list(workload.dim_names)
    spaces = [ds.name for ds in workload.data_spaces]

    def fail(message: str, origin: Origin | None, fallback: int | None) -> HwcostError:
        file, line = origin if origin is not None else (arch.source, fallback)
        return HwcostError(message, file=file or arch.source, line=line or fallback)

    def loops(c: LoopConstraint | None, kind: str, name: str) -> None:
        if c is None:
            return
        for key, names in (("factors", c.factors), ("max_factors", c.max_factors),
                           ("permutation", c.permutation or [])):
            label = "factors" if key == "max_factors" and \
                c.origins.get(key) == c.origins.get("factors") else key   # written X<=4
            for d in names:
                if d not in dims:
                    raise fail(f"unknown dimension {d!r} in the {kind} {label} of {name!r} "
                               f"(problem {workload.name!r} has dimensions: "
                               f"{' '.join(dims)})", c.origins.get(key), c.line)

    for lv in arch.levels:
        loops(lv.temporal, "temporal", lv.name)
        loops(lv.spatial, "spatial", lv.name)
        for c in lv.containers:
            if c.spatial is not lv.spatial:
                loops(c.spatial, "spatial", c.name)
        for key, names in (("keep", lv.keep or ()), ("bypass", lv.bypass)):
            for n in sorted(names):
                if n != ALL_DATA_SPACES and n not in spaces:
                    raise fail(f"unknown data space {n!r} in {key} of {lv.name!r} (problem "
                               f"{workload.name!r} has data spaces: {', '.join(spaces)})",
                               lv.dataspace_origins.get(key), lv.line)
