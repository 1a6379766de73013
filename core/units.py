"""Unit conventions shared by the energy model, reports and the hardware model.

EvoApprox publishes *power* (mW) measured at a fixed operation rate; hwcost works in *energy
per operation*.  The conversion assumes one multiplication per cycle at
:data:`REFERENCE_FREQ_GHZ`, so 1 mW corresponds to 1 pJ per operation.
"""

REFERENCE_FREQ_GHZ = 1.0


def power_mw_to_energy_pj(power_mw: float) -> float:
    """Energy per operation (pJ) of a circuit drawing ``power_mw`` at the reference rate."""
    return power_mw / REFERENCE_FREQ_GHZ


def energy_pj_to_power_mw(energy_pj: float) -> float:
    return energy_pj * REFERENCE_FREQ_GHZ
