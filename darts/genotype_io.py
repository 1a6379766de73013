"""Genotype files: JSON and the DARTS ``Genotype(...)`` text, read with the file and line of
every mistake, and written back.

:func:`load` tells the two formats apart by content (a file whose first non-blank character
is ``{`` or ``[`` is JSON); :func:`loads` reads a string.  Both return a validated
:class:`~darts.genotype.Genotype` (the model and its rules are :mod:`darts.genotype`'s).

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
The line of every JSON value comes from :mod:`json`'s own parser (the position at which it
decodes the value), that of every text argument from :mod:`ast`.
"""

from __future__ import annotations

import ast
import bisect
import io
import json
import keyword
import tokenize
from json.decoder import JSONArray, JSONObject
from json.scanner import py_make_scanner
from pathlib import Path
from typing import Any

from core.errors import HwcostError, control_character
from core.untrusted import refuse_special_file
from darts.genotype import (
    CELL_TYPES,
    NETWORK_KEYS,
    EntryPath,
    Genotype,
    suggest,
    validate,
)

__all__ = ["Genotype", "dumps_json", "load", "loads", "to_text"]

_REQUIRED = ("normal", "normal_concat", "reduce", "reduce_concat")
_OPTIONAL = ("multiplier", "normal_multipliers", "reduce_multipliers", "network")
_TEXT_POSITIONAL = _REQUIRED
#: JSON nesting refused before Python's recursion limit is near (a genotype nests 4 deep)
_MAX_JSON_DEPTH = 64
#: the text format's bounds, checked on its tokens before :mod:`ast` sees the text (its
#: parser recurses: deep brackets or long operator chains exhaust the stack or the memory)
_MAX_TEXT_DEPTH = 64
_MAX_NUMBER_CHARS = 30
_MAX_RANGE_LEN = 1000
#: the operators that literal data needs: brackets, separators, '=' of keyword arguments,
#: '.' of ``genotypes.Genotype`` and of floats, and a minus sign before a number
_DATA_OPS = frozenset("()[]{},:=.-")


# --------------------------------------------------------------------------------------------
# Reading


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
    validate(genotype, allow_none=False, line_of=_Lines(lines))
    return genotype


class _Lines:
    """Line numbers of entries, looked up by path; falls back to the nearest enclosing entry."""

    def __init__(self, lines: dict[EntryPath, int]):
        self.lines = lines

    def __call__(self, *path: str | int) -> int | None:
        for n in range(len(path), -1, -1):   # down to () : the genotype as a whole
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


def _parse_json(text: str, source: str) -> tuple[dict[str, Any], dict[EntryPath, int]]:
    """Decode JSON ``text`` and map each value's path (keys and list indices) to its line."""
    try:
        located = _located_decoder(text, source).decode(text)
    except json.JSONDecodeError as exc:
        raise HwcostError(f"malformed JSON: {exc.msg} (column {exc.colno})", file=source,
                          line=exc.lineno) from None
    lines: dict[EntryPath, int] = {}
    obj = _unwrap(located, (), lines)
    if not isinstance(obj, dict):
        raise HwcostError("a JSON genotype must be an object {\"normal\": ..., ...}",
                          file=source, line=1)
    return obj, lines


class _At:
    """A decoded JSON value and the line it starts on."""

    __slots__ = ("line", "value")

    def __init__(self, value: Any, line: int):
        self.value = value
        self.line = line


