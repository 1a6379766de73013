"""The arithmetic a layer runs in: an integer multiplier or a float format, as a type.

Every part of hwcost asks the same question of a name like ``"trunc8u_k6c"`` or ``"fp32"``:
is this a look-up-table multiplier (emulated bit-exactly, priced by its gate-level energy on
the integer design) or a float format (run in torch's float dtype, priced with an FP MAC on
the design rebuilt for float words)?  Asking it of a bare string in every module is how the
answers drift apart, so a name is resolved once, by :func:`resolve_arithmetic`, into an
:data:`Arithmetic`, and code downstream branches on the type (``isinstance(a, FloatFormat)``),
never on the spelling.  :func:`float_format` is the only place that reads a float format's
name.

The multiplier itself lives in ``multiplier_lib`` (which imports this module, not the other
way round), so :class:`IntMultiplier` holds anything with a multiplier's name, operand domain
and LUT (:class:`LutMultiplier`); the resolver of multiplier names is passed in
(``multiplier_lib.library.MultiplierResolver`` in practice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Union, runtime_checkable

from core.errors import HwcostError


@runtime_checkable
class LutMultiplier(Protocol):
    """What the arithmetic needs of a multiplier (``multiplier_lib.Multiplier`` is one)."""

    name: str
    a_bits: int
    b_bits: int
    signed: bool
    lut: Any


@dataclass(frozen=True)
class FloatFormat:
    """A float format: its width, torch dtype name and 45 nm multiply and add energies."""

    name: str
    bits: int
    multiply_pj: float
    add_pj: float
    source: str
    #: the ``torch`` attribute of the matching dtype (``float32``...), for emulation
    torch_dtype: str


#: Horowitz (ISSCC 2014) 45 nm: FP32 multiply 3.7 pJ, add 0.9 pJ; FP16 1.1 and 0.4.  bfloat16
#: is not in Horowitz's table: its multiply is FP16's scaled by the significand width squared
#: (8 bits against 11, as array multipliers scale), its add taken as FP16's.
FLOAT_FORMATS: dict[str, FloatFormat] = {
    "fp32": FloatFormat("fp32", 32, 3.7, 0.9, "Horowitz 45 nm FP32", "float32"),
    "fp16": FloatFormat("fp16", 16, 1.1, 0.4, "Horowitz 45 nm FP16", "float16"),
    "bf16": FloatFormat("bf16", 16, 1.1 * (8 / 11) ** 2, 0.4,
                        "Horowitz FP16 scaled by significand width squared (8/11)^2",
                        "bfloat16"),
}


@dataclass(frozen=True, eq=False)
class IntMultiplier:
    """A look-up-table multiplier and the operand domain its LUT covers.

    Equality is by name and domain (two resolutions of one name are the same arithmetic);
    the LUT is not compared.
    """

    multiplier: LutMultiplier

    @property
    def name(self) -> str:
        return self.multiplier.name

    @property
    def a_bits(self) -> int:
        return self.multiplier.a_bits

    @property
    def b_bits(self) -> int:
        return self.multiplier.b_bits

    @property
    def signed(self) -> bool:
        return self.multiplier.signed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntMultiplier) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (self.name, self.a_bits, self.b_bits, self.signed)


Arithmetic = Union[IntMultiplier, FloatFormat]  # noqa: UP007 (a runtime alias for isinstance)


def float_format(name: Any) -> FloatFormat | None:
    """The float format ``name`` spells (any case), or ``None`` for anything else."""
    if isinstance(name, FloatFormat):
        return name
    return FLOAT_FORMATS.get(name.lower()) if isinstance(name, str) else None


def require_float_format(name: str) -> FloatFormat:
    """The float format ``name``, or an error listing the known ones."""
    fmt = float_format(name)
    if fmt is None:
        raise HwcostError(f"unknown float format {name!r}; expected one of "
                          f"{', '.join(FLOAT_FORMATS)}")
    return fmt


def resolve_arithmetic(spec: Any, resolve_multiplier: Callable[[str], LutMultiplier]
                       ) -> Arithmetic:
    """``spec`` as an :data:`Arithmetic`: a float format's name, a multiplier's name (looked
    up with ``resolve_multiplier``), a ``Multiplier`` or an arithmetic already resolved."""
    if isinstance(spec, IntMultiplier | FloatFormat):
        return spec
    fmt = float_format(spec)
    if fmt is not None:
        return fmt
    if isinstance(spec, str):
        return IntMultiplier(resolve_multiplier(spec))
    if isinstance(spec, LutMultiplier):
        return IntMultiplier(spec)
    raise HwcostError(f"expected a multiplier or float format name, got {spec!r}")
