"""DARTS genotypes: the derived architecture of a cell network, read from JSON or DARTS text.

A genotype names, for each of the two cell types (``normal`` and ``reduce``), the op on each
edge and the node it reads from, plus which nodes the cell concatenates into its output.
Node ids follow DARTS: 0 and 1 are the cell inputs (the outputs of the two previous cells,
after preprocessing); intermediate node ``k`` (0-based) has id ``k + 2`` and may read from any
of the nodes ``0 .. k + 1``.  Edges are listed two per intermediate node, in node order.

Two file formats are accepted; :func:`load` tells them apart by content (a file whose first
non-blank character is ``{`` or ``[`` is JSON).

**DARTS text**, exactly as DARTS prints it (parsed with :mod:`ast`, never evaluated)::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[('max_pool_3x3', 0), ...], reduce_concat=range(2, 6))

``NAME = Genotype(...)`` is accepted too (select one of several with ``load(path, name=...)``),
and so are the optional JSON fields below as extra keywords (``multiplier='exact8u'``,
``layers=20``...), which :func:`to_text` writes when they are set.

**JSON**::

    {
      "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ...],   // 2 edges per node
      "normal_concat": [2, 3, 4, 5],
      "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ...],
      "reduce_concat": [2, 3, 4, 5],
      "multiplier": "exact8u",                       // optional: every conv/fc layer
      "normal_multipliers": ["drum8u_k4", null, ...], // optional: one per normal edge
      "reduce_multipliers": [...],                    // optional: one per reduce edge
      "network": {"layers": 20, "channels": 36, "input_size": 32, "classes": 10}  // optional
    }

``normal``/``reduce`` may also be written per node, ``[[["sep_conv_3x3", 0], ["skip_connect",
1]], ...]``.  A per-edge multiplier applies to the convolutions of that edge; ``null`` (or no
list) falls back to ``multiplier``.  ``network`` values are defaults that command-line options
override.  Mistakes are reported as :class:`HwcostError` with the file and the line of the
offending entry, because a genotype is usually hand-edited or pasted from a training log.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import HwcostError
from core.untrusted import refuse_special_file
from darts.macro import MAX_CELL_NODES, NETWORK_LIMITS
from darts.op_specs import OP_SPECS

#: The DARTS search space, in DARTS's order (index = position of the op's architecture weight):
#: the ops :mod:`darts.op_specs` describes.
PRIMITIVES = list(OP_SPECS)

CELL_TYPES = ("normal", "reduce")
#: Network hyper-parameters a genotype file may carry (CLI options override them).
NETWORK_KEYS = ("layers", "channels", "input_size", "classes")
_REQUIRED = ("normal", "normal_concat", "reduce", "reduce_concat")
_OPTIONAL = ("multiplier", "normal_multipliers", "reduce_multipliers", "network")
_TEXT_POSITIONAL = _REQUIRED

_LinePath = tuple[str | int, ...]


@dataclass
class Genotype:
    """One derived DARTS architecture plus the optional cost-model annotations.

    ``source`` (the file it came from) is kept for error messages only and does not take part
    in equality, so the JSON and text forms of one genotype compare equal.
    """

    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]
    multiplier: str | None = None
    normal_multipliers: list[str | None] | None = None
    reduce_multipliers: list[str | None] | None = None
    layers: int | None = None
    channels: int | None = None
    input_size: int | None = None
    classes: int | None = None
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Edges as tuples and concat as lists whatever the caller passed (JSON gives lists,
        # DARTS code tuples and ranges), so that equal genotypes compare equal.
        self.normal = [tuple(e) if isinstance(e, list) else e for e in self.normal]
        self.reduce = [tuple(e) if isinstance(e, list) else e for e in self.reduce]
        self.normal_concat = list(self.normal_concat)
        self.reduce_concat = list(self.reduce_concat)

    def edges(self, cell: str) -> list[tuple[str, int]]:
        """The ``(op, input)`` edges of ``cell`` (``'normal'`` or ``'reduce'``)."""
        return self.normal if _cell(cell) == "normal" else self.reduce

    def concat(self, cell: str) -> list[int]:
        return self.normal_concat if _cell(cell) == "normal" else self.reduce_concat

    def steps(self, cell: str) -> int:
        """Number of intermediate nodes of ``cell``."""
        return len(self.edges(cell)) // 2

    def edge_multipliers(self, cell: str) -> list[str | None]:
        """The multiplier of each edge of ``cell``: its own, else the network-level one."""
        own = self.normal_multipliers if _cell(cell) == "normal" else self.reduce_multipliers
        edges = self.edges(cell)
        if own is None:
            return [self.multiplier] * len(edges)
        return [m if m is not None else self.multiplier for m in own]

    def with_multiplier(self, name: str | None) -> Genotype:
        """This genotype with ``name`` on every edge and layer (per-edge choices dropped);
        every other field, the network hyper-parameters included, is kept."""
        return replace(self, multiplier=name, normal_multipliers=None, reduce_multipliers=None)

    @property
    def network(self) -> dict[str, int]:
        """The network hyper-parameters this genotype sets (unset ones are left out)."""
        return {k: getattr(self, k) for k in NETWORK_KEYS if getattr(self, k) is not None}


def _cell(cell: str) -> str:
    if cell not in CELL_TYPES:
        raise ValueError(f"cell type must be 'normal' or 'reduce', not {cell!r}")
    return cell


# --------------------------------------------------------------------------------------------
# Loading


def load(path: str | Path, *, name: str | None = None) -> Genotype:
    """Read a genotype file (JSON or DARTS text, told apart by content) and validate it."""
    path = Path(path)
    refuse_special_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HwcostError("genotype file not found", file=path) from None
    except IsADirectoryError:
        raise HwcostError("is a directory, not a genotype file", file=path) from None
    except UnicodeDecodeError:
        raise HwcostError("not a text file (expected JSON or Genotype(...) text)",
                          file=path) from None
    except OSError as exc:
        raise HwcostError(f"cannot read genotype file: {exc.strerror}", file=path) from None
    return loads(text, source=str(path), name=name)


def loads(text: str, *, source: str = "<string>", name: str | None = None) -> Genotype:
    """Parse genotype ``text``; ``source`` names it in error messages."""
    if text.lstrip()[:1] in ("{", "["):
        if name is not None:
            raise HwcostError("name= selects a Genotype in DARTS text; JSON holds only one",
                              file=source)
        raw, lines = _parse_json(text, source)
    elif not text.strip():
        raise HwcostError("empty genotype file", file=source)
    else:
        raw, lines = _parse_text(text, source, name)
    genotype = _build(raw, lines, source)
    _validate(genotype, allow_none=False, lines=lines)
    return genotype


def validate(genotype: Genotype, *, allow_none: bool = False) -> None:
    """Check a genotype built in code; raises :class:`HwcostError` naming the first problem.

    ``allow_none`` admits ``none`` edges (a pruned, not-yet-derived cell); DARTS's derivation
    never keeps them, so a derived genotype with one is almost certainly a mistake.
    """
    _validate(genotype, allow_none=allow_none, lines={})


class _Lines:
    """Line numbers of entries, looked up by path; falls back to the nearest enclosing entry."""

    def __init__(self, lines: dict[_LinePath, int]):
        self.lines = lines

    def __call__(self, *path: str | int) -> int | None:
        for n in range(len(path), -1, -1):   # down to () : the genotype as a whole
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


def _parse_json(text: str, source: str) -> tuple[dict[str, Any], dict[_LinePath, int]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HwcostError(f"malformed JSON: {exc.msg} (column {exc.colno})", file=source,
                          line=exc.lineno) from None
    if not isinstance(obj, dict):
        raise HwcostError("a JSON genotype must be an object {\"normal\": ..., ...}",
                          file=source, line=1)
    return obj, _json_value_lines(text)


def _json_value_lines(text: str) -> dict[_LinePath, int]:
    """Map each JSON value's path (keys and list indices) to the line it starts on.

    :mod:`json` keeps no positions, and errors are only useful with a line, so this walks the
    (already known to be valid) text once more, tracking nesting.
    """
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    out: dict[_LinePath, int] = {}
    n = len(text)

    def ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def string_end(i: int) -> int:
        i += 1
        while text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        return i + 1

    def value(i: int, path: _LinePath) -> int:
        i = ws(i)
        out[path] = bisect.bisect_right(starts, i)
        ch = text[i]
        if ch in "{[":
            close = "}" if ch == "{" else "]"
            i = ws(i + 1)
            index = 0
            while text[i] != close:
                if ch == "{":
                    j = string_end(i)
                    key = json.loads(text[i:j])
                    i = value(ws(j) + 1, (*path, key))  # skip the ':'
                else:
                    i = value(i, (*path, index))
                    index += 1
                i = ws(i)
                if text[i] == ",":
                    i = ws(i + 1)
            return i + 1
        if ch == '"':
            return string_end(i)
        while i < n and text[i] not in ",]} \t\r\n":
            i += 1
        return i

    value(0, ())
    return out


def _parse_text(text: str, source: str,
                name: str | None) -> tuple[dict[str, Any], dict[_LinePath, int]]:
    """Read ``Genotype(...)`` with :mod:`ast`: literals only, nothing is ever executed."""
    try:
        tree = ast.parse(text, filename=source, mode="exec")
    except SyntaxError as exc:
        hint = "" if "Genotype" in text else " (expected JSON or DARTS Genotype(...) text)"
        raise HwcostError(f"not a valid genotype: {exc.msg}{hint}", file=source,
                          line=exc.lineno) from None
    found: list[tuple[str | None, ast.Call]] = []
    for stmt in tree.body:
        target: str | None = None
        value: ast.expr | None = None
        if isinstance(stmt, ast.Expr):
            value = stmt.value
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(
                stmt.targets[0], ast.Name):
            target, value = stmt.targets[0].id, stmt.value
        if isinstance(value, ast.Call) and _call_name(value) == "Genotype":
            found.append((target, value))
    if not found:
        raise HwcostError("no Genotype(...) found (expected JSON or DARTS Genotype(...) text)",
                          file=source, line=1)
    if name is not None:
        chosen = [call for target, call in found if target == name]
        if not chosen:
            names = [t for t, _ in found if t]
            raise HwcostError(f"no genotype named {name!r}{_suggest(name, names)}; "
                              f"the file defines: {', '.join(names) or 'no named genotype'}",
                              file=source)
        call = chosen[0]
    elif len(found) > 1:
        names = ", ".join(t or f"line {c.lineno}" for t, c in found)
        raise HwcostError(f"{len(found)} genotypes in one file ({names}); choose one by name",
                          file=source, line=found[1][1].lineno)
    else:
        call = found[0][1]

    raw: dict[str, Any] = {}
    lines: dict[_LinePath, int] = {(): call.lineno}
    if len(call.args) > len(_TEXT_POSITIONAL):
        raise HwcostError(f"Genotype takes at most {len(_TEXT_POSITIONAL)} positional "
                          "arguments (normal, normal_concat, reduce, reduce_concat)",
                          file=source, line=call.args[len(_TEXT_POSITIONAL)].lineno)
    named = list(zip(_TEXT_POSITIONAL, call.args))
    for kw in call.keywords:
        if kw.arg is None:
            raise HwcostError("'**' arguments are not allowed in a Genotype", file=source,
                              line=kw.value.lineno)
        named.append((kw.arg, kw.value))
    allowed = (*_REQUIRED, *_OPTIONAL[:-1], *NETWORK_KEYS)
    for key, node in named:
        if key not in allowed:
            raise HwcostError(f"unknown Genotype argument {key!r}{_suggest(key, allowed)}",
                              file=source, line=node.lineno)
        if key in raw or (key in NETWORK_KEYS and key in raw.get("network", {})):
            raise HwcostError(f"argument {key!r} given twice", file=source, line=node.lineno)
        value = _literal(node, source)
        if key in NETWORK_KEYS:
            raw.setdefault("network", {})[key] = value
            _ast_lines(node, ("network", key), lines)
        else:
            raw[key] = value
            _ast_lines(node, (key,), lines)
    return raw, lines


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):  # genotypes.Genotype(...)
        return func.attr
    return None


def _literal(node: ast.expr, source: str) -> Any:
    """A literal value, or ``range(a, b[, c])`` (DARTS writes concat lists that way)."""
    if isinstance(node, ast.Call) and _call_name(node) == "range" and not node.keywords:
        args = [_literal(a, source) for a in node.args]
        if 1 <= len(args) <= 3 and all(type(a) is int for a in args):
            return list(range(*args))
        raise HwcostError("range(...) needs 1 to 3 integer arguments", file=source,
                          line=node.lineno)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise HwcostError(f"only literal values are allowed in a Genotype, not "
                          f"'{ast.unparse(node)}'", file=source, line=node.lineno) from None


def _ast_lines(node: ast.expr, path: _LinePath, lines: dict[_LinePath, int]) -> None:
    lines[path] = node.lineno
    if isinstance(node, ast.List | ast.Tuple):
        for i, elt in enumerate(node.elts):
            _ast_lines(elt, (*path, i), lines)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def _build(raw: dict[str, Any], lines: dict[_LinePath, int], source: str) -> Genotype:
    """Turn the parsed mapping into a :class:`Genotype`, checking types and shapes.

    ``lines`` is extended so that flat edge paths (``('normal', e)``) resolve even when the
    file used the per-node form; :func:`_validate` only knows flat edges.
    """
    at = _Lines(lines)

    def fail(message: str, *path: str | int) -> HwcostError:
        return HwcostError(message, file=source, line=at(*path))

    for key in raw:
        if key not in (*_REQUIRED, *_OPTIONAL):
            raise fail(f"unknown key {key!r}{_suggest(key, (*_REQUIRED, *_OPTIONAL))}", key)
    for key in _REQUIRED:
        if key not in raw:
            raise fail(f"missing {key!r} (a genotype needs {', '.join(_REQUIRED)})")

    cells: dict[str, list[tuple[str, int]]] = {}
    for cell in CELL_TYPES:
        entries = raw[cell]
        if not isinstance(entries, list | tuple):
            raise fail(f"{cell!r} must be a list of [op, input] edges", cell)
        nested = bool(entries) and all(
            isinstance(e, list | tuple) and (not e or isinstance(e[0], list | tuple))
            for e in entries)
        edges: list[tuple[str, int]] = []
        flat_lines: dict[_LinePath, int] = {}
        if nested:  # per-node form: [[edge, edge], [edge, edge], ...]
            for k, node in enumerate(entries):
                if not node:
                    raise fail(f"{cell} node {k + 2} (intermediate node {k}) has no inputs",
                               cell, k)
                if len(node) != 2:
                    raise fail(f"{cell} node {k + 2} (intermediate node {k}) has {len(node)} "
                               "inputs; DARTS nodes take exactly 2", cell, k)
                for j, edge in enumerate(node):
                    line = at(cell, k, j)
                    if line is not None:
                        flat_lines[(cell, len(edges))] = line
                    edges.append(_edge(edge, cell, len(edges), fail, (cell, k, j)))
            lines.update(flat_lines)  # after the loop: (cell, k) still meant node k above
        else:
            for e, edge in enumerate(entries):
                edges.append(_edge(edge, cell, e, fail, (cell, e)))
        cells[cell] = edges

    concats: dict[str, list[int]] = {}
    for cell in CELL_TYPES:
        key = f"{cell}_concat"
        value = raw[key]
        if not isinstance(value, list | tuple) or not all(type(v) is int for v in value):
            raise fail(f"{key!r} must be a list of node ids, e.g. [2, 3, 4, 5]", key)
        concats[cell] = list(value)

    multiplier = raw.get("multiplier")
    if multiplier is not None and (not isinstance(multiplier, str) or not multiplier):
        raise fail("'multiplier' must be a multiplier name (a non-empty string)", "multiplier")
    per_edge: dict[str, list[str | None] | None] = {}
    for cell in CELL_TYPES:
        key = f"{cell}_multipliers"
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, list | tuple):
                raise fail(f"{key!r} must be a list with one multiplier name (or null) per "
                           f"{cell} edge", key)
            for i, name in enumerate(value):
                if name is not None and (not isinstance(name, str) or not name):
                    raise fail(f"{key}[{i}] must be a multiplier name or null, not {name!r}",
                               key, i)
            value = list(value)
        per_edge[cell] = value

    network = raw.get("network")
    network = {} if network is None else network
    if not isinstance(network, dict):
        raise fail("'network' must be an object such as {\"layers\": 20, \"channels\": 36}",
                   "network")
    for key, value in network.items():
        if key not in NETWORK_KEYS:
            raise fail(f"unknown network key {key!r}{_suggest(key, NETWORK_KEYS)}; known: "
                       f"{', '.join(NETWORK_KEYS)}", "network", key)
        if value is not None and type(value) is not int:
            raise fail(f"network {key} must be an integer, not {value!r}", "network", key)

    return Genotype(
        normal=cells["normal"], normal_concat=concats["normal"],
        reduce=cells["reduce"], reduce_concat=concats["reduce"],
        multiplier=multiplier,
        normal_multipliers=per_edge["normal"], reduce_multipliers=per_edge["reduce"],
        layers=network.get("layers"), channels=network.get("channels"),
        input_size=network.get("input_size"), classes=network.get("classes"),
        source=source,
    )


def _edge(edge: Any, cell: str, e: int, fail: Any, path: _LinePath) -> tuple[str, int]:
    if (not isinstance(edge, list | tuple) or len(edge) != 2 or not isinstance(edge[0], str)
            or type(edge[1]) is not int):
        raise fail(f"{cell} edge {e} must be [op, input node], e.g. [\"sep_conv_3x3\", 0], "
                   f"not {edge!r}", *path)
    return (edge[0], edge[1])


def _validate(genotype: Genotype, *, allow_none: bool, lines: dict[_LinePath, int]) -> None:
    """The structural rules of a DARTS cell (see the module docstring)."""
    at = _Lines(lines)
    source = genotype.source

    def fail(message: str, *path: str | int) -> HwcostError:
        return HwcostError(message, file=source, line=at(*path))

    for cell in CELL_TYPES:
        edges = genotype.edges(cell)
        if not edges:
            raise fail(f"{cell!r} has no edges; a cell needs at least one intermediate node "
                       "(2 edges)", cell)
        if len(edges) % 2:
            raise fail(f"{cell!r} has {len(edges)} edges, an odd number; DARTS lists exactly "
                       "2 edges per intermediate node", cell)
        MAX_CELL_NODES.check(len(edges) // 2, file=source, line=at(cell),
                             context=f"{cell!r} cell")
        for e, edge in enumerate(edges):
            k = e // 2
            if (not isinstance(edge, tuple) or len(edge) != 2 or not isinstance(edge[0], str)
                    or type(edge[1]) is not int):
                raise fail(f"{cell} edge {e} must be (op, input node), not {edge!r}", cell, e)
            op, index = edge
            if op not in PRIMITIVES:
                raise fail(f"unknown op {op!r} on {cell} edge {e}{_suggest(op, PRIMITIVES)}; "
                           f"DARTS ops: {', '.join(PRIMITIVES)}", cell, e)
            if op == "none" and not allow_none:
                raise fail(f"op 'none' on {cell} edge {e}: DARTS never derives 'none' (it is "
                           "excluded when picking each node's two strongest inputs)", cell, e)
            if not 0 <= index <= k + 1:
                raise fail(f"{cell} edge {e} reads node {index}, but node {k + 2} (intermediate "
                           f"node {k}) may only read nodes 0..{k + 1}", cell, e)
        for k in range(len(edges) // 2):
            if edges[2 * k][0] == "none" and edges[2 * k + 1][0] == "none":
                raise fail(f"{cell} node {k + 2} (intermediate node {k}) has no inputs: both "
                           "of its edges are 'none'", cell, 2 * k)

        key = f"{cell}_concat"
        concat = genotype.concat(cell)
        last = len(edges) // 2 + 1
        if not concat:
            raise fail(f"{key!r} is empty; the cell output needs at least one node", key)
        seen: set[int] = set()
        for i, node in enumerate(concat):
            if not 2 <= node <= last:
                raise fail(f"{key} entry {node} is out of range: the {cell} cell's intermediate "
                           f"nodes are 2..{last}", key, i)
            if node in seen:
                raise fail(f"{key} lists node {node} twice", key, i)
            seen.add(node)

        key = f"{cell}_multipliers"
        per_edge = genotype.normal_multipliers if cell == "normal" else genotype.reduce_multipliers
        if per_edge is not None and len(per_edge) != len(edges):
            raise fail(f"{key!r} has {len(per_edge)} entries but the {cell} cell has "
                       f"{len(edges)} edges (one multiplier name or null per edge)", key)

    for key in NETWORK_KEYS:
        value = getattr(genotype, key)
        if value is not None and (type(value) is not int or value < 1):
            raise fail(f"network {key} must be a positive integer, not {value!r}",
                       "network", key)
        if value is not None and key in NETWORK_LIMITS:
            NETWORK_LIMITS[key].check(value, file=source, line=at("network", key),
                                      context=f"network {key}")


# --------------------------------------------------------------------------------------------
# Writing


def dumps_json(genotype: Genotype) -> str:
    """The JSON form, one edge per line so that error lines point at a single edge."""
    parts = []
    for cell in CELL_TYPES:
        edges = ",\n".join(f"    {json.dumps([op, i])}" for op, i in genotype.edges(cell))
        parts.append(f'  "{cell}": [\n{edges}\n  ]')
        parts.append(f'  "{cell}_concat": {json.dumps(genotype.concat(cell))}')
    if genotype.multiplier is not None:
        parts.append(f'  "multiplier": {json.dumps(genotype.multiplier)}')
    for cell in CELL_TYPES:
        per_edge = genotype.normal_multipliers if cell == "normal" else genotype.reduce_multipliers
        if per_edge is not None:
            parts.append(f'  "{cell}_multipliers": {json.dumps(per_edge)}')
    if genotype.network:
        parts.append(f'  "network": {json.dumps(genotype.network)}')
    return "{\n" + ",\n".join(parts) + "\n}\n"


def to_text(genotype: Genotype) -> str:
    """The DARTS ``Genotype(...)`` form; optional fields follow as extra keywords."""

    def edges(cell: str) -> str:
        return "[" + ", ".join(f"({op!r}, {i})" for op, i in genotype.edges(cell)) + "]"

    args = [f"normal={edges('normal')}", f"normal_concat={genotype.normal_concat!r}",
            f"reduce={edges('reduce')}", f"reduce_concat={genotype.reduce_concat!r}"]
    if genotype.multiplier is not None:
        args.append(f"multiplier={genotype.multiplier!r}")
    if genotype.normal_multipliers is not None:
        args.append(f"normal_multipliers={genotype.normal_multipliers!r}")
    if genotype.reduce_multipliers is not None:
        args.append(f"reduce_multipliers={genotype.reduce_multipliers!r}")
    args.extend(f"{k}={v!r}" for k, v in genotype.network.items())
    return "Genotype(" + ", ".join(args) + ")"
