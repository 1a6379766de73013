"""Component energies from Accelergy's own models (``--estimators accelergy``).

Accelergy's estimators now live in the ``hwcomponents`` Python packages (``hwcomponents``,
``hwcomponents-cacti``: CACTI for SRAM/caches and per-bit DRAM figures,
``hwcomponents-library``: Aladdin adders/multipliers/MACs/registers and the
``SmartBufferSRAM`` compound, ``hwcomponents-neurosim``, which the library imports).  This
module registers two estimators, :class:`HwcomponentsStorage` and
:class:`HwcomponentsCompute`, under the ``accelergy`` backend of the estimator registry
(:mod:`hwmodel.estimators.registry`; importing the module registers them, and
``backend="accelergy"`` imports it and asks them first).  They price every component of an
:class:`~hwmodel.arch.Architecture` through hwcomponents, the way Accelergy and its
successor AccelForge query it: the component's class names a hwcomponents model, its
attributes go to the model's constructor, ``hwcomponents``' own selection picks the model
(priority, then best attribute match), and an action's energy is what the model's action
returns.  Nothing here re-implements a figure; the built-in
estimators (:mod:`hwmodel.estimators`) are fitted to these answers instead
(``benchmarks/accelergy_table.py``, ``hwmodel/data/accelergy_reference.json``).

The packages need Python >= 3.12, so they are imported lazily: without them every entry
point raises one :class:`HwcostError` line saying how to install them
(``pip install -e '.[accelergy]'``).

**Which hwcomponents model a Timeloop v0.4 class becomes** (:data:`HWC_CLASS`): a class that
is itself a hwcomponents component name (``SRAM``, ``LPDDR4``, ``IntMAC``...) is asked for
as it is.  Timeloop's compound classes have no hwcomponents model of their name, and are
asked for as AccelForge's own example architectures model them: ``smartbuffer_SRAM`` and
the on-chip buffer classes as ``SmartBufferSRAM`` (a CACTI SRAM plus its address
generator), register files (``regfile``, ``smartbuffer_RF``) as ``SmartBufferSRAM`` too
(AccelForge's Eyeriss models its 12- to 224-entry scratchpads that way; CACTI's own
small-array scaling applies), single registers (``reg``, ``register``, ``reg_storage``) as
Aladdin's ``Register``, ``DRAM`` as the model named by its ``type`` (``LPDDR4``, ``DDR3``,
``HBM2``...), ``intmac``/``mac`` as ``IntMAC`` (Aladdin multiplier + adder),
``intadder``/``intmultiplier`` as ``IntAdder``/``IntMultiplier``.

**Attributes**: ``tech_node`` in metres from the component's technology, ``width``,
``depth``, ``size`` (= width x depth: hwcomponents-cacti needs it), ``n_banks``,
``n_rw_ports`` for memories; ``width`` for DRAM; ``multiplier_width`` (default the unit's
datawidth) and ``adder_width`` (default ``2 * multiplier_width + 8``, the built-in
estimator's default) for MACs.

**Actions**: storage ``read`` and ``write`` (Timeloop's fill), ``update`` = ``write`` (as
Accelergy's smartbuffer compounds define it), all per access of one ``width``-bit row;
``leak`` = the model's leak power x ``global_cycle_seconds`` (default 1 ns), pJ per instance
and cycle, as an Accelergy ERT's ``leak``.  Compute: ``mac`` of ``IntMAC``; its multiply and
add shares are the model's own multiplier and adder sub-components.

**An approximate multiplier** replaces the multiplier inside hwcomponents' MAC: the
multiply share is scaled by the multiplier's energy relative to the exact multiplier of its
shape, both on multiplier_lib's gate-level scale (the same rule as for an ERT's MAC, see
:mod:`hwmodel.energy`), and the source says so, e.g. ``hwcomponents:AladdinIntMAC
(multiply), x 0.393 = multiplier_lib:trunc8u_k8 (gate-level estimate) / exact``.

**Components hwcomponents has no model for** (``fpmac``, a ``GDDR5`` DRAM) raise
:class:`NoModel`, and the registry asks the next estimator (the built-in one), the source
saying so and a note in the table; a model that exists but refuses the component (an HBM2
narrower than 1024 bits, a CACTI failure) is an error.

**CACTI**: the ``cacti`` binary inside ``hwcomponents-cacti`` is built against glibc 2.38;
:func:`rebuild_cacti` rebuilds it from the C++ sources the package ships
(``python -m hwmodel.accelergy_estimators build-cacti``), the documented install step.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import HwcostError

from .arch import StorageLevel
from .ert import write_ert
from .estimators import (
    ANY_CLASS,
    REGISTRY,
    ActionEnergy,
    Estimator,
    EstimatorRegistry,
    MACEstimator,
    MultiplierUse,
    NoEstimate,
    attribute,
    mac_widths,
    register_estimator,
)

INSTALL_HINT = "pip install -e '.[accelergy]' (Python >= 3.12)"

#: hwcost/Timeloop class (lower case) -> hwcomponents component name (module docstring).
HWC_CLASS: dict[str, str] = {
    "sram": "SRAM",
    "smartbuffer_sram": "SmartBufferSRAM",
    "buffer": "SmartBufferSRAM",
    "storage": "SmartBufferSRAM",
    "memory": "SmartBufferSRAM",
    "smartbuffer": "SmartBufferSRAM",
    "smartbuffer_metadata": "SmartBufferSRAM",
    "buffet": "SmartBufferSRAM",
    "buffet_collection_sram": "SmartBufferSRAM",
    "regfile": "SmartBufferSRAM",
    "smartbuffer_rf": "SmartBufferSRAM",
    "buffet_collection_rf": "SmartBufferSRAM",
    "rf": "SmartBufferSRAM",
    "reg": "Register",
    "register": "Register",
    "reg_storage": "Register",
    "intmac": "IntMAC",
    "mac": "IntMAC",
    "intadder": "IntAdder",
    "intmultiplier": "IntMultiplier",
}

#: Default clock period for leakage (s), Timeloop's ``global_cycle_seconds`` default.
DEFAULT_CYCLE_SECONDS = 1e-9
#: The packages of the ``[accelergy]`` extra whose versions go into every provenance record.
PACKAGES = ("hwcomponents", "hwcomponents-cacti", "hwcomponents-library",
            "hwcomponents-neurosim")


# --------------------------------------------------------------------------------------------
# importing hwcomponents
# --------------------------------------------------------------------------------------------


def available() -> bool:
    """Whether hwcomponents can be imported here (for tests that skip without it)."""
    try:
        hwcomponents_module()
    except HwcostError:
        return False
    return True


@lru_cache(maxsize=1)
def hwcomponents_module() -> Any:
    """The ``hwcomponents`` module, with its model packages loaded, or one HwcostError line.

    hwcomponents finds its models by importing every installed ``hwcomponents_*`` package;
    a package that fails to import (hwcomponents-library without hwcomponents-neurosim) makes
    every query fail, so that is checked here, once, with a message that says what is missing.
    """
    try:
        import hwcomponents
        from hwcomponents.find_models import installed_models
    except ImportError:
        raise HwcostError(f"--estimators accelergy needs the hwcomponents packages: "
                          f"{INSTALL_HINT}") from None
    try:
        installed_models(_return_wrappers=True)
    except ImportError as exc:
        raise HwcostError(f"--estimators accelergy: a hwcomponents model package does not "
                          f"import ({exc}); {INSTALL_HINT}") from None
    for name in ("hwcomponents", "HWComponents"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return hwcomponents


def package_versions() -> dict[str, str | None]:
    """Installed versions of the ``[accelergy]`` packages (None where absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


# --------------------------------------------------------------------------------------------
# CACTI
# --------------------------------------------------------------------------------------------


def cacti_dir() -> Path:
    """Folder of the CACTI sources and binary inside the installed hwcomponents-cacti."""
    try:
        import hwcomponents_cacti
    except ImportError:
        raise HwcostError(f"hwcomponents-cacti is not installed: {INSTALL_HINT}") from None
    return Path(hwcomponents_cacti.__file__).resolve().parent / "cacti"


def cacti_runs(directory: Path | None = None) -> tuple[bool, str]:
    """Whether the packaged ``cacti`` binary starts here, and why not.

    CACTI without arguments prints its usage and exits; a binary linked against a newer
    glibc than the machine's fails in the dynamic loader before that, which is what this
    detects (``GLIBC_2.38 not found``).
    """
    binary = (directory or cacti_dir()) / "cacti"
    if not binary.is_file():
        return False, f"{binary} does not exist"
    try:
        proc = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60,
                              cwd=binary.parent, check=False)
    except OSError as exc:
        return False, f"{binary}: {exc}"
    text = proc.stdout + proc.stderr
    if "not found" in text and ("GLIBC" in text or "GLIBCXX" in text):
        return False, text.strip().splitlines()[0]
    return True, "ok"


