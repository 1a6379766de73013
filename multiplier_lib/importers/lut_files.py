"""Truth tables stored as files: TFApprox ``.bin`` and numpy ``.npy``.

TFApprox (the approximate-convolution layer for TensorFlow) loads an 8x8 multiplier as a raw
256x256 table of little-endian ``uint16`` with entry ``(a << 8) | b``; signed multipliers
store the 16-bit two's complement product.  ``.npy`` tables hold products directly (any
integer dtype), indexed by operand *codes*, so a signed table lists codes ``0..127`` then
``-128..-1`` exactly like :attr:`Multiplier.lut`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.untrusted import read_npy_file

from ..errors import ImportFailed
from ..multiplier import MAX_BITS, raw_to_product

BIN_BYTES = 256 * 256 * 2


def read_bin(path: str | Path, data: bytes, signed: bool) -> np.ndarray:
    """The 256x256 product table of a TFApprox ``.bin`` file."""
    if len(data) != BIN_BYTES:
        raise ImportFailed(f"a TFApprox .bin table must be exactly {BIN_BYTES} bytes (256x256 "
                           f"little-endian uint16), this file has {len(data)} bytes",
                           file=str(path))
    raw = np.frombuffer(data, dtype="<u2").reshape(256, 256)
    return raw_to_product(raw, 16, signed)


def _check_table(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """Why a ``.npy`` header cannot describe a product table, checked before its data is
    read (a header may claim any shape)."""
    if dtype.fields is not None or not np.issubdtype(dtype, np.integer):
        hint = " (round and convert it to an integer dtype first)" \
            if np.issubdtype(dtype, np.floating) else ""
        return f"expected an integer product table, found dtype {dtype}{hint}"
    if len(shape) != 2:
        return (f"expected a 2-D table of shape (2**a_bits, 2**b_bits), found "
                f"{len(shape)}-D shape {shape}")
    for n in shape:
        k = n.bit_length() - 1
        if n < 2 or n != 1 << k or k > MAX_BITS:
            return (f"table shape {shape} is not (2**a_bits, 2**b_bits) with "
                    f"1..{MAX_BITS} bit operands")
    return None


def read_npy(path: str | Path, signed: bool | None) -> tuple[np.ndarray, int, int, bool]:
    """``(lut, a_bits, b_bits, signed)`` from a 2-D integer ``.npy`` table.

    ``signed=None`` means "decide from the values": a table with a negative product can only
    be a signed multiplier's.
    """
    path = str(path)
    arr = read_npy_file(path, _check_table, error=ImportFailed)
    a_bits, b_bits = (n.bit_length() - 1 for n in arr.shape)
    lo, hi = int(arr.min()), int(arr.max())
    if signed is None:
        signed = lo < 0
    out_bits = a_bits + b_bits
    low, high = (-(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1) if signed \
        else (0, (1 << out_bits) - 1)
    if lo < low or hi > high:
        bad = lo if lo < low else hi
        a, b = (int(x[0]) for x in np.nonzero(arr == bad))
        kind = "signed" if signed else "unsigned"
        raise ImportFailed(f"entry [{a}, {b}] = {bad} does not fit a {out_bits}-bit {kind} "
                           f"product ({low}..{high})", file=path)
    return arr.astype(np.int64), a_bits, b_bits, signed
