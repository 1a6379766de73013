"""Parsing generated-multiplier names: ``{family}{a}{u|s}[x{b}][_{params}]``.

A name is the whole specification of a generated design, so that a multiplier mentioned in a
config file or on the command line can be rebuilt bit-for-bit anywhere.  Parsing is strict (no
leading zeros, no unknown parameters) so two different strings never silently denote the same
circuit, except the redundant ``x{b}`` with ``b == a``, which is canonicalised away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import UnknownMultiplier
from ..multiplier import MAX_BITS

MIN_A_BITS = 2

#: Families, with the signedness each supports and the grammar of its parameter suffix.
FAMILY_SIGNS: dict[str, str] = {
    "exact": "us", "trunc": "us", "bam": "us", "perf": "us",
    "drum": "u", "mitchell": "u", "comp": "u",
}

_NUM = r"(?:0|[1-9][0-9]*)"
_NAME_RE = re.compile(
    rf"(?P<family>[a-z]+?)(?P<a>{_NUM})(?P<sign>[us])(?:x(?P<b>{_NUM}))?(?:_(?P<params>.*))?")

#: Per family: regex for the parameter suffix (``None``: the family takes no parameters).
_PARAM_RE: dict[str, re.Pattern[str] | None] = {
    "exact": None,
    "mitchell": None,
    "trunc": re.compile(rf"k(?P<k>{_NUM})(?P<c>c?)"),
    "bam": re.compile(rf"h(?P<h>{_NUM})v(?P<v>{_NUM})"),
    "perf": re.compile(rf"r(?P<r>{_NUM})m(?P<m>{_NUM})"),
    "drum": re.compile(rf"k(?P<k>{_NUM})"),
    "comp": re.compile(rf"k(?P<k>{_NUM})"),
}

PATTERNS: dict[str, str] = {
    "exact": "exact{a}{u|s}[x{b}]",
    "trunc": "trunc{a}{u|s}[x{b}]_k{K}[c]",
    "bam": "bam{a}{u|s}[x{b}]_h{H}v{V}",
    "perf": "perf{a}{u|s}[x{b}]_r{R}m{M}",
    "drum": "drum{a}u[x{b}]_k{K}",
    "mitchell": "mitchell{a}u[x{b}]",
    "comp": "comp{a}u[x{b}]_k{K}",
}

GRAMMAR = "{family}{a}{u|s}[x{b}][_{params}]"


@dataclass(frozen=True)
class Spec:
    """A parsed name: everything needed to build the circuit."""

    family: str
    a_bits: int
    b_bits: int
    signed: bool
    params: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The canonical spelling (``x{b}`` only when ``b != a``)."""
        width = f"{self.a_bits}{'s' if self.signed else 'u'}"
        if self.b_bits != self.a_bits:
            width += f"x{self.b_bits}"
        p = self.params
        suffix = {
            "exact": "", "mitchell": "",
            "trunc": f"_k{p.get('k')}{'c' if p.get('c') else ''}",
            "bam": f"_h{p.get('h')}v{p.get('v')}",
            "perf": f"_r{p.get('r')}m{p.get('m')}",
            "drum": f"_k{p.get('k')}",
            "comp": f"_k{p.get('k')}",
        }[self.family]
        return f"{self.family}{width}{suffix}"


def _unknown(name: str, why: str) -> UnknownMultiplier:
    families = ", ".join(PATTERNS.values())
    return UnknownMultiplier(f"unknown multiplier {name!r}; {why}. Generated names look like "
                             f"{GRAMMAR}: {families}")


def _match(name: str) -> re.Match[str] | None:
    m = _NAME_RE.fullmatch(name)
    if m is None or m["family"] not in FAMILY_SIGNS:
        return None
    return m


def looks_generated(name: str) -> bool:
    """True when ``name`` has the shape of a generated name of a known family.

    Deliberately looser than :func:`parse`: ``trunc8u_k99`` looks generated, so a caller
    routes it to the generator, whose error then says which ``k`` are valid instead of a
    bare "not found".
    """
    return _match(name) is not None


def _check_range(name: str, what: str, value: int, lo: int, hi: int, context: str) -> None:
    if not lo <= value <= hi:
        raise UnknownMultiplier(f"unknown multiplier {name!r}; {what} must be in {lo}..{hi} "
                                f"{context}, got {value}")


