"""The estimator registry: which estimator prices which component, for every backend.

Accelergy asks every installed plug-in whether it can price an action of a component class
and keeps the best answer.  hwcost keeps one registry of that shape: an estimator registers
(:func:`register_estimator`) under a **backend** and says which classes and actions it
prices and how accurate it is (:class:`~hwmodel.estimators.base.Estimator`); storage levels
and compute units are then priced through it (:func:`hwmodel.energy.build_energy_table`).

* ``builtin``: hwcost's own estimators (:data:`ESTIMATORS`, registered here), and every
  plug-in registered without naming a backend.
* ``accelergy``: Accelergy's own models through hwcomponents, registered by
  :mod:`hwmodel.accelergy_estimators` when it is imported (``backend="accelergy"`` imports
  it).

**Who is asked** (:meth:`EstimatorRegistry.candidates`): the chosen backend's estimators
first, then, for any other backend, the built-in ones.  Within a backend, the classes a
component gives are tried in turn (a storage level's ``subclass`` before its ``class``, as
Accelergy v0.4 reads ``class: storage, subclass: smartbuffer_RF``; a compute unit's
``class`` first) against the estimators in registration order (``first=True`` puts a
plug-in before the others, to take a class over); an estimator whose classes include
``"*"`` comes after them, asked with the component's class.  Storage levels are asked of
estimators with storage actions (read, write...), compute units of those with compute
actions (mac, multiply, add...).  An estimator that raises
:class:`~hwmodel.estimators.base.NoEstimate` passes the component on to the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from core.errors import HwcostError

from .arithmetic import MACEstimator
from .base import ANY_CLASS, Estimator
from .storage import DRAMEstimator, RegfileEstimator, RegisterEstimator, SRAMEstimator

BUILTIN = "builtin"
#: the kinds of component an estimator is asked about
KINDS = ("storage", "compute")


class EstimatorRegistry:
    """Estimators by backend, in the order they are asked."""

    def __init__(self, estimators: Iterable[Estimator] = (), backend: str = BUILTIN):
        self._by_backend: dict[str, list[Estimator]] = {}
        for est in estimators:
            self.register(est, backend)

    # ------------------------------------------------------------------ registering
    def register(self, estimator: Estimator | type[Estimator], backend: str = BUILTIN,
                 first: bool = False) -> Estimator:
        """Add ``estimator`` (an instance, or a class made with no arguments) to
        ``backend``; ``first`` puts it before the backend's other estimators.  Its name must
        be new to the registry."""
        if isinstance(estimator, type) and issubclass(estimator, Estimator):
            estimator = estimator()
        if not isinstance(estimator, Estimator):
            raise HwcostError(f"an estimator must be an hwmodel.estimators.Estimator, got "
                              f"{estimator!r}")
        name = str(estimator.name or "").strip()
        if not name:
            raise HwcostError("an estimator needs a name")
        if not isinstance(backend, str) or not backend.strip():
            raise HwcostError(f"estimator {name}: backend must be a name, got {backend!r}")
        backend = backend.strip().lower()
        if not estimator.classes or not all(isinstance(c, str) and c for c in
                                            estimator.classes):
            raise HwcostError(f"estimator {name}: 'classes' must name the component classes "
                              f"it prices, got {estimator.classes!r}")
        if not (estimator.prices_storage or estimator.prices_compute):
            raise HwcostError(f"estimator {name}: its actions {list(estimator.actions)} are "
                              "neither storage actions (read, write, update, leak) nor compute "
                              "actions (mac, compute, multiply, add)")
        for other_backend, ests in self._by_backend.items():
            for other in ests:
                if other.name == name:
                    raise HwcostError(f"an estimator named {name!r} is already registered "
                                      f"(backend {other_backend}, {type(other).__name__}); "
                                      "unregister it first or choose another name")
        ests = self._by_backend.setdefault(backend, [])
        if first:
            ests.insert(0, estimator)
        else:
            ests.append(estimator)
        return estimator

    def unregister(self, name: str) -> Estimator:
        """Remove the estimator called ``name`` and return it."""
        for ests in self._by_backend.values():
            for est in ests:
                if est.name == name:
                    ests.remove(est)
                    return est
        raise HwcostError(f"no estimator named {name!r} is registered; registered: "
                          f"{', '.join(e.name for e in self.all())}")

    def with_builtin(self, estimators: Iterable[Estimator]) -> EstimatorRegistry:
        """A copy whose built-in estimators are ``estimators`` (other backends' kept)."""
        out = EstimatorRegistry()
        out._by_backend = {b: list(ests) for b, ests in self._by_backend.items()}
        out._by_backend[BUILTIN] = list(estimators)
        return out

    # ------------------------------------------------------------------ asking
    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(self._by_backend)

    def all(self) -> list[Estimator]:
        return [e for ests in self._by_backend.values() for e in ests]

    def groups(self, backend: str = BUILTIN) -> list[list[Estimator]]:
        """The estimators asked for ``backend``: its own, then (for another backend) the
        built-in ones."""
        backend = backend.lower()
        own = list(self._by_backend.get(backend, []))
        return [own] if backend == BUILTIN else [own, list(self._by_backend.get(BUILTIN, []))]

    def ordered(self, backend: str = BUILTIN) -> list[Estimator]:
        return [e for group in self.groups(backend) for e in group]

    def candidates(self, component_class: str, attributes: dict[str, Any] | None, kind: str,
                   backend: str = BUILTIN) -> Iterator[tuple[Estimator, str]]:
        """(estimator, class to ask it about) for a ``kind`` component (``"storage"`` or
        ``"compute"``), in the order they are asked (module docstring)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        sub = str((attributes or {}).get("subclass") or "")
        tried = [sub, component_class] if kind == "storage" else [component_class, sub]
        seen: set[int] = set()
        for group in self.groups(backend):
            group = [e for e in group
                     if (e.prices_storage if kind == "storage" else e.prices_compute)]
            for cls in tried:
                if not cls:
                    continue
                for est in group:
                    if id(est) not in seen and est.handles(cls):
                        seen.add(id(est))
                        yield est, cls
            for est in group:
                if id(est) not in seen and est.any_class:
                    seen.add(id(est))
                    yield est, component_class

    def known_classes(self, kind: str, backend: str = BUILTIN) -> list[str]:
        """The classes some estimator of ``kind`` names, once each (the built-in estimators'
        spelling first), for error messages."""
        out: dict[str, str] = {}
        groups = self.groups(backend)
        for group in groups[-1:] + groups[:-1]:
            for est in group:
                if est.prices_storage if kind == "storage" else est.prices_compute:
                    for c in est.classes:
                        if c != ANY_CLASS:
                            out.setdefault(c.lower(), c)
        return list(out.values())


#: The built-in plug-ins, most specific first (a class is matched by the first that handles
#: it).  MACEstimator here has no multiplier; the energy table gives it the one it applies.
ESTIMATORS: list[Estimator] = [DRAMEstimator(), RegisterEstimator(), RegfileEstimator(),
                               SRAMEstimator(), MACEstimator()]
#: The registry every energy table is priced through.
REGISTRY = EstimatorRegistry(ESTIMATORS)


def register_estimator(estimator: Estimator | type[Estimator], backend: str = BUILTIN, *,
                       first: bool = False) -> Estimator:
    """Register an estimator plug-in (an instance or a class made with no arguments) with
    :data:`REGISTRY`; returns it, so that it can decorate a class.

    ``backend``: ``"builtin"`` (the default: asked by every backend, after that backend's
    own) or a backend's name (any case); ``first``: ask it before the backend's other estimators (to
    take over a class they price).  A name already registered is an error."""
    return REGISTRY.register(estimator, backend, first)


def unregister_estimator(name: str) -> Estimator:
    """Remove the estimator called ``name`` from :data:`REGISTRY` and return it."""
    return REGISTRY.unregister(name)


def registered_estimators(backend: str = BUILTIN) -> list[Estimator]:
    """The estimators :data:`REGISTRY` asks for ``backend``, in order."""
    return REGISTRY.ordered(backend)


def find_estimator(component_class: str, attributes: dict[str, Any] | None = None,
                   estimators: list[Estimator] | None = None) -> tuple[Estimator, str]:
    """The estimator for a component and the class to ask it about, among ``estimators``
    (default: the built-in backend's, in order).

    Accelergy v0.4 specs write ``class: storage, subclass: smartbuffer_RF``; the subclass is
    the specific one, so it is tried before the generic class.
    """
    pool = REGISTRY.ordered(BUILTIN) if estimators is None else estimators
    candidates = [str((attributes or {}).get("subclass") or ""), component_class]
    for cls in candidates:
        if not cls:
            continue
        for est in pool:
            if est.handles(cls):
                return est, cls
    known = sorted({c for est in pool for c in est.classes}, key=str.lower)
    raise HwcostError(f"no energy estimator handles component class {component_class!r}; "
                      f"known classes: {', '.join(known)} (or give an ERT)")


def describe_estimators(estimators: list[Estimator] | None = None,
                        backend: str = BUILTIN) -> list[dict[str, Any]]:
    """Name, classes, actions and accuracy of every estimator ``backend`` asks, in order
    (or of ``estimators``), for docs and the CLI."""
    pool = REGISTRY.ordered(backend) if estimators is None else estimators
    return [est.describe() for est in pool]
