"""Energy estimators: Accelergy-style plug-ins that price one action of one component class.

Accelergy asks every installed plug-in "can you estimate action A of class C with these
attributes?" and keeps the most accurate answer.  hwcost keeps that shape so that its numbers
can be reasoned about one component at a time and replaced by an Accelergy ``ERT.yaml``
(:mod:`hwmodel.ert`) wherever the user has one: an :class:`Estimator` names the classes and
actions it handles, says honestly how accurate it is, and returns pJ per action (or None).

Conventions (the same as Accelergy's, so that an ERT can be swapped in):

* Storage energies are **per access of one row** (``width`` bits, i.e. ``block_size`` words);
  :func:`hwmodel.energy.build_energy_table` divides by ``block_size`` to get the per-word
  figures Timeloop reports as "Energy (per-scalar-access)".
* Compute energies are per operation (one MAC, one multiply, one add).
* Every logic/SRAM figure below is a **45 nm** figure scaled to the component's technology
  with :func:`technology_scale`; DRAM energy is an interface property and is not scaled.

The fits and their anchors (all at 45 nm):

* DRAM: pJ/bit of the DRAM type (the CACTI plug-in's figures: LPDDR4 8, DDR3 70, GDDR5 14,
  HBM2 3.9) x bits.  Timeloop's Eyeriss-like example (LPDDR4, 64-bit rows of 4 x 16-bit
  words) reports 512 pJ per access = 128 pJ per word; this estimator gives exactly that.
* SRAM: ``E = (width + SRAM_PERIPHERY_BITS) * e_bit`` with
  ``e_bit = SRAM_K_BANK * sqrt(C / n_banks) + SRAM_K_ROUTE * sqrt(C) * (1 - 1 / n_banks)``
  and ``C = depth * width`` bits.  Wire lengths inside an array grow with its side, i.e. with
  sqrt(capacity): only the accessed bank's bit/word lines switch (first term), while data and
  address travel across the whole macro when it is banked (second term).  ``SRAM_K_BANK`` is
  fitted to Horowitz's 45 nm 64-bit cache reads (8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ; the fit
  gives 9.6, 19.3, 109 pJ), ``SRAM_K_ROUTE`` to the one banked point we have, Timeloop's
  Eyeriss-like global buffer (16384 x 64 bit, 32 banks: 75.22 pJ per access, 18.8 pJ per
  16-bit word; CACTI via Accelergy).  The periphery term (decoder, control: a fixed 16 bit
  equivalents, i.e. 20 % of a 64-bit access) is what makes wide rows cheaper per word.
* Register files: ``E = width * (RF_E_BIT + RF_E_BIT_ROW * depth)``: linear in the number of
  entries (read-mux and write-enable fan-out), fitted through Timeloop's 45 nm Eyeriss-like
  scratchpads (16 x 16 bit psum spad 0.25 pJ, 192 x 16 bit weights spad 1.59 pJ; the 12 x 16
  bit ifmap spad comes out at 0.22 vs 0.24 pJ).
* Integer MAC = multiplier + accumulator.  The multiplier is a multiplier_lib
  :class:`~multiplier_lib.Multiplier` when one is given (its gate-level estimate, else its
  published power), otherwise hwcost's exact array multiplier of the operand width
  (gate-level, 0.391 pJ for 8 x 8 unsigned: the EvoApprox PDK45 scale, about 2x Horowitz's
  0.2 pJ; keeping the same scale is what makes exact and approximate comparable).  Widths
  above 8 bits use Horowitz's quadratic law (8 -> 32 bit: 0.2 -> 3.1 pJ, ~(32/8)^2) from the
  8-bit gate-level figure.  The accumulator is ``adder_width`` (default ``2*datawidth + 8``)
  bits at Horowitz's 0.1 pJ per 32-bit add, linear in bits.
* FP MAC: Horowitz FP32 multiply 3.7 + add 0.9 pJ; FP16 multiply 1.1 + add 0.4 pJ.

Where the published anchors disagree we say so: Eyeriss's normalised costs (RF 1 : GLB 6 :
DRAM 200, measured in 65 nm silicon) and Timeloop's 45 nm CACTI/Aladdin figures differ by an
order of magnitude for GLB/RF with a 16-entry RF.  The fits follow Timeloop's numbers (so the
built-in estimators reproduce its Eyeriss-like breakdown of 8.22 pJ/MACC given the same access
counts); against Eyeriss's 0.5 KB filter RF (224 x 16 bit, 1.83 pJ) the 108 KB banked GLB is
~9x and LPDDR4 DRAM ~70x per word.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from multiplier_lib.characterize import characterize
from multiplier_lib.errors import HwcostError
from multiplier_lib.hardware import exact_reference_energy_pj
from multiplier_lib.multiplier import Multiplier
from multiplier_lib.units import power_mw_to_energy_pj

# --------------------------------------------------------------------------------------------
# technology scaling
# --------------------------------------------------------------------------------------------

#: Reference node of every built-in figure (NanGate/PDK45, Horowitz, Timeloop's example).
REFERENCE_NM = 45.0

#: Nominal core supply per node (V).  45 nm uses 1.1 V because the gate-level multiplier
#: energies are calibrated on NanGate/PDK45 at 1.1 V.
NOMINAL_VOLTAGE: dict[float, float] = {
    180.0: 1.8, 130.0: 1.3, 90.0: 1.2, 65.0: 1.1, 45.0: 1.1, 40.0: 1.1, 32.0: 1.0, 28.0: 0.9,
    22.0: 0.8, 20.0: 0.8, 16.0: 0.8, 14.0: 0.8, 12.0: 0.8, 10.0: 0.75, 7.0: 0.7, 5.0: 0.65,
}

_TECH_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(nm)?\s*$", re.IGNORECASE)


def parse_technology(value: Any) -> float:
    """Feature size in nm of ``45``, ``45.0``, ``"45nm"``, ``"45 nm"`` or ``"45"``.

    Only nodes with a known nominal voltage are accepted, because scaling to an unlisted node
    would silently invent a supply voltage.
    """
    nm: float | None = None
    if isinstance(value, bool):
        nm = None
    elif isinstance(value, int | float):
        nm = float(value)
    elif isinstance(value, str):
        m = _TECH_RE.match(value)
        if m:
            nm = float(m.group(1))
    if nm is None or nm not in NOMINAL_VOLTAGE:
        known = ", ".join(f"{n:g}nm" for n in sorted(NOMINAL_VOLTAGE, reverse=True))
        raise HwcostError(f"unknown technology {value!r}; known nodes: {known}")
    return nm


def technology_scale(technology_nm: float) -> float:
    """Energy at ``technology_nm`` relative to 45 nm: ``(L / 45) * (V(L) / V(45))**2``.

    Dynamic energy is C V^2 and capacitance shrinks roughly linearly with the feature size;
    this first-order rule is what keeps a 45 nm fit usable for other nodes without pretending
    to more precision than it has (expect +-50 % below 28 nm, where wires dominate).
    """
    nm = parse_technology(technology_nm)
    return (nm / REFERENCE_NM) * (NOMINAL_VOLTAGE[nm] / NOMINAL_VOLTAGE[REFERENCE_NM]) ** 2


# --------------------------------------------------------------------------------------------
# attribute helpers
# --------------------------------------------------------------------------------------------

_ALIASES: dict[str, tuple[str, ...]] = {
    "depth": ("depth", "memory_depth", "data_storage_depth", "entries"),
    "width": ("width", "memory_width", "data_storage_width"),
    "datawidth": ("datawidth", "word-bits", "word_bits", "data_width"),
    "block_size": ("block_size", "block-size"),
    "n_banks": ("n_banks", "banks"),
}


def attribute(attributes: dict[str, Any], key: str, default: Any = None) -> Any:
    """``attributes[key]`` under its Accelergy v0.3/v0.4 spellings (``memory_depth``...)."""
    for name in _ALIASES.get(key, (key,)):
        value = attributes.get(name)
        if value is not None:
            return value
    return default


def _number(attributes: dict[str, Any], key: str, component_class: str,
            default: float | None = None) -> float:
    value = attribute(attributes, key, default)
    if value is None:
        raise HwcostError(f"{component_class}: attribute '{key}' is needed to estimate energy")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise HwcostError(f"{component_class}: attribute '{key}' must be a positive number, "
                          f"got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# the plug-in interface
# --------------------------------------------------------------------------------------------


class Estimator(ABC):
    """One energy plug-in: the classes and actions it prices, and how far to trust it."""

    name: str = "estimator"
    accuracy: str = "unknown"
    classes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def handles(self, component_class: str) -> bool:
        return component_class.lower() in {c.lower() for c in self.classes}

    @abstractmethod
    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        """pJ per ``action`` (per row access for storage), or None when not handled."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "classes": list(self.classes), "actions": list(self.actions),
                "accuracy": self.accuracy}


