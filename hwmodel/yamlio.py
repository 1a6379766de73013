"""Shared YAML plumbing for the Timeloop/Accelergy readers and writers.

The architecture, problem and mapping readers all need the same things: a round-trip
ruamel loader (it is the only one that remembers where each node came from, so every error
can say ``file:line``), a strict policy on YAML tags (a misspelt ``!Conatiner`` must not load
as an anonymous map), tolerant number parsing (Timeloop files write ``depth: 16384`` as well
as ``depth: "16384"`` and small expressions such as ``108*1024*8/64``), and the factor and
permutation mini-languages shared by constraints and mappings.  They live here once.

Every file comes from some other tool or script, so reading one is bounded: its size
(:data:`MAX_FILE_BYTES`), its nesting (:data:`MAX_DEPTH`), its node count once aliases are
expanded (:data:`MAX_NODES`) and the size of the numbers its expressions compute; whatever
is refused is one :class:`HwcostError` at ``file:line``.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from core.atomic import atomic_write_text
from core.errors import HwcostError
from core.limits import Limit
from core.untrusted import refuse_special_file

from .expressions import MAX_EXPR_BITS, MAX_EXPR_STEPS, ExprError, Scope, short_repr  # noqa: F401
from .expressions import evaluate as _expr_evaluate

#: Tags of Timeloop v0.4 architecture nodes; any other tag is an error.
KNOWN_TAGS = ("!Container", "!Component", "!Parallel", "!Hierarchical", "!Nothing")

#: The pure-Python round-trip parser reads about 100-200 KB a second; the largest real
#: Timeloop/Accelergy files (an ERT of a big design) are tens of KB.
MAX_FILE_BYTES = Limit("HWCOST_MAX_HW_FILE_BYTES", 1 << 20, "file size in bytes")
#: Aliases let a few lines stand for exponentially many nodes (a "billion laughs" file);
#: every reader walks the expanded tree, so it is counted before anything walks it.
MAX_NODES = Limit("HWCOST_MAX_HW_YAML_NODES", 1_000_000, "YAML nodes (aliases expanded)")
#: Nesting no hardware description needs (a v0.3 tree of ten levels is about 30 deep);
#: the readers recurse over the tree, so a deeper one would end in a RecursionError.
MAX_DEPTH = 100
#: Expression limits (:data:`MAX_EXPR_BITS`, :data:`MAX_EXPR_STEPS`) live with the
#: evaluator in :mod:`hwmodel.expressions`.


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


#: the widest integer a YAML file may hold (2**128 is far beyond any count, size or energy)
MAX_INT_BITS = 128


def _guarded(kind: str, construct: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``construct`` with its ValueError (``2024-13-45`` as a date, a 5000-digit integer)
    turned into a located error; ruamel raises them without a position."""

    def guarded(constructor: RoundTripConstructor, node: Any) -> Any:
        try:
            value = construct(constructor, node)
        except (ValueError, OverflowError) as exc:
            reason = "too many digits" if "digits" in str(exc) else _one_line(str(exc))
            raise HwcostError(f"bad {kind} {short_repr(str(node.value))}: {reason}",
                              line=node.start_mark.line + 1) from None
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            # hex, octal and binary integers have no digit limit: 0xfff... of any length
            # parses, and then every message that prints it fails
            raise HwcostError(f"bad {kind} {short_repr(str(node.value))}: larger than any "
                              f"quantity in a spec (more than {MAX_INT_BITS} bits)",
                              line=node.start_mark.line + 1)
        return value

    return guarded


def _construct_tagged(constructor: RoundTripConstructor, node: Any) -> Iterator[Any]:
    """A node tagged ``!Container`` etc., kept as a tagged map, list or scalar.

    ruamel's ``construct_unknown`` does the same but swallows *every* exception raised while
    filling the node (a bad number three levels down) and reports "could not determine a
    constructor for the tag" instead, at the tag's line.
    """
    if isinstance(node, MappingNode):
        data: Any = CommentedMap()
        data._yaml_set_line_col(node.start_mark.line, node.start_mark.column)
        data.yaml_set_ctag(node.ctag)
        yield data
        constructor.construct_mapping(node, data)
    elif isinstance(node, SequenceNode):
        data = CommentedSeq()
        data._yaml_set_line_col(node.start_mark.line, node.start_mark.column)
        data.yaml_set_ctag(node.ctag)
        yield data
        data.extend(constructor.construct_sequence(node))
    else:
        data = TaggedScalar()
        data.value = constructor.construct_scalar(node)
        data.style = node.style
        data.yaml_set_ctag(node.ctag)
        yield data


for _tag in KNOWN_TAGS:
    _StrictConstructor.add_constructor(_tag, _construct_tagged)
_StrictConstructor.add_constructor(None, _refuse_tag)
for _kind in ("int", "float", "timestamp"):
    _std = f"tag:yaml.org,2002:{_kind}"
    _StrictConstructor.add_constructor(
        _std, _guarded(_kind, RoundTripConstructor.yaml_constructors[_std]))


