"""Atomic file writes: a crash never leaves a half-written library entry, report or export.

Data goes to a temporary file in the destination folder, is flushed to disk, and is renamed
over the target only once complete (``os.replace`` is atomic on POSIX and Windows within one
filesystem); the folder is flushed after the rename.  A kill leaves the old file or the new
one, and at worst a hidden ``.NAME.*.tmp`` file beside it, never half a file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import HwcostError


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    refuse_special(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_current_umask())  # mkstemp makes 0600; use normal modes
    try:
        yield tmp_path
        _fsync(tmp_path)        # the data is on disk before the name points at it
        os.replace(tmp_path, path)
        _fsync(path.parent)     # and the rename itself survives a power cut
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def refuse_special(path: Path) -> None:
    """A rename onto ``path`` replaces whatever entry is there: a symlink (not its target), a
    FIFO, a socket, even a device node when run as root.  Only a regular file (or nothing) may
    be replaced; anything else is refused before a byte is written."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise HwcostError(f"cannot write here: {err.strerror or err}", file=path) from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a link" if stat.S_ISLNK(mode)
                else "a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device")
        raise HwcostError(f"exists and is {kind}, not a regular file; it is not replaced",
                          file=path)


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk; a no-op where unsupported."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
