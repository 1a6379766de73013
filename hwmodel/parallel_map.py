"""Mapping a network's distinct layer shapes on several cores.

A network has dozens of distinct conv/FC shapes and each is mapped on its own, so the work
splits without coordination; every answer is the one a serial run gives (budgets count work,
not time).  Workers are forked, so they start with the mapper already built and cost a few
milliseconds each; only the answers (a few KB each) travel back.  Forking is used only where
it is safe and cheap: a platform that has it, a process that is not itself a daemon worker,
and no PyTorch loaded (its native thread pools do not survive a fork); otherwise, and for
a handful of shapes, the shapes are mapped one after the other.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .workload import Workload

#: below this many shapes to map, a pool costs more than it saves
MIN_SHAPES = 4

#: what forked workers map: (map one workload, the workloads); set just before the fork
_JOB: tuple[Callable[[Workload], Any], Sequence[Workload]] | None = None


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                        # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether forked workers are safe here (see the module docstring)."""
    return ("fork" in mp.get_all_start_methods() and not mp.current_process().daemon
            and "torch" not in sys.modules)


def _work(index: int) -> Any:
    assert _JOB is not None
    map_one, workloads = _JOB
    return map_one(workloads[index])


def map_all(map_one: Callable[[Workload], Any], workloads: Sequence[Workload],
            jobs: int | None = None) -> list[Any]:
    """``[map_one(w) for w in workloads]``, on up to ``jobs`` forked processes (default:
    the CPUs this process may use).  ``map_one`` returns its answer or an exception object
    (it must not raise), and both must pickle."""
    global _JOB
    jobs = min(jobs or available_cpus(), len(workloads))
    if jobs < 2 or len(workloads) < MIN_SHAPES or not can_fork():
        return [map_one(w) for w in workloads]
    _JOB = (map_one, workloads)
    try:
        with mp.get_context("fork").Pool(jobs) as pool:
            return pool.map(_work, range(len(workloads)), chunksize=1)
    finally:
        _JOB = None
