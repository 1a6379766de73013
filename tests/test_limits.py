"""Every input limit is documented in the README with its setting and default, and the
settings behave as documented (override, bad value)."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import pytest

from core import limits
from core.errors import HwcostError
from core.limits import Limit, all_limits

ROOT = Path(__file__).resolve().parents[1]


#: every package of the toolkit, left to right in the layering
PACKAGES = ("core", "multiplier_lib", "hwmodel", "darts", "nas", "hwcost")
#: the only modules allowed not to import, each only when the optional dependency named here
#: (an extra in setup.cfg) is what is missing
OPTIONAL = {"multiplier_lib.emulate.backends.triton_kernels": "triton"}


def _may_skip(module: str, err: ImportError) -> bool:
    """Whether ``module`` failing with ``err`` is an optional dependency that is not installed
    (rather than a broken import, which must fail the test)."""
    dependency = OPTIONAL.get(module)
    return (dependency is not None and err.name is not None
            and err.name.split(".")[0] == dependency)


def _import_everything() -> tuple[list[str], list[str]]:
    """Import every module of the packages (limits register when their module is imported);
    returns the modules imported and the optional ones skipped.  Any other ImportError fails."""
    imported: list[str] = []
    skipped: list[str] = []

    def reimport(name: str) -> None:   # walk_packages would swallow a package's ImportError
        importlib.import_module(name)

    for package in PACKAGES:
        pkg = importlib.import_module(package)
        imported.append(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}.", onerror=reimport):
            if info.name.endswith(".__main__"):   # runs the CLI on import
                continue
            try:
                importlib.import_module(info.name)
            except ImportError as err:
                if not _may_skip(info.name, err):
                    raise
                skipped.append(info.name)
            else:
                imported.append(info.name)
    return imported, skipped


def test_every_module_of_every_package_imports():
    imported, skipped = _import_everything()
    for package in PACKAGES:
        assert package in imported
    for module in ("core.limits", "multiplier_lib.importers.verilog.parser",
                   "multiplier_lib.emulate.modules", "darts.genotype", "hwcost.cli"):
        assert module in imported
    for module in skipped:   # skipped only because the dependency really is absent
        assert importlib.util.find_spec(OPTIONAL[module]) is None, module
    for module in OPTIONAL:  # the list names real modules
        parent, _, leaf = module.rpartition(".")
        assert leaf in {i.name for i in pkgutil.iter_modules(
            importlib.import_module(parent).__path__)}, module


def test_only_a_missing_optional_dependency_may_be_skipped():
    triton_kernels = "multiplier_lib.emulate.backends.triton_kernels"
    assert _may_skip(triton_kernels, ModuleNotFoundError("no triton", name="triton"))
    assert _may_skip(triton_kernels, ImportError("x", name="triton.language"))
    # the optional module broken for another reason, or any other module: not skipped
    assert not _may_skip(triton_kernels, ModuleNotFoundError("no numpy", name="numpy"))
    assert not _may_skip(triton_kernels, ImportError("cannot import name 'x' from 'y'"))
    assert not _may_skip("multiplier_lib.emulate.backends.cpu",
                         ModuleNotFoundError("no triton", name="triton"))


def test_every_limit_is_in_the_readme():
    _import_everything()
    limits = all_limits()
    assert len(limits) >= 5
    readme = (ROOT / "README.md").read_text()
    for limit in limits:
        row = next((line for line in readme.splitlines() if f"`{limit.env}`" in line), None)
        assert row is not None, f"{limit.env} is not documented in the README"
        numbers = {int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", row)}
        assert limit.default in numbers, f"README row of {limit.env} lacks {limit.default}"


def test_setting_overrides_and_bad_values(monkeypatch):
    monkeypatch.setattr(limits, "_REGISTRY", dict(limits._REGISTRY))  # keep the test's own out
    limit = Limit("HWCOST_MAX_TEST_WIDGETS", 10, "widgets")
    assert limit.check(10) == 10
    with pytest.raises(HwcostError) as err:
        limit.check(11, file="w.yaml", line=3, context="widgets")
    assert str(err.value) == ("w.yaml:3: widgets: widgets 11 exceeds the limit of 10 "
                              "(set HWCOST_MAX_TEST_WIDGETS to allow more)")
    monkeypatch.setenv("HWCOST_MAX_TEST_WIDGETS", "20")
    assert limit.check(11) == 11
    for bad in ("0", "-3", "lots"):
        monkeypatch.setenv("HWCOST_MAX_TEST_WIDGETS", bad)
        with pytest.raises(HwcostError, match=r"HWCOST_MAX_TEST_WIDGETS=.* must be a positive"):
            limit.check(1)
    with pytest.raises(ValueError, match="declared twice"):
        Limit("HWCOST_MAX_TEST_WIDGETS", 11, "widgets")