def _located_decoder(text: str, source: str) -> json.JSONDecoder:
    """A :class:`json.JSONDecoder` whose every value comes back as an :class:`_At`.

    :mod:`json`'s pure-Python scanner hands each value's start position to the function that
    scans it (``scan_once(string, idx)``), and its objects and arrays are decoded by the
    decoder's ``parse_object``/``parse_array``, which receive that function: wrapping it
    there records the position of every value as :mod:`json` itself decodes it (the C
    scanner offers no such hook).  Syntax errors are :mod:`json`'s own.
    """
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    depth = 0

    def line_at(idx: int) -> int:
        return bisect.bisect_left(newlines, idx) + 1   # json's lineno: newlines before + 1

    def located(scan: Any) -> Any:
        def scan_at(string: str, idx: int) -> tuple[_At, int]:
            try:
                value, end = scan(string, idx)
            except json.JSONDecodeError:
                raise
            except ValueError as exc:    # a number int() refuses (too many digits)
                reason = ("a number of more than 4,300 digits" if "digits" in str(exc)
                          else str(exc))
                raise HwcostError(f"malformed JSON: {reason}", file=source,
                                  line=line_at(idx)) from None
            return _At(value, line_at(idx)), end

        return scan_at

    def nested(parse: Any) -> Any:
        def parse_nested(s_and_end: tuple[str, int], *args: Any) -> Any:
            nonlocal depth
            if depth >= _MAX_JSON_DEPTH:
                raise HwcostError(f"JSON nested more than {_MAX_JSON_DEPTH} levels deep (a "
                                  "genotype nests 4)", file=source, line=line_at(s_and_end[1]))
            depth += 1
            try:
                return parse(s_and_end, *args)
            finally:
                depth -= 1

        return parse_nested

    decoder = json.JSONDecoder()
    decoder.parse_object = nested(  # type: ignore[attr-defined]
        lambda s_and_end, strict, scan_once, *rest: JSONObject(s_and_end, strict,
                                                               located(scan_once), *rest))
    decoder.parse_array = nested(  # type: ignore[attr-defined]
        lambda s_and_end, scan_once: JSONArray(s_and_end, located(scan_once)))
    decoder.scan_once = located(py_make_scanner(decoder))  # type: ignore[attr-defined]
    return decoder


def _unwrap(node: _At, path: EntryPath, lines: dict[EntryPath, int]) -> Any:
    """The plain value of ``node``, recording the line of it and of everything inside."""
    lines[path] = node.line
    value = node.value
    if isinstance(value, dict):
        return {key: _unwrap(item, (*path, key), lines) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap(item, (*path, i), lines) for i, item in enumerate(value)]
    return value


