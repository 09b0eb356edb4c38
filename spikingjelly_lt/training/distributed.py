"""Data-parallel training on PyTorch's own engine (torchrun + DistributedDataParallel).

Under ``torchrun --nproc_per_node N`` every rank trains on its share of each global
batch (DistributedSampler), gradients (scores included) are all-reduced by DDP, so
supermask masks and alphas stay identical on every rank; IMP masks are computed from
identical weights and broadcast from rank 0 anyway. Only rank 0 logs, shows
progress, writes checkpoints and results. ``gloo`` on CPU, ``nccl`` on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "init_distributed", "shutdown_distributed", "dist_info", "is_main", "wrap_ddp",
           "broadcast_buffers", "make_sampler", "all_reduce_max", "broadcast_object"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def dist_info() -> DistInfo:
    """This process's rank/world from torchrun's environment (1 process without it)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def is_main() -> bool:
    return dist_info().rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun set up (no-op for a single process)."""
    info = dist_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device.index if device.index is not None else info.local_rank)
        dist.init_process_group(backend=backend)
    return dist_info()


def shutdown_distributed() -> None:
    """Leave the process group (at the end of a torchrun run); a no-op without one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    """``t`` replaced in place by its maximum over the ranks (unchanged for one process)."""
    if dist_info().enabled and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself for one process)."""
    if not (dist_info().enabled and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """The model to call for training: DDP-wrapped when running distributed."""
    if not dist_info().enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def broadcast_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BN running statistics, masks) before evaluation."""
    if not dist_info().enabled:
        return
    for buf in model.buffers():
        dist.broadcast(buf, src=0)


def make_sampler(n: int, seed: int):
    """A DistributedSampler over ``n`` training images, or None for one process."""
    info = dist_info()
    if not info.enabled:
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(range(n), num_replicas=info.world, rank=info.rank, shuffle=True, seed=seed, drop_last=True)
