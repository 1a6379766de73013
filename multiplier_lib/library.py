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
from pathlib import Path

import numpy as np
from platformdirs import user_data_dir

from .atomic import atomic_path
from .errors import HwcostError, UnknownMultiplier
from .multiplier import Multiplier
from .netlist import Netlist

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
FORMAT_VERSION = 1
FILE_SUFFIXES = (".v", ".sv", ".c", ".h", ".cpp", ".bin", ".npy")


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
        return sorted(p.stem for p in self.root.glob("*.npz") if NAME_RE.match(p.stem))

    def __contains__(self, name: str) -> bool:
        return self.path_of(name).is_file()

    def save(self, mult: Multiplier, force: bool = False) -> Path:
        """Write ``mult``; an existing entry of the same name is replaced only with ``force``."""
        if not NAME_RE.match(mult.name):
            raise HwcostError(f"invalid multiplier name {mult.name!r}: use letters, digits, "
                              "'_' and '-', starting with a letter or '_'")
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
        with atomic_path(target) as tmp:
            tmp.write_bytes(buf.getvalue())
        return target

    def load(self, name: str) -> Multiplier:
        path = self.path_of(name)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                lut = np.array(data["lut"])
                netlist = (Netlist.from_dict(json.loads(bytes(data["netlist"]).decode()))
                           if "netlist" in data.files else None)
        except FileNotFoundError:
            raise UnknownMultiplier(f"multiplier {name!r} is not in the library "
                                    f"{self.root}") from None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, HwcostError) as exc:
            raise HwcostError(f"library entry is corrupted ({exc}); re-import it with "
                              "--force", file=path) from None
        return Multiplier(name=meta["name"], a_bits=meta["a_bits"], b_bits=meta["b_bits"],
                          signed=meta["signed"], lut=lut, published=meta["published"],
                          source=meta["source"], source_sha256=meta["source_sha256"],
                          netlist=netlist, description=meta.get("description", ""))

    def remove(self, name: str) -> None:
        if name not in self:
            raise UnknownMultiplier(f"multiplier {name!r} is not in the library {self.root}")
        self.path_of(name).unlink()


def looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith(FILE_SUFFIXES)


def resolve(spec: str, library: Library | None = None) -> Multiplier:
    """A multiplier from a file path, a library name or a built-in parametric name."""
    from .generators import builtin_examples, generate, is_generated_name
    from .importers import import_file

    library = library if library is not None else Library()
    if looks_like_path(spec) or Path(spec).is_file():
        return import_file(spec)
    if spec in library:
        return library.load(spec)
    if is_generated_name(spec):
        return generate(spec)
    candidates = library.names() + builtin_examples()
    close = difflib.get_close_matches(spec, candidates, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else \
        "; see 'hwcost multipliers list'"
    raise UnknownMultiplier(f"unknown multiplier {spec!r}{hint}")


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
