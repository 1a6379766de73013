"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

from multiplier_lib.library import Library
from nas.settings import DATASETS  # noqa: F401  (torch-free: --help stays fast)

library_option = click.option(
    "--library", "library_dir", type=click.Path(file_okay=False, path_type=Path),
    default=None, envvar=None,
    help="Multiplier library folder (default: $HWCOST_HOME/multipliers or the user data dir).")


def open_library(library_dir: Path | None) -> Library:
    return Library(library_dir)

