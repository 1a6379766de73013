"""The on-disk multiplier library and name resolution.

Imported and generated multipliers are kept one file per multiplier (``NAME.npz``: LUT,
metadata, netlist) so a library can be copied, diffed and partially deleted by hand.  Every
write is atomic.  :func:`resolve` is the single entry point every command uses to turn what a
user typed (a library name, a built-in parametric name, or a file path) into a Multiplier.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from platformdirs import user_data_dir

from core.arithmetic import Arithmetic, resolve_arithmetic
from core.atomic import atomic_path
from core.errors import HwcostError, control_character
from core.limits import Limit
from core.untrusted import ArrayCheck, read_npy, regular_file_size

from .errors import UnknownMultiplier
from .multiplier import MAX_BITS, Multiplier, raw_to_product
from .netlist import Netlist

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
#: Names become file names; 100 characters stays far below every filesystem's 255 bytes.
MAX_NAME_LENGTH = 100
FORMAT_VERSION = 1
FILE_SUFFIXES = (".v", ".sv", ".c", ".h", ".cpp", ".bin", ".npy")

#: A real entry holds a 256 KiB LUT and a netlist of at most a few MiB of JSON (the gate
#: limit); the file and every member are checked against this before anything is inflated,
#: so a corrupt or hostile entry (a zip bomb) cannot eat memory.
MAX_ENTRY_BYTES = Limit("HWCOST_MAX_LIBRARY_ENTRY_BYTES", 64 * 2**20,
                        "bytes in a library entry")

#: Errors that the zip and zlib layers raise for a damaged archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError,
               OSError, ValueError)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a library name, or None when it can."""
    if len(name) > MAX_NAME_LENGTH:
        return f"longer than {MAX_NAME_LENGTH} characters"
    if not NAME_RE.fullmatch(name):
        return "letters, digits, '_' and '-', not starting with a digit or '-'"
    return None


def default_library_dir() -> Path:
    """``$HWCOST_HOME/multipliers`` if set, else the user's data dir (per platform)."""
    home = os.environ.get("HWCOST_HOME")
    base = Path(home) if home else Path(user_data_dir("hwcost", appauthor=False))
    return base / "multipliers"


