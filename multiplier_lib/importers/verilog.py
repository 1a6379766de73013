"""Read a multiplier written as gate-level Verilog into a :class:`Netlist` (or a ROM table).

Three styles occur in practice and all are read by one small parser:

* expression style (EvoApproxLib ``mul8u_XXX.v``): one ``assign`` per net built from ``&``,
  ``|``, ``^``, ``~`` on single bits;
* cell-instance style (EvoApprox ``_pdk45.v`` and the exact ``mul8u_1JFF.v``):
  ``PDKGENFAX1 n548(.A(..), .B(..), ...)`` instances of library cells; in some published
  ``.v`` files the names were mangled by a buggy find-and-replace (``NPDKGEPDKGENNAND2X1``
  means ``NAND2X1``), see :func:`decode_cell`;
* a ``case ({A, B})`` ROM, which is what :mod:`multiplier_lib.export` writes for multipliers
  known only by their truth table.

EvoApprox files also append behavioural definitions of their cells (``module PDKGENFAX1(...)``)
after the multiplier; when a used cell is defined in the file, its definition is simulated and
decides the cell's function, since that is what the file means to any simulator.

Statements may come in any order (EvoApprox assigns outputs from nets driven further down),
so the whole module is collected first and the netlist is built afterwards.  ``assign X = Y``
is a net alias, not a buffer, because it costs nothing in silicon; every operator and every
cell instance becomes one gate so that gate counts, area and energy stay realistic.
Every user mistake raises :class:`ImportFailed` carrying the file and the source line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImportFailed, NetlistError
from ..multiplier import MAX_BITS
from ..netlist import CELL_ALIASES, CELLS, CONST0, CONST1, Netlist
from ..netlist.netlist import MAX_GATES, MAX_NETS

# ---------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"\s*(?:(?P<c>//[^\n]*|/\*.*?\*/)|(?P<u>/\*)|(?P<d>`[^\n]*)"
    r"|(?P<n>\d*'[sS]?[bBoOdDhH][0-9a-fA-FxXzZ_?]+|\d[0-9_]*)"
    r"|(?P<i>[A-Za-z_][A-Za-z0-9_$]*|\\\S+)"
    r"|(?P<o>~\^|\^~|&&|\|\||[()\[\]{},;:.=&|^~!?@*#])|(?P<e>\S|$))",
    re.S)

_KEYWORDS = frozenset(
    "module endmodule input output inout wire reg tri logic assign always begin end case casez "
    "casex endcase default signed unsigned parameter localparam initial supply0 supply1 "
    "or and nand nor xor xnor not buf".split())

#: Verilog gate primitives -> (2-input kind, 3-input kind or None).
_PRIMITIVES: dict[str, tuple[str, str | None]] = {
    "and": ("AND", "AND3"), "or": ("OR", "OR3"), "nand": ("NAND", "NAND3"),
    "nor": ("NOR", "NOR3"), "xor": ("XOR", None), "xnor": ("XNOR", None),
    "not": ("NOT", None), "buf": ("BUF", None),
}
#: Non-inverting base of an inverting kind, used to chain wide primitives from 2-input gates.
_BASE_OF = {"NAND": "AND", "NOR": "OR", "XNOR": "XOR", "AND": "AND", "OR": "OR", "XOR": "XOR"}
#: ``~(x op y)`` is one inverting gate, as synthesis would map it.
_INVERTED = {"AND": "NAND", "OR": "NOR", "XOR": "XNOR", "XNOR": "XOR"}
#: Items a case table may have: one per operand pair of the widest multiplier, twice over
#: (Verilog allows repeated labels; the first wins).  More can only be junk.
_MAX_CASE_ITEMS = 2 << (2 * MAX_BITS)
_BINARY = {"&": "AND", "&&": "AND", "|": "OR", "||": "OR", "^": "XOR", "~^": "XNOR",
           "^~": "XNOR"}


_HEX = r"(\d{1,2})'[hH]([0-9a-fA-F]{1,15})"
#: A run of ``16'h0001: O = 16'h0001;`` case items (what our exporter writes).  A 16-bit ROM
#: has 65,536 of them, which the token-by-token parser would take seconds over; this reads
#: the run in one regex pass.  Anything else (comments, defaults) ends the run and goes on
#: through the general parser.
_CASE_ITEM = rf"{_HEX}\s*:\s*([A-Za-z_]\w*)\s*=\s*{_HEX}\s*;"
_CASE_RUN = re.compile(rf"(?:\s*{_CASE_ITEM})+")
_CASE_ITEMS = re.compile(_CASE_ITEM)


@dataclass(frozen=True)
class _Tok:
    kind: str  # "n" number, "i" identifier, "o" operator, "r" case items, "e" end of file
    text: str
    line: int
    #: for kind "r": (label width, label hex, target, value width, value hex) per item
    items: list[tuple[str, str, str, str, str]] | None = None


def _tokenize(text: str, path: str) -> Iterator[_Tok]:
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
            yield _Tok("e", "end of file", line)
            return
        tok = _Tok(kind, m.group(kind), line)
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
                    yield _Tok("r", "case items", line, items)
                    pos = run.end()


def _number(text: str, line: int, path: str) -> tuple[int, int | None]:
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


# ---------------------------------------------------------------------------- cells


def decode_cell(name: str) -> str | None:
    """The :data:`CELLS` kind of a library cell name, or None if it means nothing to us.

    Some published EvoApprox ``.v`` files contain names such as ``NPDKGEPDKGENNAND2X1``
    left by a find-and-replace that inserted ``PDKGEN`` twice; deleting ``PDKGEN`` until none
    is left recovers ``NAND2X1`` for every mangled name seen, then the drive strength
    (``X1``, ``_X2``) is dropped.
    """
    base = name.upper()
    while "PDKGEN" in base:
        base = base.replace("PDKGEN", "")
    if base in CELL_ALIASES:
        return CELL_ALIASES[base]
    m = re.fullmatch(r"(.+?)_?X\d+", base)
    if m and m.group(1) in CELL_ALIASES:
        return CELL_ALIASES[m.group(1)]
    return None


# ---------------------------------------------------------------------------- parse tree

# Expressions are tuples: ("ref", name, index|None, line), ("const", value, width|None),
# ("gate", KIND, (args...)), ("concat", (items...), line), ("repl", count, item, line).
Expr = tuple


@dataclass
class _Decl:
    name: str
    kind: str  # input, output, wire
    msb: int | None
    lsb: int | None
    line: int
    signed: bool = False

    @property
    def width(self) -> int:
        return 1 if self.msb is None else abs(self.msb - self.lsb) + 1

    @property
    def is_bus(self) -> bool:
        return self.msb is not None

    def has(self, index: int) -> bool:
        return min(self.msb, self.lsb) <= index <= max(self.msb, self.lsb)

    def weight(self, index: int | None) -> int:
        """Bit weight of ``name[index]`` (the left bound of ``[msb:lsb]`` is the MSB)."""
        if index is None:
            return 0
        return index - self.lsb if self.msb >= self.lsb else self.lsb - index

    def index(self, weight: int) -> int | None:
        if self.msb is None:
            return None
        return self.lsb + weight if self.msb >= self.lsb else self.lsb - weight

    def range_text(self) -> str:
        return "" if self.msb is None else f"[{self.msb}:{self.lsb}]"


@dataclass
class _Instance:
    cell: str
    kind: str  # CELLS kind, filled in by _resolve_cells
    name: str
    pins: dict[str, Expr | None]
    line: int
    pin_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class _Case:
    selector: list[str]
    target: str
    entries: dict[int, int]
    default: int | None
    line: int


@dataclass
class _Module:
    name: str
    line: int
    ports: list[str] = field(default_factory=list)
    decls: dict[str, _Decl] = field(default_factory=dict)
    assigns: list[tuple[Expr, Expr, int]] = field(default_factory=list)
    instances: list[_Instance] = field(default_factory=list)
    case: _Case | None = None


class _TokenStream:
    """Tokens by absolute index, produced on demand; those the parser has gone past are
    dropped, so memory follows the parse tree (bounded by the limits), not the file."""

    def __init__(self, tokens: Iterator[_Tok]):
        self._tokens = tokens
        self._buf: list[_Tok] = []
        self.base = 0  # absolute index of _buf[0]

    def __getitem__(self, index: int) -> _Tok:
        """Token ``index``; past the end, the end-of-file token."""
        i = index - self.base
        if i < len(self._buf):  # the common case, kept short: the parser peeks a lot
            return self._buf[i]
        while i >= len(self._buf):
            if self._buf and self._buf[-1].kind == "e":
                return self._buf[-1]
            self._buf.append(next(self._tokens))
        return self._buf[i]

    def forget_before(self, index: int) -> None:
        del self._buf[:index - self.base]
        self.base = index


class _Parser:
    """Recursive-descent parser for the gate-level subset of Verilog that multipliers use.

    Counts what the file asks for while parsing (operators and cells are gates, declared
    bits and assigns are nets) and stops at the limits, before building anything.
    """

    def __init__(self, text: str, path: str):
        self.path = path
        self.toks = _TokenStream(_tokenize(text, path))
        self.pos = 0
        self.gate_count = 0
        self.net_count = 0
        self.case_items = 0

    # ------------------------------------------------------------------ helpers
    def fail(self, message: str, line: int | None = None) -> ImportFailed:
        return ImportFailed(message, file=self.path,
                            line=self.peek().line if line is None else line)

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[self.pos + ahead]

    def next(self) -> _Tok:
        tok = self.peek()
        if tok.kind != "e":
            self.pos += 1
            if self.pos - self.toks.base > 4096:
                self.toks.forget_before(self.pos - 1)  # expect() looks one token back
        return tok

    def count_gates(self, n: int, line: int) -> None:
        self.gate_count += n
        MAX_GATES.check(self.gate_count, file=self.path, line=line)

    def count_nets(self, n: int, line: int) -> None:
        self.net_count += n
        MAX_NETS.check(self.net_count, file=self.path, line=line)

    def at(self, text: str) -> bool:
        return self.peek().text == text and self.peek().kind != "e"

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.next()
            return True
        return False

    def expect(self, text: str, context: str) -> _Tok:
        tok = self.peek()
        if tok.text == text and tok.kind != "e":
            self.next()
            return tok
        line = tok.line
        if text == ";" and self.pos > 0 and self.toks[self.pos - 1].line < line:
            line = self.toks[self.pos - 1].line  # a missing ';' belongs to the line before
        raise self.fail(f"syntax error: expected '{text}' {context}, found {_show(tok)}", line)

    def ident(self, what: str) -> _Tok:
        tok = self.peek()
        if tok.kind != "i" or tok.text in _KEYWORDS:
            raise self.fail(f"syntax error: expected {what}, found {_show(tok)}")
        self.next()
        return tok

    def integer(self, what: str) -> int:
        tok = self.peek()
        if tok.kind != "n":
            raise self.fail(f"syntax error: expected {what} (a number), found {_show(tok)}")
        self.next()
        return _number(tok.text, tok.line, self.path)[0]

    # ------------------------------------------------------------------ module
    def parse(self) -> list[_Module]:
        """Every module in the file (EvoApprox files append their cells' definitions)."""
        modules = [self.module()]
        while self.peek().kind != "e":
            if not self.at("module"):
                raise self.fail(f"syntax error: expected 'module' or end of file after "
                                f"endmodule, found {_show(self.peek())}")
            modules.append(self.module())
        return modules

    def module(self) -> _Module:
        self.expect("module", "at the start of the file")
        name = self.ident("a module name")
        mod = _Module(name.text, name.line)
        if self.at("#"):
            raise self.fail("module parameters (#(...)) are not supported")
        if self.accept("("):
            self.port_list(mod)
        self.expect(";", "after the module header")
        while not self.at("endmodule"):
            if self.peek().kind == "e":
                raise self.fail("syntax error: expected 'endmodule', found end of file")
            self.item(mod)
        self.next()
        return mod

    def port_list(self, mod: _Module) -> None:
        if self.accept(")"):
            return
        if self.peek().text in ("input", "output", "inout"):
            direction = ""
            while True:
                if self.peek().text in ("input", "output", "inout"):
                    direction = self.next().text
                    signed, msb, lsb = self.decl_type()
                line = self.peek().line
                name = self.ident("a port name").text
                self.declare(mod, _Decl(name, direction, msb, lsb, line, signed))
                mod.ports.append(name)
                if not self.accept(","):
                    break
        else:
            while True:
                mod.ports.append(self.ident("a port name").text)
                if not self.accept(","):
                    break
        self.expect(")", "to close the port list")

    def decl_type(self) -> tuple[bool, int | None, int | None]:
        """``[wire|reg|logic] [signed] [[msb:lsb]]`` after a direction keyword."""
        self.accept("wire") or self.accept("reg") or self.accept("logic")
        signed = self.accept("signed")
        self.accept("unsigned")
        if self.accept("["):
            msb = self.integer("the range's left bound")
            self.expect(":", "in the range [msb:lsb]")
            lsb = self.integer("the range's right bound")
            self.expect("]", "to close the range")
            return signed, msb, lsb
        return signed, None, None

    def declare(self, mod: _Module, decl: _Decl) -> None:
        MAX_NETS.check(decl.width, file=self.path, line=decl.line,
                       context=f"{decl.name}{decl.range_text()}")
        self.count_nets(decl.width, decl.line)
        if decl.kind == "inout":
            raise self.fail(f"inout port {decl.name} is not supported", decl.line)
        old = mod.decls.get(decl.name)
        if old is None:
            mod.decls[decl.name] = decl
            return
        # "output [15:0] O; reg [15:0] O;" or "wire [15:0] O;" re-declares a port's type.
        if old.kind in ("input", "output") and decl.kind == "wire" and (
                decl.msb is None or (decl.msb, decl.lsb) == (old.msb, old.lsb)):
            return
        raise self.fail(f"{decl.name} is declared twice (first at line {old.line})", decl.line)

    def item(self, mod: _Module) -> None:
        tok = self.peek()
        word = tok.text if tok.kind == "i" else ""
        if word in ("input", "output", "inout", "wire", "reg", "tri", "logic"):
            self.next()
            kind = {"reg": "wire", "tri": "wire", "logic": "wire"}.get(word, word)
            signed, msb, lsb = self.decl_type()
            while True:
                name = self.ident("a net name")
                self.declare(mod, _Decl(name.text, kind, msb, lsb, name.line, signed))
                if self.accept("="):  # wire x = expr;
                    mod.assigns.append((("ref", name.text, None, name.line), self.expr(),
                                        name.line))
                if not self.accept(","):
                    break
            self.expect(";", f"after the {word} declaration")
        elif word == "assign":
            self.next()
            while True:
                line = self.peek().line
                lhs = self.reference()
                self.count_nets(1, line)
                self.expect("=", "in the assign statement")
                mod.assigns.append((lhs, self.expr(), line))
                if not self.accept(","):
                    break
            self.expect(";", "after the assign statement")
        elif word in ("parameter", "localparam"):
            self.count_nets(1, tok.line)
            while not self.at(";"):
                if self.next().kind == "e":
                    raise self.fail("syntax error: expected ';' after the parameter")
            self.next()
        elif word == "always":
            self.always(mod)
        elif word in _PRIMITIVES:
            self.primitive(mod)
        elif tok.kind == "i" and word not in _KEYWORDS:
            self.instance(mod)
        else:
            raise self.fail("syntax error: expected a declaration, assign, always block or "
                            f"cell instance, found {_show(tok)}")

    # ------------------------------------------------------------------ instances
    def instance(self, mod: _Module) -> None:
        cell = self.next()
        self.count_gates(1, cell.line)
        name = self.ident(f"an instance name after cell {cell.text}").text
        self.expect("(", f"to open the pin list of {name}")
        pins: dict[str, Expr | None] = {}
        pin_lines: dict[str, int] = {}
        if not self.at(")"):
            while True:
                if not self.at("."):
                    raise self.fail(f"syntax error: expected a named pin connection like "
                                    f".A(net) in instance {name}, found {_show(self.peek())}")
                self.next()
                pin_tok = self.ident("a pin name")
                pin = pin_tok.text.upper()
                if pin in pins:
                    raise self.fail(f"pin {pin} of instance {name} is connected twice",
                                    pin_tok.line)
                pin_lines[pin] = pin_tok.line
                self.expect("(", f"after pin .{pin_tok.text}")
                pins[pin] = None if self.at(")") else self.expr()
                self.expect(")", f"to close pin .{pin_tok.text}")
                if not self.accept(","):
                    break
        self.expect(")", f"to close the pin list of {name}")
        self.expect(";", f"after instance {name}")
        mod.instances.append(_Instance(cell.text, "", name, pins, cell.line, pin_lines))

    def primitive(self, mod: _Module) -> None:
        word = self.next()
        if self.peek().kind == "i" and self.peek().text not in _KEYWORDS:
            self.next()  # instance name (optional for primitives)
        self.expect("(", f"after the {word.text} primitive")
        out = self.reference()
        args: list[Expr] = []
        while self.accept(","):
            if args:  # an n-input primitive is at least n - 1 gates
                self.count_gates(1, word.line)
            args.append(self.expr())
        self.expect(")", f"to close the {word.text} primitive")
        self.expect(";", f"after the {word.text} primitive")
        two, three = _PRIMITIVES[word.text]
        if word.text in ("not", "buf"):
            if len(args) != 1:
                raise self.fail(f"{word.text} takes one output and one input", word.line)
            mod.assigns.append((out, ("gate", two, (args[0],)), word.line))
            return
        if len(args) < 2:
            raise self.fail(f"{word.text} needs at least two inputs", word.line)
        if len(args) == 3 and three is not None:
            expr: Expr = ("gate", three, tuple(args))
        else:
            expr = args[0]
            for k, arg in enumerate(args[1:], 1):
                kind = two if k == len(args) - 1 else _BASE_OF[two]
                expr = ("gate", kind, (expr, arg))
        mod.assigns.append((out, expr, word.line))

    # ------------------------------------------------------------------ ROM
    def always(self, mod: _Module) -> None:
        start = self.next()
        if mod.case is not None:
            raise self.fail("only one always block (the case table) is supported", start.line)
        self.expect("@", "after always")
        if not self.accept("*"):
            self.expect("(", "after always @")
            depth = 1
            while depth:
                tok = self.next()
                if tok.kind == "e":
                    raise self.fail("syntax error: expected ')' to close the sensitivity list")
                depth += {"(": 1, ")": -1}.get(tok.text, 0)
        wrapped = self.accept("begin")
        if not (self.at("case")):
            raise self.fail(f"syntax error: expected 'case' in the always block (only a "
                            f"case-statement table is supported), found {_show(self.peek())}")
        mod.case = self.case(mod)
        if wrapped:
            self.expect("end", "to close the always block")

    def case(self, mod: _Module) -> _Case:
        line = self.next().line
        self.expect("(", "after case")
        selector: list[str] = []
        if self.accept("{"):
            while True:
                selector.append(self.ident("an operand name").text)
                if not self.accept(","):
                    break
            self.expect("}", "to close the case selector")
        else:
            selector.append(self.ident("an operand name").text)
        self.expect(")", "to close the case selector")
        entries: dict[int, int] = {}
        default: int | None = None
        target = ""
        while not self.accept("endcase"):
            if self.peek().kind == "r":
                run = self.next()
                assert run.items is not None
                self.count_case_items(len(run.items), run.line)
                targets = {item[2] for item in run.items} | ({target} if target else set())
                if len(targets) > 1:
                    raise self.fail(f"case table assigns more than one net: "
                                    f"{', '.join(sorted(targets))}", run.line)
                target = targets.pop()
                labels = [int(h, 16) & ((1 << int(w)) - 1) for w, h, _, _, _ in run.items]
                values = [int(h, 16) & ((1 << int(w)) - 1) for _, _, _, w, h in run.items]
                # Verilog: the first matching item wins, so earlier entries take precedence.
                entries = {**dict(zip(reversed(labels), reversed(values))), **entries}
                continue
            labels: list[int] = []
            self.count_case_items(1, self.peek().line)
            if self.accept("default"):
                self.accept(":")
                is_default = True
            else:
                is_default = False
                while True:
                    labels.append(self.integer("a case label"))
                    if not self.accept(","):
                        break
                self.expect(":", "after the case label")
            block = self.accept("begin")
            tgt = self.ident("the output name")
            if target and tgt.text != target:
                raise self.fail(f"case table assigns {tgt.text} but earlier items assign "
                                f"{target}", tgt.line)
            target = tgt.text
            self.expect("=", f"after {tgt.text}")
            value = self.integer("a product value")
            self.expect(";", "after the case item")
            if block:
                self.expect("end", "to close the case item")
            if is_default:
                default = value
            for label in labels:
                entries.setdefault(label, value)  # Verilog: the first matching item wins
        return _Case(selector, target, entries, default, line)

    def count_case_items(self, n: int, line: int) -> None:
        self.case_items += n
        if self.case_items > _MAX_CASE_ITEMS:
            raise self.fail(f"the case table has more than {_MAX_CASE_ITEMS:,} items; an "
                            f"{MAX_BITS}x{MAX_BITS} multiplier has {1 << 2 * MAX_BITS:,} "
                            "operand pairs", line)

    # ------------------------------------------------------------------ expressions
    def reference(self) -> Expr:
        tok = self.ident("a net name")
        index: int | None = None
        if self.accept("["):
            index = self.integer("a bit index")
            if self.at(":"):
                raise self.fail("part selects like X[3:0] are not supported; write one "
                                "assign per bit")
            self.expect("]", "to close the bit select")
        return ("ref", tok.text, index, tok.line)

    def expr(self) -> Expr:
        cond = self.binary(0)
        if self.at("?"):
            self.count_gates(1, self.next().line)
            if1 = self.expr()
            self.expect(":", "in the ?: expression")
            if0 = self.expr()
            return ("gate", "MUX2", (if0, if1, cond))
        return cond

    _LEVELS = (("||",), ("&&",), ("|",), ("^", "~^", "^~"), ("&",))

    def binary(self, level: int) -> Expr:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        ops = self._LEVELS[level]
        while self.peek().kind == "o" and self.peek().text in ops:
            op_tok = self.next()
            op = op_tok.text
            self.count_gates(1, op_tok.line)
            right = self.binary(level + 1)
            left = ("gate", _BINARY[op], (left, right))
        return left

    def unary(self) -> Expr:
        if self.at("~") or self.at("!"):
            line = self.next().line
            inner = self.unary()
            if inner[0] == "gate" and inner[1] in _INVERTED:
                return ("gate", _INVERTED[inner[1]], inner[2])  # folded: no extra gate
            self.count_gates(1, line)
            return ("gate", "NOT", (inner,))
        return self.primary()

    def primary(self) -> Expr:
        tok = self.peek()
        if self.accept("("):
            inner = self.expr()
            self.expect(")", "to close the parenthesis")
            return inner
        if tok.kind == "n":
            self.next()
            value, width = _number(tok.text, tok.line, self.path)
            if self.at("{"):  # replication {n{...}}
                if value < 1:
                    raise self.fail(f"replication count {value} must be positive", tok.line)
                MAX_NETS.check(value, file=self.path, line=tok.line,
                               context="replication count")
                self.next()
                item = self.concat_items(tok.line)
                self.expect("}", "to close the replication")
                return ("repl", value, item, tok.line)
            return ("const", value, width)
        if self.accept("{"):
            inner = self.concat_items(tok.line)
            self.expect("}", "to close the concatenation")
            return inner
        if tok.kind == "i" and tok.text not in _KEYWORDS:
            return self.reference()
        raise self.fail(f"syntax error: expected a net, a constant or '(', found {_show(tok)}")

    def concat_items(self, line: int) -> Expr:
        items = [self.expr()]
        while self.accept(","):
            items.append(self.expr())
        return ("concat", tuple(items), line)


def _show(tok: _Tok) -> str:
    return "end of file" if tok.kind == "e" else repr(tok.text)


# ---------------------------------------------------------------------------- build


@dataclass
class VerilogDesign:
    """What a Verilog file describes: a netlist (gate styles) or a raw ROM table."""

    module: str
    a_bits: int
    b_bits: int
    style: str
    line: int  # where the module is declared
    netlist: Netlist | None = None
    raw_lut: np.ndarray | None = None  # raw output patterns, ROM style only
    declared_signed: bool = False  # both operands declared ``input signed``


Key = tuple[str, int | None]


class _Builder:
    """Turns a parsed module into a validated netlist, resolving aliases and references."""

    def __init__(self, mod: _Module, path: str, a: _Decl, b: _Decl, out: _Decl):
        self.mod = mod
        self.path = path
        self.out = out
        self.nl = Netlist(a.width, b.width, out.width)
        self.inputs: dict[Key, int] = {}
        for d, net_of in ((a, self.nl.a), (b, self.nl.b)):
            for w in range(d.width):
                self.inputs[(d.name, d.index(w))] = net_of(w)
        self.net: dict[Key, int] = {}  # bits driven by a gate
        self.alias: dict[Key, tuple[Expr, int]] = {}  # bits assigned from a plain net
        self.driven_at: dict[Key, int] = {}
        self.resolved: dict[Key, int] = {}

    def fail(self, message: str, line: int | None) -> ImportFailed:
        return ImportFailed(message, file=self.path, line=line)

    # ------------------------------------------------------------------ references
    def decl(self, name: str, line: int) -> _Decl:
        d = self.mod.decls.get(name)
        if d is None:
            raise self.fail(f"undeclared net {name} (declare it as a wire, input or output)",
                            line)
        return d

    def check_bit(self, ref: Expr) -> Key:
        _, name, index, line = ref
        d = self.decl(name, line)
        if index is None:
            if d.is_bus:
                raise self.fail(f"{name} is a {d.width}-bit bus{d.range_text()} where one bit "
                                f"is expected; select a bit like {name}[{d.lsb}]", line)
            return (name, None)
        if not d.is_bus:
            raise self.fail(f"{name} is a single-bit net and cannot be indexed", line)
        if not d.has(index):
            raise self.fail(f"index {name}[{index}] is out of the declared range "
                            f"{name}{d.range_text()}", line)
        return (name, index)

    def bits(self, expr: Expr, line: int) -> list[Expr]:
        """The single-bit expressions making up ``expr``, most significant first."""
        tag = expr[0]
        if tag == "ref":
            _, name, index, rline = expr
            d = self.decl(name, rline)
            if index is None and d.is_bus:
                return [("ref", name, d.index(w), rline) for w in reversed(range(d.width))]
            return [expr]
        if tag == "const":
            _, value, width = expr
            width = width if width is not None else max(1, value.bit_length())
            return [("const", (value >> w) & 1, 1) for w in reversed(range(width))]
        if tag == "concat":
            out: list[Expr] = []
            for item in expr[1]:
                out += self.bits(item, expr[2])
                self.check_width(len(out), expr[2])
            return out
        if tag == "repl":
            item = self.bits(expr[2], expr[3])
            self.check_width(len(item) * expr[1], expr[3])
            return item * expr[1]
        _, kind, args = expr
        arg_bits = [self.bits(arg, line) for arg in args]
        width = max(len(x) for x in arg_bits)
        for arg, x in zip(args, arg_bits):
            if len(x) != width and not (arg[0] == "const" and arg[2] is None):
                raise self.fail(f"operands of {kind} have different widths "
                                f"({len(x)} and {width} bits)", line)
        arg_bits = [[("const", 0, 1)] * (width - len(x)) + x[-width:] for x in arg_bits]
        return [("gate", kind, tuple(x[k] for x in arg_bits)) for k in range(width)]

    def check_width(self, width: int, line: int) -> None:
        """Concatenations and replications expand bit by bit: bound them before they do."""
        MAX_NETS.check(width, file=self.path, line=line, context="expression width")

    def add_gate(self, kind: str, ins: list[int], outs: list[int], line: int,
                 name: str | None = None) -> None:
        MAX_GATES.check(len(self.nl.gates) + 1, file=self.path, line=line)
        self.nl.add_gate(kind, ins, outs, line=line, name=name)

    def bit(self, expr: Expr, line: int) -> Expr:
        if expr[0] == "const":
            value = expr[1]
            if value > 1:
                raise self.fail(f"constant {value} does not fit the single bit expected here",
                                line)
            return ("const", value, 1)
        bits = self.bits(expr, line)
        if len(bits) != 1:
            raise self.fail(f"a {len(bits)}-bit value is used where one bit is expected", line)
        return bits[0]

    # ------------------------------------------------------------------ drivers
    def drive(self, key: Key, line: int) -> None:
        if key in self.inputs:
            raise self.fail(f"input {_name(key)} cannot be driven", line)
        if self.decl(key[0], line).kind == "input":
            raise self.fail(f"{key[0]} is an input and cannot be driven", line)
        if key in self.driven_at:
            raise self.fail(f"net {_name(key)} is driven twice (first driven at line "
                            f"{self.driven_at[key]})", line)
        self.driven_at[key] = line

    def collect(self) -> list[tuple[Key, Expr, int]]:
        """Register every driver; return the gate-driving assigns as single-bit triples."""
        gate_assigns: list[tuple[Key, Expr, int]] = []
        for lhs, rhs, line in self.mod.assigns:
            d = self.decl(lhs[1], line)
            if lhs[2] is None and d.is_bus:
                if rhs[0] == "const":
                    value = rhs[1]
                    rhs_bits = [("const", (value >> w) & 1, 1) for w in reversed(range(d.width))]
                else:
                    rhs_bits = self.bits(rhs, line)
                if len(rhs_bits) != d.width:
                    raise self.fail(f"assign to {lhs[1]}{d.range_text()} ({d.width} bits) from "
                                    f"a {len(rhs_bits)}-bit value", line)
                pairs = [(("ref", lhs[1], d.index(w), line), rhs_bits[d.width - 1 - w])
                         for w in range(d.width)]
            else:
                pairs = [(lhs, self.bit(rhs, line))]
            for ref, value in pairs:
                key = self.check_bit(ref)
                self.drive(key, line)
                if value[0] in ("ref", "const"):
                    self.alias[key] = (value, line)
                else:
                    self.net[key] = self.nl.new_net(_name(key))
                    gate_assigns.append((key, value, line))
        for inst in self.mod.instances:
            for pin in CELLS[inst.kind].outputs:
                conn = inst.pins.get(pin)
                if conn is None:
                    continue
                if conn[0] != "ref":
                    raise self.fail(f"output pin {pin} of instance {inst.name} must connect "
                                    "to a net", inst.line)
                key = self.check_bit(conn)
                self.drive(key, conn[3])
                self.net[key] = self.nl.new_net(_name(key))
        return gate_assigns

    def resolve(self, key: Key, line: int) -> int:
        """The netlist net carrying bit ``key``, following ``assign X = Y`` aliases.

        Iterative, because alias chains in generated files can be long.
        """
        chain: list[Key] = []
        on_chain: set[Key] = set()
        while True:
            if key in self.inputs:
                net = self.inputs[key]
                break
            if key in self.net:
                net = self.net[key]
                break
            if key in self.resolved:
                net = self.resolved[key]
                break
            if key not in self.alias:
                raise self.fail(f"net {_name(key)} is read but never driven", line)
            if key in on_chain:
                loop = " -> ".join(_name(k) for k in (*chain[chain.index(key):], key))
                raise self.fail(f"combinational loop through assigns {loop}",
                                self.alias[key][1])
            chain.append(key)
            on_chain.add(key)
            value, line = self.alias[key]
            if value[0] == "const":
                net = CONST1 if value[1] else CONST0
                break
            key = self.check_bit(value)
        for k in chain:
            self.resolved[k] = net
        return net

    def emit(self, expr: Expr, line: int, out: int | None = None) -> int:
        """Add the gates computing single-bit ``expr``; return its net (``out`` if given)."""
        tag = expr[0]
        if tag == "const":
            return CONST1 if expr[1] else CONST0
        if tag == "ref":
            return self.resolve(self.check_bit(expr), expr[3])
        if tag != "gate":
            expr = self.bit(expr, line)
            if expr[0] != "gate":
                return self.emit(expr, line, out)
        _, kind, args = expr
        ins = [self.emit(self.bit(arg, line), line) for arg in args]
        net = self.nl.new_net() if out is None else out
        self.add_gate(kind, ins, [net], line)
        return net

    def build(self) -> Netlist:
        for key, value, line in self.collect():
            self.emit(value, line, self.net[key])
        for inst in self.mod.instances:
            cell = CELLS[inst.kind]
            ins = [self.emit(self.bit(inst.pins[p], inst.line), inst.line) for p in cell.inputs]
            outs = []
            for pin in cell.outputs:
                conn = inst.pins.get(pin)
                outs.append(self.nl.new_net(f"{inst.name}.{pin}") if conn is None
                            else self.net[self.check_bit(conn)])
            self.add_gate(inst.kind, ins, outs, inst.line, name=inst.name)
        for k in range(self.out.width):
            key = (self.out.name, self.out.index(k))
            if key not in self.net and key not in self.alias:
                raise self.fail(f"output bit {_name(key)} is never assigned", self.out.line)
            self.nl.set_output(k, self.resolve(key, self.driven_at[key]))
        try:
            return self.nl.validate()
        except NetlistError as err:
            raise ImportFailed(err.message, file=self.path, line=err.line) from None


def _name(key: Key) -> str:
    return key[0] if key[1] is None else f"{key[0]}[{key[1]}]"


def _ports(mod: _Module, path: str) -> tuple[_Decl, _Decl, _Decl]:
    """The two operand inputs and the product output, with their widths checked."""
    inputs = [d for d in mod.decls.values() if d.kind == "input"]
    outputs = [d for d in mod.decls.values() if d.kind == "output"]
    order = {name: k for k, name in enumerate(mod.ports)}
    inputs.sort(key=lambda d: order.get(d.name, len(order)))
    if "A" in mod.decls and "B" in mod.decls and mod.decls["A"].kind == "input" \
            and mod.decls["B"].kind == "input":
        a, b = mod.decls["A"], mod.decls["B"]
        extra = [d for d in inputs if d.name not in ("A", "B")]
    else:
        a, b = (inputs + [None, None])[:2]
        extra = inputs[2:]
        if a is None or b is None:
            raise ImportFailed(f"module {mod.name} must have two operand inputs (A and B), "
                               f"found {len(inputs)} input(s)", file=path, line=mod.line)
    if extra:
        raise ImportFailed(f"unexpected input {extra[0].name}: a multiplier has only the "
                           "operand inputs A and B", file=path, line=extra[0].line)
    if len(outputs) != 1:
        raise ImportFailed(f"module {mod.name} must have exactly one output bus (the product), "
                           f"found {len(outputs)}", file=path,
                           line=outputs[1].line if len(outputs) > 1 else mod.line)
    out = outputs[0]
    for d in (a, b):
        if not 1 <= d.width <= MAX_BITS:
            raise ImportFailed(f"operand {d.name}{d.range_text()} is {d.width} bits wide; "
                               f"expected 1..{MAX_BITS} bits", file=path, line=d.line)
    if out.width != a.width + b.width:
        raise ImportFailed(f"output {out.name}{out.range_text()} is {out.width} bits wide; "
                           f"expected {a.width + b.width} bits for {a.width}x{b.width}-bit "
                           f"operands, i.e. [{a.width + b.width - 1}:0]", file=path,
                           line=out.line)
    return a, b, out


def _rom(mod: _Module, path: str, a: _Decl, b: _Decl, out: _Decl) -> np.ndarray:
    case = mod.case
    assert case is not None
    if mod.assigns or mod.instances:
        line = mod.assigns[0][2] if mod.assigns else mod.instances[0].line
        raise ImportFailed("a module with a case table must not also contain assigns or cells",
                           file=path, line=line)
    if sorted(case.selector) != sorted([a.name, b.name]):
        raise ImportFailed(f"the case selector must be {{{a.name}, {b.name}}}, found "
                           f"{{{', '.join(case.selector)}}}", file=path, line=case.line)
    if case.target != out.name:
        raise ImportFailed(f"the case table assigns {case.target}, expected the output "
                           f"{out.name}", file=path, line=case.line)
    n = 1 << (a.width + b.width)
    mask = (1 << out.width) - 1  # a wider constant is cut to the output, as in Verilog
    fill = -1 if case.default is None else case.default & mask
    table = np.full(n, fill, dtype=np.int64)
    for label, value in case.entries.items():
        if label >= n:
            raise ImportFailed(f"case label {label} exceeds the {a.width + b.width}-bit "
                               "operand space", file=path, line=case.line)
        table[label] = value & mask
    if case.default is None and (table < 0).any():
        first = int(np.flatnonzero(table < 0)[0])
        raise ImportFailed(f"the case table covers {len(case.entries)} of {n} operand pairs "
                           f"and has no default (first missing selector value: {first})",
                           file=path, line=case.line)
    if case.selector[0] == a.name:
        lut = table.reshape(1 << a.width, 1 << b.width)
    else:
        lut = table.reshape(1 << b.width, 1 << a.width).T
    return lut & ((1 << out.width) - 1)


def _cell_function(mod: _Module, path: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """Input pin names (sorted) and each output's truth table for a cell defined in the file.

    Column ``k`` of a table has input ``i`` equal to bit ``i`` of ``k``.
    """
    if mod.case is not None:
        raise ImportFailed(f"cell module {mod.name} uses an always block; only assigns are "
                           "supported in cell definitions", file=path, line=mod.line)
    ins = sorted(d.name for d in mod.decls.values() if d.kind == "input")
    outs = [d.name for d in mod.decls.values() if d.kind == "output"]
    for d in mod.decls.values():
        if d.is_bus:
            raise ImportFailed(f"cell module {mod.name}: port {d.name} must be a single bit",
                               file=path, line=d.line)
    widest = max(len(c.inputs) for c in CELLS.values())
    if len(ins) > widest:  # its truth table would have 2**inputs columns
        raise ImportFailed(f"cell module {mod.name} has {len(ins)} inputs; no known cell has "
                           f"more than {widest}", file=path, line=mod.line)
    codes = np.arange(1 << len(ins))
    env = dict(zip(ins, _input_columns(len(ins))))
    rhs: dict[str, tuple[Expr, int]] = {}
    for lhs, expr, line in mod.assigns:
        if lhs[2] is not None or lhs[1] in rhs or lhs[1] in env:
            raise ImportFailed(f"cell module {mod.name}: unsupported or repeated assign to "
                               f"{lhs[1]}", file=path, line=line)
        rhs[lhs[1]] = (expr, line)

    done: dict[str, np.ndarray] = {}  # each net once: shared sub-nets stay linear

    def value(expr: Expr, line: int, depth: int) -> np.ndarray:
        if depth > 200:
            raise ImportFailed(f"cell module {mod.name}: assigns nest more than 200 deep or "
                               "form a loop", file=path, line=line)
        if expr[0] == "const":
            return np.full(len(codes), expr[1] & 1, dtype=np.uint8)
        if expr[0] == "ref" and expr[2] is None:
            if expr[1] in env:
                return env[expr[1]]
            if expr[1] in done:
                return done[expr[1]]
            if expr[1] in rhs:
                sub, sub_line = rhs[expr[1]]
                done[expr[1]] = value(sub, sub_line, depth + 1)
                return done[expr[1]]
            raise ImportFailed(f"cell module {mod.name}: {expr[1]} is never assigned",
                               file=path, line=line)
        if expr[0] == "gate":
            args = [value(x, line, depth + 1) for x in expr[2]]
            return CELLS[expr[1]].evaluate(*args)[0]
        raise ImportFailed(f"cell module {mod.name}: unsupported expression", file=path,
                           line=line)

    table: dict[str, np.ndarray] = {}
    for name in outs:
        if name not in rhs:
            raise ImportFailed(f"cell module {mod.name}: output {name} is never assigned",
                               file=path, line=mod.decls[name].line)
        expr, line = rhs[name]
        table[name.upper()] = value(expr, line, 0)
    return [n.upper() for n in ins], table


def _kind_of_definition(mod: _Module, path: str, hint: str | None) -> str:
    """The :data:`CELLS` kind whose pins and function match a cell module in the file.

    The file's own definition is what a simulator would use, so it decides; the decoded
    name only breaks ties between kinds with identical behaviour.
    """
    ins, table = _cell_function(mod, path)
    columns = dict(zip(ins, _input_columns(len(ins))))
    candidates = [hint] if hint is not None else []
    candidates += [k for k in CELLS if k != hint]
    for kind in candidates:
        cell = CELLS[kind]
        if sorted(cell.inputs) != ins or sorted(cell.outputs) != sorted(table):
            continue
        results = cell.evaluate(*(columns[p] for p in cell.inputs))
        if all(np.array_equal(r, table[p]) for p, r in zip(cell.outputs, results)):
            return kind
    raise ImportFailed(f"cell module {mod.name} computes no function known to hwcost (pins "
                       f"{', '.join(ins)} -> {', '.join(sorted(table))})", file=path,
                       line=mod.line)


def _input_columns(n: int) -> list[np.ndarray]:
    codes = np.arange(1 << n)
    return [((codes >> i) & 1).astype(np.uint8) for i in range(n)]


def _resolve_cells(mod: _Module, defined: dict[str, _Module], path: str) -> None:
    """Give every instance its cell kind and check its pins against that kind."""
    kinds: dict[str, str] = {}
    for inst in mod.instances:
        if inst.cell not in kinds:
            hint = decode_cell(inst.cell)
            if inst.cell in defined:
                kinds[inst.cell] = _kind_of_definition(defined[inst.cell], path, hint)
            elif hint is not None:
                kinds[inst.cell] = hint
            else:
                known = ", ".join(sorted(set(CELL_ALIASES)))
                raise ImportFailed(f"unknown cell {inst.cell!r} (expected a library cell whose "
                                   f"base name is one of {known}, e.g. NAND2X1)", file=path,
                                   line=inst.line)
        inst.kind = kinds[inst.cell]
        cell = CELLS[inst.kind]
        valid = cell.inputs + cell.outputs
        for pin, line in inst.pin_lines.items():
            if pin not in valid:
                raise ImportFailed(f"cell {inst.cell} ({inst.kind}) has no pin {pin} "
                                   f"(pins: {', '.join(valid)})", file=path, line=line)
        for pin in cell.inputs:
            if inst.pins.get(pin) is None:
                raise ImportFailed(f"input pin {pin} of instance {inst.name} ({inst.cell}) is "
                                   "not connected", file=path, line=inst.line)


def parse_verilog(text: str, path: str | Path = "<verilog>") -> VerilogDesign:
    """Parse one Verilog module describing a multiplier (any of the three styles)."""
    path = str(path)
    try:
        return _parse(text, path)
    except RecursionError:
        raise ImportFailed("expressions or alias chains are nested too deeply to import",
                           file=path) from None


def _parse(text: str, path: str) -> VerilogDesign:
    modules = _Parser(text, path).parse()
    used = {inst.cell for m in modules for inst in m.instances}
    # The multiplier is the module nobody instantiates; EvoApprox files also append
    # definitions of cells (some unused), recognisable by their library names.
    tops = [m for m in modules if m.name not in used]
    if not tops:
        raise ImportFailed("every module is instantiated by another; no top-level module",
                           file=path, line=modules[0].line)
    named = [m for m in tops if decode_cell(m.name) is None]
    if len(named) > 1:
        raise ImportFailed(f"expected one top-level module (the multiplier), found "
                           f"{len(named)}: {', '.join(m.name for m in named)}", file=path,
                           line=named[1].line)
    mod = named[0] if named else tops[0]
    defined = {m.name: m for m in modules if m is not mod}
    for m in defined.values():
        if m.instances:
            raise ImportFailed(f"module {m.name} instantiates other cells; only a flat "
                               "multiplier module plus cell definitions can be imported",
                               file=path, line=m.instances[0].line)
    _resolve_cells(mod, defined, path)
    a, b, out = _ports(mod, path)
    signed = a.signed and b.signed
    if mod.case is not None:
        raw = _rom(mod, path, a, b, out)
        return VerilogDesign(mod.name, a.width, b.width, "case-statement table", mod.line,
                             raw_lut=raw, declared_signed=signed)
    netlist = _Builder(mod, path, a, b, out).build()
    has_cells = bool(mod.instances)
    has_exprs = any(g.name is None for g in netlist.gates)
    style = ("gate assigns and cell instances" if has_cells and has_exprs
             else "cell instances" if has_cells else "gate assigns")
    return VerilogDesign(mod.name, a.width, b.width, style, mod.line, netlist=netlist,
                         declared_signed=signed)
