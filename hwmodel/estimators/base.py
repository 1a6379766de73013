"""The estimator plug-in interface, and what every estimator shares.

An :class:`Estimator` names the component classes and actions it prices, says how far to
trust it (``accuracy``) and answers pJ per action.  Storage levels are asked one action at a
time (:meth:`Estimator.action_energy`: pJ per access of one row, and the source of the
figure); compute units all at once (:meth:`Estimator.compute_energy`: one MAC split into
multiply and add, with the multiplier that replaces the unit's exact one, if any), because an
approximate multiplier changes the multiply share only.  A plug-in need only implement
:meth:`Estimator.estimate`; the other two are built on it.  An estimator that finds out only
when asked that it has no model of a component after all raises :class:`NoEstimate`, and the
next estimator is asked (:mod:`hwmodel.estimators.registry`).

Shared here: technology scaling (every logic figure is a 45 nm figure scaled with
:func:`technology_scale`), Aladdin's 45 nm register and adder figures, and reading
attributes under their Accelergy v0.3/v0.4 spellings.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, NamedTuple

from core.errors import HwcostError

if TYPE_CHECKING:
    from .arithmetic import MultiplierUse

#: The storage actions every energy table has (per word there; per row from estimators) and
#: the compute unit's (per operation).
STORAGE_ACTIONS = ("read", "write", "update")
COMPUTE_ACTIONS = ("mac", "multiply", "add")
#: Actions that make an estimator one of storage (it is asked about storage levels), and
#: ones that make it one of compute units.
STORAGE_KIND_ACTIONS = frozenset({"read", "write", "update", "fill", "leak"})
COMPUTE_KIND_ACTIONS = frozenset({"mac", "compute", "mac_random", "multiply", "add"})
#: In an estimator's ``classes``: any class, asked after the estimators that name it.
ANY_CLASS = "*"


class ActionEnergy(NamedTuple):
    """pJ of one action and where the number came from."""

    energy_pj: float
    source: str


# --------------------------------------------------------------------------------------------
# technology scaling
# --------------------------------------------------------------------------------------------

#: Reference node of every built-in figure (NanGate/PDK45, Horowitz, Timeloop's example).
REFERENCE_NM = 45.0

#: Nominal core supply per node (V).  45 nm uses 1.1 V because the gate-level multiplier
#: energies are calibrated on NanGate/PDK45 at 1.1 V.
NOMINAL_VOLTAGE: dict[float, float] = {
    180.0: 1.8, 130.0: 1.3, 90.0: 1.2, 65.0: 1.1, 45.0: 1.1, 40.0: 1.1, 32.0: 1.0, 28.0: 0.9,
    22.0: 0.8, 20.0: 0.8, 16.0: 0.8, 14.0: 0.8, 12.0: 0.8, 10.0: 0.75, 7.0: 0.7, 5.0: 0.65,
}

_TECH_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(nm)?\s*$", re.IGNORECASE)


def parse_technology(value: Any) -> float:
    """Feature size in nm of ``45``, ``45.0``, ``"45nm"``, ``"45 nm"`` or ``"45"``.

    Only nodes with a known nominal voltage are accepted, because scaling to an unlisted node
    would silently invent a supply voltage.
    """
    nm: float | None = None
    if isinstance(value, bool):
        nm = None
    elif isinstance(value, int | float):
        nm = float(value)
    elif isinstance(value, str):
        m = _TECH_RE.match(value)
        if m:
            nm = float(m.group(1))
    if nm is None or nm not in NOMINAL_VOLTAGE:
        known = ", ".join(f"{n:g}nm" for n in sorted(NOMINAL_VOLTAGE, reverse=True))
        raise HwcostError(f"unknown technology {value!r}; known nodes: {known}")
    return nm


def technology_scale(technology_nm: float) -> float:
    """Energy at ``technology_nm`` relative to 45 nm: ``(L / 45) * (V(L) / V(45))**2``.

    Dynamic energy is C V^2 and capacitance shrinks roughly linearly with the feature size;
    this first-order rule is what keeps a 45 nm fit usable for other nodes without pretending
    to more precision than it has (expect +-50 % below 28 nm, where wires dominate).
    """
    nm = parse_technology(technology_nm)
    return (nm / REFERENCE_NM) * (NOMINAL_VOLTAGE[nm] / NOMINAL_VOLTAGE[REFERENCE_NM]) ** 2


#: Aladdin (40 nm) register, 9 fJ per bit and access, and adder, 0.21 pJ per 32 bits, at 45 nm
#: (x 1.151: hwcomponents' Stillmaker-Baas scaling from 40 to 45 nm).
ALADDIN_40_TO_45 = 1.0 / 0.8689770303
REGISTER_PJ_PER_BIT = 0.009 * ALADDIN_40_TO_45
ADDER_PJ_PER_BIT = 0.21 / 32 * ALADDIN_40_TO_45


# --------------------------------------------------------------------------------------------
# attribute helpers
# --------------------------------------------------------------------------------------------

_ALIASES: dict[str, tuple[str, ...]] = {
    "depth": ("depth", "memory_depth", "data_storage_depth", "entries"),
    "width": ("width", "memory_width", "data_storage_width"),
    "datawidth": ("datawidth", "word-bits", "word_bits", "data_width"),
    "block_size": ("block_size", "block-size"),
    "n_banks": ("n_banks", "banks"),
}


def attribute(attributes: dict[str, Any], key: str, default: Any = None) -> Any:
    """``attributes[key]`` under its Accelergy v0.3/v0.4 spellings (``memory_depth``...)."""
    for name in _ALIASES.get(key, (key,)):
        value = attributes.get(name)
        if value is not None:
            return value
    return default


def positive_number(attributes: dict[str, Any], key: str, component_class: str,
                    default: float | None = None) -> float:
    """``attributes[key]`` (:func:`attribute`) as a positive number, or a clear error."""
    value = attribute(attributes, key, default)
    if value is None:
        raise HwcostError(f"{component_class}: attribute '{key}' is needed to estimate energy")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise HwcostError(f"{component_class}: attribute '{key}' must be a positive number, "
                          f"got {value!r}")
    return float(value)


def mac_widths(attributes: dict[str, Any], default_width: int = 8,
               where: str = "compute unit") -> tuple[int, int]:
    """(multiplier_width, adder_width) of a MAC.

    ``multiplier_width`` wins over ``datawidth``: an 8 x 8 MAC whose words (and ``datawidth``)
    are 16 bits wide still has an 8-bit multiplier (reading ``datawidth`` first priced it at
    16 bits, 4x too much).  The accumulator is ``adder_width`` bits, default
    ``2 * multiplier_width + 8``.
    """
    mw = attributes.get("multiplier_width")
    if mw is None:
        mw = attribute(attributes, "datawidth", default_width)
    aw = attributes.get("adder_width")
    for key, value in (("multiplier_width", mw), ("adder_width", aw)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or value <= 0 or not float(value).is_integer()):
            raise HwcostError(f"{where}: attribute '{key}' must be a positive integer, "
                              f"got {value!r}")
    return int(mw), int(aw) if aw is not None else 2 * int(mw) + 8


# --------------------------------------------------------------------------------------------
# the plug-in interface
# --------------------------------------------------------------------------------------------


class NoEstimate(Exception):
    """An estimator that names a component's class has no model of it after all (its
    library lacks the model, say): the next estimator is asked, and the energy table notes
    it.  ``note`` says why in a sentence, ``tag`` in a few words for the sources."""

    def __init__(self, what: str, note: str, tag: str):
        super().__init__(what)
        self.note = note
        self.tag = tag


class Estimator(ABC):
    """One energy plug-in: the classes and actions it prices, and how far to trust it."""

    name: str = "estimator"
    accuracy: str = "unknown"
    classes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def handles(self, component_class: str) -> bool:
        """Whether this estimator names ``component_class`` (case-insensitive)."""
        return component_class.lower() in {c.lower() for c in self.classes}

    @property
    def any_class(self) -> bool:
        """Whether it will try any class (``"*"`` among its classes)."""
        return ANY_CLASS in self.classes

    @property
    def prices_storage(self) -> bool:
        return bool(STORAGE_KIND_ACTIONS.intersection(self.actions))

    @property
    def prices_compute(self) -> bool:
        return bool(COMPUTE_KIND_ACTIONS.intersection(self.actions))

    @abstractmethod
    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        """pJ per ``action`` (per row access for storage), or None when not handled."""

    def action_energy(self, component_class: str, attributes: dict[str, Any], action: str,
                      technology_nm: float) -> ActionEnergy | None:
        """:meth:`estimate` with its source (the estimator's name), or None."""
        energy = self.estimate(component_class, attributes, action, technology_nm)
        return None if energy is None else ActionEnergy(energy, self.name)

    def compute_energy(self, component_class: str, attributes: dict[str, Any],
                       technology_nm: float, multiplier: MultiplierUse | None = None
                       ) -> dict[str, ActionEnergy]:
        """``mac``, ``multiply`` and ``add`` of one operation of a compute unit, the multiply
        share scaled for ``multiplier`` (its energy relative to the exact multiplier of its
        shape, times its partial-product bits relative to the unit's).

        This default asks :meth:`action_energy` for ``mac`` (else ``compute``), ``multiply``
        and ``add``; without a split the MAC is left whole, and then no multiplier can be
        applied to it.
        """
        def ask(action: str) -> ActionEnergy | None:
            return self.action_energy(component_class, attributes, action, technology_nm)

        mac = ask("mac")
        if mac is None:
            mac = ask("compute")
        mul, add = ask("multiply"), ask("add")
        if mac is None and mul is not None and add is not None:
            mac = ActionEnergy(mul.energy_pj + add.energy_pj, self.name)
        if mac is None:
            raise HwcostError(f"estimator {self.name} cannot price 'mac' of class "
                              f"{component_class}")
        if mul is None or add is None:
            if multiplier is not None:
                raise HwcostError(f"estimator {self.name} does not split the MAC of class "
                                  f"{component_class} into multiply and add, so multiplier "
                                  f"{multiplier.name} cannot replace its multiplier")
            return {"mac": mac, "multiply": ActionEnergy(mac.energy_pj, f"{mac.source}, "
                                                                       "not split"),
                    "add": ActionEnergy(0.0, f"{mac.source}, not split")}
        if multiplier is not None:
            width = mac_widths(attributes, int(attribute(attributes, "datawidth", 8)))[0]
            energy = multiplier.energy()
            factor, text = energy.scale_in(width)
            mul = ActionEnergy(mul.energy_pj * factor, f"{mul.source}, {text}")
            mac = ActionEnergy(mul.energy_pj + add.energy_pj,
                               f"{mac.source} with multiply x {factor:.3f} from {energy.source}")
        return {"mac": mac, "multiply": mul, "add": add}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "classes": list(self.classes), "actions": list(self.actions),
                "accuracy": self.accuracy}
