"""Multi-process training under ``torchrun``: DistributedDataParallel with exact batch semantics.

The aim is the same training as one process with the same *global* batch, up to float
summation order, so that adding processes changes the speed and nothing else:

* every process draws the same global batch (the data order, crops and flips depend only on
  ``(seed, epoch)``) and keeps its slice of it;
* the loss of a slice is its summed loss scaled by ``world / global batch``, so DDP's gradient
  average is the gradient of the global mean loss, even for a short last batch;
* BatchNorm statistics are reduced over all processes (:class:`DistributedBatchNorm2d`: CPU
  tensors and gloo included, where ``nn.SyncBatchNorm`` refuses CPU);
* the approximate layers' activation observers reduce their ranges over all processes
  (:func:`multiplier_lib.emulate.quant.set_range_sync`), so every process quantizes alike;
* process 0 alone writes checkpoints and logs; every process resumes from them.

Backends: gloo on CPU, nccl when CUDA is used.  Launch with
``torchrun --nproc_per_node 2 -m hwcost train ...``.
"""

from __future__ import annotations

import inspect
import os
import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from core.errors import HwcostError


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> tuple[int, int]:
    """Join the process group torchrun describes; returns (rank, world size)."""
    if not launched():
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        try:
            dist.init_process_group(backend)
        except (RuntimeError, ValueError) as err:
            raise HwcostError(f"cannot join the torchrun process group ({backend}): "
                              f"{str(err).splitlines()[0]}") from None
    return dist.get_rank(), dist.get_world_size()


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shard(n: int, rank: int, world: int) -> slice:
    """This process's contiguous rows of a global batch of ``n`` (sizes differ by <= 1)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of Python floats over all processes (float64)."""
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def no_buffer_broadcast() -> dict[str, bool]:
    """DistributedDataParallel's setting for not re-broadcasting buffers on every forward,
    under the name this torch has: newer releases renamed ``broadcast_buffers`` to
    ``forward_sync_buffers`` and warn on the old name at every start.  (The new one still
    syncs buffers once at construction; hwcost's ranks build identical models, so that
    changes nothing.)"""
    params = inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters
    if "forward_sync_buffers" in params:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


# torch deprecates its autograd-aware all_reduce in favour of a private module; the warning
# asks nothing of a user, and it would print once per BN layer and process
warnings.filterwarnings("ignore", category=FutureWarning,
                        message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated")


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of the global batch: sums and sums of
    squared deviations are all-reduced (differentiably) over the processes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        count = torch.tensor([x.numel() / c], dtype=x.dtype)
        count = all_reduce(count)
        mean = all_reduce(x.sum(dim=(0, 2, 3))) / count
        centred = x - mean.view(1, c, 1, 1)
        var = all_reduce((centred * centred).sum(dim=(0, 2, 3))) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                n = float(count)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / max(n - 1, 1), alpha=m)
                self.num_batches_tracked.add_(1)
        y = centred / torch.sqrt(var.view(1, c, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` by :class:`DistributedBatchNorm2d` (same state)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = DistributedBatchNorm2d(child.num_features, child.eps, child.momentum,
                                         child.affine, child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_batchnorm(child)
    return module


def slice_loss(logits: torch.Tensor, y: torch.Tensor, global_n: int, world: int
               ) -> torch.Tensor:
    """Loss of this process's slice such that DDP's mean of gradients over ``world``
    processes is the gradient of the global batch's mean loss."""
    return F.cross_entropy(logits, y, reduction="sum") * (world / global_n)
