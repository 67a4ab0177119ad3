"""Process group handling for multi-GPU / multi-process training (torchrun or spawned workers).

A run is distributed when ``WORLD_SIZE`` > 1 is set in the environment (torchrun sets it, as
well as RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT) or when the caller already initialised
the default process group. Backend: nccl on CUDA, gloo on the CPU. Only rank 0 logs and saves.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """This process's place in the run; ``owns_group``: we created the group (and destroy it)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> if torch sees a GPU, else cpu; 'cuda' -> cuda:<local_rank>."""
    if preference == 'auto':
        preference = 'cuda' if torch.cuda.is_available() else 'cpu'
    if preference == 'cuda':
        preference = f'cuda:{local_rank}'
    device = torch.device(preference)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError(f'device {preference!r} requested but torch sees no CUDA device')
        torch.cuda.set_device(device)
    return device


def setup(device_preference: str = 'auto') -> DistInfo:
    """Join (or create from the torchrun environment) the default process group, if any."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get('LOCAL_RANK', dist.get_rank()))
        device = pick_device(device_preference, local)
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, device, owns_group=False)
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return DistInfo(device=pick_device(device_preference))
    local = int(os.environ.get('LOCAL_RANK', '0'))
    device = pick_device(device_preference, local)
    dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, device, owns_group=True)


def teardown(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of ``values`` over all processes (a no-op in a single process)."""
    if info.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order, on every process."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
