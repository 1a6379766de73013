"""Shared YAML plumbing for the Timeloop/Accelergy readers and writers.

The architecture, problem and mapping readers all need the same things: a round-trip
ruamel loader (it is the only one that remembers where each node came from, so every error
can say ``file:line``), a strict policy on YAML tags (a misspelt ``!Conatiner`` must not load
as an anonymous map), tolerant number parsing (Timeloop files write ``depth: 16384`` as well
as ``depth: "16384"`` and small expressions such as ``108*1024*8/64``), and the factor and
permutation mini-languages shared by constraints and mappings.  They live here once.
"""

from __future__ import annotations

import ast
import io
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from multiplier_lib.atomic import atomic_write_text
from multiplier_lib.errors import HwcostError

#: Tags of Timeloop v0.4 architecture nodes; any other tag is an error.
KNOWN_TAGS = ("!Container", "!Component", "!Parallel", "!Hierarchical", "!Nothing")


class _StrictConstructor(RoundTripConstructor):
    """Round-trip constructor that accepts only :data:`KNOWN_TAGS`.

    ruamel's round-trip loader silently keeps *any* tag; for a spec format a typo in a tag
    would then change the meaning of the file without a word, so unknown tags are refused
    with their line.
    """


def _refuse_tag(constructor: RoundTripConstructor, node: Any) -> Any:
    tag = getattr(node.tag, "value", node.tag)
    raise HwcostError(f"unknown YAML tag {tag} (known tags: {', '.join(KNOWN_TAGS)})",
                      line=node.start_mark.line + 1)


for _tag in KNOWN_TAGS:
    _StrictConstructor.add_constructor(_tag, RoundTripConstructor.construct_unknown)
_StrictConstructor.add_constructor(None, _refuse_tag)


def _loader() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _StrictConstructor
    return yaml


def load_yaml(path: str | Path) -> Any:
    """Parse ``path`` keeping line information; every failure is a located HwcostError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HwcostError("file not found", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HwcostError(f"cannot read file: {exc}", file=path) from None
    return load_yaml_text(text, path)


def load_yaml_text(text: str, path: str | Path) -> Any:
    """Parse YAML ``text`` attributed to ``path`` (for messages only)."""
    try:
        return _loader().load(text)
    except HwcostError as exc:
        raise exc.located(path) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "syntax error"
        raise HwcostError(f"YAML syntax error: {problem}", file=path, line=line) from None
    except YAMLError as exc:
        raise HwcostError(f"YAML error: {exc}", file=path) from None


def dump_yaml(data: Any, path: str | Path, header: str | None = None) -> None:
    """Write ``data`` as block-style YAML atomically (a crash never leaves half a file)."""
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    buf = io.StringIO()
    if header:
        buf.write("".join(f"# {ln}\n" if ln else "#\n" for ln in header.splitlines()))
    yaml.dump(data, buf)
    atomic_write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------- locations

def tag_of(obj: Any) -> str | None:
    """The YAML tag of a loaded node (``'!Container'``), or None for plain nodes."""
    tag = getattr(obj, "tag", None)
    value = getattr(tag, "value", tag)
    return value if isinstance(value, str) else None


def line_of(obj: Any, key: Any = None, default: int | None = None) -> int | None:
    """1-based line of ``obj`` (a loaded map or list) or of ``obj[key]``'s key/item."""
    lc = getattr(obj, "lc", None)
    if lc is None:
        return default
    try:
        if key is None:
            return lc.line + 1
        if isinstance(obj, CommentedSeq):
            return lc.item(key)[0] + 1
        return lc.key(key)[0] + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        try:
            return lc.line + 1
        except AttributeError:
            return default


def value_line(obj: Any, key: Any, default: int | None = None) -> int | None:
    """1-based line of ``obj[key]``'s *value* (where a bad number actually sits)."""
    lc = getattr(obj, "lc", None)
    if lc is None:
        return default
    try:
        if isinstance(obj, CommentedSeq):
            return lc.item(key)[0] + 1
        return lc.value(key)[0] + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return line_of(obj, key, default)


class Located:
    """Error factory bound to one file, so readers can write ``err('msg', line)``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __call__(self, message: str, line: int | None = None) -> HwcostError:
        return HwcostError(message, file=self.path, line=line)


# ----------------------------------------------------------------------------- values

def plain(obj: Any) -> Any:
    """Convert ruamel containers/scalars to plain dicts, lists, str, int, float."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, TaggedScalar):
        return obj.value
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    return obj


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}