# --------------------------------------------------------------------------------------------
# DRAM
# --------------------------------------------------------------------------------------------

#: Interface + core energy per bit transferred (CACTI plug-in figures).
DRAM_PJ_PER_BIT: dict[str, float] = {"LPDDR4": 8.0, "DDR3": 70.0, "GDDR5": 14.0, "HBM2": 3.9}
DEFAULT_DRAM_TYPE = "LPDDR4"


class DRAMEstimator(Estimator):
    """Off-chip DRAM: energy per bit of the DRAM type times the bits of an access."""

    name = "hwcost-dram"
    accuracy = ("per-bit energy of the DRAM type (CACTI plug-in figures); no row-buffer "
                "locality, refresh or technology scaling")
    classes = ("DRAM",)
    actions = ("read", "write", "update")

    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        if not self.handles(component_class) or action not in self.actions:
            return None
        kind = str(attributes.get("type") or DEFAULT_DRAM_TYPE)
        per_bit = {k.lower(): v for k, v in DRAM_PJ_PER_BIT.items()}.get(kind.lower())
        if per_bit is None:
            raise HwcostError(f"DRAM type {kind!r} is unknown; known types: "
                              f"{', '.join(DRAM_PJ_PER_BIT)}")
        width = _number(attributes, "width", component_class)
        return per_bit * width


