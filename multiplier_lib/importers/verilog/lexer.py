"""Lexer of the Verilog importer: source text -> :class:`Token` stream with line numbers.

Comments and compiler directives are dropped.  A run of ROM case items (what
:mod:`multiplier_lib.export` writes, up to 65,536 of them) is read in one regex pass and
handed on as a single ``"r"`` token, so a 16-bit table does not cost a token per character.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import ImportFailed

_TOKEN = re.compile(
    r"\s*(?:(?P<c>//[^\n]*|/\*.*?\*/)|(?P<u>/\*)|(?P<d>`[^\n]*)"
    r"|(?P<n>\d*'[sS]?[bBoOdDhH][0-9a-fA-FxXzZ_?]+|\d[0-9_]*)"
    r"|(?P<i>[A-Za-z_][A-Za-z0-9_$]*|\\\S+)"
    r"|(?P<o>~\^|\^~|&&|\|\||[()\[\]{},;:.=&|^~!?@*#])|(?P<e>\S|$))",
    re.S)

#: Reserved words: never net, cell or module names.
KEYWORDS = frozenset(
    "module endmodule input output inout wire reg tri logic assign always begin end case casez "
    "casex endcase default signed unsigned parameter localparam initial supply0 supply1 "
    "or and nand nor xor xnor not buf".split())


_HEX = r"(\d{1,2})'[hH]([0-9a-fA-F]{1,15})"
#: A run of ``16'h0001: O = 16'h0001;`` case items (what our exporter writes).  A 16-bit ROM
#: has 65,536 of them, which the token-by-token parser would take seconds over; this reads
#: the run in one regex pass.  Anything else (comments, defaults) ends the run and goes on
#: through the general parser.
_CASE_ITEM = rf"{_HEX}\s*:\s*([A-Za-z_]\w*)\s*=\s*{_HEX}\s*;"
_CASE_RUN = re.compile(rf"(?:\s*{_CASE_ITEM})+")
_CASE_ITEMS = re.compile(_CASE_ITEM)


@dataclass(frozen=True)
class Token:
    kind: str  # "n" number, "i" identifier, "o" operator, "r" case items, "e" end of file
    text: str
    line: int
    #: for kind "r": (label width, label hex, target, value width, value hex) per item
    items: list[tuple[str, str, str, str, str]] | None = None


def tokenize(text: str, path: str) -> Iterator[Token]:
    """Split Verilog source into tokens with line numbers; comments and directives dropped.

    A generator, so that the parser can refuse an oversized netlist (:data:`MAX_GATES`)
    after reading only as much of it as the limit allows.
    """
    pos = 0
    line = 1
    last = 0
    match = _TOKEN.match
    case_depth: int | None = None  # paren depth inside "case (...)"; None outside
    while True:
        m = match(text, pos)
        kind = m.lastgroup or "e"
        start = m.start(kind)
        line += text.count("\n", last, start)
        last = start
        pos = m.end()
        if kind in ("c", "d"):
            continue
        if kind == "u":
            raise ImportFailed("unterminated /* comment", file=path, line=line)
        if kind == "e":
            if m.group("e"):
                raise ImportFailed(f"syntax error: unexpected character {m.group('e')!r}",
                                   file=path, line=line)
            yield Token("e", "end of file", line)
            return
        tok = Token(kind, m.group(kind), line)
        yield tok
        if kind == "i" and tok.text in ("case", "casez", "casex"):
            case_depth = 0
        elif case_depth is not None and kind == "o" and tok.text in "()":
            case_depth += 1 if tok.text == "(" else -1
            if case_depth == 0:
                case_depth = None
                run = _CASE_RUN.match(text, pos)
                if run is not None:
                    items = _CASE_ITEMS.findall(text, pos, run.end())
                    yield Token("r", "case items", line, items)
                    pos = run.end()


def number(text: str, line: int, path: str) -> tuple[int, int | None]:
    """``(value, width)`` of a Verilog number; ``width`` is None for unsized numbers."""
    clean = text.replace("_", "")
    if len(clean) > 64:  # far beyond any width a multiplier needs; keeps int() cheap
        raise ImportFailed(f"number {text[:20]}... is too long", file=path, line=line)
    if "'" not in clean:
        return int(clean), None
    size, rest = clean.split("'", 1)
    rest = rest.lstrip("sS")
    base = {"b": 2, "o": 8, "d": 10, "h": 16}[rest[0].lower()]
    digits = rest[1:]
    if re.search(r"[xXzZ?]", digits):
        raise ImportFailed(f"constant {text} has x/z bits; only 0/1 values can be simulated",
                           file=path, line=line)
    try:
        value = int(digits, base)
    except ValueError:
        raise ImportFailed(f"malformed number {text}", file=path, line=line) from None
    width = int(size) if size else None
    if width is not None:
        if not 1 <= width <= 256:
            raise ImportFailed(f"constant {text} must be 1..256 bits wide", file=path,
                               line=line)
        value &= (1 << width) - 1
    return value, width


def show(tok: Token) -> str:
    return "end of file" if tok.kind == "e" else repr(tok.text)
