"""``hwcost train`` and ``hwcost evaluate``: full training and accuracy/energy tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .options import DATASETS, library_option, threads_option, use_threads
from .outputs import OUT_DIR
from .tables import render

_DIR = click.Path(file_okay=False, path_type=Path)


@click.command()
@click.argument("genotype_path", metavar="GENOTYPE", type=click.Path(dir_okay=False,
                                                                      path_type=Path))
@click.option("--multiplier", help="Replace the genotype's multipliers by this one.")
@click.option("--dataset", type=click.Choice(list(DATASETS)), default="cifar10",
              show_default=True, help="folder: ImageFolder tree in --data-dir "
              "(train/<class>/*.png|jpg, test/<class>/...); npz: --data-dir is a .npz with "
              "x_train, y_train, x_test, y_test; svhn: its .mat files in --data-dir.")
@click.option("--data-dir", default="data", show_default=True)
@click.option("--input-size", type=click.IntRange(8, 1024),
              help="Resize images to this square size (folder data: 32 by default).")
@click.option("--download", is_flag=True)
@click.option("--epochs", type=int, default=600, show_default=True)
@click.option("--layers", type=int, default=20, show_default=True)
@click.option("--channels", type=int, default=36, show_default=True)
@click.option("--batch-size", type=int, default=96, show_default=True)
@click.option("--auxiliary", is_flag=True, help="DARTS auxiliary head (weight 0.4).")
@click.option("--cutout", type=int, default=0, show_default=True, help="Cutout length (16).")
@click.option("--drop-path", type=float, default=0.2, show_default=True)
@click.option("--backend", type=click.Choice(["auto", "reference", "cpu", "triton"]),
              default="auto", show_default=True)
@click.option("--grad", type=click.Choice(["ste", "lut"]), default="ste", show_default=True,
              help="Backward of the approximate layers: straight-through (the exact "
                   "product's gradient) or read from the multiplier's difference tables.")
@click.option("--arch", default="eyeriss", show_default=True,
              help="Accelerator for the energy estimate of the trained network.")
@click.option("--max-steps", type=int, help="Cap on batches per epoch (quick runs).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=OUT_DIR)
@click.option("--resume", is_flag=True)
@threads_option
@library_option
def train(genotype_path: Path, multiplier: str | None, dataset: str, data_dir: str,
          input_size: int | None, download: bool, epochs: int, layers: int, channels: int,
          batch_size: int,
          auxiliary: bool, cutout: int, drop_path: float, backend: str, grad: str, arch: str,
          max_steps: int | None, seed: int, out: Path, resume: bool, threads: int | None,
          library_dir: Path | None) -> None:
    """Train the evaluation network of a genotype with approximate multipliers (QAT).

    Under torchrun with several processes it trains with DistributedDataParallel (gloo on
    CPU, nccl on GPU) on the same global --batch-size: torchrun --nproc_per_node 2 -m hwcost
    train ...

    \b
    Examples:
      hwcost train runs/demo/genotype.json --dataset synthetic --epochs 2 --layers 3 \\
          --channels 4 --max-steps 4 --out runs/demo-train
      hwcost train runs/demo/genotype.json --dataset cifar10 --data-dir data --auxiliary \\
          --cutout 16 --out runs/train
    """
    from core.atomic import atomic_write_text
    from darts.genotype_io import load
    from hwmodel.costing import CostContext
    from multiplier_lib.library import MultiplierResolver
    from nas.checkpoint import load as load_ckpt
    from nas.train import TrainConfig, network_energy, run_train, trained_network

    library = None if library_dir is None else str(library_dir)
    resolve = MultiplierResolver(library)
    geno = load(genotype_path)
    names = {multiplier} if multiplier else {
        m for cell in ("normal", "reduce") for m in geno.edge_multipliers(cell) if m}
    for name in sorted(names):      # unknown names fail here, before any training
        resolve.arithmetic(name)
    cfg = TrainConfig(dataset=dataset, data_dir=data_dir, download=download, epochs=epochs,
                      input_size=input_size, library=library,
                      layers=layers, channels=channels, batch_size=batch_size,
                      auxiliary=auxiliary, cutout=cutout, drop_path=drop_path,
                      multiplier=multiplier, backend=backend, grad=grad, seed=seed,
                      max_steps=max_steps)
    use_threads(threads)
    from tqdm import tqdm

    bar = tqdm(desc="train", unit="step", disable=None)  # silent when not a terminal

    def progress(epoch: int, step: int) -> None:
        bar.set_postfix_str(f"epoch {epoch + 1}/{cfg.epochs}", refresh=False)
        bar.update(1)

    try:
        last = run_train(geno, cfg, out, resume=resume, progress=progress)
    finally:
        bar.close()
    if int(os.environ.get("RANK", "0")) != 0:   # torchrun: process 0 reports
        return
    context = CostContext.for_spec(arch, resolve=resolve.arithmetic)
    network = trained_network(geno, cfg, load_ckpt(out / "checkpoint.pt")["n_classes"])
    energy = network_energy(geno, network, context, multiplier)
    summary = {**last, "energy_pj": energy, "arch": arch}
    atomic_write_text(out / "result.json", json.dumps(summary, indent=2))
    click.echo(f"test accuracy {last['test_acc']:.4f} after {last['epoch'] + 1} epochs; "
               f"energy on {arch}: {energy / 1e6:.4g} uJ per image; {out / 'checkpoint.pt'}")


@click.command()
@click.argument("checkpoint_path", metavar="CHECKPOINT", type=click.Path(dir_okay=False,
                                                                          path_type=Path))
@click.option("--multiplier", "multipliers", multiple=True,
              help="Multiplier to swap in, or fp32/fp16/bf16 to run the same weights in float "
              "(repeat for a table; default: as trained).")
@click.option("--arch", default="eyeriss", show_default=True)
@click.option("--backend", type=click.Choice(["auto", "reference", "cpu", "triton"]))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@threads_option
@library_option
def evaluate(checkpoint_path: Path, multipliers: tuple[str, ...], arch: str,
             backend: str | None, fmt: str, threads: int | None,
             library_dir: Path | None) -> None:
    """Accuracy and energy of a trained network under one or more multipliers.

    \b
    Example:
      hwcost evaluate runs/train/checkpoint.pt --multiplier exact8u \\
          --multiplier trunc8u_k6c --multiplier drum8u_k4
    """
    from hwmodel.costing import CostContext
    from multiplier_lib.library import MultiplierResolver
    from nas.checkpoint import load as load_ckpt
    from nas.train import evaluate_checkpoint, network_energy, trained_network

    use_threads(threads)
    library = None if library_dir is None else str(library_dir)
    results = evaluate_checkpoint(checkpoint_path, list(multipliers) or None, backend,
                                  library)
    state = load_ckpt(checkpoint_path)
    cfg = state["config"]
    library = library or cfg.get("library")
    context = CostContext.for_spec(arch, resolve=MultiplierResolver(library).arithmetic)
    rows = []
    for r in results:
        # "as trained": the multiplier the run forced on every layer, else the genotype's own
        name = cfg.get("multiplier") if r["multiplier"] == "as trained" else r["multiplier"]
        energy = network_energy(r["genotype"], trained_network(r["genotype"], cfg,
                                                               state["n_classes"]),
                                context, name)
        rows.append({"multiplier": r["multiplier"], "test_acc": r["test_acc"],
                     "test_loss": r["test_loss"], "energy_pj": energy})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(render(["multiplier", "test_acc", "test_loss", "energy_uJ"],
                      [[r["multiplier"], r["test_acc"], r["test_loss"], r["energy_pj"] / 1e6]
                       for r in rows]))
