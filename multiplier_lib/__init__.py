"""Approximate multipliers: truth tables, gate netlists, importers, generators, metrics."""

from .errors import HwcostError, ImportFailed, NetlistError, UnknownMultiplier
from .multiplier import Multiplier, exact_lut, operand_values
from .netlist import Builder, Netlist

__all__ = [
    "Builder", "HwcostError", "ImportFailed", "Multiplier", "Netlist", "NetlistError",
    "UnknownMultiplier", "exact_lut", "operand_values",
]
