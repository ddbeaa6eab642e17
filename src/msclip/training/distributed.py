"""Where this process runs: rank and world size from torchrun's environment, PyTorch DDP process group."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from msclip.models import best_device


@dataclass(frozen=True)
class Env:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str | None = None) -> Env:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT), if any:
    NCCL on GPUs, gloo on CPUs. One process without those variables trains alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kind = device or best_device()
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device(kind)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    return Env(rank, world_size, local_rank, target)


def barrier(env: Env) -> None:
    if env.world_size > 1:
        dist.barrier()


def all_gather(env: Env, value: object) -> list:
    """``value`` of every rank (in rank order), e.g. the inputs each rank skipped, so rank 0 reports them all."""
    if env.world_size == 1:
        return [value]
    gathered: list = [None] * env.world_size
    dist.all_gather_object(gathered, value)
    return gathered