def evaluate(text: str, variables: Mapping[str, Any] | None = None) -> float | int:
    """Evaluate a small arithmetic expression (numbers, + - * / // ** %, known names).

    Timeloop v0.4 front ends allow ``depth: glb_bytes // 8``; a safe AST walk supports that
    without ``eval``.  Raises ValueError for anything else.
    """
    variables = variables or {}

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Name) and node.id in variables:
            v = variables[node.id]
            if isinstance(v, str):
                return evaluate(v, {k: x for k, x in variables.items() if k != node.id})
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return v
        raise ValueError(text)

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(text) from None
    return ev(tree)


def to_int(value: Any, what: str, err: Callable[[str], HwcostError],
           variables: Mapping[str, Any] | None = None, minimum: int | None = None) -> int:
    """An integer attribute; ``err`` builds the located error for a bad value."""
    v: Any = value
    if isinstance(v, TaggedScalar):
        v = v.value
    if isinstance(v, str):
        try:
            v = evaluate(v, variables)
        except (ValueError, ZeroDivisionError, OverflowError):
            raise err(f"{what}: expected an integer, got {value!r}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise err(f"{what}: expected an integer, got {value!r}")
    if isinstance(v, float):
        if not v.is_integer():
            raise err(f"{what}: expected an integer, got {value!r}")
        v = int(v)
    v = int(v)
    if minimum is not None and v < minimum:
        raise err(f"{what}: must be at least {minimum}, got {v}")
    return v


def to_float(value: Any, what: str, err: Callable[[str], HwcostError],
             variables: Mapping[str, Any] | None = None) -> float:
    """A real-valued attribute (bandwidths), same tolerance as :func:`to_int`."""
    v: Any = value.value if isinstance(value, TaggedScalar) else value
    if isinstance(v, str):
        try:
            v = evaluate(v, variables)
        except (ValueError, ZeroDivisionError, OverflowError):
            raise err(f"{what}: expected a number, got {value!r}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise err(f"{what}: expected a number, got {value!r}")
    return float(v)


# ----------------------------------------------------------------------------- factors

_FACTOR_RE = re.compile(r"([A-Za-z_]+)\s*=?\s*(-?\d+)")


def parse_factors(value: Any, err: Callable[[str], HwcostError]) -> dict[str, int]:
    """Timeloop factors: ``"R=3 S=1"``, ``"R3 S1"``, ``"R=1,S=1"``, ``[R=3, S=1]`` or a map.

    Returns ``{dim: factor}`` in the order written; dimension names are checked by callers.
    """
    out: dict[str, int] = {}
    if value is None:
        return out
    if isinstance(value, Mapping):
        for k, v in value.items():
            out[str(k)] = to_int(v, f"factor of {k}", err, minimum=0)
        return out
    items: Iterable[Any] = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        text = str(item.value if isinstance(item, TaggedScalar) else item)
        pos = 0
        for m in _FACTOR_RE.finditer(text):
            gap = text[pos:m.start()]
            if gap.strip(" ,\t"):
                raise err(f"cannot parse factors {text!r}")
            pos = m.end()
            if int(m.group(2)) < 0:
                raise err(f"factor of {m.group(1)} must not be negative ({text!r})")
            if m.group(1) in out:
                raise err(f"dimension {m.group(1)} given twice in factors {text!r}")
            out[m.group(1)] = int(m.group(2))
        if text[pos:].strip(" ,\t") or (pos == 0 and text.strip()):
            raise err(f"cannot parse factors {text!r}")
    return out


def parse_permutation(value: Any, err: Callable[[str], HwcostError],
                      dims: Iterable[str] | None = None) -> list[str]:
    """Timeloop permutation (innermost loop first): ``"RSP"``, ``"R S P"`` or ``[R, S, P]``.

    A separator-free string is split into single letters unless ``dims`` has longer names,
    in which case it is split greedily on those names.
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip()
    if re.search(r"[\s,]", text):
        return [t for t in re.split(r"[\s,]+", text) if t]
    known = sorted(set(dims or ()), key=len, reverse=True)
    if not known or all(len(d) == 1 for d in known):
        return list(text)
    out: list[str] = []
    i = 0
    while i < len(text):
        for d in known:
            if text.startswith(d, i):
                out.append(d)
                i += len(d)
                break
        else:
            raise err(f"cannot split permutation {text!r} into dimensions {sorted(known)}")
    return out


def format_factors(factors: Iterable[tuple[str, int]]) -> str:
    """``"R=3 S=1"``: the form Timeloop's constraint and mapping parsers both accept."""
    return " ".join(f"{d}={f}" for d, f in factors)


def format_permutation(dims: Iterable[str]) -> str:
    dims = list(dims)
    return "".join(dims) if all(len(d) == 1 for d in dims) else " ".join(dims)


def as_map(obj: Any) -> bool:
    return isinstance(obj, (CommentedMap, dict))
