"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

from multiplier_lib.library import Library

library_option = click.option(
    "--library", "library_dir", type=click.Path(file_okay=False, path_type=Path),
    default=None, envvar=None,
    help="Multiplier library folder (default: $HWCOST_HOME/multipliers or the user data dir).")


def open_library(library_dir: Path | None) -> Library:
    return Library(library_dir)

#: ``--dataset`` choices, kept here so that ``hwcost --help`` does not import torch;
#: tests/hwcost/test_cli.py checks them against ``nas.data.DATASETS``.
DATASETS = ("cifar10", "cifar100", "svhn", "synthetic", "folder", "npz")
