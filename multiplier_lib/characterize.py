"""One characterization record per multiplier: error metrics, hardware estimates, published.

The record is the single shape that the CLI prints (table or JSON), the report renders and
later the hardware model reads for the multiplier's energy, so its keys are fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .hardware import estimate, estimate_netlist, exact_reference_energy_pj
from .metrics import error_metrics, joint_distribution, load_histogram
from .multiplier import Multiplier

RECORD_KEYS = ("name", "a_bits", "b_bits", "signed", "mae", "mae_pct", "wce", "wce_pct",
               "wcre_pct", "mre_pct", "ep_pct", "mse", "bias", "error_std", "gates",
               "area_um2", "energy_pj", "energy_rel_exact", "published")


@dataclass(frozen=True)
class OperandStats:
    """Operand distributions given by the user: 1-D per-code histograms or a joint one."""

    acts: np.ndarray | None = None
    weights: np.ndarray | None = None
    joint: np.ndarray | None = None

    @property
    def uniform(self) -> bool:
        return self.acts is None and self.weights is None and self.joint is None

    @classmethod
    def from_files(cls, a_bits: int, b_bits: int, acts: str | Path | None = None,
                   weights: str | Path | None = None,
                   joint: str | Path | None = None) -> OperandStats:
        return cls(
            acts=None if acts is None else load_histogram(acts, length=1 << a_bits),
            weights=None if weights is None else load_histogram(weights, length=1 << b_bits),
            joint=None if joint is None else load_histogram(joint,
                                                            shape=(1 << a_bits, 1 << b_bits)))


def characterize(mult: Multiplier, stats: OperandStats | None = None) -> dict:
    """The record of ``mult``; estimates are None when there is no netlist."""
    stats = stats or OperandStats()
    p = joint_distribution(mult, stats.acts, stats.weights, stats.joint)
    metrics = error_metrics(mult, p)
    hw = estimate(mult, joint=p)
    if hw is None:
        rel = None
    elif p is None:
        rel = hw.energy_pj / exact_reference_energy_pj(mult.a_bits, mult.b_bits, mult.signed)
    else:
        from .generators import generate

        shape = f"{mult.a_bits}{'s' if mult.signed else 'u'}" + (
            f"x{mult.b_bits}" if mult.b_bits != mult.a_bits else "")
        exact = generate(f"exact{shape}").netlist
        assert exact is not None
        rel = hw.energy_pj / estimate_netlist(exact, joint=p).energy_pj
    record = {"name": mult.name, "a_bits": mult.a_bits, "b_bits": mult.b_bits,
              "signed": mult.signed, **metrics.as_dict(),
              "gates": None if hw is None else hw.gates,
              "area_um2": None if hw is None else hw.area_um2,
              "energy_pj": None if hw is None else hw.energy_pj,
              "energy_rel_exact": rel,
              "published": dict(mult.published)}
    assert tuple(record) == RECORD_KEYS
    return record
