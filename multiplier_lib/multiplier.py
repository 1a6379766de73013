"""The :class:`Multiplier`: a truth table plus what is known about the circuit behind it.

The LUT is the contract every other part of hwcost relies on: ``lut[a_code, b_code]`` is the
product of the raw operand bit patterns (two's complement codes for signed multipliers),
stored as ``int32`` so that emulation kernels can gather from it directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import HwcostError

from .netlist import Netlist

MAX_BITS = 8

#: Keys of published figures a file header may carry (EvoApprox style).
PUBLISHED_KEYS = ("power_mw", "area_um2", "delay_ns", "mae", "mae_pct", "wce", "wce_pct",
                  "wcre_pct", "ep_pct", "mre_pct", "mse")


def operand_values(bits: int, signed: bool) -> np.ndarray:
    """Numeric value of every code ``0 .. 2**bits - 1`` (two's complement if signed)."""
    codes = np.arange(1 << bits, dtype=np.int64)
    if signed:
        codes = np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes)
    return codes


def exact_lut(a_bits: int, b_bits: int, signed: bool) -> np.ndarray:
    """The exact product table for the given operand widths, as int64."""
    return np.multiply.outer(operand_values(a_bits, signed), operand_values(b_bits, signed))


def raw_to_product(raw: np.ndarray, out_bits: int, signed: bool) -> np.ndarray:
    """Interpret raw output bit patterns as products (two's complement if signed)."""
    raw = np.asarray(raw, dtype=np.int64) & ((1 << out_bits) - 1)
    if signed:
        raw = np.where(raw >= 1 << (out_bits - 1), raw - (1 << out_bits), raw)
    return raw


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Multiplier:
    """An ``a_bits x b_bits`` multiplier: truth table, provenance, published figures, netlist."""

    name: str
    a_bits: int
    b_bits: int
    signed: bool
    lut: np.ndarray
    published: dict[str, float] = field(default_factory=dict)
    source: str | None = None
    source_sha256: str | None = None
    netlist: Netlist | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.a_bits <= MAX_BITS or not 1 <= self.b_bits <= MAX_BITS:
            raise HwcostError(f"multiplier {self.name}: operand widths must be 1..{MAX_BITS} "
                              f"bits, got {self.a_bits}x{self.b_bits}")
        shape = (1 << self.a_bits, 1 << self.b_bits)
        lut = np.asarray(self.lut)
        if lut.shape != shape:
            raise HwcostError(f"multiplier {self.name}: LUT shape {lut.shape} does not match "
                              f"{self.a_bits}x{self.b_bits} operands (expected {shape})")
        self.lut = lut.astype(np.int32)

    @classmethod
    def from_netlist(cls, name: str, netlist: Netlist, signed: bool, **kwargs) -> Multiplier:
        raw = netlist.truth_table()
        lut = raw_to_product(raw, netlist.out_bits, signed)
        return cls(name=name, a_bits=netlist.a_bits, b_bits=netlist.b_bits, signed=signed,
                   lut=lut, netlist=netlist, **kwargs)

    @property
    def kind(self) -> str:
        return f"{self.a_bits}x{self.b_bits} {'signed' if self.signed else 'unsigned'}"

    def exact(self) -> np.ndarray:
        return exact_lut(self.a_bits, self.b_bits, self.signed)

    def error_table(self) -> np.ndarray:
        """``approx - exact`` for every operand pair (int64)."""
        return self.lut.astype(np.int64) - self.exact()

    def summary(self) -> str:
        gates = f", {len(self.netlist.gates)} gates" if self.netlist is not None else ", LUT only"
        return f"{self.kind}{gates}" + (f": {self.description}" if self.description else "")