#: Compiler flags of the package's own ``dbg`` target (its makefile's default), so the
#: rebuilt binary computes what the shipped one computes.
CACTI_CXXFLAGS = ("-Wno-unknown-pragmas", "-Wall", "-ggdb", "-g", "-O0", "-DNTHREADS=1")


def rebuild_cacti(force: bool = False, cxx: str | None = None, jobs: int = 2,
                  log: Callable[[str], None] = print) -> Path:
    """Rebuild hwcomponents-cacti's ``cacti`` binary from the sources it ships.

    The wheel's binary needs glibc 2.38 (Debian 12 has 2.36).  The sources are compiled in
    a temporary folder with the package makefile's default (``dbg``) flags and the result
    replaces the binary atomically; the package's ``.cc``/``.h`` files are not touched.
    Does nothing when the binary already runs, unless ``force``.  Returns the binary's path.
    """
    directory = cacti_dir()
    ok, why = cacti_runs(directory)
    if ok and not force:
        log(f"CACTI at {directory / 'cacti'} runs; nothing to do")
        return directory / "cacti"
    log(f"rebuilding CACTI ({why})")
    compiler = cxx or os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise HwcostError("rebuilding CACTI needs a C++ compiler (g++): apt-get install g++")
    sources = sorted(p for p in directory.glob("*.cc"))
    if not sources:
        raise HwcostError(f"no CACTI sources (*.cc) in {directory}")
    with tempfile.TemporaryDirectory(prefix="cacti-build-") as tmp:
        build = Path(tmp)
        for p in directory.iterdir():
            if p.suffix in (".cc", ".h"):
                shutil.copy2(p, build / p.name)
        objects = []
        procs: list[tuple[subprocess.Popen, Path]] = []

        def wait_one() -> None:
            proc, src = procs.pop(0)
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise HwcostError(f"compiling CACTI's {src.name} failed: "
                                  f"{err.decode(errors='replace').strip().splitlines()[-1:]}")

        for src in sources:
            obj = build / (src.stem + ".o")
            objects.append(obj)
            procs.append((subprocess.Popen([compiler, *CACTI_CXXFLAGS, "-c", src.name, "-o",
                                            obj.name], cwd=build, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE), src))
            if len(procs) >= max(1, jobs):
                wait_one()
        while procs:
            wait_one()
        link = subprocess.run([compiler, *[o.name for o in objects], "-o", "cacti", "-lm",
                               *CACTI_CXXFLAGS, "-pthread"], cwd=build, capture_output=True,
                              text=True, check=False)
        if link.returncode != 0:
            raise HwcostError(f"linking CACTI failed: {link.stderr.strip()[-300:]}")
        tmp_target = directory / "cacti.rebuilt"
        shutil.copy2(build / "cacti", tmp_target)
        os.replace(tmp_target, directory / "cacti")
    ok, why = cacti_runs(directory)
    if not ok:
        raise HwcostError(f"the rebuilt CACTI does not run: {why}")
    log(f"CACTI rebuilt at {directory / 'cacti'}")
    return directory / "cacti"