# --------------------------------------------------------------------------------------------
# SRAM and register files
# --------------------------------------------------------------------------------------------

#: pJ per bit per sqrt(bit) of the accessed bank (Horowitz 8 KB / 32 KB / 1 MB fit).
SRAM_K_BANK = 4.7e-4
#: pJ per bit per sqrt(bit) of macro-wide routing when banked (Timeloop Eyeriss GLB fit).
SRAM_K_ROUTE = 8.6e-4
#: Fixed per-access periphery (decoders, control), in equivalent bits of the data path.
SRAM_PERIPHERY_BITS = 16.0

#: Register file energy per bit of a row, and its growth per entry (Timeloop spad fit).
RF_E_BIT = 8.0e-3
RF_E_BIT_ROW = 4.76e-4


def sram_access_energy_pj(depth: float, width: float, n_banks: float = 1.0,
                          technology_nm: float = REFERENCE_NM) -> float:
    """pJ per access of one ``width``-bit row of a ``depth``-row SRAM (module docstring)."""
    capacity = depth * width
    banks = max(1.0, n_banks)
    e_bit = (SRAM_K_BANK * math.sqrt(capacity / banks)
             + SRAM_K_ROUTE * math.sqrt(capacity) * (1.0 - 1.0 / banks))
    return (width + SRAM_PERIPHERY_BITS) * e_bit * technology_scale(technology_nm)


def regfile_access_energy_pj(depth: float, width: float,
                             technology_nm: float = REFERENCE_NM) -> float:
    """pJ per access of one ``width``-bit entry of a ``depth``-entry register file."""
    return width * (RF_E_BIT + RF_E_BIT_ROW * depth) * technology_scale(technology_nm)


class SRAMEstimator(Estimator):
    """On-chip SRAM buffers (also the generic ``storage``/``buffer`` classes)."""

    name = "hwcost-sram"
    accuracy = ("analytic sqrt(capacity) fit: Horowitz 45 nm cache reads within 10 %, "
                "Timeloop/CACTI Eyeriss GLB exact; expect +-50 % vs CACTI elsewhere")
    classes = ("SRAM", "smartbuffer_SRAM", "buffer", "storage", "memory", "smartbuffer",
               "smartbuffer_metadata", "buffet", "buffet_collection_SRAM", "cache")
    actions = ("read", "write", "update")

    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        if not self.handles(component_class) or action not in self.actions:
            return None
        depth = _number(attributes, "depth", component_class)
        width = _number(attributes, "width", component_class)
        banks = _number(attributes, "n_banks", component_class, default=1)
        return sram_access_energy_pj(depth, width, banks, technology_nm)


