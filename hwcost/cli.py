"""The ``hwcost`` command group: option parsing and output only, no model logic."""

from __future__ import annotations

import sys

import click

from core.errors import HwcostError, one_line

from . import __version__

_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _short_path(name: object, limit: int = 200) -> str:
    """A path for an error line: a 6,000-character one is cut, not printed whole."""
    text = str(name)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class HwcostGroup(click.Group):
    """A group that turns a user's mistake (HwcostError) into one line and exit status 1."""

    def invoke(self, ctx: click.Context):
        from .outputs import remove_empty_outputs

        try:
            return super().invoke(ctx)
        except HwcostError as err:
            remove_empty_outputs(ctx)
            raise click.ClickException(str(err)) from None
        except OSError as err:
            # a path the OS refuses (name too long, not a folder, no permission) wherever it
            # came from: an argument, a config or a data file; the readers check what they
            # can first, this is the net under all of them
            if err.filename is None:
                raise
            remove_empty_outputs(ctx)
            raise click.ClickException(
                f"{_short_path(err.filename)}: {err.strerror or type(err).__name__}") from None
        except ValueError as err:
            if "embedded null byte" in str(err):
                message = "a path contains a NUL byte, which no file system accepts"
            elif "integer string conversion" in str(err):   # Python's 4300-digit limit
                message = ("a number in the input has more digits than any quantity can "
                           "have (over 4,300)")
            else:
                raise
            remove_empty_outputs(ctx)
            raise click.ClickException(message) from None
        except BaseException as err:
            if not (isinstance(err, SystemExit) and not err.code):
                remove_empty_outputs(ctx)
            raise

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        """As click's, except that a usage mistake (a missing option, a directory given for
        a file, a bad choice) is one line too, ``Error: ... (see 'hwcost CMD --help')``,
        exit status 2, instead of click's usage block."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as err:   # a bare group: its help, as click shows it
            err.show()
            sys.exit(err.exit_code)
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            click.echo(one_line(f"Error: {err.format_message()}{hint}"), err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            click.echo(one_line(f"Error: {err.format_message()}"), err=True)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=HwcostGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwcost")
def cli() -> None:
    """hwcost: approximate multipliers, accelerator cost and energy-aware NAS.

    \b
    Examples:
      hwcost estimate examples/darts_v2.json --arch eyeriss \\
          --multiplier examples/multipliers/bam8u_h2v6.v
      hwcost map --arch eyeriss --problem examples/timeloop/conv_3x3.yaml
      hwcost map examples/timeloop/glb_pes.yaml.jinja --var pes=16 \\
          --problem examples/timeloop/conv_3x3.yaml
      hwcost multipliers list
      hwcost characterize examples/multipliers/bam8u_h2v6.v exact8u trunc8u_k6 --out report/
    """


def _register() -> None:
    from .characterize_cmd import characterize
    from .estimate_cmd import estimate
    from .experiment_cmd import experiment
    from .hw_cmds import evaluate_mapping, map_cmd
    from .multipliers_cmd import multipliers
    from .search_cmd import search
    from .sweep_cmd import sweep
    from .train_cmd import evaluate, train

    cli.add_command(estimate)
    cli.add_command(map_cmd)
    cli.add_command(evaluate_mapping)
    cli.add_command(multipliers)
    cli.add_command(characterize)
    cli.add_command(search)
    cli.add_command(train)
    cli.add_command(evaluate)
    cli.add_command(sweep)
    cli.add_command(experiment)


_register()


def main() -> None:
    cli(prog_name="hwcost")
