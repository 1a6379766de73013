"""``hwcost multipliers ...``: import, list, show, export and remove library entries."""

from __future__ import annotations

import json
from pathlib import Path

import click

from core.errors import HwcostError

from .options import library_option, open_library, trust_c_option
from .outputs import OUT_FILE
from .tables import render


@click.group()
def multipliers() -> None:
    """Manage the multiplier library (import, list, show, export, remove).

    \b
    Examples:
      hwcost multipliers import examples/multipliers/bam8u_h2v6.v \\
          examples/multipliers/mul8u_bam26.bin
      hwcost multipliers list
      hwcost multipliers show mul8u_bam26
      hwcost multipliers export trunc8u_k4 --verilog trunc8u_k4.v
    """


@multipliers.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--name", help="Name to store under (only with a single PATH).")
@click.option("--signed/--unsigned", default=None,
              help="Operand signedness (default: from the name, e.g. mul8s_*, or the LUT).")
@click.option("--force", is_flag=True, help="Replace library entries of the same name.")
@click.option("--timeout", "timeout_s", type=float, default=20.0, show_default=True,
              help="Seconds a C model may take to evaluate all operand pairs.")
@trust_c_option
@library_option
def import_cmd(paths: tuple[Path, ...], name: str | None, signed: bool | None, force: bool,
               timeout_s: float, library_dir: Path | None) -> None:
    """Import multipliers from EvoApprox Verilog/C, TFApprox .bin or .npy files.

    The format is detected from the extension and the content. All files are read and
    checked before anything is saved, so a bad file leaves the library unchanged.

    \b
    Example:
      hwcost multipliers import examples/multipliers/mul8u_bam26.bin --force
    """
    from multiplier_lib.importers import import_file

    if name is not None and len(paths) != 1:
        raise HwcostError("--name needs exactly one PATH")
    library = open_library(library_dir)
    imported = [import_file(p, name=name, signed=signed, timeout_s=timeout_s) for p in paths]
    names = [m.name for m in imported]
    for m in imported:
        if names.count(m.name) > 1:
            raise HwcostError(f"two files import as {m.name!r}; import them separately "
                              "with --name")
        if m.name in library and not force:
            raise HwcostError(f"multiplier {m.name!r} is already in the library; use --force "
                              "to replace it")
    for m, p in zip(imported, paths):
        library.save(m, force=force)
        click.echo(f"imported {m.name} ({m.summary()}) from {p}")


@multipliers.command("list")
@library_option
def list_cmd(library_dir: Path | None) -> None:
    """List built-in multiplier families and the library's entries.

    \b
    Example:
      hwcost multipliers list
    """
    from multiplier_lib.generators import FAMILIES

    library = open_library(library_dir)
    click.echo("Built-in families (generated on demand by name):")
    click.echo(render(["family", "name pattern", "example", "description"],
                      [[f.name, f.pattern, f.example, f.description] for f in FAMILIES]))
    click.echo("")
    names = library.names()
    click.echo(f"Library {library.root}: {len(names)} multiplier(s)")
    rows = []
    for n in names:
        m = library.load(n)
        rows.append([n, m.summary(), m.source or "-"])
    if rows:
        click.echo(render(["name", "summary", "source"], rows))


@multipliers.command("show")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@library_option
def show_cmd(name: str, fmt: str, library_dir: Path | None) -> None:
    """Show one multiplier: kind, provenance, published figures, gate counts.

    \b
    Examples:
      hwcost multipliers show mul8u_bam26
      hwcost multipliers show drum8u_k4 --format json
    """
    from multiplier_lib.library import resolve

    m = resolve(name, open_library(library_dir))
    info = {
        "name": m.name, "a_bits": m.a_bits, "b_bits": m.b_bits, "signed": m.signed,
        "description": m.description, "source": m.source, "source_sha256": m.source_sha256,
        "published": m.published,
        "gates": None if m.netlist is None else m.netlist.gate_counts(),
        "nets": None if m.netlist is None else m.netlist.n_nets,
    }
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{m.name}: {m.kind}")
    if m.description:
        click.echo(f"  description: {m.description}")
    click.echo(f"  source:      {m.source or '-'}")
    if m.source_sha256:
        click.echo(f"  sha256:      {m.source_sha256}")
    if m.published:
        pub = ", ".join(f"{k}={v:g}" for k, v in m.published.items())
        click.echo(f"  published:   {pub}")
    if m.netlist is None:
        click.echo("  netlist:     none (LUT only)")
    else:
        counts = ", ".join(f"{k} {v}" for k, v in m.netlist.gate_counts().items())
        click.echo(f"  netlist:     {len(m.netlist.gates)} gates ({counts})")


@multipliers.command("export")
@click.argument("name")
@click.option("--verilog", type=OUT_FILE,
              help="Write the gate netlist (or a case-statement ROM for a LUT-only one).")
@click.option("--bin", "bin_path", type=OUT_FILE,
              help="Write a TFApprox LUT file (256x256 little-endian uint16).")
@click.option("--npy", type=OUT_FILE,
              help="Write the LUT as a .npy int32 array.")
@library_option
def export_cmd(name: str, verilog: Path | None, bin_path: Path | None, npy: Path | None,
               library_dir: Path | None) -> None:
    """Export a multiplier for synthesis or other emulators.

    \b
    Examples:
      hwcost multipliers export trunc8u_k4 --verilog trunc8u_k4.v
      hwcost multipliers export mul8u_bam26 --bin mul8u_bam26_copy.bin
    """
    from multiplier_lib.export import write_bin, write_npy, write_verilog
    from multiplier_lib.library import resolve

    if not (verilog or bin_path or npy):
        raise HwcostError("nothing to export: give --verilog, --bin and/or --npy")
    m = resolve(name, open_library(library_dir))
    for path, writer in ((verilog, write_verilog), (bin_path, write_bin), (npy, write_npy)):
        if path is not None:
            writer(m, path)
            click.echo(f"wrote {path}")


@multipliers.command("remove")
@click.argument("names", nargs=-1, required=True)
@library_option
def remove_cmd(names: tuple[str, ...], library_dir: Path | None) -> None:
    """Remove entries from the library.

    \b
    Example:
      hwcost multipliers remove mul8u_bam26
    """
    library = open_library(library_dir)
    missing = [n for n in dict.fromkeys(names) if n not in library]
    if missing:   # every name is checked before any entry is deleted
        listed = ", ".join(repr(n if len(n) <= 100 else n[:100] + "...") for n in missing[:5])
        listed += f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise HwcostError(f"{listed} {'is' if len(missing) == 1 else 'are'} not in the library "
                          f"{library.root}; nothing was removed")
    for n in dict.fromkeys(names):
        library.remove(n)
        click.echo(f"removed {n}")
