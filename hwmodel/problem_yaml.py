"""Read and write Timeloop problem YAML as :class:`hwmodel.workload.Workload`.

A Timeloop problem is a ``shape`` (dimension names, named coefficients with defaults, and
data spaces whose axes are sums of ``coefficient * dimension`` terms) plus an ``instance``
(a bound per dimension, optionally coefficient values).  That is exactly a
:class:`Workload`, so any Timeloop problem (its conv1d tutorials included) can be modelled.

Accepted layouts: ``problem: {version?, shape, instance}`` (v0.3/v0.4), ``shape`` and
``instance`` at the top level, and the old CNN-layer form where ``shape`` is the string
``cnn-layer`` (or a shape map without data spaces, or no shape at all) and the bounds sit
in ``instance`` or directly in ``problem``.  Projection terms may be ``[DIM]``,
``[DIM, COEF]`` (COEF a coefficient name or an integer), a bare ``DIM`` string, or an axis
may be written as an expression ``"Wstride*P + Wdilation*R"``.  The spellings
``data-spaces`` / ``read-write`` of older files are accepted.

CNN-layer problems become :meth:`Layer.workload` (which adds ``G=1`` and the grouped-conv
axes).  Timeloop pairs ``Wstride``/``Wdilation`` with P and R and ``Hstride``/``Hdilation``
with Q and S; :class:`Layer` applies ``stride[0]``/``dilation[0]`` to the (P, R) axis, so
``stride = (Wstride, Hstride)``.  ``K`` is accepted as Timeloop's old name for M, and a
missing ``N`` defaults to 1 (other missing bounds are errors).

The problem may be one section of several merged input files (:class:`SpecInputs`), a
template (rendered first), and its bounds and coefficients may be expressions over the
spec's ``variables`` (``C: 2 * BASE_CHANNELS``), as Timeloop evaluates them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from core.errors import HwcostError
from core.limits import Limit

from .expressions import Scope
from .inputs import SpecInputs, spec_scope
from .workload import DataSpace, Layer, Workload, window_work
from .yamlio import Located, as_map, dump_yaml, line_of, to_int, value_line

#: The mapper enumerates the divisors of every bound and tries tilings of them; real layers
#: stay below 10**5 (a GEMM over a 128k vocabulary), a 10**12 bound is a typo.
MAX_DIM_BOUND = Limit("HWCOST_MAX_DIM_BOUND", 10_000_000, "problem bound or coefficient")
#: An axis that sums several dimensions (``Wstride*P + Wdilation*R``) is counted window
#: position by window position: the product of all but its largest bound (``R``, a few
#: taps in real convolutions) is the work per tile.
MAX_WINDOW = Limit("HWCOST_MAX_WINDOW", 65_536, "sliding-window positions")
#: The mapper's search grows faster than linearly with the number of dimensions (tilings
#: recurse per dimension, spatial candidates pair them): a CNN layer has 7 or 8, 16 dims
#: map in about 2 s.
MAX_DIMS = Limit("HWCOST_MAX_DIMS", 16, "problem dimensions")
#: Every capacity check sums over data spaces and the exhaustive mapper tries every subset a
#: level may keep; a CNN layer has 3 (weights, inputs, outputs).
MAX_DATA_SPACES = Limit("HWCOST_MAX_DATA_SPACES", 16, "data spaces")
#: Every footprint (the mapper computes hundreds of thousands) walks all projection terms;
#: a CNN layer has 17.
MAX_TERMS = Limit("HWCOST_MAX_PROJECTION_TERMS", 256, "projection terms (all data spaces)")

_CNN_NAMES = {"cnn-layer", "cnn_layer", "cnnlayer", "cnn-layer-2d", "conv2d-layer"}
_CNN_DIMS = ("R", "S", "P", "Q", "C", "M", "N")
_CNN_COEFS = ("Wstride", "Hstride", "Wdilation", "Hdilation")
_IGNORED_INSTANCE_KEYS = {"densities", "version"}


def _is_cnn(shape: Any) -> bool:
    if shape is None:
        return True
    if isinstance(shape, str):
        return shape.strip().lower() in _CNN_NAMES
    if as_map(shape):
        spaces = shape.get("data_spaces", shape.get("data-spaces"))
        name = str(shape.get("name", "")).strip().lower()
        return not spaces and (name in _CNN_NAMES or not name or not shape.get("dimensions"))
    return False


def load_problem(source: str | Path | SpecInputs, *,
                 template_vars: Mapping[str, Any] | None = None) -> Workload:
    """Read a Timeloop problem: a file (a template is rendered with ``template_vars``) or
    the ``problem`` section of merged inputs.  Every mistake is a HwcostError at
    ``file:line``."""
    inputs = source if isinstance(source, SpecInputs) else \
        SpecInputs.load([source], template_vars)
    section = inputs.first("problem")
    if section is None:
        where = inputs.files[0] if inputs.files else Path("problem")
        raise HwcostError("expected a mapping with a 'problem' section", file=where, line=1)
    path, err = section.path, section.err
    prob = section.value            # the problem map (or a whole file in the old layout)
    if not as_map(prob):
        raise err("'problem' must be a mapping", section.line)
    doc = prob if section.key is None else {"problem": prob}
    scope = spec_scope(inputs, no_problem="spec.problem cannot be used inside the problem")
    shape = prob.get("shape")
    instance = prob.get("instance")
    if instance is None and "problem" not in doc and "instance" in doc:
        instance = doc["instance"]
    if instance is None and _is_cnn(shape):
        instance = prob                                   # v0.2: bounds inside problem
    if instance is None:
        raise err("problem has no 'instance' (the dimension bounds)", line_of(prob, None, 1))
    if not as_map(instance):
        where = value_line(prob, "instance", line_of(prob, None, 1))
        raise err("'instance' must be a mapping of dimension bounds",
                  line_of(instance, None, where))
    if _is_cnn(shape):
        return _check_windows(_load_cnn(path, prob, instance, err, scope), err,
                              line_of(instance))
    if not as_map(shape):
        raise err("'shape' must be a mapping (name, dimensions, data_spaces) or "
                  "'cnn-layer'", line_of(prob, "shape"))
    return _check_windows(_load_generic(path, shape, instance, err, scope), err,
                          line_of(shape, "data_spaces", line_of(shape)))


def _bound(instance: Any, key: str, err: Located, scope: Scope, minimum: int = 1) -> int:
    line = value_line(instance, key)
    value = to_int(instance[key], f"bound of {key}", lambda m: err(m, line), scope,
                   minimum=minimum)
    return MAX_DIM_BOUND.check(value, file=err.path, line=line, context=str(key))


def _check_windows(workload: Workload, err: Located, line: int | None) -> Workload:
    """Refuse an axis whose sliding window the model would walk for too long."""
    bounds = workload.bounds
    for ds in workload.data_spaces:
        for k, axis in enumerate(ds.projection):
            terms = tuple((c, bounds[d]) for c, d in axis if c and bounds[d] > 1)
            formula = " + ".join(d if c == 1 else f"{c}*{d}" for c, d in axis)
            MAX_WINDOW.check(window_work(terms), file=err.path, line=line,
                             context=f"data space {ds.name}, axis {k + 1} ({formula})")
    return workload


def _load_cnn(path: Path, prob: Any, instance: Any, err: Located, scope: Scope) -> Workload:
    values: dict[str, int] = {}
    for key in instance:
        k = "M" if key == "K" else str(key)
        if k in _CNN_DIMS or k in _CNN_COEFS:
            if k in values:
                raise err(f"{key}: M given twice (K is an alias of M)", line_of(instance, key))
            values[k] = _bound(instance, key, err, scope)
    values.setdefault("N", 1)
    for d in _CNN_DIMS:
        if d not in values:
            raise err(f"missing instance bound for dimension {d}", line_of(instance))
    layer = Layer(
        name=str(prob.get("name") or path.stem), kind="conv",
        N=values["N"], C=values["C"], M=values["M"], P=values["P"], Q=values["Q"],
        R=values["R"], S=values["S"],
        stride=(values.get("Wstride", 1), values.get("Hstride", 1)),
        dilation=(values.get("Wdilation", 1), values.get("Hdilation", 1)))
    return layer.workload()


def _load_generic(path: Path, shape: Any, instance: Any, err: Located,
                  scope: Scope) -> Workload:
    sline = line_of(shape)
    dims_node = shape.get("dimensions")
    if not isinstance(dims_node, list) or not dims_node:
        raise err("shape needs a non-empty 'dimensions' list", line_of(shape, "dimensions",
                                                                        sline))
    MAX_DIMS.check(len(dims_node), file=path, line=line_of(shape, "dimensions", sline))
    dims = [str(d) for d in dims_node]
    for i, d in enumerate(dims):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", d) or dims.index(d) != i:
            raise err(f"bad or repeated dimension name {d!r}", line_of(dims_node, i))

    coefs: dict[str, int] = {}
    cnode = shape.get("coefficients") or []
    if not isinstance(cnode, list):
        raise err("'coefficients' must be a list", line_of(shape, "coefficients", sline))
    for i, c in enumerate(cnode):
        cl = line_of(c, None, line_of(cnode, i))
        if not as_map(c) or c.get("name") is None:
            raise err("a coefficient needs a name (and a default)", cl)
        name = str(c["name"])
        value = to_int(c.get("default", 1), f"default of {name}", lambda m, cl=cl: err(m, cl),
                       scope)
        coefs[name] = _coef_size(value, name, err, cl)
    for key in instance:
        if str(key) in coefs:
            kl = value_line(instance, key)
            value = to_int(instance[key], f"coefficient {key}", lambda m, kl=kl: err(m, kl),
                           scope)
            coefs[str(key)] = _coef_size(value, str(key), err, kl)

    bounds: list[tuple[str, int]] = []
    for d in dims:
        if d not in instance:
            raise err(f"missing instance bound for dimension {d}", line_of(instance))
        bounds.append((d, _bound(instance, d, err, scope)))

    spaces_key = "data_spaces" if "data_spaces" in shape else "data-spaces"
    snode = shape.get(spaces_key)
    if not isinstance(snode, list) or not snode:
        raise err("shape needs a non-empty 'data_spaces' list", line_of(shape, None, sline))
    MAX_DATA_SPACES.check(len(snode), file=path, line=line_of(shape, spaces_key, sline))
    spaces: list[DataSpace] = []
    for i, ds in enumerate(snode):
        dl = line_of(ds, None, line_of(snode, i))
        if not as_map(ds) or ds.get("name") is None:
            raise err("a data space needs a name and a projection", dl)
        proj = ds.get("projection")
        if proj is None:
            raise err(f"data space {ds['name']} has no projection", dl)
        rw = ds.get("read_write", ds.get("read-write", False))
        if isinstance(rw, str):
            rw = rw.strip().lower() in ("true", "yes", "1")
        axes = _projection(proj, dims, coefs, err, line_of(ds, "projection", dl))
        spaces.append(DataSpace(str(ds["name"]), axes, read_write=bool(rw)))
    terms = sum(len(axis) for ds in spaces for axis in ds.projection)
    MAX_TERMS.check(terms, file=path, line=line_of(shape, spaces_key, sline))
    names = [s.name for s in spaces]
    if len(set(names)) != len(names):
        raise err("data space names must be distinct", sline)
    return Workload(str(shape.get("name") or path.stem), tuple(bounds), tuple(spaces))


def _projection(proj: Any, dims: list[str], coefs: dict[str, int], err: Located,
                line: int | None) -> tuple[tuple[tuple[int, str], ...], ...]:
    if isinstance(proj, str):                              # "[C, M, R, S]"
        proj = [p.strip() for p in proj.strip().strip("[]").split(",") if p.strip()]
    if not isinstance(proj, list) or not proj:
        raise err("projection must be a list of axes", line)
    axes = []
    for i, axis in enumerate(proj):
        al = line_of(proj, i, line)
        if isinstance(axis, str):
            axes.append(_axis_expr(axis, dims, coefs, err, al))
            continue
        if not isinstance(axis, list) or not axis:
            raise err("a projection axis must be a list of terms like [[P, Wstride], [R]]",
                      al)
        terms = []
        for j, term in enumerate(axis):
            tl = line_of(axis, j, al)
            if isinstance(term, str):
                term = [term]
            if not isinstance(term, list) or not 1 <= len(term) <= 2:
                raise err(f"bad projection term {term!r} (expected [DIM] or [DIM, COEF])", tl)
            dim = str(term[0])
            if dim not in dims:
                raise err(f"unknown dimension {dim!r} in projection (dimensions: "
                          f"{', '.join(dims)})", tl)
            coef = 1 if len(term) == 1 else _coef(term[1], coefs, err, tl)
            terms.append((coef, dim))
        axes.append(tuple(terms))
    return tuple(axes)


def _coef_size(value: int, name: str, err: Located, line: int | None) -> int:
    """A coefficient within :data:`MAX_DIM_BOUND` in magnitude (it scales window spans)."""
    MAX_DIM_BOUND.check(abs(value), file=err.path, line=line, context=f"coefficient {name}")
    return value


def _coef(value: Any, coefs: dict[str, int], err: Located, line: int | None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return _coef_size(int(value), str(value), err, line)
    name = str(value)
    if re.fullmatch(r"-?\d{1,30}", name):
        return _coef_size(int(name), name, err, line)
    if name not in coefs:
        raise err(f"unknown coefficient {name!r} (declare it under shape.coefficients)", line)
    return coefs[name]


def _axis_expr(text: str, dims: list[str], coefs: dict[str, int], err: Located,
               line: int | None) -> tuple[tuple[int, str], ...]:
    """``"Wstride*P + Wdilation*R"``: each ``+`` term is one dim times coefficients."""
    terms = []
    for part in text.split("+"):
        factors = [f.strip() for f in part.split("*") if f.strip()]
        ds = [f for f in factors if f in dims]
        if len(ds) != 1:
            raise err(f"projection term {part.strip()!r} must name exactly one dimension "
                      f"(dimensions: {', '.join(dims)})", line)
        coef = 1
        for f in factors:
            if f != ds[0]:
                coef *= _coef(f, coefs, err, line)
                _coef_size(coef, part.strip(), err, line)
        terms.append((coef, ds[0]))
    return tuple(terms)


def _flow(items: list) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def problem_document(workload: Workload) -> CommentedMap:
    """The Timeloop v0.4 ``problem`` document of ``workload`` (used by :func:`write_problem`).

    Non-unit coefficients become named coefficients ``Coef<k>`` with default ``k`` (Timeloop
    terms name their coefficients); unit coefficients are written as bare ``[DIM]`` terms.
    """
    dims = list(workload.dim_names)
    coef_names: dict[int, str] = {}

    def cname(value: int) -> str:
        if value not in coef_names:
            base = f"Coef{value}" if value >= 0 else f"CoefNeg{-value}"
            while base in dims:
                base += "_"
            coef_names[value] = base
        return coef_names[value]

    spaces = []
    for ds in workload.data_spaces:
        axes = []
        for axis in ds.projection:
            axes.append(_flow([_flow([d] if c == 1 else [d, cname(c)]) for c, d in axis]))
        entry = CommentedMap(name=ds.name, projection=axes)
        if ds.read_write:
            entry["read_write"] = True
        spaces.append(entry)
    shape = CommentedMap(name=workload.name, dimensions=_flow(dims))
    if coef_names:
        shape["coefficients"] = [CommentedMap(name=n, default=v)
                                 for v, n in sorted(coef_names.items())]
    shape["data_spaces"] = spaces
    instance = CommentedMap((d, b) for d, b in workload.dims)
    instance.fa.set_flow_style()
    return CommentedMap(problem=CommentedMap(version=0.4, shape=shape, instance=instance))


def write_problem(workload: Workload, path: str | Path) -> None:
    """Write ``workload`` as Timeloop v0.4 problem YAML (atomically); reads back equal."""
    dump_yaml(problem_document(workload), path,
              header=f"Timeloop problem '{workload.name}' written by hwcost")
