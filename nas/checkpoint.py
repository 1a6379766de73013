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
