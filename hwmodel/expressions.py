"""Expressions in spec values, evaluated the way Timeloop's current front end evaluates them.

Timeloop's v0.4 front end (timeloopfe, through Accelergy's ``parse_expression_for_arithmetic``)
``eval``s every unquoted string of an ``attributes`` or ``variables`` map, and any value that
is not of the type its key needs (``split: len(spec.problem.instance)``), as a Python
expression over a symbol table: the ``variables`` (each may use the ones before it), the
attributes of the enclosing containers and the node's own earlier attributes, ``spec`` (the
whole specification: ``spec.problem.instance``, ``spec.variables``...) and a table of
functions (``min max abs round int float len`` and the ``math`` module's).  A quoted string
is never evaluated.

hwcost evaluates the same expressions without ``eval``: :func:`evaluate` walks the Python
AST and allows only arithmetic, comparisons, boolean operators, conditional expressions,
literals, calls to the functions of :data:`FUNCTIONS`, and attribute or subscript access
into read-only :class:`View` objects of the spec (never into Python objects, so
``().__class__`` has nothing to reach).  Every evaluation has a step budget
(:data:`MAX_EXPR_STEPS`, variable references included: ``a: b+b``, ``b: c+c``... would
otherwise be evaluated exponentially often) and integers are bounded
(:data:`MAX_EXPR_BITS`) before they are computed, so ``9**9**9`` is refused at once.

Names are looked up in a :class:`Scope` chain (a node's own attributes, then its
containers', then the variables, then ``spec``/``variables``); a value found there that is
itself an unquoted string is evaluated in its own scope when it is used, so variables may be
defined in terms of each other in any order, and a reference to the name being defined
skips to the enclosing scope (``datawidth: datawidth * 2`` doubles the container's width),
as Timeloop's sequential parse does.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

#: Integers in expressions beyond this many bits are nonsense for a size or a count, and
#: ``9**9**9`` must not spend minutes computing one.
MAX_EXPR_BITS = 256
#: Operations one expression may take, variable references included (``a: b*b``,
#: ``b: c*c``... would otherwise be evaluated exponentially often).
MAX_EXPR_STEPS = 10_000
#: Strings and lists an expression builds (``'x' * 10**6``); spec values are short.
MAX_EXPR_ITEMS = 10_000
#: Arguments beyond which the factorial-like functions take noticeable time.
_MAX_COMBINATORIAL = 1_000


class ExprError(ValueError):
    """An expression that cannot be evaluated; the message says why, in one line."""


class _Unknown(ExprError):
    """A name no scope defines (a bare word may then be a literal string)."""

    def __init__(self, name: str):
        super().__init__(f"unknown name {name!r}")
        self.name = name


# ----------------------------------------------------------------------------- read-only views

class View(Mapping):
    """A read-only view of a map of the spec (``spec``, ``spec.problem.instance``...).

    Expressions reach its keys as attributes (``spec.problem``) or subscripts
    (``spec.problem.instance['C']``), as timeloopfe's nodes allow.  Values that are maps or
    lists come back as views too; a leaf that is an unquoted string is evaluated in
    ``scope`` (``own``: as the definition of its own key, for ``spec.variables``).  Nothing
    else of the Python object is reachable.
    """

    def __init__(self, data: Mapping[str, Any], where: str, scope: Scope | None = None,
                 missing: Mapping[str, str] | None = None, own: bool = False):
        self._data = data
        self._where = where
        self._scope = scope
        self._missing = dict(missing or {})
        self._own = own

    def item(self, key: Any, budget: list[int]) -> Any:
        """``self[key]``, its evaluation charged to ``budget``."""
        if not isinstance(key, str) or key not in self._data:
            if isinstance(key, str) and key in self._missing:
                raise ExprError(self._missing[key])
            keys = ", ".join(str(k) for k in self._data) or "nothing"
            raise ExprError(f"{self._where} has no {key!r} (it has {keys})")
        value = self._data[key]
        where = f"{self._where}.{key}"
        if isinstance(value, (Mapping, list, tuple)):
            return wrap(value, where, self._scope)
        if self._scope is not None and self._own:
            return self._scope.value(key, budget)
        return resolve(value, self._scope, budget)

    def __getitem__(self, key: Any) -> Any:
        return self.item(key, [MAX_EXPR_STEPS])

    def __iter__(self) -> Iterator[str]:
        return iter(str(k) for k in self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<{self._where}>"


def wrap(value: Any, where: str, scope: Scope | None = None) -> Any:
    """``value`` as an expression may hold it: maps as :class:`View`, lists as tuples of
    resolved items."""
    if isinstance(value, View):
        return value
    if isinstance(value, Mapping):
        return View({str(k): v for k, v in value.items()}, where, scope)
    if isinstance(value, (list, tuple)):
        return tuple(wrap(v, f"{where}[{i}]", scope) if isinstance(v, (Mapping, list, tuple))
                     else resolve(v, scope) for i, v in enumerate(value))
    if isinstance(value, (DoubleQuotedScalarString, SingleQuotedScalarString)):
        return str(value)
    return value


# ----------------------------------------------------------------------------- scopes

def is_quoted(value: Any) -> bool:
    """Whether a YAML string was written in quotes (Timeloop never evaluates those)."""
    return isinstance(value, (DoubleQuotedScalarString, SingleQuotedScalarString))


class Scope:
    """Names an expression may use, with the scope that encloses them.

    ``names`` hold raw spec values: an unquoted string among them is an expression that is
    evaluated (in this scope) when it is used.  ``fixed`` names (``spec``, views) are used
    as they are.
    """

    def __init__(self, names: Mapping[str, Any] | None = None,
                 parent: Scope | None = None, *, fixed: Mapping[str, Any] | None = None,
                 where: str = ""):
        self.names = {str(k): v for k, v in (names or {}).items()}
        self.fixed = dict(fixed or {})
        self.parent = parent
        self.where = where
        self._busy: list[str] = []

    def child(self, names: Mapping[str, Any] | None = None, *,
              fixed: Mapping[str, Any] | None = None, where: str = "") -> Scope:
        return Scope(names, self, fixed=fixed, where=where)

    def lookup(self, name: str, budget: list[int], skip: Scope | None = None) -> Any:
        """The value of ``name``; ``skip``: the scope whose own entry is being defined."""
        scope: Scope | None = self
        while scope is not None:
            if scope is not skip:
                if name in scope.fixed:
                    return scope.fixed[name]
                if name in scope.names:
                    return scope.value(name, budget)
            elif name in scope.names:
                skip = None                          # only the entry itself is skipped
            scope = scope.parent
        raise _Unknown(name)

    def value(self, name: str, budget: list[int] | None = None) -> Any:
        """``names[name]`` evaluated (leniently: see :func:`resolve`)."""
        if name in self._busy:
            chain = " -> ".join(self._busy[self._busy.index(name):] + [name])
            raise ExprError(f"names defined in terms of each other in a circle: {chain}")
        self._busy.append(name)
        try:
            return resolve(self.names[name], self, budget, own=name)
        finally:
            self._busy.pop()


# ----------------------------------------------------------------------------- functions

def _int_arg(value: Any, what: str, limit: int) -> None:
    if isinstance(value, int) and abs(value) > limit:
        raise ExprError(f"{what} of {value} is too large to compute")


def _factorial(n: Any) -> int:
    _int_arg(n, "factorial", _MAX_COMBINATORIAL)
    return math.factorial(n)


def _comb(n: Any, k: Any) -> int:
    _int_arg(n, "comb", _MAX_COMBINATORIAL)
    return math.comb(n, k)


def _perm(n: Any, k: Any = None) -> int:
    _int_arg(n, "perm", _MAX_COMBINATORIAL)
    return math.perm(n, k)


def _pow(base: Any, exp: Any, mod: Any = None) -> Any:
    if mod is None:
        return _power(base, exp)
    return pow(base, exp, mod)


def _ldexp(x: Any, i: Any) -> float:
    _int_arg(i, "ldexp exponent", 1 << 16)
    return math.ldexp(x, i)


def _sum(items: Any, start: Any = 0) -> Any:
    total = start
    for x in items:
        total = _sized(total + x)
    return total


def _prod(items: Any, start: Any = 1) -> Any:
    total = start
    for x in items:
        total = _mul(total, x)
    return total


def _int(value: Any = 0, *base: Any) -> int:
    if isinstance(value, str) and len(value) > 100:
        raise ExprError("int() of a string longer than 100 characters")
    return _sized(int(value, *base))


def _str(value: Any = "") -> str:
    if isinstance(value, View):
        raise ExprError("str() of a part of the spec")
    return _sized(str(value))


#: Functions an expression may call: Accelergy's table, less what reaches outside the
#: expression (``getcwd``) or iterates without bound (``range``, ``map``, ``enumerate``).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "all": all, "any": any, "bool": bool, "float": float, "int": _int,
    "len": len, "list": tuple, "tuple": tuple, "max": max, "min": min, "pow": _pow,
    "round": round, "str": _str, "sum": _sum,
    "ceil": math.ceil, "floor": math.floor, "trunc": math.trunc, "log2": math.log2,
    "sqrt": math.sqrt, "isqrt": math.isqrt, "log": math.log, "log10": math.log10,
    "log1p": math.log1p, "exp": math.exp, "expm1": math.expm1, "fabs": math.fabs,
    "factorial": _factorial, "comb": _comb, "perm": _perm, "copysign": math.copysign,
    "fmod": math.fmod, "frexp": math.frexp, "fsum": math.fsum, "gcd": math.gcd,
    "lcm": math.lcm, "isclose": math.isclose, "isfinite": math.isfinite,
    "isinf": math.isinf, "isnan": math.isnan, "ldexp": _ldexp, "modf": math.modf,
    "prod": _prod, "remainder": math.remainder, "acos": math.acos, "asin": math.asin,
    "atan": math.atan, "atan2": math.atan2, "cos": math.cos, "sin": math.sin,
    "tan": math.tan, "dist": math.dist, "hypot": math.hypot, "degrees": math.degrees,
    "radians": math.radians, "acosh": math.acosh, "asinh": math.asinh,
    "atanh": math.atanh, "cosh": math.cosh, "sinh": math.sinh, "tanh": math.tanh,
    "erf": math.erf, "erfc": math.erfc, "gamma": math.gamma, "lgamma": math.lgamma,
}
#: Constants of Accelergy's table.
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf,
                               "nan": math.nan}


# ----------------------------------------------------------------------------- arithmetic

def _sized(value: Any) -> Any:
    """``value`` unless it is an integer past :data:`MAX_EXPR_BITS` bits or a string or
    sequence longer than :data:`MAX_EXPR_ITEMS`."""
    if isinstance(value, int) and not isinstance(value, bool) and \
            value.bit_length() > MAX_EXPR_BITS:
        raise ExprError("number too large")
    if isinstance(value, (str, tuple, list)) and len(value) > MAX_EXPR_ITEMS:
        raise ExprError(f"value longer than {MAX_EXPR_ITEMS:,} items")
    return value


def _power(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and \
            right * (abs(left).bit_length() - 1) > MAX_EXPR_BITS:
        raise ExprError("number too large")
    return _sized(left ** right)


def _mul(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, (str, tuple)) and isinstance(n, int):
            if len(seq) * max(n, 0) > MAX_EXPR_ITEMS:
                raise ExprError(f"value longer than {MAX_EXPR_ITEMS:,} items")
    return _sized(left * right)


def _shift(left: Any, right: Any) -> Any:
    if isinstance(right, int) and right > MAX_EXPR_BITS:
        raise ExprError("number too large")
    return _sized(left << right)


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise ExprError("string formatting with % is not supported")
    return left % right


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: _mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Pow: _power, ast.Mod: _mod,
    ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
    ast.LShift: _shift, ast.RShift: operator.rshift,
}
_UNOPS: dict[type, Callable[[Any], Any]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_,
    ast.IsNot: operator.is_not, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_SYNTAX = {ast.Lambda: "lambda", ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
           ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions",
           ast.JoinedStr: "f-strings", ast.NamedExpr: ":=", ast.Await: "await",
           ast.Yield: "yield", ast.YieldFrom: "yield", ast.Starred: "*-unpacking"}


class _Evaluator:
    """One walk over one expression's AST, charging ``budget`` a step per node."""

    def __init__(self, scope: Scope | None, budget: list[int], own: str | None):
        self.scope = scope
        self.budget = budget
        self.own = own

    def name(self, name: str) -> Any:
        if self.scope is not None:
            try:
                value = self.scope.lookup(name, self.budget,
                                          skip=self.scope if self.own == name else None)
            except _Unknown:
                pass
            else:
                return wrap(value, name) if isinstance(value, (Mapping, list)) else value
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            raise ExprError(f"{name} is a function; call it as {name}(...)")
        raise _Unknown(name)

    def ev(self, node: ast.AST) -> Any:
        self.budget[0] -= 1
        if self.budget[0] < 0:
            raise ExprError("expression too long to evaluate")
        if isinstance(node, ast.Expression):
            return self.ev(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float, str, bool)) or node.value is None:
                return _sized(node.value)
            raise ExprError(f"{type(node.value).__name__} literals are not supported")
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self.ev(node.left), self.ev(node.right)
            return _sized(_BINOPS[type(node.op)](left, right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNOPS:
            return _sized(_UNOPS[type(node.op)](self.ev(node.operand)))
        if isinstance(node, ast.BoolOp):
            value: Any = None
            for item in node.values:
                value = self.ev(item)
                if isinstance(node.op, ast.And) and not value:
                    return value
                if isinstance(node.op, ast.Or) and value:
                    return value
            return value
        if isinstance(node, ast.Compare):
            left = self.ev(node.left)
            for op, comp in zip(node.ops, node.comparators):
                right = self.ev(comp)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self.ev(node.body) if self.ev(node.test) else self.ev(node.orelse)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Attribute):
            obj = self.ev(node.value)
            if node.attr.startswith("_") or not isinstance(obj, View):
                raise ExprError(f"attribute .{node.attr} of {_kind(obj)} is not available "
                                "(only parts of the spec, like spec.problem.instance, have "
                                "attributes)")
            return obj.item(node.attr, self.budget)
        if isinstance(node, ast.Subscript):
            obj, key = self.ev(node.value), self.ev(node.slice)
            if not isinstance(obj, (View, tuple, str)):
                raise ExprError(f"{_kind(obj)} cannot be indexed")
            try:
                return obj.item(key, self.budget) if isinstance(obj, View) else obj[key]
            except (IndexError, KeyError, TypeError) as exc:
                raise ExprError(f"bad index {key!r} into {_kind(obj)} ({exc})") from None
        if isinstance(node, ast.Slice):
            parts = [None if p is None else self.ev(p) for p in (node.lower, node.upper,
                                                                 node.step)]
            return slice(*parts)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return _sized(tuple(self.ev(e) for e in node.elts))
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ExprError("**-unpacking is not supported")
            return View({str(self.ev(k)): self.ev(v) for k, v in zip(node.keys, node.values)},
                        "a map")
        what = _SYNTAX.get(type(node), type(node).__name__)
        raise ExprError(f"{what} not allowed in an expression")

    def call(self, node: ast.Call) -> Any:
        known = ("min, max, abs, round, int, float, len, ceil, floor, log2, sqrt and the "
                 "math module's")
        if isinstance(node.func, ast.Attribute):
            raise ExprError(f"method calls (.{node.func.attr}()) are not supported; "
                            f"expressions may call {known}")
        if type(node.func) in _SYNTAX:
            raise ExprError(f"{_SYNTAX[type(node.func)]} not allowed in an expression")
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            label = node.func.id if isinstance(node.func, ast.Name) else "this"
            raise ExprError(f"{label}() is not a function expressions may call ({known})")
        if any(isinstance(a, ast.Starred) for a in node.args) or \
                any(k.arg is None for k in node.keywords):
            raise ExprError("*-unpacking is not supported")
        args = [self.ev(a) for a in node.args]
        kwargs = {str(k.arg): self.ev(k.value) for k in node.keywords}
        func = FUNCTIONS[node.func.id]
        try:
            return _sized(func(*args, **kwargs))
        except ExprError:
            raise
        except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
            raise ExprError(f"{node.func.id}(): {_one_line(exc)}") from None


def _kind(obj: Any) -> str:
    if isinstance(obj, View):
        return repr(obj).strip("<>")
    return f"a {type(obj).__name__}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _parse(text: str) -> ast.Expression:
    try:
        return ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise ExprError(f"not an expression: {short_repr(text)}") from None


def short_repr(text: str, limit: int = 40) -> str:
    """``repr`` of a value for a message, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def evaluate(text: str, scope: Scope | Mapping[str, Any] | None = None,
             budget: list[int] | None = None, own: str | None = None) -> Any:
    """Evaluate ``text`` with the names of ``scope``; raises :class:`ExprError` (a
    ValueError) with the reason, or ZeroDivisionError/OverflowError from the arithmetic.

    ``budget`` is shared with the variables the expression uses; ``own`` is the name being
    defined (a reference to it skips to the enclosing scope).
    """
    if scope is not None and not isinstance(scope, Scope):
        scope = Scope(scope)
    budget = budget if budget is not None else [MAX_EXPR_STEPS]
    return _run(_parse(text), scope, budget, own)


def _run(tree: ast.Expression, scope: Scope | None, budget: list[int],
         own: str | None) -> Any:
    """Evaluate a parsed expression, every failure of the arithmetic an :class:`ExprError`."""
    try:
        return _Evaluator(scope, budget, own).ev(tree)
    except ExprError:
        raise
    except RecursionError:
        raise ExprError("expression nested too deeply") from None
    except ZeroDivisionError:
        raise ExprError("division by zero") from None
    except (OverflowError, MemoryError):
        raise ExprError("number too large") from None
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise ExprError(_one_line(exc)) from None


def resolve(value: Any, scope: Scope | None, budget: list[int] | None = None,
            own: str | None = None) -> Any:
    """A raw spec value as Timeloop reads it, leniently.

    Numbers, booleans and quoted strings are themselves; maps and lists are resolved item
    by item.  An unquoted string is evaluated as an expression, except that text that is
    not an expression (``45nm``) or a bare word no scope defines (``LPDDR4``) stays a
    string, as Timeloop's v0.3 reading did; an expression that fails for any other reason
    (``max(X, 16)`` with ``X`` unknown, ``1/0``) raises.
    """
    budget = budget if budget is not None else [MAX_EXPR_STEPS]
    if isinstance(value, Mapping):
        return {str(k): resolve(v, scope, budget) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve(v, scope, budget) for v in value]
    if not isinstance(value, str) or is_quoted(value):
        return str(value) if isinstance(value, str) else value
    text = str(value)
    try:
        tree = _parse(text)
    except ExprError:
        return text
    try:
        return _run(tree, scope, budget, own)
    except _Unknown as exc:
        if isinstance(tree.body, ast.Name) and exc.name == tree.body.id:
            return text
        raise
