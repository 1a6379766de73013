"""The warning every benchmark prints when other work shares the machine: on 2 cores one
other job makes threads spin and every figure meaningless, so a table must say so."""

from __future__ import annotations

import sys

from nas.threads import busy_elsewhere


def warn_if_busy(stream=sys.stdout) -> bool:
    """Print a one-line warning when other tasks are runnable now; True if it did."""
    others = busy_elsewhere()
    if not others:
        return False
    print(f"warning: {others:g} other task(s) running on this machine now: the timings below "
          "are unreliable (run the benchmark with nothing else running)", file=stream)
    return True