class Library:
    """A folder of saved multipliers."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_library_dir()

    def path_of(self, name: str) -> Path:
        return self.root / f"{name}.npz"

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.npz") if name_problem(p.stem) is None)

    def __contains__(self, name: str) -> bool:
        # lexists: an entry that is a directory, FIFO or dangling link is still *this* name,
        # and loading it says what is wrong instead of "unknown multiplier".
        return name_problem(name) is None and os.path.lexists(self.path_of(name))

    def save(self, mult: Multiplier, force: bool = False) -> Path:
        """Write ``mult``; an existing entry of the same name is replaced only with ``force``."""
        problem = name_problem(mult.name)
        if problem is not None:
            raise HwcostError(f"invalid multiplier name {mult.name[:MAX_NAME_LENGTH]!r}: "
                              f"{problem}")
        target = self.path_of(mult.name)
        if target.exists() and not force:
            raise HwcostError(f"multiplier {mult.name!r} is already in the library "
                              f"({target}); use --force to replace it")
        meta = {
            "format": FORMAT_VERSION, "name": mult.name, "a_bits": mult.a_bits,
            "b_bits": mult.b_bits, "signed": mult.signed, "published": mult.published,
            "source": mult.source, "source_sha256": mult.source_sha256,
            "description": mult.description,
        }
        arrays = {"lut": mult.lut, "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
        if mult.netlist is not None:
            arrays["netlist"] = np.frombuffer(json.dumps(mult.netlist.to_dict()).encode(),
                                              np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        try:
            with atomic_path(target) as tmp:
                tmp.write_bytes(buf.getvalue())
        except OSError as err:
            raise HwcostError(f"cannot write the library entry: {err.strerror or err}",
                              file=target) from None
        return target

    def load(self, name: str) -> Multiplier:
        """The entry ``name``; a damaged or hand-edited entry is refused, naming its file."""
        path = self.path_of(name)
        if name not in self:
            raise UnknownMultiplier(f"multiplier {_short(name)!r} is not in the library "
                                    f"{self.root}")
        try:
            return _read_entry(path)
        except HwcostError as err:
            raise HwcostError(f"library entry is corrupted ({err.message}); re-import it with "
                              "--force", file=path) from None

    def remove(self, name: str) -> None:
        if name not in self:
            raise UnknownMultiplier(f"multiplier {_short(name)!r} is not in the library "
                                    f"{self.root}")
        path = self.path_of(name)
        try:
            path.unlink()
        except OSError as err:
            raise HwcostError(f"cannot remove the library entry: {err.strerror or err}",
                              file=path) from None


def _read_entry(path: Path) -> Multiplier:
    """Read and check one entry file; every problem is a :class:`HwcostError`."""
    MAX_ENTRY_BYTES.check(regular_file_size(path), context="file too large")
    try:
        with zipfile.ZipFile(path) as archive:
            meta = _meta(_json_member(archive, "meta", path))
            lut = _member(archive, "lut", path, _lut_check(meta))
            netlist_data = (_json_member(archive, "netlist", path)
                            if "netlist.npy" in archive.namelist() else None)
    except _ZIP_ERRORS as err:
        text = "a member is encrypted" if "encrypted" in str(err) else \
            f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
        raise HwcostError(text) from None
    info = np.iinfo(np.int32)
    if lut.size and (lut.min() < info.min or lut.max() > info.max):
        raise HwcostError("lut: products do not fit 32 bits")
    netlist = None if netlist_data is None else _netlist(netlist_data, meta)
    mult = Multiplier(name=meta["name"], a_bits=meta["a_bits"], b_bits=meta["b_bits"],
                      signed=meta["signed"], lut=lut, published=meta["published"],
                      source=meta["source"], source_sha256=meta["source_sha256"],
                      netlist=netlist, description=meta["description"])
    if netlist is not None:
        raw = raw_to_product(netlist.truth_table(), netlist.out_bits, mult.signed)
        if not np.array_equal(raw, mult.lut):
            raise HwcostError("the stored netlist does not compute the stored truth table")
    return mult


def _member(archive: zipfile.ZipFile, key: str, path: Path, check: ArrayCheck) -> np.ndarray:
    """One ``.npy`` member, its declared size checked before it is inflated."""
    try:
        info = archive.getinfo(f"{key}.npy")
    except KeyError:
        raise HwcostError(f"no '{key}' array in the entry") from None
    MAX_ENTRY_BYTES.check(info.file_size, context=f"member {key}")
    with archive.open(info) as fp:
        return read_npy(fp, check, file=path, what=key)


def _json_member(archive: zipfile.ZipFile, key: str, path: Path) -> Any:
    def check(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
        if len(shape) != 1 or dtype != np.uint8:
            return f"expected 1-D uint8 JSON text, found {dtype} of shape {shape}"
        return None

    text = bytes(_member(archive, key, path, check))
    try:
        return json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise HwcostError(f"{key}: not valid JSON ({' '.join(str(err).split())[:120]})") \
            from None


#: meta key -> (accepted types, description), checked so that a hand-edited entry cannot
#: reach code that trusts these types.
_META_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"), "a_bits": ((int,), "an integer"),
    "b_bits": ((int,), "an integer"), "signed": ((bool,), "true or false"),
    "published": ((dict,), "an object"), "source": ((str, type(None)), "a string or null"),
    "source_sha256": ((str, type(None)), "a string or null"),
    "description": ((str,), "a string"),
}


def _meta(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise HwcostError(f"meta: expected a JSON object, found {type(meta).__name__}")
    meta = {"description": "", **meta}
    for key, (types, text) in _META_TYPES.items():
        value = meta.get(key, KeyError)
        if value is KeyError:
            raise HwcostError(f"meta: missing '{key}'")
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise HwcostError(f"meta: '{key}' must be {text}, found {value!r:.40}")
    for key in ("a_bits", "b_bits"):
        if not 1 <= meta[key] <= MAX_BITS:
            raise HwcostError(f"meta: '{key}' must be 1..{MAX_BITS}, found {meta[key]}")
    if name_problem(meta["name"]) is not None:
        raise HwcostError(f"meta: invalid multiplier name {meta['name'][:40]!r}")
    for key, value in meta["published"].items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise HwcostError(f"meta: published figure {str(key)[:40]!r} must be a number")
    return meta


def _lut_check(meta: dict[str, Any]) -> ArrayCheck:
    want = (1 << meta["a_bits"], 1 << meta["b_bits"])

    def check(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
        if dtype.fields is not None or not np.issubdtype(dtype, np.integer):
            return f"expected an integer table, found dtype {dtype}"
        if shape != want:
            return f"expected shape {want} for {meta['a_bits']}x{meta['b_bits']} " \
                   f"operands, found {shape}"
        return None

    return check


def _netlist(data: Any, meta: dict[str, Any]) -> Netlist:
    netlist = Netlist.from_dict(data)
    if (netlist.a_bits, netlist.b_bits) != (meta["a_bits"], meta["b_bits"]) \
            or netlist.out_bits != meta["a_bits"] + meta["b_bits"]:
        raise HwcostError(f"netlist: {netlist.a_bits}x{netlist.b_bits} operands and "
                          f"{netlist.out_bits} outputs do not match the "
                          f"{meta['a_bits']}x{meta['b_bits']} multiplier")
    return netlist


def looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith(FILE_SUFFIXES)


def resolve(spec: str, library: Library | None = None) -> Multiplier:
    """A multiplier from a file path, a library name or a built-in parametric name."""
    from .generators import builtin_examples, generate, is_generated_name
    from .importers import import_file

    library = library if library is not None else Library()
    bad = control_character(spec)
    if bad is not None:   # a NUL cannot reach the OS, a newline must not reach a message
        raise UnknownMultiplier(f"a multiplier name or path cannot contain control characters "
                                f"({bad!r}): {_short(spec)!r}")
    if looks_like_path(spec) or _is_file(spec):
        return import_file(spec)
    if spec in library:
        return library.load(spec)
    if is_generated_name(spec):
        return generate(spec)
    candidates = library.names() + builtin_examples()
    close = difflib.get_close_matches(spec, candidates, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else \
        "; see 'hwcost multipliers list'"
    raise UnknownMultiplier(f"unknown multiplier {_short(spec)!r}{hint}")


def _short(name: str) -> str:
    """``name`` cut for an error line (a script may pass anything as a name)."""
    return name if len(name) <= MAX_NAME_LENGTH else name[:MAX_NAME_LENGTH] + "..."


def _is_file(spec: str) -> bool:
    """Whether ``spec`` names an existing file; a name too long for the filesystem is not
    one (``Path.is_file`` raises for it instead of answering)."""
    try:
        return Path(spec).is_file()
    except (OSError, ValueError):
        return False


class MultiplierResolver:
    """Names to multipliers for one run: one library folder (``None``: the default one),
    built-in parametric names and file paths, each resolved once.

    Passed explicitly to layers, supernets and estimators, so that a multiplier imported
    into a custom library folder is found everywhere a run looks for it, without setting
    environment variables.
    """

    def __init__(self, library_dir: str | Path | None = None):
        self.library_dir = None if library_dir is None else str(library_dir)
        self.library = Library(library_dir)
        self._cache: dict[str, Multiplier] = {}

    def __call__(self, spec: str | Multiplier) -> Multiplier:
        if isinstance(spec, Multiplier):
            return spec
        if spec not in self._cache:
            self._cache[spec] = resolve(spec, self.library)
        return self._cache[spec]

    def arithmetic(self, spec: str | Multiplier | Arithmetic) -> Arithmetic:
        """``spec`` as a typed arithmetic: a float format by name, anything else a
        multiplier of this run's library (the one place a name becomes an arithmetic)."""
        return resolve_arithmetic(spec, self)
