"""Checkpoints that are never half-written and never silently loaded when damaged.

A checkpoint file is ``MAGIC`` + the SHA-256 of the payload + the payload (a ``torch.save``
of a plain dict).  It is written to a temporary file and renamed into place, so a run killed
at any moment leaves either the previous checkpoint or the new one.  Loading checks the magic
and the digest before unpickling anything, and unpickles with torch's ``weights_only``
loader (tensors, numpy arrays and plain containers only): the digest catches damage, not a
crafted file, so a checkpoint from elsewhere can never run code.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_write_bytes
from core.errors import HwcostError
from core.untrusted import refuse_special_file

MAGIC = b"HWCOSTCKPT1\n"


def save(path: str | Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    atomic_write_bytes(path, MAGIC + digest + b"\n" + payload)


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    refuse_special_file(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HwcostError("checkpoint not found", file=path) from None
    except OSError as exc:
        raise HwcostError(f"cannot read checkpoint ({exc})", file=path) from None
    if not data.startswith(MAGIC):
        raise HwcostError("not an hwcost checkpoint (bad header); refusing to load it",
                          file=path)
    rest = data[len(MAGIC):]
    digest, _, payload = rest.partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise HwcostError("checkpoint is corrupted (checksum mismatch); refusing to load it",
                          file=path)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(io.BytesIO(payload), weights_only=True)
    except pickle.UnpicklingError as exc:  # refers to code, not data: never run it
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise HwcostError(f"checkpoint refers to code{what}, not only tensors and plain "
                          "data; refusing to load it", file=path) from None
    except Exception as exc:  # a valid digest over an unreadable payload
        raise HwcostError(f"checkpoint payload cannot be read ({type(exc).__name__})",
                          file=path) from None


def _numpy_globals() -> list:
    """What unpickling a numpy array needs (the RNG state holds one): the array type, its
    reconstructor and the numeric dtypes, and nothing that can run code."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    dtypes = [type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64,
                                           np.uint8, np.uint16, np.uint32, np.uint64,
                                           np.float16, np.float32, np.float64)]
    return [np.ndarray, np.dtype, _reconstruct, *dtypes]


def rng_state() -> dict[str, Any]:
    """Every random generator a run uses, so that a resumed run continues identically."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


# ---------------------------------------------------------------------------------------------
# What a loaded checkpoint must hold before any of it is used.  The digest only proves the
# file is intact; a file written by hand passes it, so its content is checked like any other
# input: every key, type and range, the config as the command line's would be, and the
# weights against the model they are loaded into (:func:`load_weights`).

#: the keys of each kind of checkpoint and their types
TRAIN_KEYS = {"kind": str, "config": dict, "genotype": str, "epoch": int, "model": dict,
              "opt": dict, "sched": dict, "rng": dict, "rows": list, "n_classes": int}
SEARCH_KEYS = {"config": dict, "epoch": int, "model": dict, "w_opt": dict, "a_opt": dict,
               "sched": dict, "rng": dict, "rows": list}
#: the most classes a checkpoint may declare (CIFAR-100 has 100, ImageNet 1,000)
MAX_CLASSES = 100_000


def check_content(state: Any, keys: dict[str, type], path: str | Path, kind: str) -> dict:
    """``state`` if it has every key of ``keys`` with its type, sane ranges, tensors as the
    weights and a well-formed RNG state; else one :class:`HwcostError` naming the file."""
    def bad(message: str) -> HwcostError:
        return HwcostError(f"not a {kind} checkpoint as hwcost writes it: {message}",
                           file=path)

    if not isinstance(state, dict):
        raise bad(f"it holds {type(state).__name__}, not a mapping")
    for key, typ in keys.items():
        if key not in state:
            raise bad(f"{key!r} is missing")
        value = state[key]
        if (typ is int and isinstance(value, bool)) or not isinstance(value, typ):
            raise bad(f"{key!r} is {type(value).__name__}, not {typ.__name__}")
    if not 0 <= state["epoch"] < 10**7:
        raise bad(f"epoch {state['epoch']} is out of range")
    if "n_classes" in keys and not 2 <= state["n_classes"] <= MAX_CLASSES:
        raise bad(f"n_classes {state['n_classes']} is not 2..{MAX_CLASSES:,}")
    model = state["model"]
    wrong = next((k for k, v in model.items()
                  if not isinstance(k, str) or not (isinstance(v, torch.Tensor) or
                                                    k.endswith("_extra_state"))), None)
    if wrong is not None:
        raise bad(f"model entry {str(wrong)[:80]!r} is not a named tensor")
    rng = state["rng"]
    if not (isinstance(rng.get("torch"), torch.Tensor) and rng["torch"].dtype == torch.uint8
            and isinstance(rng.get("numpy"), tuple) and isinstance(rng.get("python"), tuple)):
        raise bad("'rng' is not the random generators' state")
    if not all(isinstance(row, dict) for row in state["rows"]):
        raise bad("'rows' is not a list of per-epoch records")
    return state


def config_of(cls: type, saved: dict, path: str | Path) -> Any:
    """The run config a checkpoint carries, checked as strictly as a settings file: unknown
    keys, types and ranges (settings added since the file was written take defaults)."""
    from dataclasses import asdict

    from .settings import SettingError, c_model_in_data, check_types

    for key in ("multiplier", "multipliers", "grad_multiplier"):
        names = saved.get(key)
        for name in names if isinstance(names, list) else [names]:
            if isinstance(name, str) and name.strip().lower().endswith(".c"):
                raise HwcostError(f"the checkpoint's config: {c_model_in_data(name)}",
                                  file=path)
    try:
        check_types(cls, saved)
        cfg = cls(**{**asdict(cls()), **saved})
        cfg.validate()
    except SettingError as err:
        raise HwcostError(f"the checkpoint's config: {err.message}", file=path) from None
    return cfg


def load_weights(module: torch.nn.Module, weights: dict, path: str | Path, what: str) -> None:
    """``module.load_state_dict(weights)``; names, shapes and extra state that do not fit the
    network are one line (torch's own message lists every mismatch on many lines)."""
    own = module.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        example = (unexpected or missing)[0]
        raise HwcostError(f"the checkpoint's {what} do not fit the network: "
                          f"{len(missing)} entries missing, {len(unexpected)} unexpected, e.g. "
                          f"{example[:80]!r}", file=path)
    try:   # shapes: torch checks them (an unset quantizer range is legitimately empty)
        module.load_state_dict(weights)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError,
            HwcostError) as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "size mismatch" in ln), lines[0] if lines else "")
        raise HwcostError(f"the checkpoint's {what} do not fit the network: "
                          f"{type(err).__name__}: {detail[:240]}", file=path) from None
    check_loaded(module, path, what)


def check_loaded(module: torch.nn.Module, path: str | Path, what: str) -> None:
    """State whose shape torch cannot check (observed quantizer ranges take the file's shape):
    every module that can says whether what it loaded fits it."""
    for sub in module.modules():
        check = getattr(sub, "check_loaded_state", None)
        if check is not None:
            try:
                check()
            except HwcostError as err:
                raise HwcostError(f"the checkpoint's {what} do not fit the network: "
                                  f"{err.message}", file=path) from None


def restore(path: str | Path, what: str, action: Any) -> None:
    """Run ``action()`` (an optimizer's, scheduler's or RNG's ``load_state_dict``) and turn a
    failure on malformed content into one line naming the checkpoint."""
    try:
        action()
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise HwcostError(f"the checkpoint's {what} cannot be restored: "
                          f"{type(err).__name__}: {first}", file=path) from None
