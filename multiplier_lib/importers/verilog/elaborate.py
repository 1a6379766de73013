"""Elaborator of the Verilog importer: parse trees -> :class:`VerilogDesign`.

Picks the top-level module (the one nobody instantiates), gives every cell instance its
:data:`CELLS` kind (from the file's own cell definition when it has one, else from the
decoded library name), checks the ports, and builds either the ROM table of a ``case``
module or a validated :class:`Netlist`, resolving ``assign X = Y`` aliases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ImportFailed, NetlistError
from ...multiplier import MAX_BITS
from ...netlist import CELL_ALIASES, CELLS, CONST0, CONST1, Netlist
from ...netlist.netlist import MAX_GATES, MAX_NETS
from .parser import Decl, Expr, Module, Parser

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

    def __init__(self, mod: Module, path: str, a: Decl, b: Decl, out: Decl):
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
    def decl(self, name: str, line: int) -> Decl:
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


def _ports(mod: Module, path: str) -> tuple[Decl, Decl, Decl]:
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


def _rom(mod: Module, path: str, a: Decl, b: Decl, out: Decl) -> np.ndarray:
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


def _cell_function(mod: Module, path: str) -> tuple[list[str], dict[str, np.ndarray]]:
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


def _kind_of_definition(mod: Module, path: str, hint: str | None) -> str:
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


def _resolve_cells(mod: Module, defined: dict[str, Module], path: str) -> None:
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
    modules = Parser(text, path).parse()
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
