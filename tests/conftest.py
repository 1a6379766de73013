"""Test-wide isolation: no test reads or writes the user's real multiplier library."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("hwcost_home")
    monkeypatch.setenv("HWCOST_HOME", str(home))
    return home
