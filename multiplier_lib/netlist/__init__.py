"""Gate netlists: cell vocabulary, structure and simulation, and a gate-emitting builder."""

from .builder import Builder
from .cells import CELL_ALIASES, CELLS
from .netlist import CONST0, CONST1, Gate, Netlist

__all__ = ["CELLS", "CELL_ALIASES", "CONST0", "CONST1", "Builder", "Gate", "Netlist"]
