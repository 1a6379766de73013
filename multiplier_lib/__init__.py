"""Approximate multipliers: truth tables, gate netlists, importers, generators, metrics."""

from core.errors import HwcostError

from .characterize import OperandStats, characterize
from .errors import ImportFailed, NetlistError, UnknownMultiplier
from .generators import generate
from .importers import import_file
from .library import Library, resolve
from .multiplier import Multiplier, exact_lut, operand_values
from .netlist import Builder, Netlist

__all__ = [
    "Builder", "HwcostError", "ImportFailed", "Library", "Multiplier", "Netlist", "NetlistError",
    "OperandStats", "UnknownMultiplier", "characterize", "exact_lut", "generate", "import_file",
    "operand_values", "resolve",
]
