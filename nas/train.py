"""Full training of a found network with approximate multipliers, and its evaluation.

``run_train`` builds the DARTS evaluation network of a genotype with every convolution
approximate (per-edge multipliers from the genotype unless one is forced), trains it with
quantization-aware training (the approximate layers' quantizers observe while training),
checkpoints atomically every epoch (resumable, same result as an uninterrupted run), and
reports test accuracy.  ``evaluate_checkpoint`` swaps multipliers into a trained network and
measures accuracy under each.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from core.errors import HwcostError
from darts.genotype_io import Genotype, dumps_json, loads
from multiplier_lib.emulate import set_multiplier
from multiplier_lib.emulate.quant import set_range_sync
from multiplier_lib.library import MultiplierResolver

from . import checkpoint, distributed
from .augment_cnn import AugmentCNN
from .data import make_loaders
from .ops import approx_conv
from .runlog import write_csv
from .settings import DataSettings, SettingError, check_run_settings, check_types, require

if TYPE_CHECKING:
    from darts.cellgraph import NetworkConfig
    from hwmodel.costing import CostContext

TRAIN_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc")


@dataclass
class TrainConfig(DataSettings):
    """Evaluation-training settings (DARTS defaults)."""

    epochs: int = 600
    layers: int = 20
    channels: int = 36
    batch_size: int = 96
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    auxiliary: bool = False
    auxiliary_weight: float = 0.4
    cutout: int = 0
    drop_path: float = 0.2
    multiplier: str | None = None       # overrides the genotype's multipliers
    library: str | None = None          # multiplier library folder (None: the default one)
    backend: str = "auto"
    grad: str = "ste"                   # approximate layers' backward: straight-through or LUT
    seed: int = 0
    max_steps: int | None = None

    def validate(self) -> None:
        """Types, ranges and choices; a bad one raises :class:`~nas.settings.SettingError`
        naming the setting."""
        check_types(TrainConfig, asdict(self))
        check_run_settings(self)
        require("layers", self.layers >= 1, "must be at least 1")
        require("cutout", self.cutout >= 0, "must be 0 (off) or a length in pixels")
        require("drop_path", 0 <= self.drop_path < 1, "must be in [0, 1)")
        require("grad", self.grad in ("ste", "lut"), "must be ste or lut")
        for key in ("lr", "momentum", "weight_decay", "grad_clip", "auxiliary_weight"):
            require(key, getattr(self, key) >= 0, "must be >= 0")


def build_network(genotype: Genotype, cfg: TrainConfig, n_classes: int) -> AugmentCNN:
    """The evaluation network; ``cfg.multiplier`` (if set) replaces every multiplier."""
    if cfg.multiplier:
        genotype = genotype.with_multiplier(cfg.multiplier)
    base = genotype.multiplier or "exact8u"
    resolver = MultiplierResolver(cfg.library)
    return AugmentCNN(genotype, C=cfg.channels, n_classes=n_classes, n_layers=cfg.layers,
                      auxiliary=cfg.auxiliary,
                      conv=approx_conv(base, backend=cfg.backend, grad=cfg.grad,
                                       resolve=resolver),
                      drop_path=cfg.drop_path,
                      multiplier_conv=lambda name: approx_conv(name, backend=cfg.backend,
                                                               grad=cfg.grad,
                                                               resolve=resolver))


def accuracy(model: torch.nn.Module, batches) -> tuple[float, float]:
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for x, y in batches:
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
    return loss_sum / max(total, 1), correct / max(total, 1)


def run_train(genotype: Genotype, cfg: TrainConfig, out: str | Path, resume: bool = False,
              progress=None) -> dict:
    """Train ``genotype``'s evaluation network; under ``torchrun`` with several processes,
    as DistributedDataParallel with the same global batch (:mod:`nas.distributed`)."""
    try:
        cfg.validate()
    except SettingError as err:
        raise HwcostError(f"training settings: {err.message}") from None
    launched = distributed.launched()
    rank, world = distributed.setup()
    previous_sync = set_range_sync(world > 1)
    try:
        return _run_train(genotype, cfg, Path(out), resume, progress, rank, world)
    finally:
        set_range_sync(previous_sync)
        if launched:
            distributed.teardown()


def _run_train(genotype: Genotype, cfg: TrainConfig, out: Path, resume: bool, progress,
               rank: int, world: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    if cfg.batch_size < world:
        raise HwcostError(f"a global batch of {cfg.batch_size} cannot feed {world} processes")
    train, test = make_loaders(cfg.dataset, cfg.data_dir, cfg.batch_size, search=False,
                               cutout=cfg.cutout, download=cfg.download, seed=cfg.seed,
                               synthetic_size=cfg.synthetic_size, input_size=cfg.input_size)
    model = build_network(genotype, cfg, train.num_classes)
    if world > 1:
        distributed.convert_batchnorm(model)
    opt = torch.optim.SGD(model.parameters(), cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    start, rows = 0, []
    if resume and ckpt_path.exists():
        state = checkpoint.check_content(checkpoint.load(ckpt_path), checkpoint.TRAIN_KEYS,
                                         ckpt_path, "training")
        saved = asdict(checkpoint.config_of(TrainConfig, state["config"], ckpt_path))
        if saved != asdict(cfg) or state["genotype"] != dumps_json(genotype):
            raise HwcostError("the checkpoint was written for another genotype or other "
                              "settings; resume with the same ones or use another --out",
                              file=ckpt_path)
        checkpoint.load_weights(model, state["model"], ckpt_path, "weights")
        checkpoint.restore(ckpt_path, "optimizer", lambda: opt.load_state_dict(state["opt"]))
        checkpoint.restore(ckpt_path, "schedule", lambda: sched.load_state_dict(state["sched"]))
        checkpoint.restore(ckpt_path, "random state",
                           lambda: checkpoint.set_rng_state(state["rng"]))
        start, rows = state["epoch"] + 1, state["rows"]
    net: torch.nn.Module = model
    if world > 1:
        # buffers are kept alike by design (global BN statistics, reduced observer ranges)
        net = torch.nn.parallel.DistributedDataParallel(model, **distributed.no_buffer_broadcast())
    for epoch in range(start, cfg.epochs):
        model.train()
        model.drop_path_prob(cfg.drop_path * epoch / cfg.epochs)
        lr = sched.get_last_lr()[0]
        loss_sum, acc_sum, n = 0.0, 0.0, 0
        for step, (x, y) in enumerate(train.epoch_batches(epoch)):
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            batch = len(y)
            part = distributed.shard(batch, rank, world)
            x, y = x[part], y[part]
            opt.zero_grad()
            out_ = net(x)
            logits, aux = out_ if isinstance(out_, tuple) else (out_, None)
            loss = distributed.slice_loss(logits, y, batch, world)
            if aux is not None:
                loss = loss + cfg.auxiliary_weight * distributed.slice_loss(aux, y, batch,
                                                                            world)
            # the global batch's mean loss and accuracy, alike on every process
            mean_loss, hits = distributed.all_sum(
                [float(loss.detach()) / world, float((logits.argmax(1) == y).sum())])
            if not math.isfinite(mean_loss):
                raise HwcostError(f"loss became NaN/inf at epoch {epoch} step {step}; the last "
                                  f"good checkpoint is {ckpt_path}")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            loss_sum += mean_loss
            acc_sum += hits / batch
            n += 1
            if progress is not None and rank == 0:
                progress(epoch, step)
        sched.step()
        test_loss, test_acc = accuracy(model, test)
        rows.append({"epoch": epoch, "lr": lr, "train_loss": loss_sum / max(n, 1),
                     "train_acc": acc_sum / max(n, 1), "test_loss": test_loss,
                     "test_acc": test_acc})
        if rank == 0:
            checkpoint.save(ckpt_path, {
                "kind": "train", "config": asdict(cfg), "genotype": dumps_json(genotype),
                "epoch": epoch, "model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "rng": checkpoint.rng_state(), "rows": rows,
                "n_classes": train.num_classes})
            write_csv(out / "train.csv", rows, TRAIN_FIELDS)
        distributed.barrier()
    return rows[-1]


def evaluate_checkpoint(path: str | Path, multipliers: list[str] | None = None,
                        backend: str | None = None, library: str | None = None
                        ) -> list[dict]:
    """Test accuracy of a trained network under each multiplier (swapped in after training;
    ``None`` keeps the trained ones).  ``library`` replaces the training run's library
    folder."""
    state = checkpoint.load(path)
    if not isinstance(state, dict) or state.get("kind") != "train":
        raise HwcostError("not a training checkpoint (hwcost train writes those)", file=path)
    state = checkpoint.check_content(state, checkpoint.TRAIN_KEYS, path, "training")
    cfg = checkpoint.config_of(TrainConfig, state["config"], path)
    if backend is not None:
        cfg.backend = backend
    if library is not None:
        cfg.library = str(library)
    resolver = MultiplierResolver(cfg.library)
    genotype = loads(state["genotype"], source=str(path))
    model = build_network(genotype, cfg, state["n_classes"])
    checkpoint.load_weights(model, state["model"], path, "weights")
    _, test = make_loaders(cfg.dataset, cfg.data_dir, cfg.batch_size, search=False,
                           download=cfg.download, seed=cfg.seed,
                           synthetic_size=cfg.synthetic_size, input_size=cfg.input_size)
    results = []
    for name in multipliers or [None]:
        if name is not None:   # float formats by name, multipliers from the run's library
            set_multiplier(model, resolver.arithmetic(name))
        loss, acc = accuracy(model, test)
        results.append({"multiplier": name or "as trained", "test_loss": loss,
                        "test_acc": acc, "genotype": genotype})
    return results


def count_params(genotype: Genotype, cfg: TrainConfig, n_classes: int) -> int:
    """Trainable parameters of the evaluation network (not BatchNorm statistics or the
    quantizers' observed ranges, which a state dict holds too)."""
    model = build_network(genotype, cfg, n_classes)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def trained_figures(genotype: Genotype, cfg: TrainConfig, n_classes: int,
                    context: CostContext) -> dict:
    """What a table reports of a trained network: energy per image in uJ (total, arithmetic,
    memory) on ``context``'s accelerator with the multipliers it was trained with (``cfg``'s
    forced one, else the genotype's), its parameters and MACs.  The sweep and the experiment
    both report these."""
    from darts.pricing import price_network

    est = price_network(genotype, trained_network(genotype, cfg, n_classes), context,
                        cfg.multiplier)
    return {"energy_uj": est.total("energy_pj") / 1e6,
            "arithmetic_uj": est.total("arithmetic_pj") / 1e6,
            "memory_uj": est.total("memory_pj") / 1e6,
            "params": count_params(genotype, cfg, n_classes), "macs": est.macs}


def trained_network(genotype: Genotype, cfg: TrainConfig | dict, n_classes: int
                    ) -> NetworkConfig:
    """The evaluation network a training run builds (its cells, channels, classes and image
    size), as the hardware model prices it; ``cfg`` a :class:`TrainConfig` or its dict (as a
    checkpoint stores it)."""
    from darts.cellgraph import NetworkConfig

    get = cfg.get if isinstance(cfg, dict) else lambda key: getattr(cfg, key)
    return NetworkConfig.from_genotype(genotype, layers=get("layers"), channels=get("channels"),
                                       input_size=get("input_size"), classes=n_classes)


def network_energy(genotype: Genotype, network: NetworkConfig, context: CostContext,
                   multiplier: str | None = None) -> float:
    """Energy per image (pJ) of ``genotype``'s evaluation network in ``context``: with its own
    (per-edge) multipliers, or ``multiplier`` (a multiplier or a float format) replacing them
    all, as :func:`darts.pricing.price_network` prices every network of the toolkit."""
    from darts.pricing import price_network

    return price_network(genotype, network, context, multiplier).total("energy_pj")