# --------------------------------------------------------------------------------------------
# asking hwcomponents
# --------------------------------------------------------------------------------------------


class NoModel(NoEstimate):
    """hwcomponents has no model of this component name: the next estimator (the built-in
    one) is asked, and the energy table says so."""

    def __init__(self, name: str):
        super().__init__(name, f"hwcomponents has no model for {name!r}",
                         f"no hwcomponents model for {name}")


@dataclass(frozen=True)
class HwcAnswer:
    """One hwcomponents answer: pJ, and the model that gave it."""

    energy_pj: float
    model: str

    @property
    def source(self) -> str:
        return f"hwcomponents:{self.model}"


def _freeze(attrs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(attrs.items()))


def _reason(exc: BaseException) -> str:
    """The last 'SomethingError: ...' line of hwcomponents' multi-line failure report."""
    lines = [ln.strip(" |\t") for ln in str(exc).splitlines()]
    errs = [ln for ln in lines if "Error:" in ln or "Error " in ln[:30]]
    return (errs[-1] if errs else (lines[0] if lines else type(exc).__name__))[:300]


def _hint_cacti(name: str, why: str) -> str:
    if name.lower() in ("sram", "smartbuffersram", "cache"):
        try:
            ok, cwhy = cacti_runs()
        except HwcostError:
            ok, cwhy = True, ""
        if not ok:
            return (f"{why}; the CACTI binary does not run here ({cwhy}): rebuild it with "
                    f"'python -m hwmodel.accelergy_estimators build-cacti'")
    return why


