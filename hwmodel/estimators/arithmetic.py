"""Compute-unit estimators: integer and floating-point MACs, and the multiplier inside them.

Compute energies are per operation (one MAC, one multiply, one add); the figures follow
Accelergy's own models (what ``hwcomponents`` answers, :mod:`hwmodel.accelergy_estimators`):

* Integer MAC = multiplier + accumulator, as hwcomponents' ``IntMAC`` (Aladdin): the exact
  multiplier of ``a x b`` bits costs :data:`MULTIPLIER_PJ_8x8` x ``a b / 64`` (Aladdin's 32 x
  32 multiplier, 12.68 pJ at 40 nm, scales with the operand bits' product); a multiplier_lib
  multiplier (approximate or not) costs that times its own energy relative to the exact
  multiplier of its shape, both on multiplier_lib's gate-level scale, so an approximate
  design keeps its gate-level saving and an exact one its Accelergy figure.  The accumulator
  is ``adder_width`` bits (default ``2 * multiplier_width + 8``) at Aladdin's 0.21 pJ per 32
  bits (40 nm), linear in bits.  The operand width is ``multiplier_width`` when the unit has
  one, else its ``datawidth``.
* FP MAC: Horowitz 45 nm FP32 multiply 3.7 + add 0.9 pJ; FP16 1.1 + 0.4 pJ (hwcomponents has
  no floating-point model to fit to); a ``format`` attribute names any float format of
  :data:`core.arithmetic.FLOAT_FORMATS`.

Every figure is a 45 nm figure scaled to the component's technology with
:func:`~hwmodel.estimators.base.technology_scale` (within 15 % of hwcomponents' own
Stillmaker-Baas scaling for logic at 22 and 32 nm).

The multiplier that replaces a unit's exact one is a :class:`MultiplierUse`: its energy is
characterized once per energy table, and only when a figure needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.arithmetic import FLOAT_FORMATS, float_format
from core.errors import HwcostError
from core.units import power_mw_to_energy_pj
from multiplier_lib.characterize import characterize
from multiplier_lib.hardware import exact_reference_energy_pj
from multiplier_lib.multiplier import Multiplier

from .base import (
    ADDER_PJ_PER_BIT,
    ALADDIN_40_TO_45,
    ActionEnergy,
    Estimator,
    mac_widths,
    positive_number,
    technology_scale,
)

# FloatFormat and FLOAT_FORMATS (Horowitz 45 nm) live in core.arithmetic
#: Horowitz 45 nm floating point (multiply, add) per width, for FP MACs named by width only.
FP_ENERGY_PJ: dict[int, tuple[float, float]] = {
    f.bits: (f.multiply_pj, f.add_pj) for f in (FLOAT_FORMATS["fp16"], FLOAT_FORMATS["fp32"])}
#: 45 nm energy of an exact 8 x 8 multiplier: Aladdin's 32 x 32 multiplier (12.68 pJ at
#: 40 nm, hwcomponents' AladdinMultiplier) scaled to 45 nm and by the operand bits' product.
MULTIPLIER_PJ_8x8 = 12.68 * ALADDIN_40_TO_45 * (8 * 8) / (32 * 32)

_FP_MAC = ("fpmac",)


def exact_multiplier_pj(a_bits: int, b_bits: int | None = None) -> float:
    """45 nm energy of an exact ``a_bits x b_bits`` multiplier on Accelergy's (Aladdin's)
    scale: proportional to the number of partial-product bits, ``a b``."""
    b = a_bits if b_bits is None else b_bits
    return MULTIPLIER_PJ_8x8 * a_bits * b / 64.0


@dataclass(frozen=True)
class MultiplierEnergy:
    """A multiplier's 45 nm energy per operation, relative to exact, and where it came from."""

    name: str
    energy_pj: float
    rel_exact: float
    how: str   # "gate-level estimate" or "published power"
    a_bits: int = 8
    b_bits: int = 8

    @property
    def source(self) -> str:
        return f"multiplier_lib:{self.name} ({self.how})"

    def scale_in(self, unit_bits: int) -> tuple[float, str]:
        """Factor that turns a ``unit_bits``-wide unit's exact multiply energy (an ERT's or
        hwcomponents') into this multiplier's, and the provenance text: its energy relative
        to exact, times its partial-product bits relative to the unit's (an 8x8 multiplier
        in a 16-bit MAC is a quarter of its multiplier, as in :func:`exact_multiplier_pj`)."""
        shape = self.a_bits * self.b_bits / float(unit_bits * unit_bits)
        text = f"x {self.rel_exact:.3f} = {self.source} / exact"
        if shape != 1.0:
            text += (f", x {shape:.3f} for {self.a_bits}x{self.b_bits} bits in a "
                     f"{unit_bits}-bit unit")
        return self.rel_exact * shape, text


