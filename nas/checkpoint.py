"""Checkpoints that are never half-written and never silently loaded when damaged.

A checkpoint file is ``MAGIC`` + the SHA-256 of the payload + the payload (a ``torch.save``
of a plain dict).  It is written to a temporary file and renamed into place, so a run killed
at any moment leaves either the previous checkpoint or the new one.  Loading checks the magic
and the digest before unpickling anything.
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiplier_lib.atomic import atomic_write_bytes
from multiplier_lib.errors import HwcostError

MAGIC = b"HWCOSTCKPT1\n"


def save(path: str | Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    atomic_write_bytes(path, MAGIC + digest + b"\n" + payload)


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
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
        return torch.load(io.BytesIO(payload), weights_only=False)
    except Exception as exc:  # a valid digest over an unreadable payload
        raise HwcostError(f"checkpoint payload cannot be read ({exc})", file=path) from None


def rng_state() -> dict[str, Any]:
    """Every random generator a run uses, so that a resumed run continues identically."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