@contextmanager
def _hwcomponents_errors(name: str, frozen: tuple[tuple[str, Any], ...], what: str,
                         no_model: str) -> Iterator[None]:
    """hwcomponents' failures as one line each: no model of the class (:class:`NoModel`,
    the caller falls back), a model that refuses the attributes (``no_model``), or one that
    fails on them (``what``, with the attributes and a CACTI hint)."""
    from hwcomponents._model_wrapper import EstimatorError

    try:
        yield
    except EstimatorError as exc:
        if "not supported by any models" in str(exc):
            raise NoModel(name) from None
        raise HwcostError(f"{no_model}: {_reason(exc)}") from None
    except (RuntimeError, ValueError, AssertionError) as exc:
        raise HwcostError(f"{what} ({', '.join(f'{k}={v}' for k, v in frozen)}): "
                          f"{_hint_cacti(name, _reason(exc))}") from None


@lru_cache(maxsize=4096)
def _action_cost(name: str, frozen: tuple[tuple[str, Any], ...], action: str,
                 frozen_args: tuple[tuple[str, Any], ...] = ()) -> HwcAnswer:
    hwc = hwcomponents_module()
    with _hwcomponents_errors(name, frozen, f"hwcomponents cannot price {name}.{action}",
                              f"hwcomponents cannot price {name}.{action}"):
        est = hwc.get_action_cost(name, dict(frozen), action, dict(frozen_args),
                                  _return_estimation_object=True)
    return HwcAnswer(float(est.value.energy) * 1e12, str(est.model_name))


@lru_cache(maxsize=1024)
def _model(name: str, frozen: tuple[tuple[str, Any], ...], action: str) -> Any:
    hwc = hwcomponents_module()
    with _hwcomponents_errors(name, frozen, f"hwcomponents cannot build {name}",
                              f"hwcomponents has no usable {name}"):
        return hwc.get_model(name, dict(frozen), required_actions=[action])


def action_cost(name: str, attrs: dict[str, Any], action: str,
                args: dict[str, Any] | None = None) -> HwcAnswer:
    """pJ of ``action`` (with arguments ``args``) of hwcomponents component ``name`` with
    ``attrs``: its own answer.  Raises :class:`NoModel` when no installed model has that
    component name."""
    return _action_cost(name, _freeze(attrs), action, _freeze(args or {}))


def leak_per_cycle(name: str, attrs: dict[str, Any], cycle_seconds: float) -> HwcAnswer:
    """pJ leaked per cycle: the chosen model's leak power (W) x the cycle period."""
    model = _model(name, _freeze(attrs), "read")
    return HwcAnswer(float(model.leak_power) * cycle_seconds * 1e12, type(model).__name__)


# --------------------------------------------------------------------------------------------
# hwcost components -> hwcomponents queries
# --------------------------------------------------------------------------------------------