class RegfileEstimator(Estimator):
    """Small flip-flop/latch arrays: PE scratchpads, pipeline registers."""

    name = "hwcost-regfile"
    accuracy = ("linear-in-entries fit through Timeloop's 45 nm Eyeriss-like spads (within "
                "10 % of its 3 points); unvalidated above ~1 KB")
    classes = ("regfile", "smartbuffer_RF", "reg", "register", "reg_storage",
               "buffet_collection_RF", "RF")
    actions = ("read", "write", "update")

    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        if not self.handles(component_class) or action not in self.actions:
            return None
        depth = _number(attributes, "depth", component_class, default=1)
        width = _number(attributes, "width", component_class)
        return regfile_access_energy_pj(depth, width, technology_nm)


# --------------------------------------------------------------------------------------------
# arithmetic
# --------------------------------------------------------------------------------------------

#: Horowitz 45 nm: 32-bit integer add 0.1 pJ, taken linear in bits.
ADDER_PJ_PER_BIT = 0.1 / 32
@dataclass(frozen=True)
class FloatFormat:
    """A float format's width and its 45 nm multiply and add energies."""

    name: str
    bits: int
    multiply_pj: float
    add_pj: float
    source: str


#: Horowitz (ISSCC 2014) 45 nm: FP32 multiply 3.7 pJ, add 0.9 pJ; FP16 1.1 and 0.4.  bfloat16
#: is not in Horowitz's table: its multiply is FP16's scaled by the significand width squared
#: (8 bits against 11, as array multipliers scale), its add taken as FP16's.
FLOAT_FORMATS: dict[str, FloatFormat] = {
    "fp32": FloatFormat("fp32", 32, 3.7, 0.9, "Horowitz 45 nm FP32"),
    "fp16": FloatFormat("fp16", 16, 1.1, 0.4, "Horowitz 45 nm FP16"),
    "bf16": FloatFormat("bf16", 16, 1.1 * (8 / 11) ** 2, 0.4,
                        "Horowitz FP16 scaled by significand width squared (8/11)^2"),
}
#: Horowitz 45 nm floating point (multiply, add) per width, for FP MACs named by width only.
FP_ENERGY_PJ: dict[int, tuple[float, float]] = {
    f.bits: (f.multiply_pj, f.add_pj) for f in (FLOAT_FORMATS["fp16"], FLOAT_FORMATS["fp32"])}
#: Widest operand multiplier_lib can generate; wider exact multipliers use the quadratic law.
GATE_LEVEL_MAX_BITS = 8
MIN_GATE_LEVEL_BITS = 2

_INT_MAC = ("intmac", "mac")
_FP_MAC = ("fpmac",)


@lru_cache(maxsize=16)
def exact_multiplier_energy_pj(bits: int, signed: bool = False) -> float:
    """45 nm energy of an exact ``bits`` x ``bits`` multiplier on the gate-level scale."""
    if MIN_GATE_LEVEL_BITS <= bits <= GATE_LEVEL_MAX_BITS:
        return float(exact_reference_energy_pj(bits, bits, signed))
    base = float(exact_reference_energy_pj(GATE_LEVEL_MAX_BITS, GATE_LEVEL_MAX_BITS, signed))
    return base * (bits / GATE_LEVEL_MAX_BITS) ** 2


@dataclass(frozen=True)
class MultiplierEnergy:
    """A multiplier's 45 nm energy per operation, relative to exact, and where it came from."""

    name: str
    energy_pj: float
    rel_exact: float
    how: str   # "gate-level estimate" or "published power"

    @property
    def source(self) -> str:
        return f"multiplier_lib:{self.name} ({self.how})"