def _one_line(text: str, limit: int = 200) -> str:
    """ruamel's messages span lines (with the offending source) and quote whole subtrees
    (a duplicate key's value); the CLI prints one short line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _DepthComposer(Composer):
    """ruamel's composer recurses once per nesting level; past :data:`MAX_DEPTH` it stops
    with the line, instead of a bare RecursionError a few hundred levels later."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_DEPTH:
            mark = self.parser.peek_event().start_mark
            raise HwcostError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)",
                              line=mark.line + 1)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _loader() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _StrictConstructor
    yaml.Composer = _DepthComposer
    # quoted strings stay distinguishable: Timeloop never evaluates a quoted value
    yaml.preserve_quotes = True
    return yaml


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``, within :data:`MAX_FILE_BYTES`; every failure is one
    located HwcostError (a directory, a missing file, binary junk at ``file:line``)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise HwcostError(f"is a directory, not {'an' if what[0] in 'aeiouAEIOU' else 'a'} "
                              f"{what}", file=path)
        refuse_special_file(path)   # a FIFO would block the open forever
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES.value + 1)
    except FileNotFoundError:
        raise HwcostError("file not found" if what == "file" else
                          f"cannot read {what}: file not found", file=path) from None
    except OSError as exc:
        raise HwcostError(f"cannot read {what}: {exc.strerror or exc}", file=path) from None
    MAX_FILE_BYTES.check(len(data), file=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise HwcostError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", file=path,
                          line=line) from None


def load_yaml(path: str | Path) -> Any:
    """Parse ``path`` keeping line information; every failure is a located HwcostError."""
    return load_yaml_text(read_text(path), path)


def load_yaml_text(text: str, path: str | Path) -> Any:
    """Parse YAML ``text`` attributed to ``path`` (for messages only).

    Besides syntax, refuses what would make the readers hang or recurse without end: more
    than :data:`MAX_NODES` nodes once aliases are expanded, nesting deeper than
    :data:`MAX_DEPTH`.
    """
    _check_flow_depth(text, path)
    try:
        doc = _loader().load(text)
    except HwcostError as exc:
        raise exc.located(path) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = _one_line(exc.problem or exc.context or "syntax error")
        raise HwcostError(f"YAML syntax error: {problem}", file=path, line=line) from None
    except ReaderError as exc:
        line = text[:exc.position].count("\n") + 1 if isinstance(exc.position, int) else None
        char = exc.character if isinstance(exc.character, int) else 0
        raise HwcostError(f"YAML error: character #x{char:04x} is not allowed in YAML",
                          file=path, line=line) from None
    except YAMLError as exc:
        raise HwcostError(f"YAML error: {_one_line(str(exc))}", file=path) from None
    except RecursionError:
        raise HwcostError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)",
                          file=path) from None
    check_tree(doc, path)
    return doc


_QUOTE_OPENERS = " \t[{,:"


def _check_flow_depth(text: str, path: str | Path) -> None:
    """Refuse ``[[[[...`` nested past :data:`MAX_DEPTH` before ruamel sees it: its scanner
    is quadratic in the flow depth (10,000 brackets take seconds) and its composer recurses.

    A rough scan: comments and quoted scalars are skipped; a bracket inside a plain scalar
    (``PE[0..13]``) counts too, but those come in pairs.
    """
    depth = 0
    line = 1
    quote = ""
    prev = "\n"
    comment = False
    for ch in text:
        if ch == "\n":
            line += 1
            comment = False                         # quoted scalars may span lines
        elif comment:
            pass
        elif quote:
            if ch == quote:
                quote = ""
        elif ch == "#" and prev in " \t\n":
            comment = True
        elif ch in "'\"" and prev in _QUOTE_OPENERS + "\n":
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise HwcostError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)",
                                  file=path, line=line)
        elif ch in "]}":
            depth = max(0, depth - 1)
        prev = ch


def check_tree(doc: Any, path: str | Path) -> None:
    """Refuse a tree deeper than :data:`MAX_DEPTH` or larger than :data:`MAX_NODES` once
    aliases are expanded.  Sizes are memoised per shared node, so a billion-laughs file is
    measured in a few steps instead of being expanded."""
    size: dict[int, int] = {}
    limit = MAX_NODES.value
    # iterative post-order walk: (node, depth, children pushed?)
    stack: list[tuple[Any, int, bool]] = [(doc, 1, False)]
    while stack:
        node, depth, expanded = stack.pop()
        children = _children(node)
        if not expanded:
            if id(node) in size:
                continue
            if depth > MAX_DEPTH:
                raise HwcostError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)",
                                  file=path, line=line_of(node))
            stack.append((node, depth, True))
            stack.extend((c, depth + 1, False) for c in children
                         if _is_tree(c) and id(c) not in size)
            continue
        total = 1 + sum(size[id(c)] if _is_tree(c) else 1 for c in children)
        size[id(node)] = total
        if total > limit:
            MAX_NODES.check(total, file=path, line=line_of(node))


def _is_tree(node: Any) -> bool:
    return isinstance(node, (Mapping, list))


