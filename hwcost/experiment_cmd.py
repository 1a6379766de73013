"""``hwcost experiment``: energy-aware search against FP32 and exact 8-bit, on real data."""

from __future__ import annotations

from pathlib import Path

import click

from nas.settings import MULTIPLIER_SAMPLING

from .options import DATASETS, library_option
from .outputs import OUT_DIR
from .tables import render

_DIR = click.Path(file_okay=False, path_type=Path)


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected numbers separated by commas, "
                                 "e.g. 0,0.25,1,4", param_hint="--energy-weights") from None


@click.command()
@click.option("--out", required=True, type=OUT_DIR,
              help="Experiment folder; rerunning the same command continues it.")
@click.option("--quick", is_flag=True,
              help="Every unit for a few batches only: checks the whole pipeline in minutes "
                   "(the figures mean nothing).")
@click.option("--dataset", type=click.Choice(list(DATASETS)), default="digits",
              show_default=True, help="digits: scikit-learn's handwritten digits (offline); "
              "folder/npz: your data in --data-dir, as for hwcost search.")
@click.option("--data-dir", default=None, help="Data folder or .npz file (folder/npz/cifar).")
@click.option("--input-size", type=click.IntRange(8, 1024), default=None,
              help="Image size the networks see (default: the images' own; 8 for digits).")
@click.option("--multipliers", "candidates",
              help="Candidate multipliers of the energy-aware search, comma-separated "
                   "(default exact8u,trunc8u_k4c,trunc8u_k6c,bam8u_h2v6).")
@click.option("--energy-weights", help="Energy weights, comma-separated (default 0,0.25,1,4).")
@click.option("--multiplier-sampling", type=click.Choice(MULTIPLIER_SAMPLING),
              default=None, help="How the energy-aware searches treat the candidates (as "
              "'hwcost search'; default all).")
@click.option("--seeds", type=click.IntRange(1, 100), default=None,
              help="Training seeds per found network (default 3).")
@click.option("--grad-multiplier", default=None,
              help="Multiplier of the grad=lut vs straight-through comparison (default "
                   "bam8u_h2v6; 'none' skips it).")
@click.option("--arch", default=None, help="Accelerator that prices the networks (default "
                                           "eyeriss).")
@click.option("--search-epochs", type=click.IntRange(1), default=None,
              help="Epochs of every search (default 8; --quick: 1 of 2 batches).")
@click.option("--train-epochs", type=click.IntRange(1), default=None,
              help="Epochs of every training run (default 20; --quick: 1 of 3 batches).")
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="Units run at once, each in its own process (default: one per core).")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="CPU threads of each unit.")
@click.option("--dry-run", is_flag=True, help="List the units and exit.")
@library_option
def experiment(out: Path, quick: bool, dataset: str, data_dir: str | None,
               input_size: int | None, candidates: str | None, energy_weights: str | None,
               multiplier_sampling: str | None, seeds: int | None,
               grad_multiplier: str | None, arch: str | None,
               search_epochs: int | None, train_epochs: int | None, jobs: int | None,
               threads: int, dry_run: bool, library_dir: Path | None) -> None:
    """Search with an energy-weight sweep over candidate multipliers, the same search in
    float and with the exact 8-bit multiplier, train every found network with several seeds,
    and compare grad=lut with straight-through training; write the table (mean ± std over
    seeds) and an accuracy-energy Pareto plot.

    Killing it and rerunning the same command continues where it stopped.

    \b
    Examples:
      hwcost experiment --quick --out runs/experiment-quick
      hwcost experiment --out runs/experiment --jobs 2
    """
    from nas.experiment.config import make_config
    from nas.experiment.plan import plan
    from nas.threads import cores

    skip_grad = grad_multiplier is not None and grad_multiplier.lower() == "none"
    grad = None if skip_grad else grad_multiplier
    cfg = make_config(
        "quick" if quick else "small", dataset=dataset, data_dir=data_dir,
        input_size=input_size, candidates=_names(candidates),
        energy_weights=_weights(energy_weights), multiplier_sampling=multiplier_sampling,
        seeds=seeds, arch=arch,
        grad_multiplier=grad, search_epochs=search_epochs, train_epochs=train_epochs,
        library=None if library_dir is None else str(library_dir))
    if skip_grad:
        cfg.grad_multiplier = None
    units = plan(cfg)
    jobs = jobs or cores()
    if dry_run:
        click.echo(f"{len(units)} units ({sum(u.kind == 'search' for u in units)} searches), "
                   f"{jobs} at a time with {threads} thread(s) each; results in {out}")
        click.echo(render(["unit", "table row", "group", "after"],
                          [[u.name, u.row, u.group, u.after or "-"] for u in units]))
        return
    from tqdm import tqdm

    from multiplier_lib.emulate.backends.cpu import describe_machine
    from nas.experiment.report import fmt_acc, write_report
    from nas.experiment.runner import run_experiment

    bar = tqdm(total=len(units), desc="experiment", unit="unit", disable=None)
    problems: list[dict] = []

    def progress(row: dict) -> None:
        if row.get("status") != "done":
            problems.append(row)
        bar.set_postfix_str(f"{row['name']}: {row.get('status')}", refresh=False)
        bar.update(1)

    try:
        rows = run_experiment(cfg, out, jobs=jobs, threads=threads, progress=progress)
    except KeyboardInterrupt:
        bar.close()
        raise click.ClickException("interrupted; rerun the same command to continue") \
            from None
    bar.close()
    machine = f"{describe_machine()}; {jobs} unit(s) at a time, {threads} thread(s) each."
    summary = write_report(cfg, rows, out, machine)
    click.echo(render(
        ["network", "test acc % (±std)", "energy_uJ", "arith_uJ", "memory_uJ",
         f"vs_{cfg.float_baseline}", "params", "MACs"],
        [[s["row"], fmt_acc(s["acc_mean"], s["acc_std"]), s["energy_uj"], s["arithmetic_uj"],
          s["memory_uj"], s["energy_vs_float"], s["params"], s["macs"]] for s in summary]))
    for row in problems:
        click.echo(f"error: {row['name']}: {row.get('error')}", err=True)
    click.echo(f"{out / 'results.md'}, {out / 'results.csv'}, {out / 'results.json'}, "
               f"{out / 'pareto.png'}")
    if problems:
        raise SystemExit(1)