def multiplier_energy(mult: Multiplier) -> MultiplierEnergy:
    """Energy of ``mult``: gate-level estimate if it has a netlist, else published power.

    The exact reference for ``rel_exact`` is hwcost's exact multiplier of the same shape,
    which is calibrated on the published exact EvoApprox multiplier, so both sources are on
    one scale.
    """
    exact = float(exact_reference_energy_pj(mult.a_bits, mult.b_bits, mult.signed))
    if mult.netlist is not None:
        energy = float(characterize(mult)["energy_pj"])
        return MultiplierEnergy(mult.name, energy, energy / exact, "gate-level estimate",
                                mult.a_bits, mult.b_bits)
    power = mult.published.get("power_mw")
    if power is not None:
        energy = power_mw_to_energy_pj(float(power))
        return MultiplierEnergy(mult.name, energy, energy / exact, "published power",
                                mult.a_bits, mult.b_bits)
    raise HwcostError(f"multiplier {mult.name} has neither a netlist nor published power "
                      f"(power_mw), so its energy is unknown; import its gate-level netlist "
                      f"or give its power in the file header", file=mult.source)


class MultiplierUse:
    """The multiplier that replaces a compute unit's exact one: the :class:`Multiplier`
    (whose operand widths a unit checks) and its energy, characterized once (about 0.1 s),
    when first asked for."""

    def __init__(self, multiplier: Multiplier):
        self.multiplier = multiplier
        self._energy: MultiplierEnergy | None = None

    @property
    def name(self) -> str:
        return self.multiplier.name

    def energy(self) -> MultiplierEnergy:
        if self._energy is None:
            self._energy = multiplier_energy(self.multiplier)
        return self._energy


@dataclass(frozen=True)
class MacBreakdown:
    """Multiply and add energies of one MAC at the component's technology."""

    multiply_pj: float
    add_pj: float
    multiply_source: str
    add_source: str

    @property
    def mac_pj(self) -> float:
        return self.multiply_pj + self.add_pj


