"""Expressions in spec values, as Timeloop's v0.4 front end evaluates them, without eval."""

from __future__ import annotations

import math

import pytest
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from hwmodel.expressions import (
    CONSTANTS,
    FUNCTIONS,
    MAX_EXPR_STEPS,
    ExprError,
    Scope,
    View,
    evaluate,
    resolve,
)
from hwmodel.inputs import SpecInputs, spec_scope


@pytest.mark.parametrize("text,value", [
    ("1 + 2 * 3", 7), ("2 ** 10", 1024), ("7 // 2", 3), ("7 / 2", 3.5), ("7 % 4", 3),
    ("-3 + +1", -2), ("1 << 4", 16), ("0xF0 >> 4", 15), ("6 & 3", 2), ("6 | 1", 7),
    ("6 ^ 3", 5), ("~0", -1), ("1 < 2 <= 2", True), ("3 == 3.0", True), ("1 != 1", False),
    ("2 > 3", False), ("3 >= 3", True), ("'a' in 'abc'", True), ("4 not in (1, 2)", True),
    ("None is None", True), ("1 is not None", True), ("True and 0", 0), ("0 or 5", 5),
    ("not 0", True), ("8 if 3 > 2 else 16", 8), ("8 if 0 else 16", 16), ("'ab' + 'c'", "abc"),
    ("'ab' * 2", "abab"), ("(1, 2)[1]", 2), ("'abc'[1:]", "bc"), ("[1, 2, 3][-1]", 3),
    ("{'a': 4}['a']", 4), ("1e-9", 1e-9), ("pi", math.pi), ("e", math.e), ("tau", math.tau),
])
def test_operators_and_literals(text, value):
    assert evaluate(text) == value


@pytest.mark.parametrize("text,value", [
    ("min(3, 1, 2)", 1), ("max(8, 16)", 16), ("max([4, 9])", 9), ("abs(-3)", 3),
    ("round(2.6)", 3), ("round(2.345, 2)", 2.35), ("int(7.9)", 7), ("int('12')", 12),
    ("float(3)", 3.0), ("len((1, 2, 3))", 3), ("len('abcd')", 4), ("ceil(2.1)", 3),
    ("floor(2.9)", 2), ("log2(1024)", 10.0), ("sqrt(16)", 4.0), ("sum([1, 2, 3])", 6),
    ("pow(2, 5)", 32), ("pow(2, 5, 3)", 2), ("bool(0)", False), ("str(12)", "12"),
    ("all([1, 1])", True), ("any([0, 0])", False), ("trunc(-2.5)", -2), ("isqrt(17)", 4),
    ("log(e)", 1.0), ("log10(1000)", 3.0), ("log1p(0)", 0.0), ("exp(0)", 1.0),
    ("expm1(0)", 0.0), ("fabs(-2)", 2.0), ("factorial(5)", 120), ("comb(5, 2)", 10),
    ("perm(5, 2)", 20), ("copysign(3, -1)", -3.0), ("fmod(7, 4)", 3.0),
    ("frexp(8)", (0.5, 4)), ("fsum([0.5, 0.25])", 0.75), ("gcd(12, 18)", 6),
    ("lcm(4, 6)", 12), ("isclose(1, 1.0)", True), ("isfinite(1)", True), ("isinf(inf)", True),
    ("isnan(nan)", True), ("ldexp(1, 3)", 8.0), ("modf(2.5)", (0.5, 2.0)),
    ("prod([2, 3, 4])", 24), ("remainder(7, 4)", -1.0), ("cos(0)", 1.0), ("sin(0)", 0.0),
    ("tan(0)", 0.0), ("acos(1)", 0.0), ("asin(0)", 0.0), ("atan(0)", 0.0),
    ("atan2(0, 1)", 0.0), ("dist([0, 0], [3, 4])", 5.0), ("hypot(3, 4)", 5.0),
    ("degrees(pi)", 180.0), ("radians(180)", math.pi), ("acosh(1)", 0.0), ("asinh(0)", 0.0),
    ("atanh(0)", 0.0), ("cosh(0)", 1.0), ("sinh(0)", 0.0), ("tanh(0)", 0.0),
    ("erf(0)", 0.0), ("erfc(0)", 1.0), ("gamma(5)", 24.0), ("lgamma(1)", 0.0),
    ("list('ab')", ("a", "b")), ("tuple([1])", (1,)),
])
def test_each_function(text, value):
    assert evaluate(text) == pytest.approx(value) if isinstance(value, float) else \
        evaluate(text) == value


def test_every_function_is_tested():
    tested = {t.split("(")[0] for t, _ in test_each_function.pytestmark[0].args[1]}
    assert set(FUNCTIONS) <= tested, sorted(set(FUNCTIONS) - tested)
    assert set(CONSTANTS) == {"pi", "e", "tau", "inf", "nan"}


def test_variables_in_terms_of_each_other_in_any_order():
    scope = Scope({"total": "rows * cols", "rows": "cols // 2", "cols": 16})
    assert evaluate("total", scope) == 128
    assert evaluate("max(total, 200)", scope) == 200


def test_a_name_refers_to_the_enclosing_scope_while_it_is_defined():
    outer = Scope({"datawidth": 8})
    inner = outer.child({"datawidth": "datawidth * 2", "width": "datawidth * 4"})
    assert inner.value("datawidth") == 16
    assert inner.value("width") == 64              # the sibling's (doubled) value
    assert resolve("datawidth * 2", inner, own="datawidth") == 16


