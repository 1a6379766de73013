"""Energy-aware DARTS search with approximate multipliers: the training loop.

One epoch alternates, batch by batch, an architecture step on the validation half (the
architect, with the expected-energy penalty from :mod:`nas.energy_penalty` added to its
loss) and a weight step on the training half.  After every epoch the run writes, atomically,
a checkpoint (weights, architecture, optimizers, scheduler, random states) and one CSV row,
so a run killed at any point and restarted with ``resume=True`` continues from the last
finished epoch and ends with the same genotype as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from core.arithmetic import Arithmetic, FloatFormat
from core.atomic import atomic_write_text
from core.errors import HwcostError
from darts.genotype_io import Genotype, dumps_json
from darts.op_energy import build_op_energy_table
from hwmodel.costing import CostContext
from multiplier_lib.library import MultiplierResolver

from . import checkpoint
from .architect import Architect, frozen
from .data import make_loaders
from .energy_penalty import energy_penalty, expected_energy
from .ops import approx_conv, plain_conv
from .runlog import write_csv
from .search_cnn import MULTIPLIER_SAMPLING, SearchCNN
from .settings import (
    DataSettings,
    SettingError,
    c_model_in_data,
    check_run_settings,
    check_types,
    require,
)

CSV_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
              "expected_energy_pj", "alpha_entropy", "beta_entropy", "skip_count", "genotype")


@dataclass
class SearchConfig(DataSettings):
    """Every knob of a search run (DARTS defaults), saved with each checkpoint."""

    epochs: int = 50
    layers: int = 8
    channels: int = 16
    nodes: int = 4
    batch_size: int = 64
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_weight_decay: float = 1e-3
    order: str = "first"
    multiplier: str | None = "exact8u"
    multipliers: list[str] = field(default_factory=list)
    # 'gumbel': one candidate per edge and step (GDAS); 'per-conv': mixed at every conv
    multiplier_sampling: str = "all"
    gumbel_tau: float = 1.0
    library: str | None = None        # multiplier library folder (None: the default one)
    backend: str = "auto"
    arch: str = "eyeriss"
    penalty: str = "additive"
    energy_weight: float = 0.0
    energy_target: float | None = None
    max_skip: int = 2
    seed: int = 2
    max_steps: int | None = None       # cap batches per epoch (tests, demos)

    @classmethod
    def from_settings(cls, settings: dict, source=None, multiplier_given: bool = False,
                      line_of: Callable[[str], int | None] | None = None) -> SearchConfig:
        """A config from merged settings (a YAML file's, then the command line's): keys as
        the field names (``-`` for ``_`` allowed), ``multipliers`` as a list or a
        comma-separated string.  Types and ranges are checked and every multiplier is
        resolved here, in the config's library, so a bad setting or an unknown multiplier
        fails before the search starts, at ``source:line_of(key)``."""
        clean = {str(key).replace("-", "_"): value for key, value in settings.items()}
        if isinstance(clean.get("multipliers"), str):
            clean["multipliers"] = [m.strip() for m in clean["multipliers"].split(",")
                                    if m.strip()]
        if "data_dir" in clean and clean["data_dir"] is not None:
            clean["data_dir"] = str(clean["data_dir"])
        try:
            check_types(cls, clean)
            if clean.get("multipliers") and not multiplier_given:
                clean.setdefault("multiplier", None)
            resolve = MultiplierResolver(clean.get("library"))
            for name in clean.get("multipliers") or []:
                if isinstance(_resolve_setting(resolve, "multipliers", name), FloatFormat):
                    raise SettingError("multipliers", f"multipliers: {name} cannot be searched "
                                       "per edge with LUT multipliers; search it alone with "
                                       f"--multiplier {name}")
            if clean.get("multiplier"):
                _resolve_setting(resolve, "multiplier", clean["multiplier"])
            cfg = cls(**clean)
            cfg.validate()
        except SettingError as err:
            line = line_of(err.key) if line_of is not None else None
            raise HwcostError(err.message, file=source, line=line) from None
        return cfg

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict | None = None,
                  multiplier_given: bool = False) -> SearchConfig:
        """The settings of a YAML file, then ``overrides`` (the command line's); errors name
        the file and the line of the offending key."""
        from hwmodel.yamlio import line_of, load_yaml, plain

        node = load_yaml(path)
        data = plain(node)
        if not isinstance(data, dict):
            raise HwcostError("expected a mapping of search settings, e.g. 'epochs: 50'",
                              file=path, line=1)
        for key in ("multiplier", "multipliers"):
            names = data.get(key)
            names = names.split(",") if isinstance(names, str) else names
            for name in names if isinstance(names, list) else []:
                if isinstance(name, str) and name.strip().lower().endswith(".c"):
                    raise HwcostError(c_model_in_data(name.strip()), file=path,
                                      line=line_of(node, key))
        settings = {**data, **(overrides or {})}
        given = set(data)

        def lines(key: str) -> int | None:
            for k in (key, key.replace("_", "-")):
                if k in given and k not in (overrides or {}):
                    return line_of(node, k)
            return None

        return cls.from_settings(settings, source=path, multiplier_given=multiplier_given,
                                 line_of=lines)

    def validate(self) -> None:
        """Ranges and choices; a bad one raises :class:`~nas.settings.SettingError`."""
        from darts.macro import MAX_CELL_NODES

        if self.multipliers and self.multiplier not in (None, "") and \
                self.multiplier not in self.multipliers:
            self.multiplier = None
        check_run_settings(self)
        require("penalty", self.penalty in ("additive", "fbnet", "target"),
                f"{self.penalty!r} is unknown; expected additive, fbnet or target")
        require("energy_target", self.penalty != "target" or self.energy_target is not None,
                "is needed by penalty 'target' (give --energy-target in pJ)")
        require("energy_target", self.energy_target is None or self.energy_target > 0,
                "must be a positive energy in pJ")
        require("energy_weight", self.energy_weight >= 0, "must be >= 0")
        require("order", self.order in ("first", "second"), "must be first or second")
        require("multiplier_sampling", self.multiplier_sampling in MULTIPLIER_SAMPLING,
                f"{self.multiplier_sampling!r} is unknown; expected "
                f"{' or '.join(MULTIPLIER_SAMPLING)}")
        require("gumbel_tau", self.gumbel_tau > 0, "must be > 0")
        require("layers", self.layers >= 3, "must be at least 3 (two reduction cells)")
        require("nodes", 1 <= self.nodes <= MAX_CELL_NODES.value,
                f"must be 1..{MAX_CELL_NODES.value} ({MAX_CELL_NODES.env} raises the limit)")
        require("max_skip", self.max_skip >= -1, "must be -1 (off) or more")
        for key in ("w_lr", "w_lr_min", "w_momentum", "w_weight_decay", "w_grad_clip",
                    "alpha_lr", "alpha_weight_decay"):
            require(key, getattr(self, key) >= 0, "must be >= 0")


def _resolve_setting(resolve: MultiplierResolver, key: str, name: str) -> Arithmetic:
    try:
        return resolve.arithmetic(name)
    except HwcostError as err:
        raise SettingError(key, f"{key}: {err.message}") from None


def _model(cfg: SearchConfig, n_classes: int, resolve=None) -> SearchCNN:
    if cfg.multipliers:
        base = approx_conv(cfg.multipliers[0], backend=cfg.backend, resolve=resolve)
        return SearchCNN(cfg.channels, n_classes, cfg.layers, cfg.nodes, conv=base,
                         multipliers=list(cfg.multipliers),
                         multiplier_conv=lambda names: approx_conv(names, backend=cfg.backend,
                                                                   resolve=resolve),
                         multiplier_sampling=cfg.multiplier_sampling,
                         gumbel_tau=cfg.gumbel_tau)
    conv = (approx_conv(cfg.multiplier, backend=cfg.backend, resolve=resolve)
            if cfg.multiplier else plain_conv)
    return SearchCNN(cfg.channels, n_classes, cfg.layers, cfg.nodes, conv=conv)


def _load_model_state(model: SearchCNN, saved: dict, path: Path) -> None:
    """``model.load_state_dict(saved)``, a mismatch reported as one :class:`HwcostError`.

    Checkpoints written before candidate multipliers shared one weight tensor keep every op
    as a list of per-multiplier copies (``...ops.<i>.<copy>...``, one entry when a single
    multiplier was used) with plain BN statistics; they cannot be mapped onto the
    shared-weight supernet and are refused with the key counts.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    try:
        model.load_state_dict(saved)
        checkpoint.check_loaded(model, path, "supernet")
        return
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        if missing or unexpected:
            example = (unexpected or missing)[0]
            detail = (f"{len(missing)} entries missing, {len(unexpected)} unexpected, e.g. "
                      f"{example!r}")
        else:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            detail = (lines[1] if len(lines) > 1 else (lines or [type(exc).__name__])[0])[:200]
    raise HwcostError("the checkpoint's supernet does not match this version's (checkpoints "
                      "from before candidate multipliers shared their weights keep every op "
                      f"as a list of per-multiplier copies): {detail}; start a new run in "
                      "another --out", file=path)


def cap_skips(genotype: Genotype, model: SearchCNN, max_skip: int) -> Genotype:
    """P-DARTS-style collapse control: keep at most ``max_skip`` skip connections in the
    normal cell, replacing the weakest ones by each edge's best other op."""
    skips = [i for i, (op, _) in enumerate(genotype.normal) if op == "skip_connect"]
    if max_skip < 0 or len(skips) <= max_skip:
        return genotype
    from darts.genotype import PRIMITIVES

    weights = F.softmax(model.alpha_normal.detach(), dim=-1)
    order = _kept_edge_rows(genotype, model)
    skip_idx = PRIMITIVES.index("skip_connect")
    none_idx = PRIMITIVES.index("none")
    strength = sorted(skips, key=lambda i: -float(weights[order[i], skip_idx]))
    normal = list(genotype.normal)
    for i in strength[max_skip:]:
        w = weights[order[i]].clone()
        w[skip_idx] = -1.0
        w[none_idx] = -1.0
        normal[i] = (PRIMITIVES[int(w.argmax())], normal[i][1])
    return replace(genotype, normal=normal)


def _kept_edge_rows(genotype: Genotype, model: SearchCNN) -> list[int]:
    from .search_cells import edge_index

    rows = []
    for pos, (_, j) in enumerate(genotype.normal):
        rows.append(edge_index(pos // 2, j))
    return rows


def _entropy(logits: torch.Tensor | None) -> float:
    if logits is None:
        return float("nan")
    p = F.softmax(logits.detach(), dim=-1)
    return float(-(p * p.clamp_min(1e-12).log()).sum(dim=-1).mean())


def weight_step(model: SearchCNN, w_opt: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, grad_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One weight update on a training batch; returns the logits and the loss.

    The architecture parameters are frozen for it: their gradients here would be thrown
    away (the next architecture step starts from zero), and computing them keeps every
    candidate's output of a per-conv mix alive.  ``benchmarks/bench_search.py`` times this
    same function.  Raises ``FloatingPointError`` on a non-finite loss, before any update.
    """
    w_opt.zero_grad()
    with frozen(model.alphas()):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if not math.isfinite(loss.item()):
            raise FloatingPointError("training loss is not finite")
        loss.backward()
    torch.nn.utils.clip_grad_norm_(list(model.weights()), grad_clip)
    w_opt.step()
    return logits, loss


def run_search(cfg: SearchConfig, out: str | Path, resume: bool = False,
               progress=None) -> Genotype:
    """Search; returns the derived genotype and writes it with the log to ``out``."""
    from . import distributed

    if distributed.launched():
        raise HwcostError("hwcost search runs in one process (multi-process search is not "
                          "implemented); start it without torchrun, or with "
                          "--nproc_per_node 1")
    cfg.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    w_loader, a_loader = make_loaders(cfg.dataset, cfg.data_dir, cfg.batch_size, search=True,
                                      download=cfg.download, seed=cfg.seed,
                                      synthetic_size=cfg.synthetic_size,
                                      input_size=cfg.input_size)
    resolver = MultiplierResolver(cfg.library)
    model = _model(cfg, w_loader.num_classes, resolver)
    mults = cfg.multipliers or [cfg.multiplier or "exact8u"]
    # relative op costs over hundreds of shapes: the constructive mapper suffices here
    context = CostContext.for_spec(cfg.arch, effort="fast", resolve=resolver.arithmetic)
    table = build_op_energy_table(context, mults, layers=cfg.layers, channels=cfg.channels,
                                  input_size=int(w_loader.images.shape[-1]),
                                  n_nodes=cfg.nodes, classes=w_loader.num_classes)

    def expected() -> torch.Tensor:
        return expected_energy(table, model.alpha_normal, model.alpha_reduce,
                               model.beta_normal, model.beta_reduce)

    def arch_loss(val_loss: torch.Tensor, energy: torch.Tensor | None) -> torch.Tensor:
        """The validation cross-entropy with the energy term in the configured form (FBNet's
        multiplies the cross-entropy, so it must see the real one)."""
        if energy is None or (cfg.energy_weight <= 0 and cfg.penalty != "target"):
            return val_loss
        total = energy_penalty(val_loss.to(torch.float64), energy, table.reference_pj,
                               cfg.penalty, weight=max(cfg.energy_weight, 1e-12),
                               target=cfg.energy_target)
        return total.to(val_loss.dtype)

    def loss_fn(net, x, y):
        logits = net(x)
        return F.cross_entropy(logits, y), logits

    w_opt = torch.optim.SGD(model.weights(), cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    a_opt = torch.optim.Adam(model.alphas(), cfg.alpha_lr, betas=(0.5, 0.999),
                             weight_decay=cfg.alpha_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, cfg.epochs, eta_min=cfg.w_lr_min)
    architect = Architect(model, loss_fn, a_opt, cfg.order, cfg.w_momentum,
                          cfg.w_weight_decay, arch_loss, expected)
    start_epoch = 0
    rows: list[dict] = []
    if resume and ckpt_path.exists():
        state = checkpoint.check_content(checkpoint.load(ckpt_path), checkpoint.SEARCH_KEYS,
                                         ckpt_path, "search")
        if {**asdict(SearchConfig()), **state["config"]} != asdict(cfg):
            raise HwcostError("the checkpoint was written with other settings; resume with "
                              "the same options or use another --out", file=ckpt_path)
        _load_model_state(model, state["model"], ckpt_path)
        for what, action in (("weight optimizer", lambda: w_opt.load_state_dict(state["w_opt"])),
                             ("architecture optimizer",
                              lambda: a_opt.load_state_dict(state["a_opt"])),
                             ("schedule", lambda: sched.load_state_dict(state["sched"])),
                             ("random state", lambda: checkpoint.set_rng_state(state["rng"]))):
            checkpoint.restore(ckpt_path, what, action)
        start_epoch = state["epoch"] + 1
        rows = state["rows"]
    for epoch in range(start_epoch, cfg.epochs):
        lr = sched.get_last_lr()[0]
        model.train()
        stats = {"train_loss": 0.0, "train_acc": 0.0, "val_loss": 0.0, "val_acc": 0.0, "n": 0}
        for step, ((xw, yw), (xa, ya)) in enumerate(zip(w_loader.epoch_batches(epoch),
                                                         a_loader.epoch_batches(epoch))):
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            try:
                val_loss = architect.step(xw, yw, xa, ya, lr, w_opt)
                logits, loss = weight_step(model, w_opt, xw, yw, cfg.w_grad_clip)
            except FloatingPointError as err:
                raise HwcostError(f"loss became NaN/inf at epoch {epoch} step {step} ({err}); "
                                  f"the last good checkpoint is {ckpt_path} (lower the "
                                  "learning rate or the energy weight)") from None
            stats["train_loss"] += loss.item()
            stats["train_acc"] += float((logits.argmax(1) == yw).float().mean())
            stats["val_loss"] += float(val_loss)
            # the architecture step's own validation logits: a second forward would feed the
            # batch to BatchNorm statistics and quantizer ranges again
            stats["val_acc"] += float((architect.val_logits.argmax(1) == ya).float().mean())
            stats["n"] += 1
            if progress is not None:
                progress(epoch, step)
        sched.step()
        n = max(stats.pop("n"), 1)
        geno = cap_skips(model.genotype(), model, cfg.max_skip)
        rows.append({
            "epoch": epoch, "lr": lr, **{k: v / n for k, v in stats.items()},
            "expected_energy_pj": float(expected().detach()),
            "alpha_entropy": (_entropy(model.alpha_normal) + _entropy(model.alpha_reduce)) / 2,
            "beta_entropy": (_entropy(model.beta_normal) + _entropy(model.beta_reduce)) / 2,
            "skip_count": sum(op == "skip_connect" for op, _ in geno.normal),
            "genotype": json.dumps(json.loads(dumps_json(geno)), separators=(",", ":"))})
        checkpoint.save(ckpt_path, {
            "config": asdict(cfg), "epoch": epoch, "model": model.state_dict(),
            "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(),
            "sched": sched.state_dict(), "rng": checkpoint.rng_state(), "rows": rows})
        write_csv(out / "search.csv", rows, CSV_FIELDS)
    geno = cap_skips(model.genotype(), model, cfg.max_skip)
    if not cfg.multipliers and cfg.multiplier:
        geno = geno.with_multiplier(cfg.multiplier)
    elif cfg.multipliers:
        # the layers no beta chooses for (stem, preprocessing, classifier) ran with the first
        # multiplier in the search and its energy table: the genotype says so, so that every
        # later price of it (estimate, train, sweep) agrees with the search's
        geno = replace(geno, multiplier=cfg.multipliers[0])
    atomic_write_text(out / "genotype.json", dumps_json(geno))
    return geno


def summarize_search(cfg: SearchConfig, out: str | Path, genotype: Genotype) -> dict:
    """The found cell in the full evaluation network on ``cfg.arch``: energy (split
    arithmetic / memory), MACs, cycles; written to ``out/estimate.json`` (atomically)."""
    import json

    from darts.cellgraph import NetworkConfig
    from darts.pricing import price_network
    from hwmodel.costing import CostContext

    out = Path(out)
    context = CostContext.for_spec(cfg.arch, resolve=MultiplierResolver(cfg.library).arithmetic)
    net = NetworkConfig.from_genotype(genotype)
    est = price_network(genotype, net, context)
    summary = {"genotype": str(out / "genotype.json"), "arch": context.arch.name,
               "network": vars(net), "energy_pj": est.total("energy_pj"),
               "arithmetic_pj": est.total("arithmetic_pj"),
               "memory_pj": est.total("memory_pj"), "macs": est.macs,
               "cycles": est.total("cycles")}
    atomic_write_text(out / "estimate.json", json.dumps(summary, indent=2))
    return summary
