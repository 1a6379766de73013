"""The experiment as a list of units (one search, or one training run of a found genotype
with one seed), each with its own folder, so that a unit is the grain of resumption and of
parallel work.

For every search there is one row of the final table:

* ``fp32`` and ``exact8u``: the same search space searched in float and with the exact 8-bit
  multiplier alone, accuracy only (energy weight 0): the baselines;
* ``w=<weight>``: the per-edge search over the candidate multipliers with that energy weight
  (``w=0`` searches the multipliers for accuracy alone).

Each found genotype is trained from scratch ``seeds`` times.  The ``grad-ste`` / ``grad-lut``
rows train one genotype (the exact baseline's) with every layer on ``grad_multiplier``, once
with the straight-through backward and once with the multiplier's own gradient tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import ExperimentConfig

DATA_FIELDS = ("dataset", "data_dir", "download", "synthetic_size", "input_size")


@dataclass(frozen=True)
class Unit:
    """One search or one training run."""

    kind: str                  # "search" or "train"
    name: str                  # its folder, relative to the experiment's
    row: str                   # the table row it feeds ("fp32", "exact8u", "w=1", ...)
    group: str                 # "baseline", "energy-aware" or "gradient"
    settings: dict[str, Any] = field(hash=False)   # SearchConfig / TrainConfig keyword args
    after: str | None = None   # the search whose genotype a training run trains

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "row": self.row, "group": self.group,
                "settings": self.settings, "after": self.after}


def weight_label(weight: float) -> str:
    """``w=0``, ``w=0.25``, ``w=4``: the row name of an energy weight."""
    return f"w={weight:g}"


def _data(cfg: ExperimentConfig) -> dict[str, Any]:
    return {key: getattr(cfg, key) for key in DATA_FIELDS}


def _search(cfg: ExperimentConfig, **arith: Any) -> dict[str, Any]:
    return {**_data(cfg), "epochs": cfg.search_epochs, "layers": cfg.search_layers,
            "channels": cfg.search_channels, "batch_size": cfg.search_batch_size,
            "max_steps": cfg.search_max_steps, "alpha_lr": cfg.search_alpha_lr,
            "seed": cfg.search_seed, "arch": cfg.arch,
            "library": cfg.library, "backend": cfg.backend, "penalty": cfg.penalty, **arith}


def _train(cfg: ExperimentConfig, seed: int, **arith: Any) -> dict[str, Any]:
    return {**_data(cfg), "epochs": cfg.train_epochs, "layers": cfg.train_layers,
            "channels": cfg.train_channels, "batch_size": cfg.train_batch_size,
            "max_steps": cfg.train_max_steps, "seed": seed, "library": cfg.library,
            "backend": cfg.backend, **arith}


def plan(cfg: ExperimentConfig) -> list[Unit]:
    """Every unit, searches first (a training run's search precedes it in the list)."""
    searches: list[tuple[Unit, dict[str, Any]]] = [
        (Unit("search", f"search/{cfg.float_baseline}", cfg.float_baseline, "baseline",
              _search(cfg, multiplier=cfg.float_baseline, multipliers=[], energy_weight=0.0)),
         {"multiplier": cfg.float_baseline}),
        (Unit("search", f"search/{cfg.exact}", cfg.exact, "baseline",
              _search(cfg, multiplier=cfg.exact, multipliers=[], energy_weight=0.0)),
         {"multiplier": cfg.exact}),
    ]
    for w in cfg.energy_weights:
        label = weight_label(w)
        searches.append((Unit("search", f"search/aware-w{w:g}", label, "energy-aware",
                              _search(cfg, multiplier=None, multipliers=list(cfg.candidates),
                                      energy_weight=float(w),
                                      multiplier_sampling=cfg.multiplier_sampling)),
                         {"multiplier": None}))
    units = [s for s, _ in searches]
    for search, arith in searches:
        for seed in range(cfg.seeds):
            folder = search.name.removeprefix("search/")
            units.append(Unit("train", f"train/{folder}/s{seed}", search.row, search.group,
                              _train(cfg, seed, **arith), after=search.name))
    if cfg.grad_multiplier:
        for grad in ("ste", "lut"):
            for seed in range(cfg.seeds):
                units.append(Unit("train", f"train/grad-{grad}/s{seed}", f"grad-{grad}",
                                  "gradient", _train(cfg, seed, multiplier=cfg.grad_multiplier,
                                                     grad=grad),
                                  after=f"search/{cfg.exact}"))
    return units