class MACEstimator(Estimator):
    """Integer and FP MAC units; the multiplier part may be an approximate multiplier.

    ``multiplier`` is the one :meth:`breakdown` and :meth:`estimate` apply;
    :meth:`compute_energy` applies the one it is given instead."""

    name = "hwcost-mac"
    accuracy = ("Aladdin multiplier and adder (as hwcomponents' IntMAC: equal at 45 nm), an "
                "approximate multiplier scaled by its gate-level energy relative to exact; "
                "FP from Horowitz 45 nm")
    classes = ("intmac", "mac", "intmultiplier", "intadder", "fpmac")
    actions = ("mac", "compute", "mac_random", "multiply", "add")

    def __init__(self, multiplier: Multiplier | None = None):
        self.multiplier = multiplier
        self._use = None if multiplier is None else MultiplierUse(multiplier)

    def multiplier_energy(self) -> MultiplierEnergy | None:
        """The given multiplier's energy, computed once (characterization takes ~0.1 s)."""
        return None if self._use is None else self._use.energy()

    def breakdown(self, component_class: str, attributes: dict[str, Any],
                  technology_nm: float) -> MacBreakdown:
        """Multiply and add energies of one operation of ``component_class``."""
        return self._breakdown(component_class, attributes, technology_nm, self._use)

    def _breakdown(self, component_class: str, attributes: dict[str, Any],
                   technology_nm: float, use: MultiplierUse | None) -> MacBreakdown:
        cls = component_class.lower()
        if not self.handles(cls):
            raise HwcostError(f"{self.name} cannot estimate class {component_class!r}")
        scale = technology_scale(technology_nm)
        datawidth = int(positive_number(attributes, "datawidth", component_class, default=8))
        if cls in _FP_MAC:
            if use is not None:
                raise HwcostError(f"integer multiplier {use.name} cannot replace the "
                                  f"multiplier of the floating-point unit ({component_class})")
            fmt_name = str(attributes.get("format") or "").lower()
            if fmt_name:
                fmt = float_format(fmt_name)
                if fmt is None:
                    raise HwcostError(f"{component_class}: unknown float format {fmt_name!r}; "
                                      f"expected one of {', '.join(FLOAT_FORMATS)}")
                src = f"{self.name} ({fmt.source})"
                return MacBreakdown(fmt.multiply_pj * scale, fmt.add_pj * scale, src, src)
            if datawidth not in FP_ENERGY_PJ:
                raise HwcostError(f"{component_class}: only FP32 and FP16 are modelled, got "
                                  f"datawidth {datawidth}")
            mul, add = FP_ENERGY_PJ[datawidth]
            src = f"{self.name} (Horowitz FP{datawidth})"
            return MacBreakdown(mul * scale, add * scale, src, src)
        mw, adder_width = mac_widths(attributes, 8, component_class)
        if cls == "intadder" and attributes.get("adder_width") is None:
            adder_width = int(positive_number(attributes, "width", component_class,
                                              default=datawidth))
        add = ADDER_PJ_PER_BIT * adder_width
        add_src = f"{self.name} ({adder_width}-bit accumulator, Aladdin)"
        if use is not None:
            mult = use.multiplier
            if max(mult.a_bits, mult.b_bits) > mw:
                raise HwcostError(f"multiplier {mult.name} takes {mult.a_bits}x{mult.b_bits}-bit "
                                  f"operands but the compute unit's multiplier is {mw} bits wide")
            mult_e = use.energy()
            exact = exact_multiplier_pj(mult.a_bits, mult.b_bits)
            mul = exact * mult_e.rel_exact
            mul_src = (f"{self.name} (exact {mult.a_bits}x{mult.b_bits} {exact:.3f} pJ x "
                       f"{mult_e.rel_exact:.3f} = {mult_e.source} / exact)")
        else:
            mul = exact_multiplier_pj(mw, mw)
            mul_src = f"{self.name} (exact {mw}x{mw}, Aladdin)"
        if cls == "intmultiplier":
            add, add_src = 0.0, f"{self.name} (no adder in {component_class})"
        elif cls == "intadder":
            mul, mul_src = 0.0, f"{self.name} (no multiplier in {component_class})"
        return MacBreakdown(mul * scale, add * scale, mul_src, add_src)

    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        if not self.handles(component_class) or action not in self.actions:
            return None
        b = self.breakdown(component_class, attributes, technology_nm)
        if action == "multiply":
            return b.multiply_pj
        if action == "add":
            return b.add_pj
        return b.mac_pj

    def compute_energy(self, component_class: str, attributes: dict[str, Any],
                       technology_nm: float, multiplier: MultiplierUse | None = None
                       ) -> dict[str, ActionEnergy]:
        b = self._breakdown(component_class, attributes, technology_nm, multiplier)
        mac_src = (b.multiply_source if b.add_source == b.multiply_source
                   else f"{b.multiply_source} + {b.add_source}")
        return {"mac": ActionEnergy(b.mac_pj, mac_src),
                "multiply": ActionEnergy(b.multiply_pj, b.multiply_source),
                "add": ActionEnergy(b.add_pj, b.add_source)}
