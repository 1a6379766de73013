"""Gate-level area and energy estimates of a multiplier netlist.

The model, in the spirit of an Accelergy primitive-component estimator:

* **Area** is the sum of per-cell areas taken from the NanGate 45 nm Open Cell Library
  (X1 drive strength, um^2), multiplied by :data:`AREA_CALIBRATION`.
* **Dynamic energy** per operation is ``sum over nets of toggles/op x E_toggle(driving
  cell)``, the toggles counted by zero-delay simulation of an operand stream (uniform random
  pairs by default, or drawn from the given operand distributions) and ``E_toggle`` a
  per-cell switching energy (fJ per output transition: internal energy plus a typical
  45 nm fan-out load at 1.1 V), multiplied by :data:`ENERGY_CALIBRATION`.
* **Leakage** energy per operation is the summed cell leakage (nW) over one reference cycle
  (:data:`~core.units.REFERENCE_FREQ_GHZ`).

The two calibration factors were fitted once so that hwcost's generated exact 8x8 array
multiplier (``exact8u``) lands on the published EvoApprox exact multiplier ``mul8u_1JFF``
(0.391 mW, 709.6 um^2, PDK45): estimates are therefore on the EvoApprox PDK45 scale and can be
set beside published figures.  Zero-delay simulation ignores glitches; the calibration absorbs
their average share for array multipliers, so designs with unusually deep logic are somewhat
underestimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.units import REFERENCE_FREQ_GHZ

from .multiplier import Multiplier
from .netlist import Netlist

#: cell kind -> (area um^2, switching energy fJ per output toggle, leakage nW).
CELL_COSTS: dict[str, tuple[float, float, float]] = {
    "BUF": (0.798, 1.00, 21.0),
    "NOT": (0.532, 0.60, 14.0),
    "AND": (1.064, 1.20, 25.0),
    "OR": (1.064, 1.30, 23.0),
    "XOR": (1.596, 2.00, 36.0),
    "NAND": (0.798, 0.80, 17.0),
    "NOR": (0.798, 0.90, 22.0),
    "XNOR": (1.596, 2.00, 36.0),
    "AND3": (1.330, 1.40, 27.0),
    "OR3": (1.330, 1.50, 25.0),
    "NAND3": (1.064, 1.00, 19.0),
    "NOR3": (1.064, 1.10, 20.0),
    "MUX2": (1.862, 2.20, 38.0),
    "AOI21": (1.064, 1.00, 27.0),
    "OAI21": (1.064, 1.00, 24.0),
    "AOI22": (1.330, 1.30, 33.0),
    "OAI22": (1.330, 1.30, 32.0),
    "HA": (2.660, 2.20, 60.0),
    "FA": (4.256, 3.00, 90.0),
}

#: Fitted once: exact8u estimate == mul8u_1JFF published area (709.6 um^2).
AREA_CALIBRATION = 2.284
#: Fitted once: exact8u estimate == mul8u_1JFF published power (0.391 mW -> 0.391 pJ/op).
ENERGY_CALIBRATION = 2.4295

DEFAULT_PAIRS = 100_000
DEFAULT_SEED = 2024


@dataclass(frozen=True)
class HardwareEstimate:
    gates: dict[str, int]
    area_um2: float
    dynamic_pj: float
    leakage_pj: float
    toggles_per_op: float

    @property
    def energy_pj(self) -> float:
        return self.dynamic_pj + self.leakage_pj

    @property
    def gate_total(self) -> int:
        return sum(self.gates.values())


def operand_stream(a_bits: int, b_bits: int, n_pairs: int = DEFAULT_PAIRS,
                   joint: np.ndarray | None = None,
                   seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Operand codes, one pair per cycle: uniform, or drawn from a joint distribution."""
    rng = np.random.default_rng(seed)
    if joint is None:
        return (rng.integers(0, 1 << a_bits, n_pairs), rng.integers(0, 1 << b_bits, n_pairs))
    flat = rng.choice(joint.size, size=n_pairs, p=joint.ravel() / joint.sum())
    return flat // (1 << b_bits), flat % (1 << b_bits)


def area_um2(netlist: Netlist) -> float:
    return AREA_CALIBRATION * sum(CELL_COSTS[g.kind][0] for g in netlist.gates)


def estimate_netlist(netlist: Netlist, joint: np.ndarray | None = None,
                     n_pairs: int = DEFAULT_PAIRS, seed: int = DEFAULT_SEED) -> HardwareEstimate:
    """Area and per-operation energy of ``netlist`` for the given operand statistics."""
    a, b = operand_stream(netlist.a_bits, netlist.b_bits, n_pairs, joint, seed)
    toggles = netlist.toggle_counts(a, b)
    cycles = max(n_pairs - 1, 1)
    switching_fj = 0.0
    total_toggles = 0
    for g in netlist.gates:
        per_toggle = CELL_COSTS[g.kind][1]
        for net in g.outputs:
            switching_fj += per_toggle * toggles[net]
            total_toggles += int(toggles[net])
    dynamic_pj = ENERGY_CALIBRATION * switching_fj / cycles / 1000.0
    leak_nw = sum(CELL_COSTS[g.kind][2] for g in netlist.gates)
    leakage_pj = leak_nw * 1e-9 / (REFERENCE_FREQ_GHZ * 1e9) * 1e12
    return HardwareEstimate(gates=netlist.gate_counts(), area_um2=area_um2(netlist),
                            dynamic_pj=dynamic_pj, leakage_pj=leakage_pj,
                            toggles_per_op=total_toggles / cycles)


@lru_cache(maxsize=32)
def exact_reference_energy_pj(a_bits: int, b_bits: int, signed: bool) -> float:
    """Energy of hwcost's exact array multiplier of the same shape, uniform operands."""
    from .generators import generate

    name = f"exact{a_bits}{'s' if signed else 'u'}" + (f"x{b_bits}" if b_bits != a_bits else "")
    mult = generate(name)
    assert mult.netlist is not None
    return estimate_netlist(mult.netlist).energy_pj


def estimate(mult: Multiplier, joint: np.ndarray | None = None,
             n_pairs: int = DEFAULT_PAIRS) -> HardwareEstimate | None:
    """Hardware estimate of a multiplier, or None when only its LUT is known."""
    if mult.netlist is None:
        return None
    return estimate_netlist(mult.netlist, joint=joint, n_pairs=n_pairs)
