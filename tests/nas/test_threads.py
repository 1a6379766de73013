"""--threads: torch's thread count, and the one-line warning when other running tasks leave
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
        monkeypatch.setattr(th, "busy_elsewhere", lambda: 1.0)
        n, warning = th.apply_threads(2)
        assert n == 2 == torch.get_num_threads() and "--threads 1" in warning
        n, warning = th.apply_threads(1)
        assert n == 1 == torch.get_num_threads() and warning is None
        monkeypatch.setattr(th, "busy_elsewhere", lambda: 0.0)
        assert th.apply_threads(2) == (2, None)
        monkeypatch.setattr(th, "busy_elsewhere", lambda: None)     # no /proc: no guess
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
    monkeypatch.setattr(th, "busy_elsewhere", lambda: 3.0)
    before = torch.get_num_threads()
    try:
        res = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "none.pt"), "--threads", "2"])
    finally:
        torch.set_num_threads(before)
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and "while 3 other task(s) run" in lines[0]
    assert "Traceback" not in res.output


def test_a_spinning_process_counts_as_busy_and_a_finished_one_does_not():
    """busy_elsewhere counts tasks runnable now: a spinning child is one; once it has ended
    it is none, although the 1-minute load average still remembers it."""
    import subprocess
    import sys
    import time

    if th.busy_elsewhere() is None:
        pytest.skip("no /proc/loadavg here")
    before = th.busy_elsewhere()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert th.busy_elsewhere() >= before + 1
    finally:
        child.kill()
        child.wait()
    assert th.busy_elsewhere() <= before
