"""``hwcost search``: energy-aware DARTS with approximate multipliers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from nas.settings import MULTIPLIER_SAMPLING

from .options import DATASETS, library_option, threads_option, use_threads
from .outputs import OUT_DIR

_DIR = click.Path(file_okay=False, path_type=Path)


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file of search settings (keys as the option names, '_' for '-').")
@click.option("--dataset", type=click.Choice(list(DATASETS)),
              help="cifar10 (default), cifar100, svhn, synthetic, digits (scikit-learn's "
              "scans), folder (ImageFolder tree), npz (arrays x_train, y_train, x_test, "
              "y_test).")
@click.option("--data-dir", help="Folder with the data set's files (npz: the .npz file).")
@click.option("--input-size", type=click.IntRange(8, 1024),
              help="Resize images to this square size (folder data: 32 by default).")
@click.option("--download", is_flag=True, default=None, help="Fetch CIFAR when missing.")
@click.option("--epochs", type=int)
@click.option("--layers", type=int, help="Cells of the supernet (DARTS: 8).")
@click.option("--channels", type=int, help="Initial channels (DARTS: 16).")
@click.option("--batch-size", type=int)
@click.option("--multiplier", help="One multiplier for every convolution (ApproxDARTS).")
@click.option("--multipliers", help="Comma-separated multipliers searched per edge.")
@click.option("--multiplier-sampling", type=click.Choice(MULTIPLIER_SAMPLING),
              help="With --multipliers: 'all' (default) runs every candidate's ops each step "
              "and mixes their outputs by softmax(beta); 'per-conv' runs the ops once, each "
              "conv mixing the candidates' products by softmax(beta); 'gumbel' runs one per "
              "edge, drawn each step (GDAS-style).  The last two cost about what one "
              "multiplier's step does.")
@click.option("--gumbel-tau", type=float, help="Gumbel-softmax temperature (default 1).")
@click.option("--backend", type=click.Choice(["auto", "reference", "cpu", "triton"]))
@click.option("--arch", help="Accelerator spec for the energy penalty (bundled name or path).")
@click.option("--energy-weight", type=float, help="Weight of the energy term (0: none).")
@click.option("--energy-target", type=float, help="Target expected energy in pJ.")
@click.option("--penalty", type=click.Choice(["additive", "fbnet", "target"]))
@click.option("--order", type=click.Choice(["first", "second"]))
@click.option("--max-skip", type=int, help="Cap on skip_connects in the normal cell (-1: off).")
@click.option("--max-steps", type=int, help="Cap on batches per epoch (quick runs).")
@click.option("--seed", type=int)
@click.option("--out", type=OUT_DIR, help="Run folder (checkpoints, logs, genotype); required "
              "unless --dry-run.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--dry-run", is_flag=True, help="Check the settings, print them as JSON, exit.")
@threads_option
@library_option
def search(config_path: Path | None, out: Path | None, resume: bool, dry_run: bool,
           threads: int | None, library_dir: Path | None, **options) -> None:
    """Search a DARTS cell with approximate multipliers and an energy penalty.

    Writes genotype.json, search.csv (one row per epoch), checkpoint.pt (atomic, every
    epoch) and estimate.json (the found network on --arch) into --out.

    \b
    Examples:
      hwcost search --dataset synthetic --epochs 2 --layers 3 --channels 4 \\
          --batch-size 16 --multiplier trunc8u_k6c --energy-weight 0.1 --max-steps 4 \\
          --out runs/demo
      hwcost search --dataset cifar10 --data-dir data \\
          --multiplier examples/multipliers/bam8u_h2v6.v \\
          --arch eyeriss --energy-weight 0.05 --out runs/ngr
    """
    from nas.search import SearchConfig, run_search, summarize_search

    overrides = {k: v for k, v in options.items() if v is not None}
    if library_dir is not None:
        overrides["library"] = str(library_dir)
    given = options.get("multiplier") is not None
    if config_path is not None:
        cfg = SearchConfig.from_file(config_path, overrides, multiplier_given=given)
    else:
        cfg = SearchConfig.from_settings(overrides, multiplier_given=given)
    if dry_run:
        click.echo(json.dumps(dataclasses.asdict(cfg), indent=1))
        return
    if out is None:
        raise click.UsageError("Missing option '--out' (the run folder).")

    use_threads(threads)
    from tqdm import tqdm

    bar = tqdm(desc="search", unit="step", disable=None)  # silent when not a terminal

    def progress(epoch: int, step: int) -> None:
        bar.set_postfix_str(f"epoch {epoch + 1}/{cfg.epochs}", refresh=False)
        bar.update(1)

    try:
        geno = run_search(cfg, out, resume=resume, progress=progress)
    finally:
        bar.close()
    summary = summarize_search(cfg, out, geno)
    net = summary["network"]
    rows = (out / "search.csv").read_text().splitlines()
    click.echo(f"genotype: {out / 'genotype.json'}")
    click.echo(f"last epoch: {rows[-1][:120]}")
    click.echo(f"evaluation network ({net['layers']} cells, {net['channels']} channels) on "
               f"{summary['arch']}: {summary['energy_pj'] / 1e6:.4g} uJ per image, "
               f"{summary['macs']:,} MACs")
