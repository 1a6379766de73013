"""Options shared by several commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from multiplier_lib.library import Library
from nas.settings import DATASETS  # noqa: F401  (torch-free: --help stays fast)

from .outputs import OUT_FILE

library_option = click.option(
    "--library", "library_dir", type=click.Path(file_okay=False, path_type=Path),
    default=None, envvar=None,
    help="Multiplier library folder (default: $HWCOST_HOME/multipliers or the user data dir).")


def _trust_c(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:   # read by the C importer, in this process and the ones it starts
        os.environ["HWCOST_TRUST_C"] = "1"
    return value


#: C models run in a seccomp sandbox; where none can be built, only a trusted file runs
trust_c_option = click.option(
    "--trust-c", is_flag=True, expose_value=False, callback=_trust_c,
    help="Where no sandbox can be built (not Linux), run C models unconfined, with your "
    "rights. On Linux the sandbox is always used.")


def open_library(library_dir: Path | None) -> Library:
    return Library(library_dir)


#: an input or output file option (a folder is refused by click)
FILE = click.Path(dir_okay=False, path_type=Path)

#: ``--arch`` of the hardware commands: repeatable, Timeloop's multi-file input.
ARCH_HELP = ("Architecture spec: a bundled name (eyeriss, simba, systolic, edge) or a YAML "
             "file. Repeat it, or list more files as arguments, to give Timeloop's inputs in "
             "several files (constraints, variables, mapper, problem...; merged by top-level "
             "key). .jinja/.jinja2/.j2 files and files with Jinja markup are rendered first.")


def template_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--var NAME=VALUE`` (repeatable) and ``--vars FILE``: the variables Jinja2
    templates among the inputs are rendered with (Timeloop's ``jinja_parse_data``)."""
    command = click.option(
        "--vars", "vars_file", type=FILE,
        help="YAML file of template variables (NAME: VALUE); --var overrides it.")(command)
    return click.option(
        "--var", "var_items", multiple=True, metavar="NAME=VALUE",
        help="Template variable for .jinja inputs; VALUE is read as YAML (8 is a number, "
             "true a boolean). Repeatable.")(command)


def template_vars(var_items: tuple[str, ...], vars_file: Path | None) -> dict[str, Any]:
    """The template variables of ``--vars`` then ``--var`` (the latter win)."""
    if not var_items and vars_file is None:
        return {}          # (and Jinja2 stays unimported)
    from hwmodel.templates import load_vars, parse_var

    out = load_vars(vars_file) if vars_file is not None else {}
    for item in var_items:
        name, value = parse_var(item)
        out[name] = value
    return out


def warn_unused_vars(tvars: dict[str, Any], rendered: list[Path]) -> None:
    """Template variables given while no input was a template are most likely a mistake."""
    if tvars and not rendered:
        click.echo("warning: --var/--vars given but no input is a template "
                   "(.jinja, .jinja2, .j2 or Jinja markup)", err=True)


def estimator_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--estimators`` (who prices the components an ``--ert`` does not) and
    ``--write-ert`` (the table used, as an Accelergy ERT another run can read back)."""
    command = click.option(
        "--write-ert", "write_ert", type=OUT_FILE,
        help="Also write the energy reference table used, as an Accelergy ERT.yaml.")(command)
    return click.option(
        "--estimators", type=click.Choice(["builtin", "accelergy"]), default="builtin",
        show_default=True,
        help="Who prices components: hwcost's built-in estimators, or Accelergy's own "
             "models through hwcomponents (pip install -e '.[accelergy]', Python >= "
             "3.12).")(command)


def effort_option(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--effort``: how hard the mapper searches (see hwmodel.mapper)."""
    return click.option(
        "--effort", type=click.Choice(["fast", "balanced", "thorough", "exhaustive"]),
        default=default, show_default=True,
        help="Mapper search: fast (constructive only), balanced and thorough (plus a "
             "branch and bound with a work budget; the answer says how close to optimal it "
             "is proven), exhaustive (to the end: optimal, may take long).")


budget_option = click.option(
    "--budget", type=click.IntRange(min=0), default=None,
    help="Work units (lower bounds computed + mappings priced) the branch and bound may "
         "spend per layer shape, instead of the effort's (balanced 200, thorough 2000); "
         "deterministic, about 0.1-0.5 ms each.")


threads_option = click.option(
    "--threads", type=click.IntRange(1), default=None,
    help="CPU threads for torch (default: one per core). Threads waiting for a core that "
         "another job holds spin and slow every step down: on a busy machine use fewer.")


def use_threads(threads: int | None) -> None:
    """Set torch's thread count and say, in one line, when the machine's load makes that
    many threads slower."""
    from nas.threads import apply_threads

    _, warning = apply_threads(threads)
    if warning:
        click.echo(warning, err=True)
