"""``hwcost experiment``: the field's experiment, end to end and resumable.

An energy-aware DARTS search over candidate multipliers at several energy weights, the same
search space in float and with the exact 8-bit multiplier as baselines, every found genotype
trained from scratch with several seeds, and grad=lut against straight-through training; the
result is the table the papers report and an accuracy-energy Pareto plot.

* :mod:`.config`: the settings and their presets (``small``, ``quick``);
* :mod:`.plan`: the units (one search, or one training run) and their folders;
* :mod:`.runner`: running them, in parallel worker processes, resuming an earlier run;
* :mod:`.report`: mean ± std over seeds, the tables and the plot.
"""

from .config import PRESETS, ExperimentConfig, make_config
from .plan import Unit, plan
from .report import summarize, write_report
from .runner import run_experiment

__all__ = ["PRESETS", "ExperimentConfig", "Unit", "make_config", "plan", "run_experiment",
           "summarize", "write_report"]
