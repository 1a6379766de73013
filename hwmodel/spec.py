"""Read Timeloop/Accelergy architecture specs (v0.4 and v0.3 YAML) into :class:`Architecture`.

Both formats describe the same thing: a chain of components from DRAM inwards, replicated
by spatial meshes, ending at a MAC.  This reader flattens either form into that chain and
keeps the dataflow constraints on the storage levels they restrict.

Semantics implemented (and where we chose among possible readings):

* **v0.4** ``architecture: {version: 0.4, nodes: [...]}``.  The node list is read in order,
  outermost first; a ``!Container`` (and a ``!Component`` with its own ``spatial`` mesh)
  multiplies the instance count of *every node after it* (the hierarchy is linear), and its
  ``attributes`` are inherited by everything after it.  Nested ``nodes:`` lists (inside a
  container, ``!Hierarchical`` or ``!Parallel``) are read in the same running order:
  **``!Parallel`` children are treated as successive levels** (Timeloop itself orders
  sibling buffers such as Eyeriss's three spads one inside the other).  ``!Nothing`` is
  skipped.  A container's ``constraints.spatial`` restricts the fan-out of the storage
  level directly above it, so it is stored on that level's ``spatial``; when several
  containers sit under one level (Timeloop's Eyeriss: a meshX column container then a
  meshY row container) their constraints are merged: each contributes the permutation
  part for its own mesh axis (X dims first, ``split`` = number of X dims); a factor is kept
  when every container fixes it (product), dropped when only some do and those say 1
  (the dim stays free on the other axis), and otherwise dropped too (an approximation:
  "exactly f on X, free on Y" is not expressible in one :class:`LoopConstraint`).
  Container temporal/dataspace constraints (Timeloop's dummy levels) are ignored.  A
  compute component's ``constraints.spatial`` (a MAC with its own ``spatial`` mesh)
  likewise restricts the fan-out into the MAC array, i.e. the last storage level's.
* **v0.3** ``architecture: {version: 0.3, subtree: [{name, attributes, local, subtree}]}``.
  ``name[a..b]`` replicates ``b-a+1`` times (multiplicatively down the tree); a ``meshX``
  (or ``meshY``) attribute, inherited like all attributes, gives the *total* X (Y)
  arrangement of a component's instances; with neither, all instances lie along X
  (Timeloop's default).  Spellings ``memory_depth``, ``memory_width``, ``word-bits``,
  ``block-size`` are accepted and stored under the v0.4 names.
* **Dataflow constraints** (a node's inline ``constraints`` and the ``targets`` of
  constraint blocks in any input file: factors, maximum factors, permutations, splits,
  keep and bypass) are read, merged and checked by :mod:`hwmodel.constraints`, whose
  docstring gives the reading.
* **Names come from the problem.**  Dimension and data-space names in constraints
  (factors, permutations, keep/bypass) are whatever the problem declares: a spec read
  without a problem accepts any name and records where each was written; the names are
  checked when spec and problem are paired (:func:`check_problem`, from
  :mod:`hwmodel.constraints`, which ``load_arch`` runs itself when it is given the
  problem).  A permutation written as one string (``RSPQ``) is split on the problem's
  dimension names when the problem is known, into letters otherwise (Timeloop's
  reading).  ``"*"`` in keep/bypass is every data space.
* **Expressions**: attribute values, meshes and splits are evaluated as Timeloop's front end
  evaluates them (:mod:`hwmodel.expressions`): the ``variables`` (from any input file),
  the attributes of enclosing containers and the node's own, ``spec`` (``spec.problem``
  needs the problem).  Text that is not an expression (``45nm``) or a bare unknown word
  (``LPDDR4``) stays a string.
* **Geometry**: ``datawidth`` defaults to 8 bits, ``block_size`` to 1 and ``width`` to
  ``datawidth * block_size``; DRAM (any class containing ``DRAM``) has ``depth = None``
  (unbounded).  A storage component is any component of a storage class or with a depth;
  the single compute unit is the component whose class names a MAC or multiplier.
* **Technology** is inherited down the tree (default ``45nm``; numbers become ``"45nm"``).
* Each storage level records in ``attributes["spatial_containers"]`` the names of the
  replicating containers (or v0.3 subtrees) directly below it, so mapping files that
  target them (``inter_PE_spatial``) can be resolved.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import HwcostError
from core.limits import Limit
from core.untrusted import refuse_special_file

from .arch import (
    Architecture,
    ComputeUnit,
    Container,
    LoopConstraint,
    Origin,
    StorageLevel,
)
from .constraints import (
    apply_targets,
    check_group,
    check_problem,
    dataspace_constraint,
    loop_constraint,
    merge_containers,
    merge_loop,
)
from .expressions import ExprError, Scope, View, resolve
from .inputs import SpecInputs, spec_scope
from .workload import Workload
from .yamlio import (
    Located,
    as_map,
    line_of,
    tag_of,
    to_float,
    to_int,
    value_line,
)

_STORAGE_CLASSES = {
    "sram", "regfile", "smartbuffer_sram", "smartbuffer_rf", "storage", "reg", "register",
    "buffer", "smartbuffer", "cache", "fifo", "regfile_metadata", "smartbuffer_metadata",
    "smart_storage", "sram_metadata",
}
_COMPUTE_CLASSES = {"compute", "alu", "pe_compute", "fpu", "simd"}
_ATTR_ALIASES = {
    "memory_depth": "depth", "memory_width": "width", "word-bits": "datawidth",
    "word_bits": "datawidth", "block-size": "block_size", "blocksize": "block_size",
    "read-bandwidth": "read_bandwidth", "write-bandwidth": "write_bandwidth",
    "shared-bandwidth": "shared_bandwidth",
    "n-banks": "n_banks", "nbanks": "n_banks",
}
_NAME_RE = re.compile(r"^\s*([^\[\]]+?)\s*(?:\[\s*(\d{1,30})\s*\.\.\s*(\d{1,30})\s*\])?\s*$")

#: The model and the mapper handle fan-outs arithmetically, but the mapper's spatial
#: candidates, multicast sets and reports grow with them; the largest real arrays are
#: 10**4-10**5 MACs (a TPU's 256x256), ``PE[0..1000000000]`` is a typo.
MAX_INSTANCES = Limit("HWCOST_MAX_INSTANCES", 1 << 20, "instances of one component")
#: The mapper's tiling search checks every level's tile against every level outside it
#: (quadratic); real hierarchies have 3 to 8 storage levels, 16 map in about 1.5 s.
MAX_LEVELS = Limit("HWCOST_MAX_LEVELS", 16, "storage levels")


# ----------------------------------------------------------------------------- bundled specs

def list_bundled() -> list[str]:
    """Names of the specs shipped in ``arch_specs/`` (``eyeriss``, ``simba``, ...)."""
    from arch_specs import list_bundled as _list
    return _list()


def resolve_arch_path(name_or_path: str | Path) -> Path:
    """An existing file path as is, else the bundled spec of that name.

    A bare name that is not bundled is an error listing the bundled names; something that
    looks like a path (has a folder or a ``.yaml`` suffix) and does not exist is a
    missing-file error.
    """
    from arch_specs import bundled_path

    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.is_dir():
        raise HwcostError("is a directory, not an architecture spec", file=p)
    refuse_special_file(p)   # a FIFO or device: opening it could block forever
    text = str(name_or_path)
    stem = p.stem if p.suffix in (".yaml", ".yml") and len(p.parts) == 1 else text
    found = bundled_path(stem)
    if found is not None:
        return found
    if len(p.parts) > 1 or p.suffix in (".yaml", ".yml"):
        raise HwcostError("file not found", file=p)
    close = difflib.get_close_matches(text.lower(), list_bundled(), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise HwcostError(f"unknown architecture {text!r}: not a file and not a bundled spec "
                      f"(bundled: {', '.join(list_bundled())}){hint}")


# ----------------------------------------------------------------------------- internals

@dataclass
class _Ctx:
    """What enclosing containers/subtrees impose on the nodes that follow: their evaluated
    attributes, the scope their expressions see, the instance arrangement."""

    attrs: dict[str, Any]
    scope: Scope
    mesh_x: int = 1
    mesh_y: int = 1

    def child(self, attrs: Mapping[str, Any], mx: int = 1, my: int = 1,
              scope: Scope | None = None) -> _Ctx:
        merged = dict(self.attrs)
        merged.update(attrs)
        return _Ctx(merged, scope or self.scope, self.mesh_x * mx, self.mesh_y * my)


@dataclass
class _Pending:
    """A replicating container seen since the last storage level."""

    name: str
    mesh_x: int
    mesh_y: int
    spatial: LoopConstraint | None
    line: int | None


@dataclass
class _Record:
    name: str
    cls: str
    attrs: dict[str, Any]
    node: Any
    mesh_x: int
    mesh_y: int
    line: int | None
    is_compute: bool
    scope: Scope
    keep: frozenset[str] | None = None
    bypass: frozenset[str] = frozenset()
    temporal: LoopConstraint | None = None
    spatial: LoopConstraint | None = None
    containers: list[_Pending] = field(default_factory=list)
    dataspace_origins: dict[str, Origin] = field(default_factory=dict)


def _split_name(text: str, err: Located, line: int | None) -> tuple[str, int]:
    m = _NAME_RE.match(str(text))
    if not m:
        raise err(f"bad component name {str(text)[:60]!r}", line)
    if m.group(2) is None:
        return m.group(1), 1
    lo, hi = int(m.group(2)), int(m.group(3))
    if hi < lo:
        raise err(f"bad replication range in {text!r}", line)
    MAX_INSTANCES.check(hi - lo + 1, file=err.path, line=line, context=m.group(1))
    return m.group(1), hi - lo + 1


def _classify(cls: str, attrs: Mapping[str, Any]) -> str:
    c = cls.lower()
    if "dram" in c:
        return "dram"
    if "dummy" in c:
        return "dummy"
    if c in _STORAGE_CLASSES or "depth" in attrs:
        return "storage"
    if "mac" in c or "multiplier" in c or c in _COMPUTE_CLASSES:
        return "compute"
    return "unknown"


def _technology(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}nm"
    text = str(value).strip()
    return text + "nm" if re.fullmatch(r"\d+(\.\d+)?", text) else text


class _Reader:
    """Flattens one spec (plus constraint blocks) into records, then into an Architecture."""

    def __init__(self, path: Path, scope: Scope, dims: list[str] | None = None):
        self.path = path
        self.err = Located(path)
        self.scope = scope
        self.dims = dims                   # the problem's dimensions, when it is known
        self.records: list[_Record] = []
        self.pending: list[_Pending] = []
        #: replicating containers by every name a constraint target may give them
        self.containers: dict[str, _Pending] = {}
        self.after_compute: list[tuple[str, int | None]] = []

    # -- attributes ------------------------------------------------------------------------

    def attributes(self, node: Any, parent: Scope, inherited: Mapping[str, Any],
                   what: str, line: int | None) -> tuple[dict[str, Any], Scope]:
        """``node``'s ``attributes`` evaluated, and the scope they make for what follows.

        Each attribute sees its siblings, the attributes of the enclosing containers (by
        name, and as the map ``attributes``), the variables and ``spec``; names are stored
        under hwcost's spellings (``memory_depth`` is ``depth``).
        """
        raw = node.get("attributes")
        if raw is None:
            raw = {}
        if not as_map(raw):
            raise self.err(f"attributes of {what} must be a mapping",
                           line_of(raw, None, value_line(node, "attributes", line)))
        scope = parent.child({str(k): v for k, v in raw.items()},
                             fixed={"attributes": View(dict(inherited), "attributes")},
                             where=what)
        out: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                out[_ATTR_ALIASES.get(str(key), str(key))] = resolve(value, scope,
                                                                     own=str(key))
            except ExprError as exc:
                raise self.err(f"{what}: {key}: {exc}", value_line(raw, key, line)) from None
        return out, scope

    # -- constraints ---------------------------------------------------------------------

    def loop_constraint(self, node: Any, err: Located, what: str,
                        line: int | None = None, scope: Scope | None = None) -> LoopConstraint:
        """:func:`hwmodel.constraints.loop_constraint` in this spec's scope (``scope``:
        a node's own, for its ``split``) and with the problem's dimensions."""
        return loop_constraint(node, err, what, line, scope or self.scope, self.dims)

    # -- records ---------------------------------------------------------------------------

    def flush_pending(self) -> None:
        """Attach containers seen since the previous storage level to that level."""
        if not self.pending:
            return
        above = next((i for i in range(len(self.records) - 1, -1, -1)
                      if not self.records[i].is_compute), None)
        for p in self.pending:
            if above is None:
                if p.spatial is not None:
                    raise self.err(f"container {p.name!r} has spatial constraints but no "
                                   "storage level above it", p.spatial.line)
                continue
            self.records[above].containers.append(p)
            for alias in (p.name, f"inter_{p.name}_spatial"):
                self.containers.setdefault(alias, p)
        self.pending = []

    def component(self, node: Any, ctx: _Ctx, name: str, line: int | None,
                  count: int = 1, mesh_from_attrs: bool = False) -> tuple[int, int]:
        """Record one component; returns its own ``spatial`` mesh (v0.4), which multiplies
        the instances of every node after it."""
        err = self.err
        if node.get("class") in (None, ""):
            raise err(f"component {name!r} has no class", line)
        cls = str(node["class"])
        own, scope = self.attributes(node, ctx.scope, ctx.attrs, name, line)
        own_x, own_y = (1, 1) if mesh_from_attrs else self.mesh(node, line, scope)
        attrs = dict(ctx.attrs)
        attrs.update(own)
        kind = _classify(cls, attrs)
        if kind == "dummy":
            # Timeloop's placeholder levels (``inter_PE_spatial`` of class dummy_storage in
            # flattened specs) hold nothing; mappings name them for the fan-out above them
            self.pending.append(_Pending(name, 1, 1, None, line))
            return own_x, own_y
        if kind == "unknown":
            raise err(f"component {name!r} of class {cls!r} is neither a storage class "
                      "(missing attribute 'depth') nor a compute class (MAC/multiplier)", line)
        if self.records and self.records[-1].is_compute:
            raise err(f"component {name!r} comes after the compute unit "
                      f"{self.records[-1].name!r}; the compute unit must be innermost", line)
        mx, my = ctx.mesh_x, ctx.mesh_y
        if mesh_from_attrs:                              # v0.3: meshX/meshY are totals
            inst = count
            amx = attrs.pop("meshX", None)
            amy = attrs.pop("meshY", None)
            ax = lambda m: err(m, line)                  # noqa: E731
            if amx is not None:
                mx = to_int(amx, f"{name}: meshX", ax, scope, minimum=1)
                if inst % mx:
                    raise err(f"{name}: meshX {mx} does not divide its {inst} instances", line)
                my = inst // mx
            elif amy is not None:
                my = to_int(amy, f"{name}: meshY", ax, scope, minimum=1)
                if inst % my:
                    raise err(f"{name}: meshY {my} does not divide its {inst} instances", line)
                mx = inst // my
            else:
                mx, my = inst, 1
        else:
            mx, my = mx * own_x, my * own_y
            attrs.pop("meshX", None)
            attrs.pop("meshY", None)
        MAX_INSTANCES.check(mx * my, file=self.path, line=line, context=name)
        self.flush_pending()
        rec = _Record(name=name, cls=cls, attrs=attrs, node=node, mesh_x=mx, mesh_y=my,
                      line=line, is_compute=kind == "compute", scope=scope)
        cons = node.get("constraints")
        if cons is not None:
            if not as_map(cons):
                raise err(f"constraints of {name!r} must be a mapping", line_of(cons, None, line))
            check_group(cons, err, name, line)
            if rec.is_compute and any(cons.get(k) for k in ("temporal", "dataspace")):
                raise err(f"compute unit {name!r} cannot carry temporal or dataspace "
                          "constraints", line_of(cons, None, line))
            if rec.is_compute and cons.get("spatial") is not None:
                # the MAC array's own mesh: constrain the fan-out into it, like a container
                self.pending.append(_Pending(
                    name, own_x, own_y,
                    self.loop_constraint(cons["spatial"], err, "spatial",
                                         value_line(cons, "spatial", line), scope), line))
                self.flush_pending()
                cons = {k: v for k, v in cons.items() if k != "spatial"}
            if cons.get("dataspace") is not None:
                rec.keep, rec.bypass, rec.dataspace_origins = dataspace_constraint(
                    cons["dataspace"], err, value_line(cons, "dataspace", line))
            if cons.get("temporal") is not None:
                rec.temporal = self.loop_constraint(cons["temporal"], err, "temporal",
                                                    value_line(cons, "temporal", line), scope)
            if cons.get("spatial") is not None:
                rec.spatial = self.loop_constraint(cons["spatial"], err, "spatial",
                                                   value_line(cons, "spatial", line), scope)
        self.records.append(rec)
        return own_x, own_y

    def mesh(self, node: Any, line: int | None, scope: Scope | None = None) -> tuple[int, int]:
        sp = node.get("spatial")
        if sp is None:
            return 1, 1
        if not as_map(sp):
            raise self.err("spatial must be a mapping like {meshX: 4, meshY: 2}",
                           line_of(node, "spatial", line))
        out = []
        for key in ("meshX", "meshY"):
            if sp.get(key) is None:
                out.append(1)
                continue
            out.append(to_int(sp[key], key, lambda m, k=key: self.err(m, value_line(sp, k)),
                              scope or self.scope, minimum=1))
        return out[0], out[1]

    # -- v0.4 --------------------------------------------------------------------------------

    def walk4(self, nodes: Any, ctx: _Ctx, where: int | None = None) -> _Ctx:
        """Read a ``nodes`` list (``where``: its line, for when it is not a list)."""
        if nodes is None:
            return ctx
        if not isinstance(nodes, list):
            raise self.err("'nodes' must be a list", line_of(nodes, None, where))
        for i, node in enumerate(nodes):
            tag = tag_of(node)
            line = line_of(nodes, i)
            if tag == "!Nothing" or node is None:
                continue
            if not as_map(node):
                raise self.err("expected a node mapping (!Container, !Component, ...)", line)
            line = line_of(node, None, line)
            if tag is None:                               # untagged: infer the kind
                tag = "!Component" if "class" in node else (
                    "!Hierarchical" if "nodes" in node else "!Container")
            if tag == "!Component":
                name = str(node.get("name") or "")
                if not name:
                    raise self.err("component without a name", line)
                mx, my = self.component(node, ctx, name, line)
                ctx = ctx.child({}, mx, my)
            elif tag == "!Container":
                name = str(node.get("name") or "")
                attrs, scope = self.attributes(node, ctx.scope, ctx.attrs,
                                               name or "container", line)
                mx, my = self.mesh(node, line, scope)
                ctx = ctx.child(attrs, mx, my, scope)
                cons = node.get("constraints")
                spatial = None
                if cons is not None and not as_map(cons):
                    raise self.err(f"constraints of {name!r} must be a mapping",
                                   line_of(cons, None, line))
                if as_map(cons):
                    check_group(cons, self.err, name, line)
                if as_map(cons) and cons.get("spatial") is not None:
                    spatial = self.loop_constraint(cons["spatial"], self.err, "spatial",
                                                   value_line(cons, "spatial", line), scope)
                if mx * my > 1 or spatial is not None:
                    self.pending.append(_Pending(name, mx, my, spatial, line))
                ctx = self.walk4(node.get("nodes"), ctx, value_line(node, "nodes", line))
            else:                                         # !Parallel / !Hierarchical
                ctx = self.walk4(node.get("nodes"), ctx, value_line(node, "nodes", line))
        return ctx

    # -- v0.3 --------------------------------------------------------------------------------

    def walk3(self, subtrees: Any, ctx: _Ctx, count: int, where: int | None = None) -> None:
        """Read a v0.3 ``subtree`` list (``where``: its line, for when it is not a list)."""
        if subtrees is None:
            return
        if not isinstance(subtrees, list):
            raise self.err("'subtree' must be a list", line_of(subtrees, None, where))
        for i, sub in enumerate(subtrees):
            line = line_of(subtrees, i)
            if not as_map(sub):
                raise self.err("expected a subtree mapping", line)
            line = line_of(sub, None, line)
            if tag_of(sub) is not None:
                raise self.err(f"tag {tag_of(sub)} is not used in v0.3 specs", line)
            name, n = _split_name(sub.get("name", ""), self.err, line)
            attrs, scope = self.attributes(sub, ctx.scope, ctx.attrs, name, line)
            sub_ctx = ctx.child(attrs, scope=scope)
            if n > 1:
                self.pending.append(_Pending(name, 1, 1, None, line))
            local = sub.get("local") or []
            if not isinstance(local, list):
                raise self.err("'local' must be a list", line_of(sub, "local", line))
            for j, comp in enumerate(local):
                cline = line_of(comp, None, line_of(local, j))
                if not as_map(comp):
                    raise self.err("expected a component mapping", cline)
                cname, m = _split_name(comp.get("name", ""), self.err, cline)
                self.component(comp, sub_ctx, cname, cline, count=count * n * m,
                               mesh_from_attrs=True)
            self.walk3(sub.get("subtree"), sub_ctx, count * n, value_line(sub, "subtree", line))

    # -- build -------------------------------------------------------------------------------

    def build(self, name: str, version: str, arch_line: int | None) -> Architecture:
        err = self.err
        storage = [r for r in self.records if not r.is_compute]
        computes = [r for r in self.records if r.is_compute]
        if not computes:
            raise err("no compute unit (a component of class intmac, mac, fpmac, "
                      "intmultiplier, ...) in the architecture", arch_line)
        if len(computes) > 1:
            raise err(f"more than one compute unit: {', '.join(r.name for r in computes)}",
                      computes[1].line)
        if not storage:
            raise err("no storage level in the architecture", computes[0].line)
        if len(storage) > MAX_LEVELS.value:
            MAX_LEVELS.check(len(storage), file=self.path, line=storage[MAX_LEVELS.value].line)
        seen: set[str] = set()
        for r in self.records:
            if r.name in seen:
                raise err(f"duplicate component name {r.name!r}", r.line)
            seen.add(r.name)

        comp_rec = computes[0]
        techs = [_technology(r.attrs.get("technology")) for r in self.records]
        arch_tech = _technology(comp_rec.attrs.get("technology")) or next(
            (t for t in techs if t), None) or "45nm"
        levels = [self.storage_level(r, arch_tech) for r in storage]
        chain = storage + [comp_rec]
        for i, r in enumerate(storage):
            inner = chain[i + 1]
            lv = levels[i]
            if inner.mesh_x % r.mesh_x or inner.mesh_y % r.mesh_y:
                raise err(f"{inner.name!r} has a {inner.mesh_x}x{inner.mesh_y} arrangement "
                          f"that is not a multiple of {r.name!r}'s {r.mesh_x}x{r.mesh_y}",
                          inner.line)
            lv.fanout_x = inner.mesh_x // r.mesh_x
            lv.fanout_y = inner.mesh_y // r.mesh_y
            spatial = merge_containers(r.containers)
            lv.spatial = merge_loop(r.spatial, spatial, err, r.name)
            if r.containers:
                lv.attributes["spatial_containers"] = [p.name for p in r.containers]
                lv.containers = [Container(p.name, p.mesh_x, p.mesh_y, p.spatial)
                                 for p in r.containers]
                if len(lv.containers) == 1:
                    # one container is the whole fan-out: its arrangement (unknown for a
                    # v0.3 subtree) and every spatial constraint on it, the level's own too
                    only = lv.containers[0]
                    only.mesh_x, only.mesh_y = lv.fanout_x, lv.fanout_y
                    only.spatial = lv.spatial

        ca = dict(comp_rec.attrs)
        cerr = lambda m: err(m, comp_rec.line)            # noqa: E731
        dw = ca.get("datawidth", ca.get("multiplier_width", 8))
        compute = ComputeUnit(
            name=comp_rec.name, component_class=comp_rec.cls, attributes=ca,
            instances=comp_rec.mesh_x * comp_rec.mesh_y,
            datawidth=to_int(dw, f"{comp_rec.name}: datawidth", cerr, comp_rec.scope, 1),
            mesh_x=comp_rec.mesh_x, mesh_y=comp_rec.mesh_y,
            technology=_technology(ca.get("technology")) or arch_tech, line=comp_rec.line)
        return Architecture(name=name, levels=levels, compute=compute, technology=arch_tech,
                            source=str(self.path), version=version)

    def storage_level(self, r: _Record, arch_tech: str) -> StorageLevel:
        a = r.attrs

        def num(key: str, default: Any = None, minimum: int | None = 1) -> int | None:
            if a.get(key) is None:
                return default
            line = value_line(r.node.get("attributes"), _raw_key(r.node, key), r.line) \
                if as_map(r.node.get("attributes")) else r.line
            return to_int(a[key], f"{r.name}: {key}", lambda m: self.err(m, line),
                          r.scope, minimum)

        def real(key: str) -> float | None:
            if a.get(key) is None:
                return None
            line = value_line(r.node.get("attributes"), _raw_key(r.node, key), r.line) \
                if as_map(r.node.get("attributes")) else r.line
            return to_float(a[key], f"{r.name}: {key}", lambda m: self.err(m, line),
                            r.scope)

        is_dram = "dram" in r.cls.lower()
        datawidth = num("datawidth", 8)
        block = num("block_size", None)
        width = num("width", None)
        if width is None:
            width = datawidth * (block or 1)
        elif block is not None and block * datawidth != width:
            raise self.err(f"{r.name}: width {width} is not block_size {block} x datawidth "
                           f"{datawidth}", r.line)
        if is_dram:
            depth = None
        else:
            if a.get("depth") is None:
                # attributes are open-ended (estimators read their own), so an unknown key is
                # no error; but a near miss of the missing one is most likely a typo
                # 0.75: a swap or a doubled letter (depht, dpeth, deptth: 0.8-0.9), not
                # another attribute sharing letters (width: 0.6)
                close = difflib.get_close_matches("depth", [str(k) for k in a], n=1,
                                                  cutoff=0.75)
                hint, line = "", r.line
                if close:
                    hint = f"; its attribute {close[0]!r} looks like a misspelling of it"
                    if as_map(r.node.get("attributes")):
                        line = value_line(r.node.get("attributes"),
                                          _raw_key(r.node, close[0]), r.line)
                raise self.err(f"storage component {r.name!r} (class {r.cls}) is missing "
                               f"required attribute 'depth'{hint}", line)
            depth = num("depth", None)
        a["datawidth"] = datawidth
        a["width"] = width
        a["block_size"] = max(1, width // datawidth)
        if depth is not None:
            a["depth"] = depth
        return StorageLevel(
            name=r.name, component_class=r.cls, attributes=a, depth=depth, width=width,
            datawidth=datawidth, instances=r.mesh_x * r.mesh_y, mesh_x=r.mesh_x,
            mesh_y=r.mesh_y, n_banks=num("n_banks", 1) or 1,
            read_bandwidth=real("read_bandwidth"), write_bandwidth=real("write_bandwidth"),
            shared_bandwidth=real("shared_bandwidth"),
            keep=r.keep, bypass=r.bypass, temporal=r.temporal, spatial=r.spatial,
            technology=_technology(a.get("technology")) or arch_tech, line=r.line,
            dataspace_origins=dict(r.dataspace_origins))


def _raw_key(node: Any, key: str) -> str:
    """The spelling ``key`` had in the file (``memory_depth`` for ``depth``)."""
    attrs = node.get("attributes") or {}
    for raw in attrs:
        if _ATTR_ALIASES.get(raw, raw) == key:
            return raw
    return key


# ----------------------------------------------------------------------------- public API

def load_arch(source: str | Path | SpecInputs, extra: Iterable[str | Path] = (), *,
              problem: Workload | None = None,
              template_vars: Mapping[str, Any] | None = None,
              no_problem: str | None = None) -> Architecture:
    """Read a Timeloop/Accelergy architecture (v0.4 or v0.3) into an :class:`Architecture`.

    ``source`` is a file, a bundled spec name (``"eyeriss"``) or an already merged
    :class:`SpecInputs` (several files: architecture, constraints, variables, problem...);
    ``extra`` files are merged with it (constraint blocks, ``variables``...), as Timeloop
    accepts them in separate files; templates among them are rendered with
    ``template_vars``.

    The problem (``problem``, else the ``problem`` section of the inputs, if any) is what
    ``spec.problem`` refers to in expressions and what the constraints' names are checked
    against (:func:`check_problem`); without one, any names are accepted and
    ``spec.problem`` is an error (``no_problem``: its message).  Every problem is a
    :class:`HwcostError` located at ``file:line``.
    """
    if isinstance(source, SpecInputs):
        inputs = source
        if extra:
            inputs = inputs.merge(SpecInputs.load(extra, template_vars))
    else:
        inputs = SpecInputs.load([resolve_arch_path(source), *extra], template_vars)
    section = inputs.first("architecture")
    if section is None:
        first = inputs.files[0] if inputs.files else Path("architecture")
        raise HwcostError("no 'architecture' section (expected architecture: {version, "
                          "nodes} or {version, subtree})", file=first, line=1)
    path, err = section.path, section.err
    top = section.value
    if not as_map(top):
        raise err("'architecture' must be a mapping", section.line)
    if problem is None and inputs.first("problem") is not None:
        from .problem_yaml import load_problem

        problem = load_problem(inputs)
    raw_problem = _problem_map(problem) if problem is not None else None
    scope = spec_scope(inputs, raw_problem, no_problem)
    dims = list(problem.dim_names) if problem is not None else None
    reader = _Reader(path, scope, dims)
    version = str(top.get("version", "")).strip() or None
    ctx = _Ctx(_root_attributes(inputs, scope), scope)
    if top.get("nodes") is not None:
        reader.walk4(top["nodes"], ctx, value_line(top, "nodes"))
        first_node = next((n for n in top["nodes"] if as_map(n) and tag_of(n) == "!Container"
                           and n.get("name")), None) if isinstance(top["nodes"], list) else None
        name = str(first_node["name"]) if first_node is not None else path.stem
        version = version or "0.4"
    elif top.get("subtree") is not None:
        reader.walk3(top["subtree"], ctx, 1, value_line(top, "subtree"))
        subs = top["subtree"]
        name = _split_name(subs[0].get("name", path.stem), err, line_of(subs))[0] \
            if isinstance(subs, list) and subs and as_map(subs[0]) else path.stem
        version = version or "0.3"
    else:
        raise err("architecture has neither 'nodes' (v0.4) nor 'subtree' (v0.3)",
                  section.line)
    late = [p for p in reader.pending if p.spatial is not None]
    if late:
        raise err(f"container {late[0].name!r} has spatial constraints but comes after the "
                  "compute unit", late[0].line)
    apply_targets(inputs.of("constraints"), reader.records, reader.containers, scope,
                  dims)
    arch = reader.build(name, version, section.line)
    if problem is not None:
        check_problem(arch, problem)
    return arch


def _root_attributes(inputs: SpecInputs, scope: Scope) -> dict[str, Any]:
    """The ``variables``, evaluated: Timeloop passes them to the architecture as the
    attributes of its top level, which every component inherits (``technology``,
    ``global_cycle_seconds``...)."""
    variables, origin = inputs.variables()
    out: dict[str, Any] = {}
    for name in variables:
        try:
            out[name] = scope.value(name)
        except ExprError as exc:
            sec = origin[name]
            raise HwcostError(f"variable {name}: {exc}", file=sec.path,
                              line=value_line(sec.value, name, sec.line)) from None
    return out


def load_inputs(archs: Iterable[str | Path] = (), files: Iterable[str | Path] = (),
                problem: str | Path | None = None, mapping: str | Path | None = None,
                template_vars: Mapping[str, Any] | None = None) -> SpecInputs:
    """The merged inputs of a command line: ``--arch`` entries (files or bundled spec
    names), other input files (constraints, variables, mapper, problem... in Timeloop's
    multi-file layout), ``--problem`` and ``--mapping``; templates are rendered with
    ``template_vars``.  A section given twice is an error naming both files."""
    paths = [resolve_arch_path(a) for a in archs]
    paths += [Path(f) for f in files]
    paths += [Path(p) for p in (problem, mapping) if p is not None]
    return SpecInputs.load(paths, template_vars)


def _problem_map(workload: Workload) -> dict[str, Any]:
    """``spec.problem`` for a workload given as an object (not read from a file here)."""
    return {"shape": {"name": workload.name, "dimensions": list(workload.dim_names),
                      "data_spaces": [{"name": ds.name} for ds in workload.data_spaces]},
            "instance": dict(workload.dims)}
