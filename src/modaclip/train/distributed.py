"""torchrun support: one process per device, DistributedDataParallel, rank 0 writes the outputs.

`torchrun --nproc_per_node=N stages/finetune.py ...` sets RANK/WORLD_SIZE/LOCAL_RANK; without them
training is a single process and nothing here starts a process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from modaclip.model.clip_model import resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process stands among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (nccl on CUDA, gloo on CPU), one device per process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world_size == 1:
        return DistContext(), device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), world_size, local_rank), device


def mean_over_ranks(value: torch.Tensor, context: DistContext) -> float:
    """The mean of a per-rank scalar (the loss of each rank's rows) over all ranks."""
    if context.world_size == 1:
        return float(value.detach())
    total = value.detach().float().clone()
    dist.all_reduce(total)
    return float(total) / context.world_size


def shutdown(context: DistContext) -> None:
    if context.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
