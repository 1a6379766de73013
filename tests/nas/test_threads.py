"""--threads: torch's thread count, and the one-line warning when the machine's load leaves
fewer idle cores than threads (OpenMP threads waiting for a busy core spin)."""

from __future__ import annotations

import pytest
import torch

from core.errors import HwcostError
from nas import threads as th


@pytest.mark.parametrize("n_cores", [1, 2, 4, 16])
@pytest.mark.parametrize("load", [0.0, 0.4, 1.0, 1.6, 3.0, 20.0])
def test_warning_exactly_when_threads_exceed_the_idle_cores(n_cores, load):
    for threads in range(1, n_cores + 3):
        text = th.load_warning(threads, n_cores, load)
        idle = n_cores - load
        if threads == 1 or threads <= idle + 0.5:
            assert text is None
        else:
            assert text is not None and text.startswith("warning: ") and "\n" not in text
            suggested = int(text.split("--threads ")[1].split()[0])
            assert 1 <= suggested < threads and suggested <= max(1, round(idle))


def test_apply_threads_sets_torch_and_reports_the_load(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(th, "cores", lambda: 2)
        monkeypatch.setattr(th, "own_load", lambda: 0.0)
        monkeypatch.setattr(th.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
        n, warning = th.apply_threads(2)
        assert n == 2 == torch.get_num_threads() and "--threads 1" in warning
        n, warning = th.apply_threads(1)
        assert n == 1 == torch.get_num_threads() and warning is None
        monkeypatch.setattr(th.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
        assert th.apply_threads(2) == (2, None)
        # this process's own share of the load is not another job's
        monkeypatch.setattr(th.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
        assert th.apply_threads(2)[1] is not None
        monkeypatch.setattr(th, "own_load", lambda: 1.0)
        assert th.apply_threads(2) == (2, None)
        for bad in (0, -1, 1.5, True):
            with pytest.raises(HwcostError, match="--threads must be a positive integer"):
                th.apply_threads(bad)
    finally:
        torch.set_num_threads(before)


def test_cli_prints_the_warning_in_one_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from hwcost.cli import cli

    monkeypatch.setattr(th, "cores", lambda: 2)
    monkeypatch.setattr(th, "own_load", lambda: 0.0)
    monkeypatch.setattr(th.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    before = torch.get_num_threads()
    try:
        res = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "none.pt"), "--threads", "2"])
    finally:
        torch.set_num_threads(before)
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and "load average of 3.0" in lines[0]
    assert "Traceback" not in res.output


def test_own_load_is_this_process_cpu_over_at_least_a_minute():
    """A fresh process that burned a known amount of CPU: its share is that CPU time over a
    minute (the process is younger than the load average's window)."""
    import subprocess
    import sys

    code = ("import time\nfrom nas import threads\nt = time.process_time()\n"
            "while time.process_time() - t < 1.5: pass\nprint(threads.own_load())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    share = float(out)
    assert 1.5 / 60 <= share <= 4.0 / 60     # 1.5 s busy plus the imports, over 60 s
