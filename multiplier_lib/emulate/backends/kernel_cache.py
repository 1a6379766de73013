"""A cache of native builds that processes and environments can share safely.

A build lives in ``root / name``, where ``name`` carries a hash (:func:`key_of`) of everything
that went into it, so two environments whose builds differ (another torch installation,
compiler or Python) get two folders and never rebuild each other's.  A keyed folder is only
ever created whole: the build runs in a temporary folder inside ``root`` and is renamed into
place when it has compiled, loaded and written its marker file (:data:`MARKER`), so a reader
never sees a half-written library.  Builders of one name take an exclusive lock on
``root / (name + ".lock")`` (``fcntl.flock``); one that waited finds the finished build and
loads it instead of compiling again.  A folder without a valid marker (an interrupted build,
a hand-edited cache, a pre-marker layout) is never loaded: the next builder moves it aside
and builds anew.  A complete folder is never written to again, except when its library fails
to load (a damaged file), in which case it is replaced whole, the same way.

Torch-free on purpose: the cpu backend supplies the build and load steps, and tests can pass
fakes to exercise the locking and publishing without a compiler.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from core.errors import HwcostError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: the file a complete build folder carries: its key, its library's file name, a build id and
#: the key's inputs (for whoever wonders why a build was, or was not, reused)
MARKER = "hwcost-build.json"
_TMP = ".tmp-"
_STALE = ".stale-"


class Obtained(NamedTuple):
    """What :func:`obtain` loaded, and whether this process had to build it."""

    library: Path
    built: bool


def key_of(inputs: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-able build inputs (key order does not matter)."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def complete_library(folder: Path, key: str) -> Path | None:
    """The library of ``folder`` if it holds a complete build for ``key``, else None."""
    data = _read_marker(folder)
    if data is None or data.get("key") != key:
        return None
    name = data.get("library")
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        return None
    library = folder / name
    return library if library.is_file() else None


def _build_id(folder: Path) -> str | None:
    data = _read_marker(folder)
    return None if data is None else data.get("build_id")


def _unwritable(what: Path, err: OSError) -> HwcostError:
    return HwcostError(f"cannot create the kernel build folder {what}: {err}; "
                       "set HWCOST_CACHE to a writable folder")


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if needed); yields whether it is held
    (False where the file system refuses locks: builds still publish atomically, but two
    processes may then both compile)."""
    # flock needs no write access: a lock file another user created still serves
    flags = os.O_CREAT | (os.O_RDONLY if fcntl is not None else os.O_RDWR)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        raise _unwritable(path.parent, err) from err
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held = True
            except OSError:
                held = False
        else:  # pragma: no cover - Windows
            held = _lock_windows(fd)
        yield held
    finally:
        os.close(fd)  # releases the lock


def _lock_windows(fd: int) -> bool:  # pragma: no cover - Windows
    import msvcrt

    while True:
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)   # gives up after ~10 s: try again
            return True
        except OSError:
            time.sleep(0.1)


def _discard(path: Path, root: Path, name: str) -> None:
    """Move ``path`` out of the way at once (a rename), then delete it."""
    aside = root / f".{name}{_STALE}{uuid.uuid4().hex[:12]}"
    try:
        os.replace(path, aside)
    except OSError:
        aside = path
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            aside.unlink()


def _clear_leftovers(root: Path, name: str) -> None:
    """Temporary and discarded folders of ``name`` left by builds that died.  Only called
    with the name's lock held, so none of them belongs to a live build."""
    for pattern in (f".{name}{_TMP}*", f".{name}{_STALE}*"):
        for path in root.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def obtain(root: Path, name: str, key: str, inputs: Mapping[str, Any],
           build: Callable[[Path], str], load: Callable[[Path], object]) -> Obtained:
    """Load the complete build ``root / name`` for ``key``, building it first if needed.

    ``build(folder)`` compiles into the empty ``folder``, loads the result into this process
    and returns the library's file name (relative to ``folder``); ``load(path)`` loads an
    existing library and raises OSError if the file cannot be loaded.  A complete build is
    loaded without taking the lock, so a read-only cache that holds it works.
    """
    folder = root / name
    library = complete_library(folder, key)
    if library is not None:
        try:
            load(library)
            return Obtained(library, False)
        except OSError:
            # damaged on disk: replace it, unless someone else has already done so
            return _build_locked(root, name, key, inputs, build, load, _build_id(folder))
    return _build_locked(root, name, key, inputs, build, load, None)


def _build_locked(root: Path, name: str, key: str, inputs: Mapping[str, Any],
                  build: Callable[[Path], str], load: Callable[[Path], object],
                  distrusted: str | None) -> Obtained:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(root / name, err) from err
    folder = root / name
    with _exclusive(root / f"{name}.lock") as held:
        library = complete_library(folder, key)
        if library is not None and (distrusted is None or _build_id(folder) != distrusted):
            load(library)                       # built while we waited for the lock
            return Obtained(library, False)
        if held:
            _clear_leftovers(root, name)
        # not tempfile.mkdtemp: its 0700 would keep the published folder from other users
        tmp = root / f".{name}{_TMP}{uuid.uuid4().hex[:12]}"
        try:
            tmp.mkdir()
        except OSError as err:
            raise _unwritable(folder, err) from err
        try:
            lib_name = build(tmp)
            marker = {"key": key, "library": lib_name, "build_id": uuid.uuid4().hex,
                      "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "inputs": inputs}
            (tmp / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True,
                                                 default=str) + "\n")
            if folder.exists() or folder.is_symlink():
                _discard(folder, root, name)    # stale, partial, or distrusted
            try:
                os.rename(tmp, folder)
            except OSError:
                # an unlocked builder (no lock support) published first: use its build
                if complete_library(folder, key) is None:
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Obtained(folder / lib_name, True)
