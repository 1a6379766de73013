"""Settings shared by the search and training configs (no torch import: the sweep driver
reads them before any worker starts)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from core.errors import HwcostError
from core.limits import Limit

#: the ways a search step can treat an edge's candidate multipliers (see
#: nas.search_cnn.SearchCNN.forward); here, torch-free, for the CLI and the experiment config
MULTIPLIER_SAMPLING = ("all", "gumbel", "per-conv")

#: the data sets ``--dataset`` accepts (here, torch-free, so ``hwcost --help`` stays fast)
DATASETS = ("cifar10", "cifar100", "svhn", "synthetic", "digits", "folder", "npz")


#: images of the generated data set: each is made in memory (12 KiB at 32x32)
MAX_SYNTHETIC_SIZE = Limit("HWCOST_MAX_SYNTHETIC_SIZE", 100_000, "synthetic images")


@dataclass
class DataSettings:
    """Where a run's images come from; the leading fields of both the search and the
    training config (and a sweep's ``data`` section), so the two cannot drift apart."""

    dataset: str = "cifar10"
    data_dir: str = "data"
    download: bool = False
    synthetic_size: int = 2048
    input_size: int | None = None      # resize the images (folder data: 32 when unset)


class SettingError(HwcostError):
    """A bad value of one named setting; readers that know where the setting was written
    (a YAML file's line) re-raise it at that line."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


_CHECKS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", lambda v: type(v) is int),
    "float": ("a number", lambda v: type(v) in (int, float)),
    "bool": ("true or false", lambda v: type(v) is bool),
    "list[str]": ("a list of names", lambda v: isinstance(v, list)
                  and all(isinstance(x, str) for x in v)),
    "list[float]": ("a list of numbers", lambda v: isinstance(v, list)
                    and all(type(x) in (int, float) for x in v)),
}


def c_model_in_data(name: str) -> str:
    """The refusal of a C model named by a data file (config, sweep, checkpoint): a C file is
    code, compiled and run when read; only the command line may name one (it then runs in the
    importer's sandbox), and a data file names its library entry after the import."""
    return (f"{name[-80:]!r} is a C model; a settings file does not compile code: import it "
            "first (hwcost multipliers import FILE.c) and name the library entry")


def check_types(cls: type, values: Mapping[str, object]) -> None:
    """Each value has its dataclass field's type (``int | None`` allows null), so a YAML
    typo (``epochs: ten``) is refused with the setting's name instead of failing deep inside
    a run; unknown keys are refused with the closest known name."""
    known = {f.name: f for f in fields(cls)}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingError(key, f"unknown setting {key!r}{hint}")
        spec = str(known[key].type).replace(" ", "")
        optional = spec.endswith("|None")
        base = spec.removesuffix("|None")
        if value is None and optional:
            continue
        what, ok = _CHECKS[base]
        if not ok(value):
            null = " or null" if optional else ""
            raise SettingError(key, f"{key} must be {what}{null}, not {value!r}")
        if base == "float" and not math.isfinite(value):  # type: ignore[arg-type]
            raise SettingError(key, f"{key} must be a finite number, not {value!r}")


def require(key: str, ok: bool, message: str) -> None:
    """Raise a :class:`SettingError` for ``key`` unless ``ok``."""
    if not ok:
        raise SettingError(key, f"{key} {message}")


def check_run_settings(cfg: object) -> None:
    """The ranges and choices every run config shares (data, epochs, network width, batch,
    step cap, back end); each config's ``validate`` adds its own."""
    require("dataset", cfg.dataset in DATASETS,
            f"{cfg.dataset!r} is unknown; expected one of {', '.join(DATASETS)}")
    require("synthetic_size", cfg.synthetic_size >= 2, "must be at least 2")
    require("synthetic_size", cfg.synthetic_size <= MAX_SYNTHETIC_SIZE.value,
            f"must be at most {MAX_SYNTHETIC_SIZE.value:,} (set {MAX_SYNTHETIC_SIZE.env} to "
            "allow more)")
    require("input_size", cfg.input_size is None or 8 <= cfg.input_size <= 1024,
            "must be 8..1024")
    for key in ("epochs", "channels", "batch_size"):
        require(key, getattr(cfg, key) >= 1, "must be at least 1")
    require("max_steps", cfg.max_steps is None or cfg.max_steps >= 1, "must be at least 1")
    require("backend", cfg.backend in ("auto", "reference", "cpu", "triton"),
            "must be auto, reference, cpu or triton")