def _children(node: Any) -> list[Any]:
    """Keys and values of a map, items of a list (keys too: ``? [*a, *a]`` is legal)."""
    if isinstance(node, Mapping):
        return [*node.keys(), *node.values()]
    if isinstance(node, list):
        return list(node)
    return []


def dump_yaml(data: Any, path: str | Path, header: str | None = None) -> None:
    """Write ``data`` as block-style YAML atomically (a crash never leaves half a file)."""
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    buf = io.StringIO()
    if header:
        buf.write("".join(f"# {ln}\n" if ln else "#\n" for ln in header.splitlines()))
    yaml.dump(data, buf)
    try:
        atomic_write_text(path, buf.getvalue())
    except OSError as exc:         # a missing folder, a file where a folder should be, ...
        hint = (" (a folder on its path is a file)"
                if isinstance(exc, FileExistsError | NotADirectoryError) else "")
        raise HwcostError(f"cannot write: {exc.strerror or exc}{hint}", file=path) from None


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


def evaluate(text: str, variables: Mapping[str, Any] | Scope | None = None) -> Any:
    """Evaluate an expression of a spec value (``glb_kb * 1024 // 8``, ``max(W, 16)``).

    A thin wrapper of :func:`hwmodel.expressions.evaluate` (see there for what is allowed):
    ``variables`` is a map of raw values or a :class:`Scope`.  Raises ValueError.
    """
    return _expr_evaluate(text, variables)


def _why(exc: ValueError) -> str:
    return f" ({exc})" if isinstance(exc, ExprError) and "not an expression" not in str(exc) \
        else ""


def to_int(value: Any, what: str, err: Callable[[str], HwcostError],
           variables: Mapping[str, Any] | Scope | None = None,
           minimum: int | None = None) -> int:
    """An integer attribute; ``err`` builds the located error for a bad value."""
    v: Any = value
    if isinstance(v, TaggedScalar):
        v = v.value
    if isinstance(v, str):
        try:
            v = evaluate(v, variables)
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            why = _why(exc) if isinstance(exc, ValueError) else ""
            raise err(f"{what}: expected an integer, got {short_repr(str(value))}{why}") from None
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
             variables: Mapping[str, Any] | Scope | None = None) -> float:
    """A real-valued attribute (bandwidths), same tolerance as :func:`to_int`."""
    v: Any = value.value if isinstance(value, TaggedScalar) else value
    if isinstance(v, str):
        try:
            v = evaluate(v, variables)
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            why = _why(exc) if isinstance(exc, ValueError) else ""
            raise err(f"{what}: expected a number, got {short_repr(str(value))}{why}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise err(f"{what}: expected a number, got {value!r}")
    try:
        v = float(v)
    except OverflowError:
        raise err(f"{what}: number too large: {value!r}") from None
    if not math.isfinite(v):
        raise err(f"{what}: expected a finite number, got {value!r}")
    return v


def name_list(value: Any, what: str, err: Callable[[str], HwcostError]) -> list[str]:
    """``keep: Weights`` or ``keep: [Weights, Inputs]`` as a list of names; anything else
    (a number, a map) is ``err``'s error rather than a TypeError further down."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    raise err(f"{what}: expected a name or a list of names, got {short_repr(str(plain(value)))}")


# ----------------------------------------------------------------------------- factors

#: ``NAME=3``, ``NAME<=3``, ``NAME>=3`` (names may contain digits), or ``R3`` (letters, then
#: the factor: Timeloop's terse form).
_FACTOR_RE = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)\s*(<=|>=|=)\s*(-?\d+)|([A-Za-z_]+)(-?\d+)")


def parse_factors(value: Any, err: Callable[[str], HwcostError],
                  max_factors: dict[str, int] | None = None) -> dict[str, int]:
    """Timeloop factors: ``"R=3 S=1"``, ``"R3 S1"``, ``"R=1,S=1"``, ``[R=3, S=1]`` or a map.

    Returns ``{dim: factor}`` in the order written; dimension names are checked by callers
    (they depend on the problem).  ``X<=4`` (timeloopfe's upper bound) goes into
    ``max_factors`` where the caller accepts bounds (constraints), and is an error
    elsewhere; ``X>=4`` (a lower bound) has no counterpart in hwcost and is refused.
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
            name, op, digits = (m.group(1), m.group(2), m.group(3)) if m.group(1) else \
                (m.group(4), "=", m.group(5))
            if len(digits.lstrip("-")) > 18:
                raise err(f"factor of {name} is too large ({text[:60]!r})")
            if int(digits) < 0:
                raise err(f"factor of {name} must not be negative ({text!r})")
            if op == ">=":
                raise err(f"minimum factors ({name}>={digits}) are not supported; give an "
                          f"exact factor ({name}={digits}) or a maximum ({name}<={digits})")
            target = out
            if op == "<=":
                if max_factors is None:
                    raise err(f"factor bounds ({name}<={digits}) are not allowed here; give "
                              f"the factor itself ({name}={digits})")
                target = max_factors
            if name in out or name in (max_factors or {}):
                raise err(f"dimension {name} given twice in factors {text!r}")
            target[name] = int(digits)
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