def test_circular_definitions_are_one_clear_error():
    scope = Scope({"a": "b + 1", "b": "a + 1"})
    with pytest.raises(ExprError, match=r"in a circle: a -> b -> a"):
        evaluate("a", scope)
    with pytest.raises(ExprError, match="unknown name 'x'"):
        evaluate("x + 1", Scope({"x": "x + 1"}).child())


def test_resolve_keeps_text_that_is_not_an_expression():
    scope = Scope({"W": 8})
    assert resolve("45nm", scope) == "45nm"
    assert resolve("LPDDR4", scope) == "LPDDR4"
    assert resolve("SET ME", scope) == "SET ME"
    assert resolve("W * 2", scope) == 16
    assert resolve(DoubleQuotedScalarString("W * 2"), scope) == "W * 2"   # quoted: literal
    assert resolve(SingleQuotedScalarString("1+1"), scope) == "1+1"
    assert resolve({"a": "W", "b": ["W + 1", "x"]}, scope) == {"a": 8, "b": [9, "x"]}
    with pytest.raises(ExprError, match="unknown name 'X'"):
        resolve("max(X, 16)", scope)
    with pytest.raises(ExprError, match="division by zero"):
        resolve("W / 0", scope)


def _spec(tmp_path, text):
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return spec_scope(SpecInputs.load([p]))


SPEC = """\
variables:
  INPUT_WEIGHT_DATAWIDTH: 8
  PES: N_COLS * 4
  N_COLS: 3
problem:
  shape:
    name: mm
    dimensions: [K, P, R]
  instance: {K: 16, P: 8, R: PES}
mapper: {optimization_metrics: [delay, energy]}
"""


def test_spec_attribute_access(tmp_path):
    scope = _spec(tmp_path, SPEC)
    assert evaluate("max(INPUT_WEIGHT_DATAWIDTH, 16)", scope) == 16
    assert evaluate("len(spec.problem.instance)", scope) == 3
    assert evaluate("spec.problem.instance.K * spec.problem.instance['P']", scope) == 128
    assert evaluate("spec.problem.instance.R", scope) == 12           # a variable, evaluated
    assert evaluate("spec.problem.shape.dimensions[0]", scope) == "K"
    assert evaluate("len(spec.problem.shape.dimensions)", scope) == 3
    assert evaluate("'R' in spec.problem.instance", scope) is True
    assert evaluate("spec.variables.PES + variables['N_COLS']", scope) == 15
    assert evaluate("spec.mapper.optimization_metrics[0]", scope) == "delay"
    with pytest.raises(ExprError, match=r"spec.problem has no 'instanc' \(it has shape, "
                                        "instance\\)"):
        evaluate("spec.problem.instanc", scope)


def test_spec_problem_without_a_problem(tmp_path):
    scope = _spec(tmp_path, "variables: {A: 1}\n")
    with pytest.raises(ExprError, match=r"spec\.problem is not available"):
        evaluate("len(spec.problem.instance)", scope)


@pytest.mark.parametrize("text,needle", [
    ("().__class__", "attribute .__class__ of a tuple is not available"),
    ("''.join(['a'])", "method calls (.join()) are not supported"),
    ("'a'.upper", "attribute .upper of a str is not available"),
    ("spec.__dict__", "unknown name 'spec'"),
    ("open('x')", "open() is not a function expressions may call"),
    ("__import__('os')", "__import__() is not a function"),
    ("getcwd()", "getcwd() is not a function"),
    ("range(10)", "range() is not a function"),
    ("(lambda: 1)()", "lambda not allowed"),
    ("[x for x in (1, 2)]", "comprehensions not allowed"),
    ("f'{1}'", "f-strings not allowed"),
    ("max(*[1, 2])", "*-unpacking"),
    ("(y := 2)", ":= not allowed"),
    ("max", "max is a function"),
    ("9 ** 9 ** 9", "number too large"),
    ("2 ** 300", "number too large"),
    ("1 << 10000", "number too large"),
    ("int(1e300)", "number too large"),
    ("factorial(100000)", "too large to compute"),
    ("'x' * 100000", "longer than"),
    ("'%s' % 1", "formatting with % is not supported"),
    ("1 +", "not an expression"),
    ("1 < 'a'", "not supported between"),
    ("sqrt(-1)", "sqrt(): math domain error"),
    ("(1, 2)[5]", "bad index"),
    ("3[0]", "cannot be indexed"),
    ("10 ** 400.0", "number too large"),
])
def test_refused_expressions_say_why(text, needle):
    with pytest.raises(ExprError) as exc:
        evaluate(text, Scope({}))
    assert needle in str(exc.value), str(exc.value)
    assert "\n" not in str(exc.value)


def test_step_budget_bounds_exponential_variable_chains():
    names = {f"v{i}": f"v{i + 1} + v{i + 1}" for i in range(60)}
    names["v60"] = 1
    with pytest.raises(ExprError, match="too long"):
        evaluate("v0", Scope(names))
    short = {f"v{i}": f"v{i + 1} + v{i + 1}" for i in range(8)}
    short["v8"] = 1
    assert evaluate("v0", Scope(short)) == 256
    assert MAX_EXPR_STEPS == 10_000


def test_views_are_read_only_and_expose_nothing_else():
    view = View({"a": 1, "_b": 2}, "spec.x")
    assert view["a"] == 1 and len(view) == 2 and list(view) == ["a", "_b"]
    with pytest.raises(ExprError, match=r"attribute \._b"):
        evaluate("x._b", Scope(fixed={"x": view}))
    with pytest.raises(TypeError):
        view["a"] = 3                                   # type: ignore[index]
