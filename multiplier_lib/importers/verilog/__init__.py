"""Read a multiplier written as gate-level Verilog into a :class:`Netlist` (or a ROM table).

Three styles occur in practice and all are read by one small parser:

* expression style (EvoApproxLib ``mul8u_XXX.v``): one ``assign`` per net built from ``&``,
  ``|``, ``^``, ``~`` on single bits;
* cell-instance style (EvoApprox ``_pdk45.v`` and the exact ``mul8u_1JFF.v``):
  ``PDKGENFAX1 n548(.A(..), .B(..), ...)`` instances of library cells; in some published
  ``.v`` files the names were mangled by a buggy find-and-replace (``NPDKGEPDKGENNAND2X1``
  means ``NAND2X1``), see :func:`decode_cell`;
* a ``case ({A, B})`` ROM, which is what :mod:`multiplier_lib.export` writes for multipliers
  known only by their truth table.

EvoApprox files also append behavioural definitions of their cells (``module PDKGENFAX1(...)``)
after the multiplier; when a used cell is defined in the file, its definition is simulated and
decides the cell's function, since that is what the file means to any simulator.

Statements may come in any order (EvoApprox assigns outputs from nets driven further down),
so the whole module is collected first and the netlist is built afterwards.  ``assign X = Y``
is a net alias, not a buffer, because it costs nothing in silicon; every operator and every
cell instance becomes one gate so that gate counts, area and energy stay realistic.
Every user mistake raises :class:`ImportFailed` carrying the file and the source line.

Three stages, one module each: :mod:`.lexer` (text -> tokens), :mod:`.parser` (tokens -> one
parse tree per module, counted against the limits as it goes) and :mod:`.elaborate` (parse
trees -> the :class:`VerilogDesign`: top module, cell kinds, ports, netlist or ROM).
"""

from .elaborate import VerilogDesign, decode_cell, parse_verilog

__all__ = ["VerilogDesign", "decode_cell", "parse_verilog"]
