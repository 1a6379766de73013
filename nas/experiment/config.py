"""What an experiment runs: the data, the search space's multipliers, the energy weights, the
seeds and the two network sizes, with the two presets (``small`` and ``quick``).

Kept torch-free: ``hwcost experiment --dry-run`` and every settings mistake are answered
before torch is imported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from core.errors import HwcostError
from nas.settings import MULTIPLIER_SAMPLING, DataSettings, SettingError, check_types, require

#: exact 8-bit first (the fixed layers of a per-edge search run on the first candidate), then
#: approximate designs from cheap-and-close to cheapest: rel. energy 0.87, 0.68, 0.56 of exact
DEFAULT_CANDIDATES = ("exact8u", "trunc8u_k4c", "trunc8u_k6c", "bam8u_h2v6")
DEFAULT_WEIGHTS = (0.0, 0.25, 1.0, 4.0)
#: the digits' own 8 x 8 pixels: four times less work per image than the loader's default 16
DIGITS_SIZE = 8


@dataclass
class ExperimentConfig(DataSettings):
    """Every setting of an experiment; saved in its folder so a rerun continues only the
    experiment it was started as."""

    dataset: str = "digits"
    candidates: list[str] = field(default_factory=lambda: list(DEFAULT_CANDIDATES))
    exact: str = "exact8u"                 # the exact 8-bit baseline's multiplier
    float_baseline: str = "fp32"
    energy_weights: list[float] = field(default_factory=lambda: list(DEFAULT_WEIGHTS))
    penalty: str = "additive"
    #: how the energy-aware searches treat the candidates (``hwcost search
    #: --multiplier-sampling``): 'all' made the README's table; 'per-conv' and 'gumbel' run
    #: a search step at about the cost of one multiplier's
    multiplier_sampling: str = "all"
    seeds: int = 3                         # training seeds per found genotype
    search_seed: int = 2
    grad_multiplier: str | None = "bam8u_h2v6"   # grad=lut vs ste on this one (None: skip)
    arch: str = "eyeriss"
    library: str | None = None
    backend: str = "auto"
    search_epochs: int = 8
    search_layers: int = 3
    search_channels: int = 4
    search_batch_size: int = 32
    # DARTS's 3e-4 is for ~19,500 architecture steps (50 CIFAR-10 epochs), which let a logit
    # move by ~6; a digits search has ~180 (8 epochs of 22 batches), and at 3e-4 its
    # architecture weights stay uniform to 1e-2 and the genotype is an argmax of noise
    search_alpha_lr: float = 1e-2
    search_max_steps: int | None = None
    train_epochs: int = 20
    train_layers: int = 5
    train_channels: int = 8
    train_batch_size: int = 64
    train_max_steps: int | None = None

    def validate(self) -> None:
        """Types, ranges and names; a bad one raises :class:`SettingError` naming it."""
        check_types(ExperimentConfig, asdict(self))
        require("energy_weights", len(self.energy_weights) >= 1, "must list at least one "
                "weight")
        for w in self.energy_weights:
            require("energy_weights", type(w) in (int, float) and math.isfinite(w) and w >= 0,
                    f"must be numbers >= 0, not {w!r}")
        require("energy_weights", len(set(self.energy_weights)) == len(self.energy_weights),
                "must be distinct")
        require("candidates", len(self.candidates) >= 2, "must name at least two multipliers "
                "(the per-edge search chooses among them)")
        require("seeds", 1 <= self.seeds <= 100, "must be 1..100")
        require("penalty", self.penalty in ("additive", "fbnet"),
                "must be additive or fbnet (a target needs an energy budget per network)")
        require("multiplier_sampling", self.multiplier_sampling in MULTIPLIER_SAMPLING,
                f"must be one of {', '.join(MULTIPLIER_SAMPLING)}")
        for key in ("search_epochs", "search_channels", "search_batch_size", "train_epochs",
                    "train_layers", "train_channels", "train_batch_size"):
            require(key, getattr(self, key) >= 1, "must be at least 1")
        require("search_layers", self.search_layers >= 3, "must be at least 3 (two reduction "
                "cells)")
        require("search_alpha_lr", 0 < self.search_alpha_lr <= 1, "must be in (0, 1]")
        for key in ("search_max_steps", "train_max_steps"):
            require(key, getattr(self, key) is None or getattr(self, key) >= 1,
                    "must be at least 1")

    def resolve_names(self) -> None:
        """Every multiplier name exists (in the run's library) and is of the right kind."""
        from core.arithmetic import FloatFormat, float_format
        from multiplier_lib.library import MultiplierResolver

        resolve = MultiplierResolver(self.library)
        names = [("candidates", n) for n in self.candidates] + [("exact", self.exact)]
        if self.grad_multiplier:
            names.append(("grad_multiplier", self.grad_multiplier))
        for key, name in names:
            try:
                arith = resolve.arithmetic(name)
            except HwcostError as err:
                raise SettingError(key, f"{key}: {err.message}") from None
            if isinstance(arith, FloatFormat):
                raise SettingError(key, f"{key}: {name} is a float format; the float baseline "
                                   "is float_baseline")
        require("float_baseline", float_format(self.float_baseline) is not None,
                f"{self.float_baseline!r} is not a float format (fp32, fp16 or bf16)")
        require("candidates", len(set(self.candidates)) == len(self.candidates),
                "must be distinct")


#: the settings each preset changes; ``small`` is the dataclass's defaults
PRESETS: dict[str, dict[str, Any]] = {
    "small": {},
    # the whole pipeline, every unit, a few batches each: what the test suite runs end to end
    "quick": dict(search_epochs=1, search_max_steps=2, search_channels=2,
                  search_batch_size=16, train_epochs=1, train_max_steps=3, train_layers=3,
                  train_channels=4, train_batch_size=32),
}


def make_config(preset: str = "small", **overrides: Any) -> ExperimentConfig:
    """The preset's config with ``overrides`` (``None`` values are left at the preset's);
    a mistake raises :class:`HwcostError` naming the setting."""
    if preset not in PRESETS:
        raise HwcostError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in fields(ExperimentConfig)}
    for key in given:
        if key not in known:
            raise HwcostError(f"unknown experiment setting {key!r}")
    cfg = replace(ExperimentConfig(), **{**PRESETS[preset], **given})
    if cfg.dataset == "digits" and cfg.input_size is None:
        cfg.input_size = DIGITS_SIZE      # the scans' own size (other data: their own too)
    try:
        cfg.validate()
        cfg.resolve_names()
    except SettingError as err:
        raise HwcostError(err.message) from None
    return cfg


#: settings added after experiments were first saved, with the value a folder saved before
#: them ran with (so those folders still resume)
ADDED_LATER: dict[str, Any] = {"multiplier_sampling": "all"}


def differences(saved: dict[str, Any], cfg: ExperimentConfig) -> list[str]:
    """The settings in which ``cfg`` differs from a saved experiment's."""
    now = asdict(cfg)
    saved = {**ADDED_LATER, **saved}
    return sorted(k for k in set(now) | set(saved) if saved.get(k) != now.get(k))
