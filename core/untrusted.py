"""Opening files that other tools and scripts wrote, without trusting them.

Every reader in :mod:`multiplier_lib` (importers, operand histograms, library entries) starts
here, so that the checks that keep a bad file from hanging the tool or eating memory are made
once and the same way:

* only regular files are opened: a FIFO blocks ``open`` forever and ``/dev/zero`` never ends;
* a file is read up to a known size, never "until EOF";
* a ``.npy`` header is checked (shape, dtype, no pickled objects) *before* any data is read,
  because numpy allocates whatever the header claims (``shape=(10**6, 10**6)`` is 8 TB), and
  the data must be exactly what the header promises, so a cut or padded file is refused
  rather than silently misread.

Problems become :class:`~core.errors.HwcostError` naming the file.
"""

from __future__ import annotations

import math
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.errors import HwcostError

#: ``check(shape, dtype)`` -> a problem to report, or None if the array is acceptable
ArrayCheck = Callable[[tuple[int, ...], np.dtype], "str | None"]


def regular_file_size(path: str | Path, error: type[HwcostError] = HwcostError) -> int:
    """The size of ``path`` if it is a readable regular file (symlinks followed), else an
    ``error`` saying what it is instead."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        what = "dangling symbolic link" if path.is_symlink() else "no such file"
        raise error(what, file=str(path)) from None
    except OSError as err:
        raise error(f"cannot read the file: {err.strerror or err}", file=str(path)) from None
    if stat.S_ISDIR(info.st_mode):
        raise error("is a directory, expected a file", file=str(path))
    _refuse_special(path, info.st_mode, error)
    return info.st_size


def refuse_special_file(path: str | Path, error: type[HwcostError] = HwcostError) -> None:
    """Refuse a FIFO, device or socket at ``path`` (opening a FIFO blocks forever); a
    regular file, a directory or a missing path is left to the caller's own messages."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return
    if not stat.S_ISDIR(mode):
        _refuse_special(Path(path), mode, error)


def _refuse_special(path: Path, mode: int, error: type[HwcostError]) -> None:
    if not stat.S_ISREG(mode):
        raise error("is not a regular file (a FIFO, device or socket cannot be read)",
                    file=str(path))


def read_bounded(path: str | Path, limit: int,
                 error: type[HwcostError] = HwcostError) -> bytes:
    """At most ``limit`` bytes of ``path`` (the caller checked its size already); more means
    the file grew while being read, which is refused too."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as err:
        raise error(f"cannot read the file: {err.strerror or err}", file=str(path)) from None
    if len(data) > limit:
        raise error(f"the file grew past {limit:,} bytes while being read", file=str(path))
    return data


def read_npy(fp: BinaryIO, check: ArrayCheck, *, file: str | Path, what: str = "",
             error: type[HwcostError] = HwcostError) -> np.ndarray:
    """The array stored in the ``.npy`` stream ``fp``, after ``check`` approved its header.

    ``what`` prefixes messages (``"lut.npy: "`` for a member of an archive).
    """
    prefix = f"{what}: " if what else ""
    try:
        shape, fortran, dtype = _header(fp)
    except Exception as err:  # numpy's header parser raises many types (even TokenError)
        raise error(f"{prefix}not a readable .npy array ({_one_line(err)})",
                    file=str(file)) from None
    if any(n < 0 for n in shape):
        raise error(f"{prefix}negative dimension in the .npy shape {shape}", file=str(file))
    if dtype.hasobject:
        raise error(f"{prefix}holds Python objects (pickled data), which hwcost never loads",
                    file=str(file))
    problem = check(shape, dtype)
    if problem is not None:
        raise error(f"{prefix}{problem}", file=str(file))
    nbytes = math.prod(shape) * dtype.itemsize
    data = fp.read(nbytes)
    if len(data) != nbytes:
        raise error(f"{prefix}truncated .npy file: the header promises {nbytes:,} bytes of "
                    f"data, found {len(data):,}", file=str(file))
    if fp.read(1):
        raise error(f"{prefix}unexpected bytes after the array data (a corrupted .npy file)",
                    file=str(file))
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C").copy()


def read_npy_file(path: str | Path, check: ArrayCheck,
                  error: type[HwcostError] = HwcostError) -> np.ndarray:
    """:func:`read_npy` on a file path, refusing anything but a regular file first."""
    regular_file_size(path, error)
    try:
        with open(path, "rb") as fh:
            return read_npy(fh, check, file=path, error=error)
    except OSError as err:
        raise error(f"cannot read the file: {err.strerror or err}", file=str(path)) from None


def _header(fp: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from a ``.npy`` header (format 1.0 or 2.0)."""
    fmt = np.lib.format
    magic = fp.read(6)
    if magic != b"\x93NUMPY":
        raise ValueError("it does not start with the .npy magic string"
                         + (" (it looks like a .npz archive)" if magic[:2] == b"PK" else ""))
    version = fp.read(2)
    if version == b"\x01\x00":
        return fmt.read_array_header_1_0(fp)
    if version == b"\x02\x00":
        return fmt.read_array_header_2_0(fp)
    raise ValueError(f"unsupported .npy format version {tuple(version)}")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]