def tech_node_m(technology_nm: float) -> float:
    """hwcomponents takes the technology node in metres."""
    return float(technology_nm) * 1e-9


def _positive(attrs: dict[str, Any], key: str, where: str) -> float | None:
    value = attribute(attrs, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise HwcostError(f"{where}: attribute '{key}' must be a positive number, got {value!r}")
    return float(value)


def _int(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def storage_query(component_class: str, attrs: dict[str, Any], technology_nm: float
                  ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The hwcomponents component name, attributes and action arguments of a storage
    component.

    A DRAM is its type's model at the model's own bus width, asked for ``width`` bits per
    access through hwcomponents' ``bits_per_action`` (as AccelForge does): hwcomponents'
    LPDDR4 refuses buses wider than 64 bits, while Timeloop's exercises give DRAM 256-bit
    rows, and the per-bit energy is the same either way.
    """
    cls = component_class.lower()
    where = f"class {component_class}"
    width = _positive(attrs, "width", where)
    if width is None:
        raise HwcostError(f"{where}: attribute 'width' is needed to estimate energy")
    if "dram" in cls:
        return str(attrs.get("type") or "LPDDR4"), {}, {"bits_per_action": _int(width)}
    name = HWC_CLASS.get(cls, component_class)
    if name == "Register":
        return name, {"tech_node": tech_node_m(technology_nm), "width": _int(width)}, {}
    depth = _positive(attrs, "depth", where)
    if depth is None:
        raise HwcostError(f"{where}: attribute 'depth' is needed to estimate energy")
    q: dict[str, Any] = {"tech_node": tech_node_m(technology_nm), "width": _int(width),
                         "depth": _int(depth), "size": _int(width * depth)}
    banks = _positive(attrs, "n_banks", where)
    if banks is not None:
        q["n_banks"] = _int(banks)
    ports = _positive(attrs, "n_rw_ports", where)
    if ports is not None:
        q["n_rw_ports"] = _int(ports)
    return name, q, {}


def compute_query(component_class: str, attrs: dict[str, Any], technology_nm: float,
                  default_width: int) -> tuple[str, dict[str, Any], str]:
    """The hwcomponents name, attributes and action of one operation of a compute unit."""
    cls = component_class.lower()
    name = HWC_CLASS.get(cls, component_class)
    mw, aw = mac_widths(attrs, default_width)
    tn = tech_node_m(technology_nm)
    if name == "IntAdder":
        return name, {"tech_node": tn, "width": aw}, "add"
    if name == "IntMultiplier":
        return name, {"tech_node": tn, "width": mw}, "multiply"
    if name == "IntMAC":
        return name, {"tech_node": tn, "multiplier_width": mw, "adder_width": aw}, "mac"
    return name, {"tech_node": tn, "multiplier_width": mw, "adder_width": aw,
                  "width": mw}, "compute"


@dataclass(frozen=True)
class ComputeParts:
    """A compute unit's energy per operation from hwcomponents, split into multiply and add."""

    mac: HwcAnswer
    multiply_pj: float
    add_pj: float
    split: str          # how the split was obtained


def compute_parts(component_class: str, attrs: dict[str, Any], technology_nm: float,
                  default_width: int) -> ComputeParts:
    """hwcomponents' energy of one operation and its multiply/add shares.

    For ``IntMAC`` the shares are the chosen model's own ``multiplier.multiply()`` and
    ``adder.add()`` (what its ``mac`` action sums); a model without those parts is split in
    the built-in exact MAC's proportions, and the source says so.
    """
    name, q, action = compute_query(component_class, attrs, technology_nm, default_width)
    total = action_cost(name, q, action)
    if action == "multiply":
        return ComputeParts(total, total.energy_pj, 0.0, "multiplier only")
    if action == "add":
        return ComputeParts(total, 0.0, total.energy_pj, "adder only")
    model = _model(name, _freeze(q), action)
    mult = getattr(model, "multiplier", None)
    if mult is not None and hasattr(mult, "multiply"):
        mul_pj = float(mult.multiply().energy) * 1e12
        mul_pj = min(mul_pj, total.energy_pj)
        return ComputeParts(total, mul_pj, total.energy_pj - mul_pj,
                            f"{type(model).__name__}.multiplier / .adder")
    b = MACEstimator(None).breakdown("intmac", {"multiplier_width": q.get("multiplier_width"),
                                                "adder_width": q.get("adder_width")},
                                     technology_nm)
    share = b.multiply_pj / b.mac_pj if b.mac_pj > 0 else 1.0
    return ComputeParts(total, total.energy_pj * share, total.energy_pj * (1 - share),
                        f"built-in exact split {share:.2f}")


def cycle_seconds(attrs: dict[str, Any]) -> float:
    """The clock period leakage is charged over (``global_cycle_seconds``, default 1 ns)."""
    value = attrs.get("global_cycle_seconds", attrs.get("cycle_seconds"))
    if value is None:
        return DEFAULT_CYCLE_SECONDS
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise HwcostError(f"attribute 'global_cycle_seconds' must be a positive number of "
                          f"seconds, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# the estimators (registered under the "accelergy" backend)
# --------------------------------------------------------------------------------------------

#: The backend these estimators are registered under (``--estimators accelergy``).
BACKEND = "accelergy"
#: The hwcomponents models of compute units (the other models of HWC_CLASS are storage).
_COMPUTE_HWC = frozenset({"IntMAC", "IntAdder", "IntMultiplier"})


class HwcomponentsStorage(Estimator):
    """Storage levels as hwcomponents prices them: read, write (Timeloop's fill), update
    (= write) per row access, and leak per instance and cycle.  Any class is tried: one
    that is not in :data:`HWC_CLASS` is asked for by its own name, and
    :class:`NoModel` passes it on when hwcomponents has no model of that name."""

    name = "hwcomponents-storage"
    accuracy = ("Accelergy's own models through hwcomponents (CACTI SRAM and DRAM, "
                "SmartBufferSRAM, Aladdin registers): their answers, leakage included")
    classes = (*sorted(k for k, v in HWC_CLASS.items() if v not in _COMPUTE_HWC), "DRAM",
               ANY_CLASS)
    actions = ("read", "write", "update", "leak")

    def handles(self, component_class: str) -> bool:
        c = component_class.lower()
        return c in HWC_CLASS or "dram" in c

    def action_energy(self, component_class: str, attributes: dict[str, Any], action: str,
                      technology_nm: float) -> ActionEnergy | None:
        if action not in self.actions:
            return None
        name, q, args = storage_query(component_class, attributes, technology_nm)
        if action == "leak":
            leak = leak_per_cycle(name, q, cycle_seconds(attributes))
            return ActionEnergy(leak.energy_pj, f"{leak.source} (leak power x cycle)")
        answer = action_cost(name, q, "read" if action == "read" else "write", args)
        how = {"read": "read", "write": "write", "update": "write, as update"}[action]
        return ActionEnergy(answer.energy_pj, f"{answer.source} ({how})")

    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        ae = self.action_energy(component_class, attributes, action, technology_nm)
        return None if ae is None else ae.energy_pj


class HwcomponentsCompute(Estimator):
    """Compute units as hwcomponents prices them: one operation of its ``IntMAC`` (or
    ``IntAdder``, ``IntMultiplier``), split into the model's own multiplier and adder; an
    approximate multiplier scales the multiply share.  Any class is tried by its own name
    (:class:`NoModel` passes on ``fpmac``, which hwcomponents lacks)."""

    name = "hwcomponents-compute"
    accuracy = ("Accelergy's own MAC, multiplier and adder models (Aladdin) through "
                "hwcomponents: their answers; an approximate multiplier scales the multiply "
                "share by its gate-level energy relative to exact")
    classes = (*sorted(k for k, v in HWC_CLASS.items() if v in _COMPUTE_HWC), ANY_CLASS)
    actions = ("mac", "multiply", "add")

    def handles(self, component_class: str) -> bool:
        return component_class.lower() in HWC_CLASS

    def compute_energy(self, component_class: str, attributes: dict[str, Any],
                       technology_nm: float, multiplier: MultiplierUse | None = None
                       ) -> dict[str, ActionEnergy]:
        width = int(attribute(attributes, "datawidth", 8))
        parts = compute_parts(component_class, attributes, technology_nm, width)
        if multiplier is not None:     # the multiplier must fit the unit's operands
            mac = MACEstimator()
            mac.compute_energy(component_class if mac.handles(component_class) else "intmac",
                               attributes, technology_nm, multiplier)
        src = parts.mac.source
        mul, add = parts.multiply_pj, parts.add_pj
        mul_src = f"{src} (multiply, {parts.split})"
        add_src = f"{src} (add, {parts.split})"
        mac_src = f"{src} (mac)"
        if multiplier is not None:
            energy = multiplier.energy()
            factor, text = energy.scale_in(mac_widths(attributes, width)[0])
            mul *= factor
            mul_src += f", {text}"
            mac_src = f"{src} (mac) with multiply x {factor:.3f} from {energy.source}"
        return {"mac": ActionEnergy(mul + add, mac_src), "multiply": ActionEnergy(mul, mul_src),
                "add": ActionEnergy(add, add_src)}

    def estimate(self, component_class: str, attributes: dict[str, Any], action: str,
                 technology_nm: float) -> float | None:
        if action not in self.actions:
            return None
        return self.compute_energy(component_class, attributes, technology_nm)[action].energy_pj


STORAGE_ESTIMATOR = HwcomponentsStorage()
COMPUTE_ESTIMATOR = HwcomponentsCompute()
for _est in (STORAGE_ESTIMATOR, COMPUTE_ESTIMATOR):
    if all(e.name != _est.name for e in REGISTRY.all()):     # once, whatever reloads it
        register_estimator(_est, BACKEND)


@dataclass(frozen=True)
class Priced:
    """pJ per action (storage: per row access) and the source of each figure."""

    actions: dict[str, tuple[float, str]]


def storage_actions(level: StorageLevel, attrs: dict[str, Any], technology_nm: float
                    ) -> Priced:
    """read/write/update per row and leak per cycle of a storage level as the accelergy
    backend prices it (the class it asks about as the registry picks it), or NoModel."""
    est, cls = next(EstimatorRegistry([STORAGE_ESTIMATOR]).candidates(
        level.component_class, attrs, "storage"))
    out = {}
    for action in ("read", "write", "update", "leak"):
        ae = est.action_energy(cls, attrs, action, technology_nm)
        assert ae is not None
        out[action] = (ae.energy_pj, ae.source)
    return Priced(out)


# --------------------------------------------------------------------------------------------
# command line: the CACTI rebuild step
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m hwmodel.accelergy_estimators build-cacti [--force]`` / ``check``."""
    parser = argparse.ArgumentParser(prog="python -m hwmodel.accelergy_estimators",
                                     description="hwcomponents (Accelergy) support tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build-cacti", help="rebuild hwcomponents-cacti's CACTI binary")
    b.add_argument("--force", action="store_true", help="rebuild even if it runs")
    b.add_argument("--jobs", type=int, default=2)
    sub.add_parser("check", help="say whether hwcomponents and CACTI are usable")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build-cacti":
            rebuild_cacti(force=args.force, jobs=args.jobs)
        else:
            hwcomponents_module()
            ok, why = cacti_runs()
            print(f"hwcomponents: {package_versions()}; CACTI: {why}")
            if not ok:
                return 1
    except HwcostError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":   # pragma: no cover - exercised by CI's install step
    raise SystemExit(main())


__all__ = [
    "BACKEND", "COMPUTE_ESTIMATOR", "HWC_CLASS", "INSTALL_HINT", "STORAGE_ESTIMATOR",
    "ComputeParts", "HwcAnswer", "HwcomponentsCompute", "HwcomponentsStorage", "NoModel",
    "Priced", "action_cost", "available", "cacti_dir", "cacti_runs", "compute_parts",
    "compute_query", "cycle_seconds", "hwcomponents_module", "leak_per_cycle", "mac_widths",
    "main", "package_versions", "rebuild_cacti", "storage_actions", "storage_query",
    "tech_node_m", "write_ert",
]
