"""Parametric generators for the classic approximate multiplier families.

Each design is built as a gate netlist (through :class:`~multiplier_lib.netlist.Builder`),
so its truth table comes from simulation and its cost is estimated from gates exactly as for
an imported circuit; a family is never just a formula on a LUT.  The name *is* the
specification (see :mod:`.names` for the grammar), so a design can be rebuilt anywhere from
its name alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..multiplier import Multiplier
from .array import generate_array
from .compressor import generate_comp
from .drum import generate_drum
from .mitchell import generate_mitchell
from .names import PATTERNS, Spec, looks_generated, parse

__all__ = ["FAMILIES", "Family", "builtin_examples", "generate", "is_generated_name"]


@dataclass(frozen=True)
class Family:
    """A parametric family as shown to users (``hwcost multipliers list``)."""

    name: str
    pattern: str
    example: str
    description: str


FAMILIES: list[Family] = [
    Family("exact", PATTERNS["exact"], "exact8s",
           "exact array multiplier (Baugh-Wooley when signed): the reference design"),
    Family("trunc", PATTERNS["trunc"], "trunc8u_k6c",
           "truncated: partial products in columns < K dropped; 'c' adds the rounded "
           "expected value of the dropped bits as a constant"),
    Family("bam", PATTERNS["bam"], "bam8u_h2v6",
           "broken array (Mahdiani et al.): rows j < H and columns i+j < V omitted"),
    Family("perf", PATTERNS["perf"], "perf8u_r2m2",
           "perforated: M partial-product rows starting at row R skipped"),
    Family("drum", PATTERNS["drum"], "drum8u_k4",
           "DRUM-K (Hashemi et al.): K-bit leading-one segments with LSB set, exact KxK core"),
    Family("mitchell", PATTERNS["mitchell"], "mitchell8u",
           "Mitchell logarithmic multiplier: piecewise-linear log2, add, antilog"),
    Family("comp", PATTERNS["comp"], "comp8u_k8",
           "Wallace-style tree with carry-free approximate 4:2 compressors in columns < K"),
]

_BUILDERS: dict[str, Callable[[Spec], Multiplier]] = {
    "exact": generate_array, "trunc": generate_array, "bam": generate_array,
    "perf": generate_array, "drum": generate_drum, "mitchell": generate_mitchell,
    "comp": generate_comp,
}


def is_generated_name(name: str) -> bool:
    """Whether ``name`` belongs to a generated family (by its shape).

    Also true for a well-shaped name with out-of-range parameters such as ``trunc8u_k99``,
    so that callers hand it to :func:`generate` and the user sees the valid range rather
    than "not found".
    """
    return looks_generated(name)


def generate(name: str) -> Multiplier:
    """Build the multiplier a generated name describes.

    The returned multiplier carries the canonical name (``exact8ux8`` becomes ``exact8u``).
    Raises :class:`~multiplier_lib.errors.UnknownMultiplier` for names that do not parse or
    whose parameters are out of range, saying what the valid range is.
    """
    spec = parse(name)
    return _BUILDERS[spec.family](spec)


def builtin_examples() -> list[str]:
    """A representative set of concrete designs covering every family, both signednesses,
    several parameter points and one non-square shape; the default benchmark population."""
    return [
        "exact8u", "exact8s", "exact8ux4",
        "trunc8u_k4", "trunc8u_k8", "trunc8u_k6c", "trunc8s_k6", "trunc8s_k8c",
        "bam8u_h2v6", "bam8u_h0v8", "bam8s_h1v6",
        "perf8u_r0m2", "perf8u_r2m2", "perf8s_r0m1",
        "drum8u_k3", "drum8u_k4", "drum8u_k6",
        "mitchell8u",
        "comp8u_k4", "comp8u_k8", "comp8u_k12",
    ]
