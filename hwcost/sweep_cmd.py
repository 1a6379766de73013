"""``hwcost sweep``: a grid of search -> train -> evaluate -> estimate runs on Ray."""

from __future__ import annotations

from pathlib import Path

import click

from .outputs import OUT_DIR
from .tables import render


@click.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False,
                                                                 path_type=Path))
@click.option("--out", type=OUT_DIR,
              help="Sweep folder (points/<id>/, results.csv/json, pareto.png). "
                   "Default: runs/<config name>.")
@click.option("--address", help="Join this Ray cluster (e.g. ray://head:10001 or auto); "
                                "default: start a local one.")
@click.option("--num-cpus", type=click.IntRange(1), help="CPUs of the local Ray cluster "
                                                          "(default: all).")
@click.option("--dry-run", is_flag=True, help="Print the grid and exit.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="CPU threads of each point (default: the sweep file's resources.cpus).")
def sweep(config_path: Path, out: Path | None, address: str | None, num_cpus: int | None,
          dry_run: bool, threads: int | None) -> None:
    """Run every point of a grid (multipliers, energy weights, penalties, accelerators,
    seeds, network sizes) as a Ray task; write one table and a Pareto plot.

    A finished point is skipped on restart; a failed one is reported with its error and does
    not stop the others.

    \b
    Example:
      hwcost sweep examples/sweep_synthetic.yaml --out runs/sweep --num-cpus 2
    """
    from nas.sweep import load_sweep, run_sweep

    spec = load_sweep(config_path)
    out = out or Path("runs") / config_path.stem
    if dry_run:
        keys = list(spec.grid)
        rows = [[p.id, *(("+".join(v) if isinstance(v := p.values[k], list) else v)
                         for k in keys)] for p in spec.points]
        click.echo(f"{len(spec.points)} points, each {spec.cpus:g} CPU / {spec.gpus:g} GPU; "
                   f"results in {out}")
        click.echo(render(["point", *keys], rows))
        return
    from tqdm import tqdm

    bar = tqdm(total=len(spec.points), desc="sweep", unit="point", disable=None)

    def progress(row: dict) -> None:
        bar.set_postfix_str(f"{row['point']}: {row.get('status')}", refresh=False)
        bar.update(1)

    try:
        rows = run_sweep(spec, out, address=address, num_cpus=num_cpus, progress=progress,
                         threads=threads)
    finally:
        bar.close()
    table = []
    for r in rows:
        table.append([r["point"], r.get("status"), r.get("test_acc"), r.get("energy_uj"),
                      r.get("arithmetic_uj"), r.get("memory_uj"), r.get("baseline_acc"),
                      r.get("baseline_energy_uj")])
    base = rows[0].get("baseline") or "fp32" if rows else "fp32"
    click.echo(render(["point", "status", "test_acc", "energy_uJ", "arith_uJ", "memory_uJ",
                       f"{base}_acc", f"{base}_uJ"], table))
    failed = [r for r in rows if r.get("status") != "done"]
    for r in failed:
        click.echo(f"error: point {r['point']}: {r.get('error')}", err=True)
    click.echo(f"{out / 'results.csv'}, {out / 'results.json'}, {out / 'pareto.png'}")
    if failed:
        raise SystemExit(1)
