"""How many CPU threads torch uses for a search, a training run or an evaluation.

On a small machine the thread count decides the speed more than anything else: torch's
OpenMP threads spin while they wait for a core, so with one core taken by another job a
2-thread step on 2 cores ran 11x slower than at 1 thread (72.6 s against 6.4 s; 33 s of CPU time
against 2.9 s).
:func:`apply_threads` sets the count (``--threads``; default :data:`DEFAULT_THREADS`, what
``benchmarks/bench_search.py`` measured fastest on an idle machine) and warns, in one line,
when other jobs leave fewer idle cores than threads.  "Other jobs" is what the kernel counts
as runnable right now, minus this process (:func:`busy_elsewhere`), not the 1-minute load
average: that one still counts a job that finished seconds ago, and this process itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from core.errors import HwcostError

#: threads when ``--threads`` is not given: ``None`` keeps torch's default, one per core (on the
#: idle 2-core machine 2 threads beat 1 by 0-14 % per search step, benchmarks/bench_search.py)
DEFAULT_THREADS: int | None = None


def cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def busy_elsewhere(samples: int = 5, interval_s: float = 0.02) -> float | None:
    """How many other tasks are runnable now: the kernel's count of runnable tasks
    (``/proc/loadavg``) minus the one reading it, the smallest of a few samples (a task that
    merely wakes up for a moment is not a competing job); ``None`` where /proc cannot say."""
    counts = []
    for i in range(samples):
        try:
            running = Path("/proc/loadavg").read_text().split()[3].split("/")[0]
            counts.append(int(running) - 1)
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < samples:
            time.sleep(interval_s)
    return float(max(0, min(counts)))


def load_warning(threads: int, n_cores: int, load: float) -> str | None:
    """The warning for ``threads`` threads on ``n_cores`` cores while ``load`` other tasks
    run, or ``None`` when the idle cores suffice (one thread never spins on another)."""
    idle = n_cores - load
    if threads <= 1 or threads <= idle + 0.5:
        return None
    return (f"warning: {threads} threads on {n_cores} cores while {load:g} other task(s) "
            f"run: threads waiting for a busy core spin and slow every step down "
            f"(11x measured); use --threads {max(1, int(idle + 0.5))} or stop the other "
            "jobs")


def apply_threads(threads: int | None) -> tuple[int, str | None]:
    """Set torch's thread count; returns it and the load warning to show (if any)."""
    import torch

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise HwcostError(f"--threads must be a positive integer, not {threads!r}")
    wanted = threads if threads is not None else DEFAULT_THREADS
    if wanted is not None:
        torch.set_num_threads(wanted)
    n = torch.get_num_threads()
    others = busy_elsewhere()
    return n, None if others is None else load_warning(n, cores(), others)
