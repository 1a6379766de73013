"""The gate/cell vocabulary shared by importers, generators, simulation and the cost model.

A cell is a combinational function with named input pins and named output pins.  Importers
map library cell names (``PDKGENFAX1``, ``NAND2X1``...) onto these kinds; the energy and area
model (:mod:`multiplier_lib.hardware`) has one row per kind.  Values are numpy ``uint8``
arrays holding 0/1, one element per simulated operand pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Bits = np.ndarray


def _inv(x: Bits) -> Bits:
    return x ^ 1


@dataclass(frozen=True)
class CellKind:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    evaluate: Callable[..., tuple[Bits, ...]]
    description: str


def _one(f: Callable[..., Bits]) -> Callable[..., tuple[Bits, ...]]:
    return lambda *xs: (f(*xs),)


def _ha(a: Bits, b: Bits) -> tuple[Bits, Bits]:
    return a ^ b, a & b


def _fa(a: Bits, b: Bits, c: Bits) -> tuple[Bits, Bits]:
    return a ^ b ^ c, (a & b) | (c & (a ^ b))


CELLS: dict[str, CellKind] = {
    k.name: k
    for k in [
        CellKind("BUF", ("A",), ("Y",), _one(lambda a: a.copy()), "buffer"),
        CellKind("NOT", ("A",), ("Y",), _one(_inv), "inverter"),
        CellKind("AND", ("A", "B"), ("Y",), _one(lambda a, b: a & b), "2-input AND"),
        CellKind("OR", ("A", "B"), ("Y",), _one(lambda a, b: a | b), "2-input OR"),
        CellKind("XOR", ("A", "B"), ("Y",), _one(lambda a, b: a ^ b), "2-input XOR"),
        CellKind("NAND", ("A", "B"), ("Y",), _one(lambda a, b: _inv(a & b)), "2-input NAND"),
        CellKind("NOR", ("A", "B"), ("Y",), _one(lambda a, b: _inv(a | b)), "2-input NOR"),
        CellKind("XNOR", ("A", "B"), ("Y",), _one(lambda a, b: _inv(a ^ b)), "2-input XNOR"),
        CellKind("AND3", ("A", "B", "C"), ("Y",), _one(lambda a, b, c: a & b & c), "3-input AND"),
        CellKind("OR3", ("A", "B", "C"), ("Y",), _one(lambda a, b, c: a | b | c), "3-input OR"),
        CellKind("NAND3", ("A", "B", "C"), ("Y",), _one(lambda a, b, c: _inv(a & b & c)),
                 "3-input NAND"),
        CellKind("NOR3", ("A", "B", "C"), ("Y",), _one(lambda a, b, c: _inv(a | b | c)),
                 "3-input NOR"),
        CellKind("MUX2", ("A", "B", "S"), ("Y",),
                 _one(lambda a, b, s: (a & _inv(s)) | (b & s)), "2:1 mux, Y = S ? B : A"),
        CellKind("AOI21", ("A", "B", "C"), ("Y",), _one(lambda a, b, c: _inv((a & b) | c)),
                 "Y = ~((A & B) | C)"),
        CellKind("OAI21", ("A", "B", "C"), ("Y",), _one(lambda a, b, c: _inv((a | b) & c)),
                 "Y = ~((A | B) & C)"),
        CellKind("AOI22", ("A", "B", "C", "D"), ("Y",),
                 _one(lambda a, b, c, d: _inv((a & b) | (c & d))), "Y = ~((A & B) | (C & D))"),
        CellKind("OAI22", ("A", "B", "C", "D"), ("Y",),
                 _one(lambda a, b, c, d: _inv((a | b) & (c | d))), "Y = ~((A | B) & (C | D))"),
        CellKind("HA", ("A", "B"), ("YS", "YC"), _ha, "half adder: YS sum, YC carry"),
        CellKind("FA", ("A", "B", "C"), ("YS", "YC"), _fa, "full adder: YS sum, YC carry"),
    ]
}

#: Library cell base names (drive strength stripped) that mean one of our kinds.
CELL_ALIASES: dict[str, str] = {
    "INV": "NOT", "NOT": "NOT", "BUF": "BUF", "AND2": "AND", "OR2": "OR", "XOR2": "XOR",
    "NAND2": "NAND", "NOR2": "NOR", "XNOR2": "XNOR", "AND3": "AND3", "OR3": "OR3",
    "NAND3": "NAND3", "NOR3": "NOR3", "MUX2": "MUX2", "MX2": "MUX2", "AOI21": "AOI21",
    "OAI21": "OAI21", "AOI22": "AOI22", "OAI22": "OAI22", "HA": "HA", "FA": "FA",
    "AND": "AND", "OR": "OR", "XOR": "XOR", "NAND": "NAND", "NOR": "NOR", "XNOR": "XNOR",
}
