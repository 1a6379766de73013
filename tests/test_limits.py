"""Every input limit is documented in the README with its setting and default, and the
settings behave as documented (override, bad value)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from core import limits
from core.errors import HwcostError
from core.limits import Limit, all_limits

ROOT = Path(__file__).resolve().parents[1]


def _import_everything() -> None:
    """Limits register when their module is imported: import every module of the packages
    (optional back ends whose dependencies are missing are skipped)."""
    for package in ("multiplier_lib", "hwmodel", "nas", "hwcost"):
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            if info.name.endswith(".__main__"):   # runs the CLI on import
                continue
            try:
                importlib.import_module(info.name)
            except ImportError:
                continue


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