def parse(name: str) -> Spec:
    """Parse and range-check a generated name, raising :class:`UnknownMultiplier`."""
    m = _match(name)
    if m is None:
        raise _unknown(name, "not a known name or generated-family name")
    family = m["family"]
    pattern = PATTERNS[family]
    a_bits = int(m["a"])
    b_bits = int(m["b"]) if m["b"] is not None else a_bits
    signed = m["sign"] == "s"
    _check_range(name, "operand width a", a_bits, MIN_A_BITS, MAX_BITS, f"(pattern {pattern})")
    _check_range(name, "operand width b", b_bits, 1, MAX_BITS, f"(pattern {pattern})")
    if m["sign"] not in FAMILY_SIGNS[family]:
        raise UnknownMultiplier(f"unknown multiplier {name!r}; the {family} family is "
                                f"unsigned only (pattern {pattern})")
    param_re = _PARAM_RE[family]
    text = m["params"]
    params: dict[str, int] = {}
    if param_re is None:
        if text is not None:
            close = Spec(family, a_bits, b_bits, signed).name
            raise UnknownMultiplier(f"unknown multiplier {name!r}; the {family} family takes "
                                    f"no parameters: did you mean {close}? ({pattern})")
    else:
        pm = param_re.fullmatch(text) if text is not None else None
        if pm is None:
            close = suggestions(name, family, a_bits, b_bits, signed)
            if close:
                raise UnknownMultiplier(f"unknown multiplier {name!r}; did you mean "
                                        f"{' or '.join(close)}? (the {family} family is "
                                        f"{pattern})")
            raise _unknown(name, f"parameters of the {family} family must follow {pattern}")
        params = {key: (int(val) if val.isdigit() else int(val == "c"))
                  for key, val in pm.groupdict().items()}
    spec = Spec(family, a_bits, b_bits, signed, params)
    _check_params(name, spec)
    return spec


def _check_params(name: str, spec: Spec) -> None:
    """Reject parameters that would give an exact design or no multiplier at all."""
    a, b, p = spec.a_bits, spec.b_bits, spec.params
    ctx = f"for {a}x{b} operands ({PATTERNS[spec.family]})"
    top = a + b - 2  # highest partial-product column
    if spec.family == "trunc":
        _check_range(name, "k", p["k"], 1, top, ctx)
    elif spec.family == "bam":
        _check_range(name, "h", p["h"], 0, b - 1, ctx)
        _check_range(name, "v", p["v"], 0, top, ctx)
        if p["h"] == 0 and p["v"] == 0:
            raise UnknownMultiplier(f"unknown multiplier {name!r}; h0v0 breaks nothing, "
                                    f"use exact{a}{'s' if spec.signed else 'u'}")
    elif spec.family == "perf":
        _check_range(name, "r", p["r"], 0, b - 1, ctx)
        _check_range(name, "m", p["m"], 1, b - 1, ctx)
        _check_range(name, "r+m", p["r"] + p["m"], 1, b, ctx)
    elif spec.family == "drum":
        if max(a, b) < 3:
            raise UnknownMultiplier(f"unknown multiplier {name!r}; DRUM needs an operand "
                                    "of at least 3 bits")
        _check_range(name, "k", p["k"], 2, max(a, b) - 1, ctx)
    elif spec.family == "comp":
        _check_range(name, "k", p["k"], 1, a + b - 1, ctx)


def family_names(family: str, a: int, b: int, signed: bool) -> list[str]:
    """Every valid name of ``family`` at these operand widths (a few hundred at most): the
    vocabulary a misspelt parameter suffix is matched against."""
    top = a + b - 2
    grids = {
        "exact": [{}], "mitchell": [{}],
        "trunc": [{"k": k, "c": c} for k in range(1, top + 1) for c in (0, 1)],
        "bam": [{"h": h, "v": v} for h in range(b) for v in range(top + 1) if h or v],
        "perf": [{"r": r, "m": m} for r in range(b) for m in range(1, b) if r + m <= b],
        "drum": [{"k": k} for k in range(2, max(a, b))],
        "comp": [{"k": k} for k in range(1, a + b)],
    }[family]
    return [Spec(family, a, b, signed, params).name for params in grids]


def suggestions(name: str, family: str, a: int, b: int, signed: bool) -> list[str]:
    """Up to three valid names of the family closest to ``name`` (difflib's ratio)."""
    import difflib

    if max(a, b) > MAX_BITS or min(a, b) < 1:
        return []
    return difflib.get_close_matches(name, family_names(family, a, b, signed), n=3,
                                     cutoff=0.75)