def _parse_text(text: str, source: str,
                name: str | None) -> tuple[dict[str, Any], dict[EntryPath, int]]:
    """Read ``Genotype(...)`` with :mod:`ast`: literals only, nothing is ever executed."""
    _check_data_tokens(text, source)
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
            raise HwcostError(f"no genotype named {name!r}{suggest(name, names)}; "
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
    lines: dict[EntryPath, int] = {(): call.lineno}
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
            raise HwcostError(f"unknown Genotype argument {key!r}{suggest(key, allowed)}",
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


def _check_data_tokens(text: str, source: str) -> None:
    """Refuse, token by token (no recursion), what literal data never contains: operators
    other than brackets, separators and a minus sign before a number; keywords (``not``,
    ``lambda``...); numbers longer than 30 characters; brackets nested deeper than 64.  What
    passes is bounded for :mod:`ast`, whose parser recurses and would otherwise fail with
    MemoryError or RecursionError on a few kilobytes of ``-`` or ``not``."""
    depth = 0
    previous: tokenize.TokenInfo | None = None
    statement_start, skipping = True, False
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            line = tok.start[0]
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                statement_start, skipping = True, False
                previous = tok
                continue
            if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                continue
            if statement_start:
                # DARTS's genotypes.py imports namedtuple: import statements are flat
                skipping = tok.type == tokenize.NAME and tok.string in ("from", "import")
                statement_start = False
            if skipping:
                continue
            if previous is not None and previous.string == "-" and \
                    tok.type != tokenize.NUMBER:
                raise HwcostError("a minus sign must be followed by a number in a Genotype",
                                  file=source, line=line)
            if tok.type == tokenize.OP:
                if tok.string not in _DATA_OPS:
                    raise HwcostError(f"operator {tok.string!r} is not allowed in a Genotype "
                                      "(literal values and range(a, b) only)", file=source,
                                      line=line)
                if tok.string in "([{":
                    depth += 1
                    if depth > _MAX_TEXT_DEPTH:
                        raise HwcostError(f"brackets nested more than {_MAX_TEXT_DEPTH} levels "
                                          "deep (a genotype nests 4)", file=source, line=line)
                elif tok.string in ")]}":
                    depth -= 1
            elif tok.type == tokenize.NAME and keyword.iskeyword(tok.string) and \
                    tok.string not in ("True", "False", "None"):
                raise HwcostError(f"{tok.string!r} is not allowed in a Genotype (literal values "
                                  "and range(a, b) only)", file=source, line=line)
            elif tok.type == tokenize.NUMBER and len(tok.string) > _MAX_NUMBER_CHARS:
                raise HwcostError(f"a number of {len(tok.string)} characters (at most "
                                  f"{_MAX_NUMBER_CHARS} in a Genotype)", file=source, line=line)
            elif tok.type == tokenize.ERRORTOKEN and not tok.string.isspace():
                raise HwcostError(f"unexpected character {tok.string!r}", file=source,
                                  line=line)
            previous = tok
    except (tokenize.TokenError, SyntaxError):
        return   # an unclosed bracket or string: ast.parse names it, with its line


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
        if not (1 <= len(args) <= 3 and all(type(a) is int for a in args)):
            raise HwcostError("range(...) needs 1 to 3 integer arguments", file=source,
                              line=node.lineno)
        if len(args) == 3 and args[2] == 0:
            raise HwcostError("range(...) needs a step other than 0", file=source,
                              line=node.lineno)
        span = range(*args)
        try:
            size = len(span)
        except OverflowError:      # longer than the machine's largest index
            size = _MAX_RANGE_LEN + 1
        if size > _MAX_RANGE_LEN:
            raise HwcostError(f"range(...) of more than {_MAX_RANGE_LEN} values (a concat "
                              "list has a few)", file=source, line=node.lineno)
        return list(span)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise HwcostError(f"only literal values are allowed in a Genotype, not "
                          f"'{ast.unparse(node)}'", file=source, line=node.lineno) from None


def _ast_lines(node: ast.expr, path: EntryPath, lines: dict[EntryPath, int]) -> None:
    lines[path] = node.lineno
    if isinstance(node, ast.List | ast.Tuple):
        for i, elt in enumerate(node.elts):
            _ast_lines(elt, (*path, i), lines)


#: a multiplier named by a data file is a library name, a built-in name or a path; no path is
#: longer than this (Linux's PATH_MAX)
_MAX_NAME_CHARS = 4096


def _check_multiplier_name(name: str, what: str, fail: Any, *path: str | int) -> None:
    """A multiplier named in a genotype: no control characters (a NUL cannot reach the OS, a
    newline would forge a message line), no absurd length, and no C model: a C file is code,
    compiled and run when read, and a data file must not run code by naming one."""
    bad = control_character(name)
    if bad is not None:
        raise fail(f"{what} contains a control character ({bad!r})", *path)
    if len(name) > _MAX_NAME_CHARS:
        raise fail(f"{what} is {len(name):,} characters long (a name or path has at most "
                   f"{_MAX_NAME_CHARS:,})", *path)
    if name.lower().endswith(".c"):
        raise fail(f"{what} names a C model ({name[-60:]!r}); a data file does not compile "
                   "code: import it first (hwcost multipliers import FILE.c) and name the "
                   "library entry", *path)


def _build(raw: dict[str, Any], lines: dict[EntryPath, int], source: str) -> Genotype:
    """Turn the parsed mapping into a :class:`Genotype`, checking types and shapes.

    ``lines`` is extended so that flat edge paths (``('normal', e)``) resolve even when the
    file used the per-node form; :func:`~darts.genotype.validate` only knows flat edges.
    """
    at = _Lines(lines)

    def fail(message: str, *path: str | int) -> HwcostError:
        return HwcostError(message, file=source, line=at(*path))

    for key in raw:
        if key not in (*_REQUIRED, *_OPTIONAL):
            raise fail(f"unknown key {key!r}{suggest(key, (*_REQUIRED, *_OPTIONAL))}", key)
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
        flat_lines: dict[EntryPath, int] = {}
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
    if multiplier is not None:
        _check_multiplier_name(multiplier, "multiplier", fail, "multiplier")
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
                if name is not None:
                    _check_multiplier_name(name, f"{key}[{i}]", fail, key, i)
            value = list(value)
        per_edge[cell] = value

    network = raw.get("network")
    network = {} if network is None else network
    if not isinstance(network, dict):
        raise fail("'network' must be an object such as {\"layers\": 20, \"channels\": 36}",
                   "network")
    for key, value in network.items():
        if key not in NETWORK_KEYS:
            raise fail(f"unknown network key {key!r}{suggest(key, NETWORK_KEYS)}; known: "
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


def _edge(edge: Any, cell: str, e: int, fail: Any, path: EntryPath) -> tuple[str, int]:
    if (not isinstance(edge, list | tuple) or len(edge) != 2 or not isinstance(edge[0], str)
            or type(edge[1]) is not int):
        raise fail(f"{cell} edge {e} must be [op, input node], e.g. [\"sep_conv_3x3\", 0], "
                   f"not {edge!r}", *path)
    return (edge[0], edge[1])


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
