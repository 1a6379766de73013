"""Parser of the Verilog importer: tokens -> one :class:`Module` parse tree per module.

A recursive-descent parser for the gate-level subset of Verilog that multipliers use
(declarations, ``assign``, gate primitives, cell instances, one ``case`` ROM).  It only
builds the tree and counts what the file asks for (gates, nets, case items) against the
limits, so that an oversized file is refused before anything is built; names are resolved
and widths checked by :mod:`.elaborate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ...errors import ImportFailed
from ...multiplier import MAX_BITS
from ...netlist.netlist import MAX_GATES, MAX_NETS
from .lexer import KEYWORDS, Token, number, show, tokenize

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

# ---------------------------------------------------------------------------- parse tree

# Expressions are tuples: ("ref", name, index|None, line), ("const", value, width|None),
# ("gate", KIND, (args...)), ("concat", (items...), line), ("repl", count, item, line).
Expr = tuple


@dataclass
class Decl:
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
class Instance:
    cell: str
    kind: str  # CELLS kind, filled in by _resolve_cells
    name: str
    pins: dict[str, Expr | None]
    line: int
    pin_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class Case:
    selector: list[str]
    target: str
    entries: dict[int, int]
    default: int | None
    line: int


@dataclass
class Module:
    name: str
    line: int
    ports: list[str] = field(default_factory=list)
    decls: dict[str, Decl] = field(default_factory=dict)
    assigns: list[tuple[Expr, Expr, int]] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    case: Case | None = None


class _TokenStream:
    """Tokens by absolute index, produced on demand; those the parser has gone past are
    dropped, so memory follows the parse tree (bounded by the limits), not the file."""

    def __init__(self, tokens: Iterator[Token]):
        self._tokens = tokens
        self._buf: list[Token] = []
        self.base = 0  # absolute index of _buf[0]

    def __getitem__(self, index: int) -> Token:
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


class Parser:
    """Recursive-descent parser for the gate-level subset of Verilog that multipliers use.

    Counts what the file asks for while parsing (operators and cells are gates, declared
    bits and assigns are nets) and stops at the limits, before building anything.
    """

    def __init__(self, text: str, path: str):
        self.path = path
        self.toks = _TokenStream(tokenize(text, path))
        self.pos = 0
        self.gate_count = 0
        self.net_count = 0
        self.case_items = 0

    # ------------------------------------------------------------------ helpers
    def fail(self, message: str, line: int | None = None) -> ImportFailed:
        return ImportFailed(message, file=self.path,
                            line=self.peek().line if line is None else line)

    def peek(self, ahead: int = 0) -> Token:
        return self.toks[self.pos + ahead]

    def next(self) -> Token:
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

    def expect(self, text: str, context: str) -> Token:
        tok = self.peek()
        if tok.text == text and tok.kind != "e":
            self.next()
            return tok
        line = tok.line
        if text == ";" and self.pos > 0 and self.toks[self.pos - 1].line < line:
            line = self.toks[self.pos - 1].line  # a missing ';' belongs to the line before
        raise self.fail(f"syntax error: expected '{text}' {context}, found {show(tok)}", line)

    def ident(self, what: str) -> Token:
        tok = self.peek()
        if tok.kind != "i" or tok.text in KEYWORDS:
            raise self.fail(f"syntax error: expected {what}, found {show(tok)}")
        self.next()
        return tok

    def integer(self, what: str) -> int:
        tok = self.peek()
        if tok.kind != "n":
            raise self.fail(f"syntax error: expected {what} (a number), found {show(tok)}")
        self.next()
        return number(tok.text, tok.line, self.path)[0]

    # ------------------------------------------------------------------ module
    def parse(self) -> list[Module]:
        """Every module in the file (EvoApprox files append their cells' definitions)."""
        modules = [self.module()]
        while self.peek().kind != "e":
            if not self.at("module"):
                raise self.fail(f"syntax error: expected 'module' or end of file after "
                                f"endmodule, found {show(self.peek())}")
            modules.append(self.module())
        return modules

    def module(self) -> Module:
        self.expect("module", "at the start of the file")
        name = self.ident("a module name")
        mod = Module(name.text, name.line)
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

    def port_list(self, mod: Module) -> None:
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
                self.declare(mod, Decl(name, direction, msb, lsb, line, signed))
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

    def declare(self, mod: Module, decl: Decl) -> None:
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

    def item(self, mod: Module) -> None:
        tok = self.peek()
        word = tok.text if tok.kind == "i" else ""
        if word in ("input", "output", "inout", "wire", "reg", "tri", "logic"):
            self.next()
            kind = {"reg": "wire", "tri": "wire", "logic": "wire"}.get(word, word)
            signed, msb, lsb = self.decl_type()
            while True:
                name = self.ident("a net name")
                self.declare(mod, Decl(name.text, kind, msb, lsb, name.line, signed))
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
        elif tok.kind == "i" and word not in KEYWORDS:
            self.instance(mod)
        else:
            raise self.fail("syntax error: expected a declaration, assign, always block or "
                            f"cell instance, found {show(tok)}")

    # ------------------------------------------------------------------ instances
    def instance(self, mod: Module) -> None:
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
                                    f".A(net) in instance {name}, found {show(self.peek())}")
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
        mod.instances.append(Instance(cell.text, "", name, pins, cell.line, pin_lines))

    def primitive(self, mod: Module) -> None:
        word = self.next()
        if self.peek().kind == "i" and self.peek().text not in KEYWORDS:
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
    def always(self, mod: Module) -> None:
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
                            f"case-statement table is supported), found {show(self.peek())}")
        mod.case = self.case(mod)
        if wrapped:
            self.expect("end", "to close the always block")

    def case(self, mod: Module) -> Case:
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
        return Case(selector, target, entries, default, line)

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
            value, width = number(tok.text, tok.line, self.path)
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
        if tok.kind == "i" and tok.text not in KEYWORDS:
            return self.reference()
        raise self.fail(f"syntax error: expected a net, a constant or '(', found {show(tok)}")

    def concat_items(self, line: int) -> Expr:
        items = [self.expr()]
        while self.accept(","):
            items.append(self.expr())
        return ("concat", tuple(items), line)