def multiplier_energy(mult: Multiplier) -> MultiplierEnergy:
    """Energy of ``mult``: gate-level estimate if it has a netlist, else published power.

    The exact reference for ``rel_exact`` is hwcost's exact multiplier of the same shape,
    which is calibrated on the published exact EvoApprox multiplier, so both sources are on
    one scale.
    """
    exact = float(exact_reference_energy_pj(mult.a_bits, mult.b_bits, mult.signed))
    if mult.netlist is not None:
        energy = float(characterize(mult)["energy_pj"])
        return MultiplierEnergy(mult.name, energy, energy / exact, "gate-level estimate")
    power = mult.published.get("power_mw")
    if power is not None:
        energy = power_mw_to_energy_pj(float(power))
        return MultiplierEnergy(mult.name, energy, energy / exact, "published power")
    raise HwcostError(f"multiplier {mult.name} has neither a netlist nor published power "
                      f"(power_mw), so its energy is unknown; import its gate-level netlist "
                      f"or give its power in the file header", file=mult.source)


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
    """Integer and FP MAC units; the multiplier part may be an approximate multiplier."""

    name = "hwcost-mac"
    accuracy = ("gate-level multiplier estimate (EvoApprox PDK45 scale, ~2x Horowitz) + "
                "linear Horowitz adder; FP from Horowitz 45 nm; +-30 % vs synthesis")
    classes = ("intmac", "mac", "intmultiplier", "intadder", "fpmac")
    actions = ("mac", "compute", "mac_random", "multiply", "add")

    def __init__(self, multiplier: Multiplier | None = None):
        self.multiplier = multiplier
        self._mult_energy: MultiplierEnergy | None = None

    def multiplier_energy(self) -> MultiplierEnergy | None:
        """The given multiplier's energy, computed once (characterization takes ~0.1 s)."""
        if self.multiplier is None:
            return None
        if self._mult_energy is None:
            self._mult_energy = multiplier_energy(self.multiplier)
        return self._mult_energy

    def breakdown(self, component_class: str, attributes: dict[str, Any],
                  technology_nm: float) -> MacBreakdown:
        """Multiply and add energies of one operation of ``component_class``."""
        cls = component_class.lower()
        if not self.handles(cls):
            raise HwcostError(f"{self.name} cannot estimate class {component_class!r}")
        scale = technology_scale(technology_nm)
        datawidth = int(_number(attributes, "datawidth", component_class, default=8))
        if cls in _FP_MAC:
            if self.multiplier is not None:
                raise HwcostError(f"integer multiplier {self.multiplier.name} cannot replace the "
                                  f"multiplier of the floating-point unit ({component_class})")
            fmt_name = str(attributes.get("format") or "").lower()
            if fmt_name:
                fmt = FLOAT_FORMATS.get(fmt_name)
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
        adder_width = int(_number(attributes, "adder_width", component_class,
                                  default=2 * datawidth + 8))
        add = ADDER_PJ_PER_BIT * adder_width
        add_src = f"{self.name} ({adder_width}-bit accumulator, Horowitz)"
        mult = self.multiplier
        if mult is not None:
            if max(mult.a_bits, mult.b_bits) > datawidth:
                raise HwcostError(f"multiplier {mult.name} takes {mult.a_bits}x{mult.b_bits}-bit "
                                  f"operands but the compute unit's datawidth is {datawidth}")
            mult_e = self.multiplier_energy()
            assert mult_e is not None
            mul, mul_src = mult_e.energy_pj, mult_e.source
        else:
            signed = bool(attributes.get("signed", False))
            mul = exact_multiplier_energy_pj(datawidth, signed)
            how = ("gate-level estimate" if datawidth <= GATE_LEVEL_MAX_BITS
                   else "8-bit gate-level estimate x (bits/8)^2")
            mul_src = f"{self.name} (exact{datawidth}{'s' if signed else 'u'}, {how})"
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


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------

#: The built-in plug-ins, most specific first (a class is matched by the first that handles
#: it).  MACEstimator here has no multiplier; build_energy_table makes its own when given one.
ESTIMATORS: list[Estimator] = [DRAMEstimator(), RegfileEstimator(), SRAMEstimator(),
                               MACEstimator()]


def find_estimator(component_class: str, attributes: dict[str, Any] | None = None,
                   estimators: list[Estimator] | None = None) -> tuple[Estimator, str]:
    """The estimator for a component and the class to ask it about.

    Accelergy v0.4 specs write ``class: storage, subclass: smartbuffer_RF``; the subclass is
    the specific one, so it is tried before the generic class.
    """
    pool = ESTIMATORS if estimators is None else estimators
    candidates = [str((attributes or {}).get("subclass") or ""), component_class]
    for cls in candidates:
        if not cls:
            continue
        for est in pool:
            if est.handles(cls):
                return est, cls
    known = sorted({c for est in pool for c in est.classes}, key=str.lower)
    raise HwcostError(f"no energy estimator handles component class {component_class!r}; "
                      f"known classes: {', '.join(known)} (or give an ERT)")


def describe_estimators(estimators: list[Estimator] | None = None) -> list[dict[str, Any]]:
    """Name, classes, actions and accuracy of every estimator (for docs and the CLI)."""
    return [est.describe() for est in (ESTIMATORS if estimators is None else estimators)]
