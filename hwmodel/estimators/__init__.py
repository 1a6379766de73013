"""Energy estimators: Accelergy-style plug-ins that price one action of one component class.

Accelergy asks every installed plug-in "can you estimate action A of class C with these
attributes?" and keeps the most accurate answer.  hwcost keeps that shape so that its numbers
can be reasoned about one component at a time and replaced by an Accelergy ``ERT.yaml``
(:mod:`hwmodel.ert`) wherever the user has one: an :class:`Estimator` names the classes and
actions it handles, says honestly how accurate it is, and returns pJ per action (or None).

* :mod:`~hwmodel.estimators.base`: the plug-in interface, technology scaling, attributes.
* :mod:`~hwmodel.estimators.registry`: the one registry storage levels and compute units are
  priced through (:func:`register_estimator` adds a user's plug-in; the hwcomponents
  estimators of :mod:`hwmodel.accelergy_estimators` register there too, under the
  ``accelergy`` backend).
* :mod:`~hwmodel.estimators.storage`: DRAM, SRAM (CACTI's figures on a grid), register files
  and registers.
* :mod:`~hwmodel.estimators.arithmetic`: integer and FP MACs, and the energy of a
  multiplier_lib multiplier that replaces a MAC's exact one.

Conventions (the same as Accelergy's, so that an ERT can be swapped in):

* Storage energies are **per access of one row** (``width`` bits, i.e. ``block_size`` words);
  :func:`hwmodel.energy.build_energy_table` divides by ``block_size`` to get the per-word
  figures Timeloop reports as "Energy (per-scalar-access)".
* Compute energies are per operation (one MAC, one multiply, one add).
* Every logic figure is a **45 nm** figure scaled to the component's technology with
  :func:`technology_scale`; SRAM arrays are CACTI's figures at the node itself; DRAM energy
  is an interface property and is not scaled.
"""

from __future__ import annotations

from .arithmetic import (
    FP_ENERGY_PJ,
    MacBreakdown,
    MACEstimator,
    MULTIPLIER_PJ_8x8,
    MultiplierEnergy,
    MultiplierUse,
    exact_multiplier_pj,
    multiplier_energy,
)
from .base import (
    ADDER_PJ_PER_BIT,
    ALADDIN_40_TO_45,
    ANY_CLASS,
    COMPUTE_ACTIONS,
    NOMINAL_VOLTAGE,
    REFERENCE_NM,
    REGISTER_PJ_PER_BIT,
    STORAGE_ACTIONS,
    ActionEnergy,
    Estimator,
    NoEstimate,
    attribute,
    mac_widths,
    parse_technology,
    positive_number,
    technology_scale,
)
from .registry import (
    ESTIMATORS,
    REGISTRY,
    EstimatorRegistry,
    describe_estimators,
    find_estimator,
    register_estimator,
    registered_estimators,
    unregister_estimator,
)
from .storage import (
    DEFAULT_DRAM_TYPE,
    DRAM_PJ_PER_BIT,
    SRAM_DEPTH_EXPONENT,
    SRAM_GRID_RESOURCE,
    SRAM_MIN_ROWS_PER_BANK,
    SRAM_MIN_WIDTH,
    SRAM_WIDTH_SHARE,
    DRAMEstimator,
    RegfileEstimator,
    RegisterEstimator,
    SRAMEstimator,
    SramGrid,
    address_generator_pj,
    regfile_access_energy_pj,
    register_access_energy_pj,
    sram_access_energy_pj,
    sram_array_pj,
    sram_grid,
)

__all__ = [
    "ADDER_PJ_PER_BIT", "ALADDIN_40_TO_45", "ANY_CLASS", "COMPUTE_ACTIONS", "DEFAULT_DRAM_TYPE",
    "DRAM_PJ_PER_BIT", "ESTIMATORS", "FP_ENERGY_PJ", "NOMINAL_VOLTAGE", "REFERENCE_NM",
    "REGISTER_PJ_PER_BIT", "REGISTRY", "SRAM_DEPTH_EXPONENT", "SRAM_GRID_RESOURCE",
    "SRAM_MIN_ROWS_PER_BANK", "SRAM_MIN_WIDTH", "SRAM_WIDTH_SHARE", "STORAGE_ACTIONS",
    "ActionEnergy", "DRAMEstimator", "Estimator", "EstimatorRegistry", "MACEstimator",
    "MULTIPLIER_PJ_8x8", "MacBreakdown", "MultiplierEnergy", "MultiplierUse", "NoEstimate",
    "RegfileEstimator", "RegisterEstimator", "SRAMEstimator", "SramGrid",
    "address_generator_pj", "attribute", "describe_estimators", "exact_multiplier_pj",
    "find_estimator", "mac_widths", "multiplier_energy", "parse_technology", "positive_number",
    "regfile_access_energy_pj", "register_access_energy_pj", "register_estimator",
    "registered_estimators", "sram_access_energy_pj", "sram_array_pj", "sram_grid",
    "technology_scale", "unregister_estimator",
]
