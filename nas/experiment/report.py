"""The experiment's result as the field reports it: one row per searched configuration (test
accuracy as mean and sample standard deviation over the training seeds, energy per image split
into arithmetic and memory, parameters, MACs, search and training time), the gradient
comparison, and a Pareto plot of accuracy against energy with the baselines marked.

Files (each written atomically): ``results.json`` (every unit's row and the summary),
``results.csv`` (the summary), ``results.md`` (the tables), ``pareto.png``.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_bytes, atomic_write_text

from .config import ExperimentConfig
from .plan import weight_label

SUMMARY_FIELDS = ("row", "group", "energy_weight", "multipliers", "seeds", "acc_mean", "acc_std",
                  "energy_uj", "arithmetic_uj", "memory_uj", "energy_vs_float", "params",
                  "macs", "search_s", "train_s")


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _mix(counts: dict[str, int]) -> str:
    """``exact8u x3, bam8u_h2v6 x5``: the multipliers of a network's cell edges."""
    return ", ".join(f"{name} x{n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def summarize(cfg: ExperimentConfig, rows: list[dict]) -> list[dict[str, Any]]:
    """One summary row per table row, in plan order; a row with no finished training run has
    ``None`` for its figures."""
    by_row: dict[str, list[dict]] = {}      # in plan order
    searches: dict[str, dict] = {}
    groups: dict[str, str] = {}
    for r in rows:
        by_row.setdefault(r["row"], [])
        groups[r["row"]] = r["group"]
        if r["kind"] == "search":
            searches[r["row"]] = r
        elif r.get("status") == "done":
            by_row[r["row"]].append(r)
    weights = {weight_label(w): float(w) for w in cfg.energy_weights}
    out = []
    for name, trained in by_row.items():
        mean, std = _mean_std([r["test_acc"] for r in trained])
        first = trained[0] if trained else {}
        search = searches.get(name, {})       # the gradient rows have no search of their own
        out.append({
            "row": name, "group": groups[name],
            "energy_weight": weights.get(name, 0.0 if name in (cfg.exact, cfg.float_baseline)
                                         else None),
            "multipliers": _mix(first["edge_multipliers"]) if first else None,
            "seeds": len(trained), "acc_mean": mean, "acc_std": std,
            "energy_uj": first.get("energy_uj"), "arithmetic_uj": first.get("arithmetic_uj"),
            "memory_uj": first.get("memory_uj"), "energy_vs_float": None,
            "params": first.get("params"), "macs": first.get("macs"),
            "search_s": search.get("search_s"),
            "train_s": statistics.fmean(r["train_s"] for r in trained) if trained else None})
    base = next((s for s in out if s["row"] == cfg.float_baseline), None)
    if base and base["energy_uj"]:
        for s in out:
            if s["energy_uj"] is not None:
                s["energy_vs_float"] = s["energy_uj"] / base["energy_uj"]
    return out


def _pm(mean: float | None, std: float | None, n: int) -> str:
    text = fmt_acc(mean, std)
    return text if mean is None else f"{text} (n={n})"


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def markdown(cfg: ExperimentConfig, summary: list[dict], rows: list[dict],
             machine: str) -> str:
    """The two tables and what produced them."""
    head = ("| network | multipliers (cell edges) | test acc % (mean ± std) | energy µJ/image "
            "| arithmetic µJ | memory µJ | energy vs " + cfg.float_baseline + " | params | MACs "
            "| search s | train s (mean) |")
    lines = [f"Data: {cfg.dataset} ({cfg.input_size or 'native'} px); accelerator "
             f"{cfg.arch}; {cfg.seeds} training seeds; search {cfg.search_epochs} epochs "
             f"({cfg.search_layers} cells, {cfg.search_channels} channels), training "
             f"{cfg.train_epochs} epochs ({cfg.train_layers} cells, {cfg.train_channels} "
             f"channels). {machine}", "", head, "|---" * (head.count("|") - 1) + "|"]
    for s in summary:
        if s["group"] == "gradient":
            continue
        lines.append(
            f"| {s['row']} | {s['multipliers'] or '-'} | "
            f"{_pm(s['acc_mean'], s['acc_std'], s['seeds'])}"
            f" | {_num(s['energy_uj'], '.4g')} | {_num(s['arithmetic_uj'], '.4g')}"
            f" | {_num(s['memory_uj'], '.4g')} | {_num(s['energy_vs_float'], '.3f')}"
            f" | {_num(s['params'], ',')} | {_num(s['macs'], ',')}"
            f" | {_num(s['search_s'], '.0f')} | {_num(s['train_s'], '.0f')} |")
    grads = [s for s in summary if s["group"] == "gradient"]
    if grads:
        lines += ["", f"Training backward on {cfg.grad_multiplier} (the {cfg.exact} search's "
                      "genotype, every layer on that multiplier):", "",
                  "| backward | test acc % (mean ± std) | train s (mean) |", "|---|---|---|"]
        for s in grads:
            lines.append(f"| {s['row'].removeprefix('grad-')} | "
                         f"{_pm(s['acc_mean'], s['acc_std'], s['seeds'])} | "
                         f"{_num(s['train_s'], '.0f')} |")
    failed = [r for r in rows if r.get("status") not in ("done", None)]
    if failed:
        lines += ["", "Units that did not finish:"]
        lines += [f"- {r['name']}: {r.get('status')}: {r.get('error')}" for r in failed]
    return "\n".join(lines) + "\n"


def write_report(cfg: ExperimentConfig, rows: list[dict], out: Path, machine: str = ""
                 ) -> list[dict]:
    """Write the four result files; returns the summary rows."""
    summary = summarize(cfg, rows)
    atomic_write_text(out / "results.json", json.dumps({"units": rows, "summary": summary},
                                                       indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_FIELDS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(summary)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.md", markdown(cfg, summary, rows, machine))
    plot(cfg, summary, out / "pareto.png")
    return summary


def plot(cfg: ExperimentConfig, summary: list[dict], path: Path) -> None:
    """Accuracy (mean, ± std bars) against energy per image; baselines marked, the Pareto
    front of all searched networks drawn; a log energy axis when the points span over 5x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from nas.sweep import pareto_front

    points = [s for s in summary if s["group"] != "gradient" and s["acc_mean"] is not None]
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    styles = {cfg.float_baseline: ("s", "tab:gray"), cfg.exact: ("D", "black")}
    aware = [s for s in points if s["row"] not in styles]
    colours = plt.cm.viridis([i / max(1, len(aware) - 1) * 0.85 for i in range(len(aware))])
    for s in points:
        marker, colour = styles.get(s["row"], ("o", None))
        if colour is None:
            colour = colours[aware.index(s)]
        label = (f"{s['row']} (baseline)" if s["row"] in styles
                 else f"energy-aware {s['row']}")
        ax.errorbar(s["energy_uj"], 100 * s["acc_mean"], yerr=100 * (s["acc_std"] or 0),
                    fmt=marker, color=colour, ms=7, capsize=3, label=label)
    if points:
        front = pareto_front([(s["energy_uj"], s["acc_mean"]) for s in points])
        ax.plot([points[i]["energy_uj"] for i in front],
                [100 * points[i]["acc_mean"] for i in front], "--", color="tab:red", lw=1,
                label="Pareto front", zorder=0)
        energies = [s["energy_uj"] for s in points]
        if max(energies) / min(energies) > 5:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.tick_params(axis="x", which="minor", labelsize=7)
            ax.set_xlabel("energy per image (µJ, log scale)")
        else:
            span = max(energies) - min(energies) or max(energies) * 0.1
            ax.set_xlim(min(energies) - 0.15 * span, max(energies) + 0.15 * span)
            ax.set_xlabel("energy per image (µJ)")
        accs = [100 * s["acc_mean"] for s in points]
        lo = min(a - 100 * (s["acc_std"] or 0) for a, s in zip(accs, points))
        hi = max(a + 100 * (s["acc_std"] or 0) for a, s in zip(accs, points))
        pad = max(0.5, 0.1 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad) if hi + pad > lo else 100.0)
    ax.set_ylabel(f"test accuracy % (mean ± std, {cfg.seeds} seeds)")
    ax.set_title(f"{cfg.dataset}: accuracy vs energy on {cfg.arch}")
    ax.grid(alpha=0.3)
    if points:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def fmt_acc(mean: float | None, std: float | None) -> str:
    """``97.12 ± 0.41`` (percent), ``-`` when nothing finished."""
    if mean is None:
        return "-"
    return f"{100 * mean:.2f} ± {100 * (std or 0):.2f}"
