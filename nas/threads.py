"""How many CPU threads torch uses for a search, a training run or an evaluation.

On a small machine the thread count decides the speed more than anything else: torch's
OpenMP threads spin while they wait for a core, so with one core taken by another job a
2-thread step on 2 cores ran 11x slower than at 1 thread (72.6 s against 6.4 s; 33 s of CPU time
against 2.9 s).
:func:`apply_threads` sets the count (``--threads``; default :data:`DEFAULT_THREADS`, what
``benchmarks/bench_search.py`` measured fastest on an idle machine) and warns, in one line,
when the machine's load leaves fewer idle cores than threads.  The load average counts this
process too (a long test session or a notebook has been busy for minutes), so its own share
(:func:`own_load`) is taken off first: only other jobs make threads wait.
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


def own_load() -> float:
    """This process's share of the 1-minute load average, estimated as its CPU time over
    its age (at least a minute, the average's window); 0 where /proc cannot say."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        age = float(Path("/proc/uptime").read_text().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return 0.0
    return time.process_time() / max(age, 60.0)


def load_warning(threads: int, n_cores: int, load: float) -> str | None:
    """The warning for ``threads`` threads on ``n_cores`` cores at 1-minute ``load``, or
    ``None`` when the idle cores suffice (one thread never spins on another)."""
    idle = n_cores - load
    if threads <= 1 or threads <= idle + 0.5:
        return None
    return (f"warning: {threads} threads on {n_cores} cores with a load average of "
            f"{load:.1f}: threads waiting for a busy core spin and slow every step down "
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
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return n, None
    return n, load_warning(n, cores(), max(0.0, load - own_load()))
