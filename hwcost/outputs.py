"""Output paths, checked when the command line is parsed: before any long work, one line for
every kind of path that cannot be written (a file where a folder must be, a folder that does
not exist, a file system that refuses new entries such as ``/proc``, a name too long), and no
folder left behind, empty, by a command that failed.

Writing is what decides whether a path can be written (permissions say little to root, and
nothing about ``/proc``), so the check creates and removes a probe entry where the output will
go.  Output folders the command creates are recorded in the click context; when the command
fails, those still empty are removed again (:func:`remove_empty_outputs`).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import click

#: context key of the output folders this invocation may create: (folder, its nearest
#: ancestor that existed when the command started)
CREATED = "hwcost_output_folders"


def _nearest_existing(path: Path) -> Path:
    current = path
    while not os.path.lexists(current):
        if current.parent == current:
            break
        current = current.parent
    return current


def _why(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _probe_folder(folder: Path) -> str | None:
    """Why nothing can be created in ``folder`` (``None``: it can)."""
    try:
        made = tempfile.mkdtemp(prefix=".hwcost-probe-", dir=folder)
    except OSError as err:
        return _why(err)
    os.rmdir(made)
    return None


def _refuse_nul(kind: click.ParamType, value: Any, param, ctx) -> None:
    if "\0" in str(value):
        kind.fail("a path cannot contain a NUL byte", param, ctx)


class OutputFolder(click.ParamType):
    """A folder the command writes into: an existing folder, or one that can be created
    (with its missing parents) under the nearest existing folder."""

    name = "directory"

    def convert(self, value: Any, param, ctx) -> Path:
        _refuse_nul(self, value, param, ctx)
        path = Path(value)
        if os.path.lexists(path):
            try:
                os.stat(path)         # a dangling link or an unreadable entry
            except OSError as err:
                self.fail(f"{path}: {_why(err)}", param, ctx)
        if os.path.lexists(path) and not path.is_dir():
            self.fail(f"{path} is a file, not a folder", param, ctx)
        anchor = _nearest_existing(path)
        if not anchor.is_dir():
            self.fail(f"{anchor} is a file, so it cannot hold the folder {path}", param, ctx)
        for part in path.parts:
            if len(os.fsencode(part)) > 255:
                self.fail(f"a name in {str(path)[:80]}... is longer than 255 bytes", param, ctx)
        why = _probe_folder(path if path.is_dir() else anchor)
        if why is not None:
            where = path if path.is_dir() else anchor
            self.fail(f"cannot write into {where}: {why}", param, ctx)
        if ctx is not None and not path.exists():
            ctx.meta.setdefault(CREATED, []).append((path, anchor))
        return path


class OutputFile(click.ParamType):
    """A file the command writes (atomically: a temporary file beside it, then a rename):
    its folder must exist and take new files; an existing path must be a regular file."""

    name = "file"

    def convert(self, value: Any, param, ctx) -> Path:
        _refuse_nul(self, value, param, ctx)
        path = Path(value)
        if len(os.fsencode(path.name)) > 255:
            self.fail(f"the file name {path.name[:40]}... is longer than 255 bytes", param, ctx)
        folder = path.parent
        if not os.path.lexists(folder):
            self.fail(f"the folder {folder} does not exist", param, ctx)
        if not folder.is_dir():
            self.fail(f"{folder} is a file, not a folder", param, ctx)
        if os.path.lexists(path):
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                self.fail(f"{path} is a folder, not a file", param, ctx)
            if not stat.S_ISREG(mode):
                self.fail(f"{path} exists and is not a regular file (a link, device or "
                          "pipe); it is not replaced", param, ctx)
        why = _probe_folder(folder)
        if why is not None:
            self.fail(f"cannot write into {folder}: {why}", param, ctx)
        return path


OUT_DIR = OutputFolder()
OUT_FILE = OutputFile()


def remove_empty_outputs(ctx: click.Context) -> None:
    """After a failed command: remove the output folders it created that hold no file, and
    the parents created for them, up to the folder that already existed."""
    for folder, anchor in reversed(ctx.meta.get(CREATED, [])):
        if not folder.is_dir():
            continue
        for root, _dirs, files in os.walk(folder, topdown=False):
            if files:
                continue
            try:
                os.rmdir(root)       # fails, harmlessly, if a sub-folder kept a file
            except OSError:
                pass
        current = folder.parent
        while current != anchor and current.is_dir() and anchor in current.parents:
            try:
                os.rmdir(current)
            except OSError:
                break
            current = current.parent
